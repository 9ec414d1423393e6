// score: every response's reward, from a reward model (reward_model.h) or from the benchmark's own scorer
// (gold_reward.h); the scored records are committed to the stage cache (dataset_entry.h), so a sweep over
// later stages scores once. Under several ranks each scores its share of the reward model's batches
// (dist/work_split.h) and every rank gets all the rewards; gold rewards, cheap, every rank computes whole.

#include <chrono>
#include <map>
#include <ostream>

#include "runtime/exec/dataset_entry.h"
#include "runtime/exec/gold_reward.h"
#include "runtime/exec/run_context.h"
#include "runtime/model/reward_model.h"

namespace fusec::rt {
namespace {

/// A response the scorer computes: keep_existing leaves those that already have a reward alone.
bool NeedsScore(const ResponseRecord& response, const ir::Score& spec) {
  return !(spec.keep_existing && response.reward.has_value());
}

/// gold_reward's rewards. Each response's noise is drawn from (seed, prompt, source, its index among that
/// source's responses to the prompt). A prompt without a gold answer is an error naming it.
int64_t ScoreWithGold(Dataset& records, const ir::Score& spec, const ir::GoldRewardSpec& gold) {
  int64_t scored = 0;
  for (PromptRecord& record : records) {
    std::map<std::string, int64_t> seen_per_source;
    for (ResponseRecord& response : record.responses) {
      const int64_t sample_index = seen_per_source[response.source]++;
      if (!NeedsScore(response, spec)) continue;
      if (!record.gold) {
        throw RunError(RunErrorKind::DataRule, "`gold_reward` needs each prompt's `gold` answer; prompt `" +
                                                   record.id + "` (line " + std::to_string(record.line) +
                                                   ") has none")
            .Help("score with `reward_model(...)`, or give the prompts file a `gold` field");
      }
      response.reward = GoldReward(response.text, *record.gold, gold.noise, gold.seed, record.id, response.source,
                                   sample_index);
      ++scored;
    }
  }
  return scored;
}

/// A reward model's rewards, batched by `spec.batch_tokens`, with a progress line every 10 seconds.
int64_t ScoreWithRewardModel(Dataset& records, const ir::Score& spec, const ir::RewardModelSpec& model_spec,
                             const std::string& label, RunContext& run) {
  const std::string dir = run.Resolve(model_spec.path);
  std::string warning;
  RewardModel model = RewardModel::Load(dir, model_spec.chat, run.device(), &warning);
  std::ostream& progress = run.reporter().progress();
  if (!warning.empty()) progress << "warning: " << dir << ": " << warning << "\n";
  std::vector<RewardInput> inputs;
  std::vector<ResponseRecord*> targets;
  std::string error;
  for (PromptRecord& record : records) {
    for (ResponseRecord& response : record.responses) {
      if (!NeedsScore(response, spec)) continue;
      auto input = model.Input(record, response.text, &error);
      if (!input) {
        throw RunError(RunErrorKind::Tokenization,
                       "prompt `" + record.id + "`, a response of `" + response.source + "`: " + error)
            .Place(dir);
      }
      inputs.push_back(std::move(*input));
      targets.push_back(&response);
    }
  }
  progress << "[" << label << "] scoring " << inputs.size() << " responses with " << dir
           << (run.Split().ranks() > 1 ? ", split over " + std::to_string(run.Split().ranks()) + " ranks" : "")
           << "\n";
  auto last = std::chrono::steady_clock::now();
  const WorkSplit split = run.Split();
  std::vector<double> rewards = model.Score(
      inputs, spec.batch_tokens,
      [&](int64_t done, int64_t total) {
        auto now = std::chrono::steady_clock::now();
        if (now - last < std::chrono::seconds(10) || done == total) return;
        last = now;
        progress << "[" << label << "] scored " << done << " of " << total << " responses\n";
      },
      split.Filter());
  split.Gather(rewards);  // every rank's batches, on every rank
  for (size_t i = 0; i < targets.size(); ++i) targets[i]->reward = rewards[i];
  return static_cast<int64_t>(targets.size());
}

}  // namespace

NodeValue RunScore(const ir::Node& node, RunContext& run) {
  const RunContext::SharedStart shared = run.StartShared(node);  // rank 0 holds the lock for every rank
  if (shared.cached) return NodeValue{std::nullopt, ReadDatasetEntry(*shared.cached)};
  const ir::Score& spec = node.as<ir::Score>();
  const std::string label = run.StepLabel(node);
  auto records = std::make_shared<Dataset>(*run.Input(node, "data").data);
  int64_t responses = 0;
  for (const PromptRecord& record : *records) responses += static_cast<int64_t>(record.responses.size());
  const int64_t scored =
      std::holds_alternative<ir::GoldRewardSpec>(spec.scorer)
          ? ScoreWithGold(*records, spec, std::get<ir::GoldRewardSpec>(spec.scorer))
          : ScoreWithRewardModel(*records, spec, std::get<ir::RewardModelSpec>(spec.scorer), label, run);
  if (!run.Split().writes()) return NodeValue{std::nullopt, records};  // the same records as rank 0's
  const std::string staging = run.cache().BeginEntry(node.hash);
  WriteDatasetEntry(staging, *records);
  run.Commit(node, staging);
  run.reporter().progress() << "[" << label << "] scored " << scored << " responses of " << records->size()
                            << " prompts"
                            << (responses > scored
                                    ? " (" + std::to_string(responses - scored) + " kept their reward)"
                                    : "")
                            << "\n";
  return NodeValue{std::nullopt, records};
}

}  // namespace fusec::rt
