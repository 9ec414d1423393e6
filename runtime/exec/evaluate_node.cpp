// evaluate: greedy completions of held-out prompts by each model, scored against gold answers where the
// data has them, and the held-out NLL of each prompt's best response; cached like a stage. Under several
// ranks each generates and scores its share of the batches (dist/work_split.h); rank 0 writes them all.

#include <algorithm>
#include <iomanip>
#include <nlohmann/json.hpp>
#include <ostream>
#include <set>
#include <sstream>

#include "runtime/data/examples.h"
#include "runtime/exec/ref_logprobs.h"
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

/// Adds one completion's line (from CompletionLine) to `result`: its gold score, when it has one.
void TallyCompletion(const Json& line, EvalResult& result) {
  if (!line.contains("gold")) return;
  const double score = line["score"].get<double>();
  const bool exact = line["exact"].get<bool>();
  result.gold.Add(score, exact);
  if (line.contains("family")) result.families[line["family"].get<std::string>()].Add(score, exact);
}

/// One completion's JSON line: its text, tokens and, when the record has a gold answer, its score against it
/// (surrounding whitespace ignored).
Json CompletionLine(const PromptRecord& record, const std::string& text, size_t tokens) {
  Json line = {{"id", record.id}, {"text", text}, {"tokens", tokens}};
  if (!record.gold) return line;
  const std::string answer = TrimPythonSpace(text);
  const std::string gold = TrimPythonSpace(*record.gold);
  line["gold"] = *record.gold;
  if (record.family) line["family"] = *record.family;
  line["score"] = EditSimilarity(answer, gold);
  line["exact"] = answer == gold;
  return line;
}

/// The mean per-token NLL of the prompts' best responses, when there are any; each rank scores its share of
/// the batches.
std::optional<double> BestResponseNll(LlamaForCausalLMImpl& model, const std::vector<TokenizedPrompt>& best,
                                      int64_t batch_tokens, const LogProbOptions& options, const WorkSplit& split) {
  if (best.empty()) return std::nullopt;
  auto scores = ScoreResponses(model, best, batch_tokens, nullptr, options, split.Filter());
  GatherScores(split, scores);
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

/// Every batch's completion lines in the prompts' order, from each rank's lines of the batches it owns (batch
/// b is rank b mod N's, its lines in the order of its batches).
std::vector<std::string> CompletionsInOrder(const std::vector<std::string>& texts_by_rank, size_t prompts,
                                            size_t batch) {
  std::vector<std::vector<std::string>> lines_by_rank(texts_by_rank.size());
  for (size_t r = 0; r < texts_by_rank.size(); ++r) {
    std::istringstream text(texts_by_rank[r]);
    for (std::string line; std::getline(text, line);) lines_by_rank[r].push_back(line);
  }
  std::vector<size_t> next(texts_by_rank.size(), 0);
  std::vector<std::string> lines;
  for (size_t begin = 0, b = 0; begin < prompts; begin += batch, ++b) {
    const size_t rank = b % texts_by_rank.size();
    for (size_t i = begin; i < std::min(prompts, begin + batch); ++i) {
      if (next[rank] >= lines_by_rank[rank].size()) {
        throw RunError(RunErrorKind::Internal, "rank " + std::to_string(rank) + " sent fewer completions than its batches have");
      }
      lines.push_back(lines_by_rank[rank][next[rank]++]);
    }
  }
  return lines;
}

/// Greedy completions of every prompt (into `completions`, one JSON line a prompt), and the mean per-token NLL
/// of each prompt's best response. Under several ranks each generates the batches it owns (`split`), and every
/// rank returns the whole result.
EvalResult EvaluateModel(const std::string& name, const ModelHandle& handle, const Dataset& data,
                         const ir::Evaluate& spec, const WorkSplit& split, std::string& completions,
                         RunContext& run) {
  OpenedModel opened = run.Open(handle);
  const Tokenizer& tokenizer = *opened.tokenizer;
  const ChatTemplate& chat = opened.chat;
  SamplingOptions sampling;
  sampling.max_new_tokens = spec.max_new_tokens;
  sampling.stop_ids = StopIds(opened);
  EvalResult result;
  result.model = name;
  std::vector<TokenizedPrompt> best;
  std::string my_lines;  // the completions of the batches this rank owns
  std::string error;
  const auto batch = static_cast<size_t>(spec.batch);
  for (size_t begin = 0, batch_index = 0; begin < data.size(); begin += batch, ++batch_index) {
    size_t end = std::min(data.size(), begin + batch);
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
    if (!split.Owns(static_cast<int64_t>(batch_index))) continue;
    std::vector<Generation> generations = Generate(*opened.model, prompts, sampling);
    for (size_t k = 0; k < generations.size(); ++k) {
      std::vector<int32_t> ids = generations[k].ids;
      if (generations[k].stopped) ids.pop_back();
      my_lines += CompletionLine(data[begin + k], tokenizer.Decode(ids, true), generations[k].ids.size()).dump() + "\n";
    }
  }
  int64_t generated_tokens = 0;
  for (const std::string& text : CompletionsInOrder(split.GatherTexts(my_lines), data.size(), batch)) {
    const Json line = Json::parse(text);
    generated_tokens += line["tokens"].get<int64_t>();
    TallyCompletion(line, result);
    completions += text + "\n";
  }
  result.prompts = static_cast<int64_t>(data.size());
  result.mean_generated_tokens =
      data.empty() ? 0 : static_cast<double>(generated_tokens) / static_cast<double>(data.size());
  result.best_response_nll = BestResponseNll(*opened.model, best, run.options().score_batch_tokens, run.LogProbs(), split);

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

/// Writes the results next to the completions in `staging` and commits the entry; returns its directory.
std::string CommitResults(const ir::Node& node, const std::string& staging, const std::vector<EvalResult>& results,
                          RunContext& run) {
  Json json = Json::array();
  for (const EvalResult& r : results) json.push_back(r.ToJson());
  WriteOrThrow(fs::path(staging) / "results.json", json.dump(2) + "\n");
  return run.Commit(node, staging);
}

}  // namespace

NodeValue RunEvaluate(const ir::Node& node, RunContext& run) {
  const ir::Evaluate& spec = node.as<ir::Evaluate>();
  const RunContext::SharedStart shared = run.StartShared(node);
  const WorkSplit split = run.Split();
  const bool writes = split.writes();  // rank 0 writes the entry and the run directory's copy
  if (shared.cached) {
    if (!writes) return NodeValue{};
    std::vector<EvalResult> results = ReadCachedResults(*shared.cached);
    CopyEvaluation(*shared.cached, run.Rebase(spec.output));
    run.reporter().Evaluated(RunContext::ExperimentOf(node), std::move(results));
    return NodeValue{};
  }
  const NodeValue& data = run.Input(node, "data");
  const std::string data_hash = run.plan().graph.at(node.FindInput("data")->node).hash;
  const std::string staging = writes ? run.cache().BeginEntry(node.hash) : std::string();
  std::vector<EvalResult> results;
  std::map<std::string, std::string> newly_evaluated;  // key -> model name
  std::set<std::string> seen;
  for (const ir::Input& input : node.inputs) {
    if (input.slot != "model") continue;
    const ir::Node& model_node = run.plan().graph.at(input.node);
    std::string name = model_node.kind() == ir::NodeKind::Train ? RunContext::StageName(model_node) : "target";
    if (!seen.insert(name).second) continue;
    const fs::path completions_file = fs::path(staging) / (name + ".jsonl");
    const std::string key = model_node.hash + " " + data_hash + " " + std::to_string(spec.max_new_tokens) + " " +
                            std::to_string(spec.batch);
    if (auto done = run.evaluated_models.find(key); done != run.evaluated_models.end()) {
      if (writes) fs::copy_file(done->second.completions, completions_file);
      results.push_back(done->second.result);
      results.back().model = name;
      run.reporter().progress() << "  evaluated " << name << ": the same model on the same prompts as before in "
                                                             "this run, reused\n";
      continue;
    }
    const ModelHandle handle = *run.Value(input.node).model;
    std::string completions;
    results.push_back(EvaluateModel(name, handle, *data.data, spec, split, completions, run));
    if (writes) WriteOrThrow(completions_file, completions);
    newly_evaluated[key] = name;
  }
  // The other ranks remember what they evaluated too, so that they reuse (and skip) what rank 0 does.
  const std::string entry = writes ? CommitResults(node, staging, results, run) : std::string();
  for (const auto& [key, name] : newly_evaluated) {
    auto result = std::find_if(results.begin(), results.end(), [&](const EvalResult& r) { return r.model == name; });
    run.evaluated_models[key] = {*result, writes ? entry + "/" + name + ".jsonl" : std::string()};
  }
  if (!writes) return NodeValue{};
  CopyEvaluation(entry, run.Rebase(spec.output));
  run.reporter().Evaluated(RunContext::ExperimentOf(node), std::move(results));
  return NodeValue{};
}

}  // namespace fusec::rt
