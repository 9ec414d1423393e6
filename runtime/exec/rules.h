// The data half of an experiment, evaluated on records: splits, source filters, selections, pairings,
// groupings and weightings, exactly as the checked experiment states them.
//
// These run before any model does and decide what a stage learns from, so they are plain C++ over the
// records (no LibTorch) and tested on small hand-made data with the expected items written out. A rule's
// expressions (`top_k(4, by: reward)`, `argmax(reward) where source != "target"`, `softmax(max(reward) over
// source / tau) over sources`) come from the compiler as IR expressions (compiler/ir/expr.h) in the rule
// nodes' payloads; this file gives them their meaning on data, with the operators' scalar meaning from
// ir::EvalScalar. Ties are broken by response order (the first response of a prompt wins), so results never depend on
// a sort's whims.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <vector>

#include "compiler/ir/payloads.h"
#include "runtime/data/jsonl.h"

namespace fusec::rt {

/// Prompts with their responses, as read from JSONL.
using Dataset = std::vector<PromptRecord>;

/// What a stage trains on: items of one or more responses (one per role) of a prompt, with weights.
struct Item {
  uint32_t prompt = 0;             // index into the dataset
  std::vector<int32_t> responses;  // index into the prompt's responses, one per role
  int64_t group = -1;              // for group objectives: the item's group
  double weight = 1.0;
};

struct ItemSet {
  std::vector<std::string> roles;  // {"y"} for responses; {"chosen", "rejected"} (or more) for pairs
  std::vector<Item> items;
  int64_t groups = 0;      // number of groups (group rules), 0 otherwise
  int64_t dropped = 0;     // scopes that yielded no item (no candidate for a role, a group of one)
};

/// A rule that cannot be evaluated on the data: a weight that does not normalise (a negative value for
/// `normalize`), `over sources` on a value that differs within a source. The message says where.
class RuleError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// One part of `split(data, a: 0.4, b: 0.6, seed: s)`: each prompt goes to a part by a hash of the seed and
/// its id, so parts are disjoint, stable when the file is reordered or grown, and the same in every run.
Dataset SplitPart(const Dataset& data, const std::vector<std::pair<std::string, double>>& fractions,
                  const std::string& part, int64_t seed);

/// The prompts' responses of the listed sources only (`keep_sources`); prompts left with none are dropped.
Dataset KeepSources(const Dataset& data, const std::vector<std::string>& sources);

ItemSet Select(const Dataset& data, const ir::SelectionRule& rule);
ItemSet Pair(const Dataset& data, const ir::PairingRule& rule);
/// Groups of at least two responses (a group of one has no leave-one-out baseline; such groups are dropped
/// and counted).
ItemSet Group(const Dataset& data, const ir::GroupingRule& rule);

/// Sets each item's weight from the stage's weighting (null: 1 for every item).
void Weigh(const Dataset& data, const ir::ExprRef& weight, ItemSet& items);

}  // namespace fusec::rt
