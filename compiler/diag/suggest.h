// "Did you mean" suggestions.
//
// Elm's rule (compiler/src/Reporting/Suggest.hs): a candidate is offered when it is within one edit of a
// short name and two edits of a longer one, counting an adjacent transposition as one edit (`tua` -> `tau`).
// Ties go to the alphabetically first candidate so output is deterministic.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusec {

/// Optimal string alignment distance (Levenshtein plus adjacent transpositions).
size_t EditDistance(std::string_view a, std::string_view b);

/// The closest candidate within the edit budget for `name`, if any. `name` itself is never suggested.
std::optional<std::string> Suggest(std::string_view name, const std::vector<std::string>& candidates);

/// "help: did you mean `x`?" text for the closest candidate, or empty.
std::string DidYouMean(std::string_view name, const std::vector<std::string>& candidates);

}  // namespace fusec
