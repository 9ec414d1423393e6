// Checks of a data set as a whole, after every line parsed: what no single line shows.
//
// The reader (jsonl.h) judges one line at a time, so a file can be well-formed line by line and still be
// surely wrong as a whole (a key the experiment maps that no record has: every reward, gold answer or family
// silently missing) or quietly degenerate (every line twice, an integer id 1 and a string id "1" naming two
// prompts alike, prompts without responses, which no training stage can use). The first kind is an error, as
// is a data set with nothing left to use; the second is a warning with counts, so nothing is trained on
// quietly. Kept apart from the reader (which streams and never holds the file) and from the executor (which
// only prints). Pairs whose chosen and rejected texts are identical are a property of a pairing rule, not of
// the file: the executor counts them where the rule is evaluated (exec/rule_nodes.cpp).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/data/jsonl.h"

namespace fusec::rt {

struct DataProblem {
  std::string message;  // lower case, no trailing period, keys in backticks
  std::string help;     // the fix; empty when there is nothing obvious to do
};

struct DataCheckReport {
  std::optional<DataProblem> error;  // the data set must not be used
  std::vector<DataProblem> warnings;  // it may be, but the user should know
};

/// Checks `records`, read with the key names `fields` (the experiment's mapping; the defaults are
/// JsonlFields{}); `skipped` bad lines were dropped on the way.
DataCheckReport CheckRecords(const std::vector<PromptRecord>& records, const JsonlFields& fields, int64_t skipped);

}  // namespace fusec::rt
