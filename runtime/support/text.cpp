#include "runtime/support/text.h"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <vector>

namespace fusec::rt {

uint32_t DecodeUtf8(std::string_view text, size_t& i) {
  auto c = static_cast<unsigned char>(text[i]);
  if (c < 0x80) {
    ++i;
    return c;
  }
  size_t length = (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 0;
  if (length == 0 || i + length > text.size()) {
    ++i;
    return 0xFFFD;
  }
  uint32_t cp = length == 2 ? (c & 0x1F) : length == 3 ? (c & 0x0F) : (c & 0x07);
  for (size_t k = 1; k < length; ++k) {
    auto next = static_cast<unsigned char>(text[i + k]);
    if ((next & 0xC0) != 0x80) {
      ++i;
      return 0xFFFD;
    }
    cp = (cp << 6) | (next & 0x3F);
  }
  constexpr uint32_t kSmallest[] = {0, 0, 0x80, 0x800, 0x10000};
  if (cp < kSmallest[length] || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
    ++i;
    return 0xFFFD;
  }
  i += length;
  return cp;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

namespace {

/// A decoded U+FFFD that stood for an invalid sequence, rather than an encoded U+FFFD in the text.
bool IsReplacement(std::string_view text, size_t start, uint32_t cp) {
  return cp == 0xFFFD && text.compare(start, 3, "\xEF\xBF\xBD") != 0;
}

}  // namespace

bool IsValidUtf8(std::string_view text) {
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    if (IsReplacement(text, start, DecodeUtf8(text, i))) return false;
  }
  return true;
}

Utf8Prefix Utf8PrefixAt(std::string_view text, size_t pos) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  const unsigned char lead = byte(pos);
  if (lead < 0x80) return {1, true};
  size_t width = 0;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;  // the range of the second byte
  if (lead >= 0xC2 && lead <= 0xDF) {
    width = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    width = 3;
    if (lead == 0xE0) low = 0xA0;
    if (lead == 0xED) high = 0x9F;
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    width = 4;
    if (lead == 0xF0) low = 0x90;
    if (lead == 0xF4) high = 0x8F;
  } else {
    return {1, false};
  }
  size_t valid = 1;  // bytes of a sequence that can still be completed
  while (valid < width && pos + valid < text.size()) {
    const unsigned char next = byte(pos + valid);
    const bool ok = valid == 1 ? (next >= low && next <= high) : (next >= 0x80 && next <= 0xBF);
    if (!ok) break;
    ++valid;
  }
  return {valid, valid == width};
}

std::string LossyUtf8(std::string_view bytes) {
  // Rust's from_utf8_lossy: one U+FFFD for each maximal prefix of a sequence that cannot be completed
  // (Unicode's "substitution of maximal subparts"), so `E5 8F` alone is one U+FFFD, not two.
  std::string out;
  out.reserve(bytes.size());
  for (size_t i = 0; i < bytes.size();) {
    const Utf8Prefix prefix = Utf8PrefixAt(bytes, i);
    if (prefix.complete) {
      out.append(bytes.substr(i, prefix.valid));
    } else {
      AppendUtf8(out, 0xFFFD);
    }
    i += prefix.valid;
  }
  return out;
}

std::optional<std::string> ReadWholeFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return std::nullopt;
  std::ostringstream text;
  text << in.rdbuf();
  if (in.bad()) return std::nullopt;
  return text.str();
}

bool WriteWholeFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary);
  out.write(text.data(), static_cast<std::streamsize>(text.size()));
  out.close();
  return !out.fail();
}

namespace {

bool IsPythonSpace(uint32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || (cp >= 0x1C && cp <= 0x20) || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F || cp == 0x205F ||
         cp == 0x3000;
}

}  // namespace

std::string TrimPythonSpace(std::string_view text) {
  size_t begin = text.size();
  size_t end = 0;
  for (size_t i = 0; i < text.size();) {
    size_t start = i;
    if (!IsPythonSpace(DecodeUtf8(text, i))) {
      begin = std::min(begin, start);
      end = i;
    }
  }
  return begin < end ? std::string(text.substr(begin, end - begin)) : std::string();
}

double EditSimilarity(std::string_view a, std::string_view b) {
  auto code_points = [](std::string_view text) {
    std::vector<uint32_t> out;
    for (size_t i = 0; i < text.size();) out.push_back(DecodeUtf8(text, i));
    return out;
  };
  const std::vector<uint32_t> x = code_points(a);
  const std::vector<uint32_t> y = code_points(b);
  std::vector<size_t> row(y.size() + 1);  // one row of the edit-distance table
  for (size_t j = 0; j <= y.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= x.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= y.size(); ++j) {
      size_t above = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (x[i - 1] != y[j - 1] ? 1 : 0)});
      diagonal = above;
    }
  }
  size_t longest = std::max<size_t>({x.size(), y.size(), 1});
  return 1.0 - static_cast<double>(row[y.size()]) / static_cast<double>(longest);
}

}  // namespace fusec::rt
