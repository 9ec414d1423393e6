#include "compiler/diag/suggest.h"

#include <algorithm>
#include <cctype>

namespace fusec {

size_t EditDistance(std::string_view a, std::string_view b) {
  // Three rolling rows: two before the current one are needed for transpositions.
  std::vector<size_t> before(b.size() + 1), previous(b.size() + 1), current(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) previous[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    current[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t substitution = a[i - 1] == b[j - 1] ? 0 : 1;
      current[j] = std::min({previous[j] + 1, current[j - 1] + 1, previous[j - 1] + substitution});
      if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1]) {
        current[j] = std::min(current[j], before[j - 2] + 1);
      }
    }
    std::swap(before, previous);
    std::swap(previous, current);
  }
  return previous[b.size()];
}

std::optional<std::string> Suggest(std::string_view name, const std::vector<std::string>& candidates) {
  size_t budget = name.size() <= 3 ? 1 : 2;
  std::optional<std::string> best;
  size_t best_distance = budget + 1;
  auto lower = [](std::string_view s) {
    std::string out(s);
    for (char& c : out) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return out;
  };
  std::string lowered = lower(name);
  for (const std::string& candidate : candidates) {
    if (candidate == name) continue;
    // A difference of case alone counts as one edit, whatever the length.
    size_t distance = lower(candidate) == lowered ? 1 : EditDistance(name, candidate);
    if (distance < best_distance || (distance == best_distance && best && candidate < *best)) {
      best_distance = distance;
      best = candidate;
    }
  }
  if (best_distance > budget) return std::nullopt;
  return best;
}

std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates) {
  auto suggestion = Suggest(name, candidates);
  return suggestion ? "did you mean `" + *suggestion + "`?" : "";
}

}  // namespace fusec
