// The data half of a stage: source filters, splits, the rule that picks its items (select, pairs, groups)
// and their weights, as runtime/exec/rules.h evaluates them on records.

#include <ostream>

#include "runtime/data/examples.h"
#include "runtime/exec/run_context.h"

namespace fusec::rt {
namespace {

/// A copy of `data` whose responses carry their token counts under `model`'s tokenizer and chat template
/// (what a rule's or a weighting's `len` reads; the same count the objective's `len` sees in training).
std::shared_ptr<const Dataset> WithTokenCounts(const Dataset& data, const ModelHandle& model) {
  std::string error;
  auto tokenizer = Tokenizer::Load(model.dir, &error);
  if (!tokenizer) throw RunError(RunErrorKind::ModelDirectory, error).Place(model.dir);
  const ChatTemplate chat = ResolveChat(model.chat, *tokenizer, model.dir);
  auto counted = std::make_shared<Dataset>(data);
  for (PromptRecord& record : *counted) {
    for (ResponseRecord& response : record.responses) {
      auto ids = TokenizeResponse(record, response.text, *tokenizer, chat, &error);
      if (!ids) {
        throw RunError(RunErrorKind::Tokenization,
                       "prompt `" + record.id + "` (line " + std::to_string(record.line) + "): " + error);
      }
      response.tokens = static_cast<int64_t>(ids->size());
    }
  }
  return counted;
}

/// Pairs whose chosen and rejected texts are the same teach nothing (their logp difference is 0 whatever the
/// weights): a warning with the count, an error when every pair is one (the rule surely pairs the wrong way).
void CheckPairTexts(const ir::Node& node, const Dataset& data, const ItemSet& items, RunContext& run) {
  int64_t identical = 0;
  std::string example;
  for (const Item& item : items.items) {
    const PromptRecord& record = data[item.prompt];
    bool same = item.responses.size() > 1;
    for (size_t r = 1; r < item.responses.size(); ++r) {
      same = same && record.responses[static_cast<size_t>(item.responses[r])].text ==
                         record.responses[static_cast<size_t>(item.responses[0])].text;
    }
    if (same && identical++ == 0) example = "e.g. prompt `" + record.id + "` (line " + std::to_string(record.line) + ")";
  }
  if (identical == 0) return;
  const std::string counted = std::to_string(identical) + " of " + std::to_string(items.items.size()) +
                              " pairs have identical `" + items.roles.front() + "` and `" + items.roles.back() +
                              "` texts (" + example + ")";
  if (identical == static_cast<int64_t>(items.items.size())) {
    throw RunError(RunErrorKind::DataRule, counted + ": there is no preference to learn")
        .Help("pair responses that differ, e.g. by reward, or deduplicate the responses of each prompt");
  }
  run.reporter().progress() << "warning: " << RunContext::Label(node) << ": " << counted
                            << "; they teach nothing\n";
}

}  // namespace

NodeValue RunFilterSources(const ir::Node& node, RunContext& run) {
  const NodeValue& data = run.Input(node, "data");
  return NodeValue{std::nullopt, std::make_shared<Dataset>(KeepSources(*data.data, node.as<ir::FilterSources>().sources))};
}

NodeValue RunSplit(const ir::Node& node, RunContext& run) {
  const NodeValue& data = run.Input(node, "data");
  const ir::Split& split = node.as<ir::Split>();
  return NodeValue{std::nullopt, std::make_shared<Dataset>(SplitPart(*data.data, split.fractions, split.part, split.seed))};
}

NodeValue RunRule(const ir::Node& node, RunContext& run) {
  std::shared_ptr<const Dataset> data = run.Input(node, "data").data;
  if (node.FindInput("tokenizer") != nullptr) data = WithTokenCounts(*data, *run.Input(node, "tokenizer").model);
  ItemSet items;
  if (const auto* select = node.get_if<ir::Select>()) items = Select(*data, select->rule);
  if (const auto* pairs = node.get_if<ir::Pairs>()) items = Pair(*data, pairs->rule);
  if (const auto* groups = node.get_if<ir::Groups>()) items = Group(*data, groups->rule);
  run.reporter().progress() << "  " << RunContext::Label(node) << ": " << items.items.size() << " "
                            << (items.roles.size() > 1 ? "pairs" : "items")
                            << (items.groups > 0 ? " in " + std::to_string(items.groups) + " groups" : "")
                            << " from " << data->size() << " prompts\n";
  if (node.get_if<ir::Pairs>() != nullptr) CheckPairTexts(node, *data, items, run);
  return NodeValue{std::nullopt, data, std::make_shared<ItemSet>(std::move(items))};
}

NodeValue RunWeight(const ir::Node& node, RunContext& run) {
  const NodeValue& items = run.Input(node, "items");
  auto weighted = std::make_shared<ItemSet>(*items.items);
  Weigh(*items.data, node.as<ir::Weight>().weight, *weighted);
  return NodeValue{std::nullopt, items.data, weighted};
}

}  // namespace fusec::rt
