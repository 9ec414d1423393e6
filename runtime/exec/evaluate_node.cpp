// evaluate: greedy completions of held-out prompts by each model, scored against gold answers where the
// data has them, and the held-out NLL of each prompt's best response; cached like a stage.

#include <algorithm>
#include <fstream>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>

#include "runtime/data/examples.h"
#include "runtime/exec/run_context.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

/// The evaluation's files into the run directory (without the cache entry's own manifest).
void CopyEvaluation(const std::string& entry, const fs::path& output) {
  CopyDirectory(entry, output);
  fs::remove(output / "manifest.toml");
}

std::vector<EvalResult> ReadCachedResults(const std::string& entry) {
  Json json = Json::parse(ReadWholeFile(entry + "/results.json").value_or(""), nullptr, false);
  if (json.is_discarded()) throw RunError(RunErrorKind::CacheEntry, "its cache entry is unreadable").Place(entry);
  std::vector<EvalResult> results;
  try {
    for (const Json& r : json) results.push_back(EvalResult::FromJson(r));
  } catch (const Json::exception& error) {
    throw RunError(RunErrorKind::CacheEntry, std::string("its cache entry is unreadable (") + error.what() + ")")
        .Place(entry);
  }
  return results;
}

/// The index of the response with the highest reward (the first on ties), or -1 without responses.
int32_t BestResponse(const PromptRecord& record) {
  int32_t top = -1;
  for (size_t r = 0; r < record.responses.size(); ++r) {
    if (top < 0 || record.responses[r].reward.value_or(-1e300) >
                       record.responses[static_cast<size_t>(top)].reward.value_or(-1e300)) {
      top = static_cast<int32_t>(r);
    }
  }
  return top;
}

/// Scores one completion against the record's gold answer (surrounding whitespace ignored) into `result`
/// and the completion's JSON line.
void ScoreAgainstGold(const PromptRecord& record, const std::string& text, EvalResult& result, Json& line) {
  std::string answer = TrimPythonSpace(text);
  std::string gold = TrimPythonSpace(*record.gold);
  double score = EditSimilarity(answer, gold);
  bool exact = answer == gold;
  result.gold.Add(score, exact);
  if (record.family) result.families[*record.family].Add(score, exact);
  line["gold"] = *record.gold;
  if (record.family) line["family"] = *record.family;
  line["score"] = score;
  line["exact"] = exact;
}

/// The mean per-token NLL of the prompts' best responses, when there are any.
std::optional<double> BestResponseNll(LlamaForCausalLMImpl& model, const std::vector<TokenizedPrompt>& best,
                                      const LogProbOptions& options) {
  if (best.empty()) return std::nullopt;
  auto scores = ScoreResponses(model, best, kScoreBatchTokens, nullptr, options);
  double nll = 0;
  int64_t tokens = 0;
  for (const auto& s : scores) {
    nll -= s[0].logp;
    tokens += s[0].tokens;
  }
  if (tokens == 0) return std::nullopt;
  return nll / static_cast<double>(tokens);
}

/// Generation past the model's position table would run on positions it never learned (and past the rotary
/// tables fusec sizes by it): an error before any work, not a clamp, so `max_new_tokens` means what it says.
void RequirePositions(const PromptRecord& record, int64_t prompt_tokens, int64_t max_new_tokens,
                      const std::string& model, int64_t max_position) {
  if (prompt_tokens + max_new_tokens <= max_position) return;
  throw RunError(RunErrorKind::PositionLimit,
                 "prompt `" + record.id + "` (line " + std::to_string(record.line) + ") has " +
                     std::to_string(prompt_tokens) + " tokens, and with `max_new_tokens` " +
                     std::to_string(max_new_tokens) + " needs more than the " + std::to_string(max_position) +
                     " positions (`max_position_embeddings`) of model `" + model + "`")
      .Help(prompt_tokens < max_position
                ? "lower `max_new_tokens` to at most " + std::to_string(max_position - prompt_tokens) +
                      ", or leave the longest prompts out of the evaluation data"
                : "leave prompts longer than the model's positions out of the evaluation data");
}

/// Greedy completions of every prompt (written to `completions`), and the mean per-token NLL of each prompt's
/// best response.
EvalResult EvaluateModel(const std::string& name, const ModelHandle& handle, const Dataset& data,
                         const ir::Evaluate& spec, const fs::path& completions, RunContext& run) {
  OpenedModel opened = run.Open(handle);
  const Tokenizer& tokenizer = *opened.tokenizer;
  const ChatTemplate& chat = opened.chat;
  SamplingOptions sampling;
  sampling.max_new_tokens = spec.max_new_tokens;
  sampling.stop_ids = StopIds(opened);
  EvalResult result;
  result.model = name;
  std::ofstream out(completions);
  std::vector<TokenizedPrompt> best;
  int64_t generated_tokens = 0;
  std::string error;
  for (size_t begin = 0; begin < data.size(); begin += static_cast<size_t>(spec.batch)) {
    size_t end = std::min(data.size(), begin + static_cast<size_t>(spec.batch));
    std::vector<std::vector<int32_t>> prompts;
    for (size_t i = begin; i < end; ++i) {
      const PromptRecord& record = data[i];
      auto ids = TokenizePrompt(record, tokenizer, chat, &error);
      if (!ids) throw RunError(RunErrorKind::Tokenization, "prompt `" + record.id + "`: " + error);
      RequirePositions(record, static_cast<int64_t>(ids->size()), spec.max_new_tokens, name,
                       opened.model->config().max_position);
      prompts.push_back(*ids);
      if (int32_t top = BestResponse(record); top >= 0) {
        const ResponseRecord& response = record.responses[static_cast<size_t>(top)];
        if (auto tokens = TokenizeResponse(record, response.text, tokenizer, chat, &error)) {
          best.push_back({record.id, record.line, *ids, {{response.source, top, std::nullopt, *tokens}}});
        }
      }
    }
    std::vector<Generation> generations = Generate(*opened.model, prompts, sampling);
    for (size_t k = 0; k < generations.size(); ++k) {
      const PromptRecord& record = data[begin + k];
      std::vector<int32_t> ids = generations[k].ids;
      if (generations[k].stopped) ids.pop_back();
      generated_tokens += static_cast<int64_t>(generations[k].ids.size());
      std::string text = tokenizer.Decode(ids, true);
      Json line = {{"id", record.id}, {"text", text}, {"tokens", generations[k].ids.size()}};
      if (record.gold) ScoreAgainstGold(record, text, result, line);
      out << line.dump() << "\n";
    }
  }
  result.prompts = static_cast<int64_t>(data.size());
  result.mean_generated_tokens =
      data.empty() ? 0 : static_cast<double>(generated_tokens) / static_cast<double>(data.size());
  result.best_response_nll = BestResponseNll(*opened.model, best, run.LogProbs());

  std::ostream& progress = run.reporter().progress();
  progress << "  evaluated " << name << ": " << result.prompts << " prompts" << std::fixed << std::setprecision(4);
  if (result.gold.prompts > 0) {
    progress << ", score " << result.gold.score() << ", exact match " << std::setprecision(3)
             << result.gold.exact_match() << std::setprecision(4);
  }
  if (result.best_response_nll) {
    progress << ", held-out NLL of the best response " << *result.best_response_nll << " per token";
  }
  progress << std::defaultfloat << "\n";
  return result;
}

}  // namespace

NodeValue RunEvaluate(const ir::Node& node, RunContext& run) {
  const ir::Evaluate& spec = node.as<ir::Evaluate>();
  fs::path output = run.Rebase(spec.output);
  if (auto cached = run.CachedEntry(node)) {
    std::vector<EvalResult> results = ReadCachedResults(*cached);
    CopyEvaluation(*cached, output);
    run.reporter().Evaluated(RunContext::ExperimentOf(node), std::move(results));
    return NodeValue{};
  }
  const NodeValue& data = run.Input(node, "data");
  const std::string data_hash = run.plan().graph.at(node.FindInput("data")->node).hash;
  std::string staging = run.cache().BeginEntry(node.hash);
  std::vector<EvalResult> results;
  std::map<std::string, std::string> newly_evaluated;  // key -> model name
  std::set<std::string> seen;
  for (const ir::Input& input : node.inputs) {
    if (input.slot != "model") continue;
    const ir::Node& model_node = run.plan().graph.at(input.node);
    std::string name = model_node.kind() == ir::NodeKind::Train ? RunContext::StageName(model_node) : "target";
    if (!seen.insert(name).second) continue;
    const fs::path completions = fs::path(staging) / (name + ".jsonl");
    const std::string key = model_node.hash + " " + data_hash + " " + std::to_string(spec.max_new_tokens) + " " +
                            std::to_string(spec.batch);
    if (auto done = run.evaluated_models.find(key); done != run.evaluated_models.end()) {
      fs::copy_file(done->second.completions, completions);
      results.push_back(done->second.result);
      results.back().model = name;
      run.reporter().progress() << "  evaluated " << name << ": the same model on the same prompts as before in "
                                                             "this run, reused\n";
      continue;
    }
    const ModelHandle handle = *run.Value(input.node).model;
    results.push_back(EvaluateModel(name, handle, *data.data, spec, completions, run));
    newly_evaluated[key] = name;
  }
  Json json = Json::array();
  for (const EvalResult& r : results) json.push_back(r.ToJson());
  WriteOrThrow(fs::path(staging) / "results.json", json.dump(2) + "\n");
  std::string entry = run.Commit(node, staging);
  for (const auto& [key, name] : newly_evaluated) {
    auto result = std::find_if(results.begin(), results.end(), [&](const EvalResult& r) { return r.model == name; });
    run.evaluated_models[key] = {*result, entry + "/" + name + ".jsonl"};
  }
  CopyEvaluation(entry, output);
  run.reporter().Evaluated(RunContext::ExperimentOf(node), std::move(results));
  return NodeValue{};
}

}  // namespace fusec::rt
