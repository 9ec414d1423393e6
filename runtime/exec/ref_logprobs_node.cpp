// ref_logprobs: the reference model's log-probabilities of a stage's items, computed once and cached.

#include <chrono>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <ostream>

#include "runtime/exec/ref_logprobs.h"
#include "runtime/exec/run_context.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;
using RefRows = std::vector<std::vector<double>>;  // [item][role]; NaN for items over the length limits

/// The rows a cache entry holds; they must be one per item.
RefRows ReadCachedRows(const std::string& entry, size_t items) {
  Json json = Json::parse(ReadWholeFile(entry + "/ref_logp.json").value_or(""), nullptr, false);
  if (json.is_discarded() || !json.contains("values")) {
    throw RunError(RunErrorKind::CacheEntry, "its cache entry is unreadable").Place(entry);
  }
  RefRows rows;
  for (const Json& row : json["values"]) {
    std::vector<double>& parsed = rows.emplace_back();
    for (const Json& v : row) parsed.push_back(v.is_null() ? std::nan("") : v.get<double>());
  }
  if (rows.size() != items) throw RunError(RunErrorKind::CacheEntry, "its cache entry holds other items").Place(entry);
  return rows;
}

void WriteRows(const fs::path& file, const std::vector<std::string>& roles, const RefRows& rows) {
  Json values = Json::array();
  for (const auto& row : rows) {
    Json json_row = Json::array();
    for (double v : row) json_row.push_back(std::isnan(v) ? Json(nullptr) : Json(v));
    values.push_back(json_row);
  }
  WriteOrThrow(file, Json{{"roles", roles}, {"values", values}}.dump() + "\n");
}

}  // namespace

void GatherScores(const WorkSplit& split, std::vector<std::vector<ResponseScore>>& scores) {
  if (split.ranks() == 1) return;
  std::vector<double> logps;
  std::vector<int64_t> tokens;
  for (const auto& group : scores) {
    for (const ResponseScore& score : group) {
      logps.push_back(score.logp);
      tokens.push_back(score.tokens);
    }
  }
  split.Gather(logps);
  split.Gather(tokens);
  size_t k = 0;
  for (auto& group : scores) {
    for (ResponseScore& score : group) {
      score = {logps[k], tokens[k]};
      ++k;
    }
  }
}

std::vector<std::vector<double>> ReferenceLogprobs(LlamaForCausalLMImpl& model, const TrainData& data,
                                                   int64_t batch_tokens, const LogProbOptions& options,
                                                   const WorkSplit& split) {
  // The distinct responses of each prompt, scored packed behind one copy of the prompt.
  std::map<uint32_t, size_t> group_of_prompt;
  std::vector<PromptResponses> groups;
  std::vector<std::map<int32_t, size_t>> response_slot;  // [group] response -> its place in the group
  for (const Item& item : data.items.items) {
    auto [it, added] = group_of_prompt.emplace(item.prompt, groups.size());
    if (added) {
      groups.push_back({data.prompt_ids[item.prompt], {}});
      response_slot.emplace_back();
    }
    for (int32_t r : item.responses) {
      auto [slot, fresh] = response_slot[it->second].emplace(r, groups[it->second].responses.size());
      if (fresh) groups[it->second].responses.emplace_back(data.response_ids[item.prompt][static_cast<size_t>(r)]);
    }
  }
  auto scores = ScoreResponses(model, groups, batch_tokens, options, nullptr, split.Filter());
  GatherScores(split, scores);
  std::vector<std::vector<double>> out;
  for (const Item& item : data.items.items) {
    const size_t g = group_of_prompt.at(item.prompt);
    std::vector<double>& row = out.emplace_back();
    for (int32_t r : item.responses) row.push_back(scores[g][response_slot[g].at(r)].logp);
  }
  return out;
}

NodeValue RunRefLogprobs(const ir::Node& node, RunContext& run) {
  const NodeValue& items = run.Input(node, "items");
  const size_t item_count = items.items->items.size();
  const RunContext::SharedStart shared = run.StartShared(node);
  if (shared.cached) {
    auto rows = std::make_shared<RefRows>(ReadCachedRows(*shared.cached, item_count));
    return NodeValue{std::nullopt, items.data, items.items, rows};
  }
  const ModelHandle reference = *run.Input(node, "model").model;
  auto start = std::chrono::steady_clock::now();
  OpenedModel opened = run.Open(reference);
  const ir::RefLogprobs& spec = node.as<ir::RefLogprobs>();
  TokenizedItems tokenized =
      TokenizeItems(*items.data, *items.items, *opened.tokenizer, opened.chat, spec.max_len, spec.max_prompt_len);
  const std::vector<std::string>& roles = items.items->roles;
  auto rows = std::make_shared<RefRows>(item_count, std::vector<double>(roles.size(), std::nan("")));
  const WorkSplit split = run.Split();
  RefRows kept = ReferenceLogprobs(*opened.model, tokenized.data, run.options().score_batch_tokens, run.LogProbs(), split);
  for (size_t k = 0; k < tokenized.kept.size(); ++k) (*rows)[tokenized.kept[k]] = kept[k];
  if (!split.writes()) return NodeValue{std::nullopt, items.data, items.items, rows};  // rank 0 commits them

  std::string staging = run.cache().BeginEntry(node.hash);
  WriteRows(fs::path(staging) / "ref_logp.json", roles, *rows);
  run.Commit(node, staging);
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  run.reporter().progress() << "  " << RunContext::Label(node) << ": reference log-probabilities of "
                            << tokenized.kept.size() << " items in " << Reporter::FormatDuration(seconds)
                            << (split.ranks() > 1 ? ", split over " + std::to_string(split.ranks()) + " ranks" : "")
                            << "\n";
  return NodeValue{std::nullopt, items.data, items.items, rows};
}

}  // namespace fusec::rt
