#include "runtime/train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <numbers>
#include <random>
#include <set>

#include "runtime/dist/gradient_buckets.h"
#include "runtime/model/inference.h"
#include "runtime/model/training_checkpoint.h"
#include "runtime/objectives/loss.h"
#include "runtime/support/torch_compat.h"
#include "runtime/train/optimizer_shard.h"

// Train() is the recipe: a loop over optimizer steps whose body names each part of a step (its prompts and
// micro-batches, the forward pass and the loss, backward, clipping, the optimizer step, the metrics, the
// checkpoint). The functions above it do one part each.
//
// Legend, for one micro-batch: I = its items, U = its loss units (its items, or its G groups for group units),
// S = its sequences (the distinct (prompt, response) pairs whose policy log-probabilities the loss reads).

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

// --- the stage's plan: which prompts make each step, in which micro-batches ---

/// The prompts that have items, each with its items and the distinct responses whose policy log-probabilities
/// the loss reads (in order of first use), in dataset order.
struct PromptUnits {
  uint32_t prompt;
  std::vector<size_t> items;
  std::vector<int32_t> policy_responses;
};

std::vector<PromptUnits> ByPrompt(const TrainData& data, const ir::Requirements& needs) {
  const std::vector<std::string>& roles = data.items.roles;
  std::vector<size_t> policy_roles;  // the item columns the loss reads log-probabilities of
  for (const std::string& role : needs.policy_logp) {
    policy_roles.push_back(static_cast<size_t>(std::find(roles.begin(), roles.end(), role) - roles.begin()));
  }
  std::map<uint32_t, PromptUnits> by_prompt;
  for (size_t i = 0; i < data.items.items.size(); ++i) {
    const Item& item = data.items.items[i];
    PromptUnits& units = by_prompt.try_emplace(item.prompt, PromptUnits{item.prompt, {}, {}}).first->second;
    units.items.push_back(i);
    for (size_t column : policy_roles) {
      int32_t r = item.responses.at(column);
      if (std::find(units.policy_responses.begin(), units.policy_responses.end(), r) == units.policy_responses.end()) {
        units.policy_responses.push_back(r);
      }
    }
  }
  std::vector<PromptUnits> out;
  for (auto& [prompt, units] : by_prompt) out.push_back(std::move(units));
  return out;
}

/// The prompt of `units` and the responses whose log-probabilities the loss reads, as one packed group.
PromptResponses PolicyGroup(const TrainData& data, const PromptUnits& units) {
  PromptResponses group;
  group.prompt = data.prompt_ids[units.prompt];
  for (int32_t r : units.policy_responses) group.responses.emplace_back(data.response_ids[units.prompt][static_cast<size_t>(r)]);
  return group;
}

/// The visiting order of epoch `epoch`: a permutation drawn from the seed alone, so a resumed run (or a
/// rerun) visits prompts in the same order. Epoch -1: data order.
std::vector<size_t> EpochOrder(size_t count, int64_t seed, int64_t epoch) {
  std::vector<size_t> order(count);
  for (size_t i = 0; i < count; ++i) order[i] = i;
  if (epoch < 0) return order;
  std::mt19937_64 rng(static_cast<uint64_t>(seed) * 1000003ULL + static_cast<uint64_t>(epoch));
  for (size_t i = count; i > 1; --i) std::swap(order[i - 1], order[rng() % i]);
  return order;
}

/// Tokens the policy forward computes for each prompt of `prompts`, as `options` pack them.
std::vector<int64_t> ComputedTokensByPrompt(const TrainData& data, const std::vector<PromptUnits>& prompts,
                                            const LogProbOptions& options) {
  std::vector<int64_t> tokens;
  for (const PromptUnits& units : prompts) tokens.push_back(ComputedTokens(PolicyGroup(data, units), options));
  return tokens;
}

/// The token budget of a length-aware micro-batch: `micro_batch` prompts at the data's mean.
int64_t MicroBatchTokenBudget(const std::vector<int64_t>& prompt_tokens, int64_t micro_batch) {
  int64_t sum = 0;
  for (int64_t t : prompt_tokens) sum += t;
  const int64_t mean = prompt_tokens.empty() ? 1 : (sum + static_cast<int64_t>(prompt_tokens.size()) - 1) /
                                                       static_cast<int64_t>(prompt_tokens.size());
  return std::max<int64_t>(1, mean * micro_batch);
}

/// What every step of a stage reads: the prompts with items, what micro-batches are packed by, how many steps
/// there are.
struct StagePlan {
  std::vector<PromptUnits> prompts;    // [prompt position], in dataset order
  std::vector<int64_t> prompt_tokens;  // [prompt position] tokens the policy forward computes
  int64_t token_budget = 0;            // tokens of a length-aware micro-batch
  int64_t steps_per_epoch = 0;
  int64_t total_steps = 0;
};

StagePlan PlanStage(const TrainData& data, const ir::Requirements& needs, const TrainSettings& settings,
                    const std::string& stage) {
  StagePlan plan;
  plan.prompts = ByPrompt(data, needs);
  if (plan.prompts.empty()) throw TrainError("stage `" + stage + "` has no items to train on");
  const auto prompt_count = static_cast<int64_t>(plan.prompts.size());
  plan.steps_per_epoch = (prompt_count + settings.spec.batch - 1) / settings.spec.batch;
  plan.total_steps = settings.spec.epochs * plan.steps_per_epoch;
  if (settings.spec.max_steps) plan.total_steps = std::min(plan.total_steps, *settings.spec.max_steps);
  plan.prompt_tokens = ComputedTokensByPrompt(data, plan.prompts, settings.logprobs);
  plan.token_budget = MicroBatchTokenBudget(plan.prompt_tokens, settings.spec.micro_batch);
  return plan;
}

/// The prompts of one optimizer step: visiting positions [first, last) of its epoch's order.
struct StepPrompts {
  int64_t epoch = 0;          // from 0
  std::vector<size_t> order;  // [visiting position] prompt position
  int64_t first = 0;
  int64_t last = 0;

  /// What the step's loss is averaged over.
  double count() const { return static_cast<double>(last - first); }
};

/// The prompts of step `step` (from 0).
StepPrompts PromptsOfStep(const StagePlan& plan, const TrainSettings& settings, int64_t step) {
  StepPrompts prompts;
  prompts.epoch = step / plan.steps_per_epoch;
  prompts.order = EpochOrder(plan.prompts.size(), settings.spec.seed, settings.shuffle ? prompts.epoch : -1);
  prompts.first = (step % plan.steps_per_epoch) * settings.spec.batch;
  prompts.last = std::min(static_cast<int64_t>(plan.prompts.size()), prompts.first + settings.spec.batch);
  return prompts;
}

/// This rank's share of a step's prompts (prompt positions, in visiting order). One process: all of them.
/// Several: each prompt, the longest first, goes to the rank with the fewest computed tokens so far (the
/// lowest such rank), so the ranks finish their micro-batches at about the same time. Every rank computes
/// every share the same way, so the shares are disjoint and cover the step.
std::vector<size_t> ShareOfRank(const StagePlan& plan, const StepPrompts& prompts, int64_t rank, int64_t ranks) {
  std::vector<size_t> visiting(prompts.order.begin() + prompts.first, prompts.order.begin() + prompts.last);
  if (ranks == 1) return visiting;
  std::vector<size_t> longest_first(visiting.size());
  for (size_t k = 0; k < visiting.size(); ++k) longest_first[k] = k;
  std::stable_sort(longest_first.begin(), longest_first.end(), [&](size_t a, size_t b) {
    return plan.prompt_tokens[visiting[a]] > plan.prompt_tokens[visiting[b]];
  });
  std::vector<int64_t> tokens_of_rank(static_cast<size_t>(ranks), 0);
  std::vector<bool> mine(visiting.size(), false);
  for (size_t k : longest_first) {
    const auto lightest = static_cast<int64_t>(
        std::min_element(tokens_of_rank.begin(), tokens_of_rank.end()) - tokens_of_rank.begin());
    tokens_of_rank[static_cast<size_t>(lightest)] += plan.prompt_tokens[visiting[k]];
    mine[k] = lightest == rank;
  }
  std::vector<size_t> share;
  for (size_t k = 0; k < visiting.size(); ++k) {
    if (mine[k]) share.push_back(visiting[k]);
  }
  return share;
}

/// The micro-batches of a rank's share of a step: lists of prompt positions. Length-aware: first fit, longest
/// first, into bins of the token budget (a prompt over the budget is a micro-batch of its own). Otherwise
/// `micro_batch` prompts at a time in visiting order.
std::vector<std::vector<size_t>> MicroBatches(const StagePlan& plan, const std::vector<size_t>& share,
                                              const TrainSettings& settings) {
  std::vector<std::vector<size_t>> batches;
  if (!settings.length_aware_batches) {
    const auto micro_batch = static_cast<size_t>(settings.spec.micro_batch);
    for (size_t begin = 0; begin < share.size(); begin += micro_batch) {
      batches.emplace_back(share.begin() + static_cast<std::ptrdiff_t>(begin),
                           share.begin() + static_cast<std::ptrdiff_t>(std::min(share.size(), begin + micro_batch)));
    }
    return batches;
  }
  std::vector<size_t> step_prompts = share;
  std::stable_sort(step_prompts.begin(), step_prompts.end(),
                   [&](size_t a, size_t b) { return plan.prompt_tokens[a] > plan.prompt_tokens[b]; });
  std::vector<int64_t> filled;
  for (size_t prompt : step_prompts) {
    const int64_t tokens = plan.prompt_tokens[prompt];
    size_t bin = 0;
    while (bin < batches.size() && filled[bin] + tokens > plan.token_budget) ++bin;
    if (bin == batches.size()) {
      batches.emplace_back();
      filled.push_back(0);
    }
    batches[bin].push_back(prompt);
    filled[bin] += tokens;
  }
  return batches;
}

/// Sums to owners every micro-batch: every rank takes part in as many rounds as the rank with the most
/// micro-batches this step has (each rank computes every share the same way).
size_t MostMicroBatchesOfAnyRank(const StagePlan& plan, const StepPrompts& prompts, const TrainSettings& settings,
                                 int64_t ranks) {
  size_t most = 0;
  for (int64_t rank = 0; rank < ranks; ++rank) {
    most = std::max(most, MicroBatches(plan, ShareOfRank(plan, prompts, rank, ranks), settings).size());
  }
  return most;
}

// --- one micro-batch: its sequences, the forward pass, the loss ---

/// The items of a micro-batch's prompts, and the distinct sequences the loss reads grouped by prompt, so that
/// the responses of a prompt share one copy of it.
struct MicroBatch {
  std::vector<size_t> items;                   // [I] indices into the stage's items
  std::vector<int64_t> item_group;             // [I] each item's loss group, numbered from 0 in this micro-batch
  int64_t group_count = 0;                     // G
  std::vector<PromptResponses> policy_groups;  // a prompt and its responses the loss reads, per prompt
  /// (prompt, response) -> its row of the [S] policy log-probabilities.
  std::map<std::pair<uint32_t, int32_t>, size_t> sequence_row;
  int64_t tokens = 0;  // prompt and response tokens of its sequences
};

MicroBatch GatherMicroBatch(const TrainData& data, const std::vector<PromptUnits>& prompts,
                            const std::vector<size_t>& micro_prompts, ir::Unit unit) {
  MicroBatch micro;
  std::map<int64_t, int64_t> group_ids;  // the loss's group key -> its number in this micro-batch
  for (size_t prompt_position : micro_prompts) {
    const PromptUnits& units = prompts[prompt_position];
    for (size_t i : units.items) {
      micro.items.push_back(i);
      const int64_t key =
          unit == ir::Unit::GroupOfPairs ? static_cast<int64_t>(units.prompt) : data.items.items[i].group;
      micro.item_group.push_back(group_ids.emplace(key, static_cast<int64_t>(group_ids.size())).first->second);
    }
    const PromptResponses& group = micro.policy_groups.emplace_back(PolicyGroup(data, units));
    for (size_t k = 0; k < group.responses.size(); ++k) {
      micro.sequence_row.emplace(std::make_pair(units.prompt, units.policy_responses[k]), micro.sequence_row.size());
      micro.tokens += static_cast<int64_t>(group.prompt.size() + group.responses[k].size());
    }
  }
  micro.group_count = static_cast<int64_t>(group_ids.size());
  return micro;
}

/// The weight of each of the micro-batch's items, [I].
std::vector<double> ItemWeights(const TrainData& data, const MicroBatch& micro) {
  std::vector<double> weights;
  for (size_t i : micro.items) weights.push_back(data.items.items[i].weight);
  return weights;
}

/// The policy forward pass: the log-probabilities of the micro-batch's sequences, [S] float (undefined when
/// the loss reads none).
torch::Tensor PolicyLogProbs(LlamaForCausalLMImpl& model, const MicroBatch& micro, const LogProbOptions& options) {
  if (micro.sequence_row.empty()) return {};
  return ResponseLogProbs(model, micro.policy_groups, options).to(torch::kFloat);
}

torch::Tensor FloatTensor(const std::vector<double>& values, const torch::Device& device) {
  return torch::tensor(values, torch::kDouble).to(device, torch::kFloat);
}

/// What the loss graph reads of the micro-batch: per role, the policy log-probabilities (when the role's
/// sequences were scored), lengths, rewards and reference log-probabilities (when the data has them); the
/// items' weights and groups; the training progress.
LossBatch MakeLossBatch(const TrainData& data, const MicroBatch& micro, const torch::Tensor& sequence_logp,
                        double progress, ir::Unit unit, const torch::Device& device) {
  const std::vector<std::string>& roles = data.items.roles;
  LossBatch batch;
  batch.progress = progress;
  batch.weight = FloatTensor(ItemWeights(data, micro), device);
  for (size_t role_index = 0; role_index < roles.size(); ++role_index) {
    const std::string& role = roles[role_index];
    std::vector<int64_t> rows;
    std::vector<double> lengths, rewards, refs;
    for (size_t i : micro.items) {
      const Item& item = data.items.items[i];
      int32_t r = item.responses[role_index];
      if (auto it = micro.sequence_row.find({item.prompt, r}); it != micro.sequence_row.end()) {
        rows.push_back(static_cast<int64_t>(it->second));
      }
      lengths.push_back(static_cast<double>(data.response_ids[item.prompt][static_cast<size_t>(r)].size()));
      rewards.push_back(data.rewards[item.prompt][static_cast<size_t>(r)]);
      if (!data.ref_logp.empty()) refs.push_back(data.ref_logp[i][role_index]);
    }
    if (rows.size() == micro.items.size()) {
      batch.logp[role] = sequence_logp.index_select(0, torch::tensor(rows, torch::kLong).to(device));
    }
    batch.length[role] = FloatTensor(lengths, device);
    batch.reward[role] = FloatTensor(rewards, device);
    if (!refs.empty()) batch.ref_logp[role] = FloatTensor(refs, device);
  }
  if (ir::IsGroupUnit(unit)) {
    batch.group = torch::tensor(micro.item_group, torch::kLong).to(device);
    batch.groups = micro.group_count;
  }
  return batch;
}

/// "stage `e/s`, step N" (N from 1), which errors during step `step` (from 0) begin with.
std::string StepLabel(const std::string& stage, int64_t step) {
  return "stage `" + stage + "`, step " + std::to_string(step + 1);
}

/// Each unit's loss, [U], times its weight (a group's: the mean of its members') unless the loss places the
/// weight itself.
torch::Tensor WeightedUnitLosses(const ir::LossGraph& loss, const ir::Requirements& needs, const LossBatch& batch,
                                 const std::string& at_step) {
  torch::Tensor unit_losses;  // [U]
  try {
    unit_losses = EvaluateLoss(loss, batch);
  } catch (const LossError& error) {
    throw TrainError(at_step + ": " + error.what());
  }
  if (needs.weight_in_loss) return unit_losses;
  torch::Tensor unit_weights = batch.weight;  // [U]
  if (ir::IsGroupUnit(loss.unit)) {
    torch::Tensor sums = torch::zeros({batch.groups}, batch.weight.options()).index_add(0, batch.group, batch.weight);
    torch::Tensor counts =
        torch::zeros({batch.groups}, batch.weight.options()).index_add(0, batch.group, torch::ones_like(batch.weight));
    unit_weights = sums / counts;
  }
  return unit_losses * unit_weights;
}

/// The value of a micro-batch's loss; one that is not finite stops the stage, keeping the last good checkpoint.
double FiniteLossValue(const torch::Tensor& micro_loss, const std::string& objective, const std::string& at_step) {
  const double value = micro_loss.item<double>();
  if (!std::isfinite(value)) {
    throw NonFiniteLossError(at_step + ": the loss is " + (std::isnan(value) ? "NaN" : "infinite") + " (objective `" +
                     objective + "`); the last good checkpoint is kept");
  }
  return value;
}

// --- the step: clipping, the optimizer, metrics, checkpoints ---

torch::optim::AdamWOptions AdamWOptionsOf(const TrainSettings& settings) {
  return torch::optim::AdamWOptions(settings.spec.optim.lr)
      .betas({settings.spec.optim.beta1, settings.spec.optim.beta2})
      .eps(settings.spec.optim.eps)
      .weight_decay(settings.spec.optim.weight_decay);
}

/// Where step `step` (from 0) is in the stage, from 0 to 1: the loss graph's `progress`.
double TrainingProgress(int64_t step, int64_t total_steps) {
  return total_steps > 1 ? static_cast<double>(step) / static_cast<double>(total_steps - 1) : 0.0;
}

/// The implicit rewards of a pair stage's items (logp - ref_logp, or logp / len without a reference) for the
/// first two roles, [I] each; empty when the loss does not read both roles' log-probabilities.
struct PairRewards {
  std::vector<double> chosen, rejected;
};

PairRewards ImplicitRewards(const LossBatch& batch, const std::vector<std::string>& roles) {
  PairRewards rewards;
  if (roles.size() < 2 || !batch.logp.count(roles[0]) || !batch.logp.count(roles[1])) return rewards;
  auto implicit = [&](const std::string& role) {
    torch::Tensor logp = batch.logp.at(role).detach();
    return batch.ref_logp.count(role) ? logp - batch.ref_logp.at(role) : logp / batch.length.at(role);
  };
  torch::Tensor chosen = implicit(roles[0]).to(torch::kDouble).cpu();    // [I]
  torch::Tensor rejected = implicit(roles[1]).to(torch::kDouble).cpu();  // [I]
  for (int64_t k = 0; k < chosen.size(0); ++k) {
    rewards.chosen.push_back(chosen[k].item<double>());
    rewards.rejected.push_back(rejected[k].item<double>());
  }
  return rewards;
}

/// What a step's metrics gather over its micro-batches (and, with several ranks, over the ranks).
struct StepTally {
  double loss = 0;
  double tokens = 0;
  double weight_sum = 0, weight_count = 0;
  double weight_min = std::numeric_limits<double>::infinity(), weight_max = -std::numeric_limits<double>::infinity();
  // Pair stages: the items' implicit rewards, summed, and how many have chosen above rejected.
  double chosen_sum = 0, rejected_sum = 0, correct = 0, pairs = 0;

  void Add(double micro_loss, const TrainData& data, const MicroBatch& micro, const LossBatch& batch) {
    loss += micro_loss;
    tokens += static_cast<double>(micro.tokens);
    for (double w : ItemWeights(data, micro)) {
      weight_sum += w;
      weight_count += 1;
      weight_min = std::min(weight_min, w);
      weight_max = std::max(weight_max, w);
    }
    const PairRewards rewards = ImplicitRewards(batch, data.items.roles);
    for (size_t k = 0; k < rewards.chosen.size(); ++k) {
      chosen_sum += rewards.chosen[k];
      rejected_sum += rewards.rejected[k];
      correct += rewards.chosen[k] > rewards.rejected[k];
      pairs += 1;
    }
  }

  /// The whole step's tally, on every rank; `stop` and `checkpoint_due` become whether any rank says so.
  void CombineOverRanks(RankGroup& ranks, bool& stop, bool& checkpoint_due) {
    torch::Tensor sums = torch::tensor({loss, tokens, weight_sum, weight_count, chosen_sum, rejected_sum, correct, pairs},
                                       torch::kDouble);
    torch::Tensor maxima =
        torch::tensor({weight_max, -weight_min, stop ? 1.0 : 0.0, checkpoint_due ? 1.0 : 0.0}, torch::kDouble);
    ranks.Sum(sums);
    ranks.Max(maxima);
    double* s = sums.data_ptr<double>();
    loss = s[0], tokens = s[1], weight_sum = s[2], weight_count = s[3];
    chosen_sum = s[4], rejected_sum = s[5], correct = s[6], pairs = s[7];
    weight_max = maxima[0].item<double>();
    weight_min = -maxima[1].item<double>();
    stop = maxima[2].item<double>() > 0;
    checkpoint_due = maxima[3].item<double>() > 0;
  }
};

/// What a rank holds of training's state after a step, in bytes: what the shard setting changes.
struct TrainingMemory {
  double state_bytes = 0;  // weights, gradients, AdamW moments (not the few bucket buffers sums to owners fill)
  double peak_rss_bytes = 0;  // the process's peak resident memory so far (activations, everything)
};

/// The process's peak resident set (VmHWM of /proc/self/status); 0 where there is none.
double PeakResidentBytes() {
  std::ifstream status("/proc/self/status");
  for (std::string line; std::getline(status, line);) {
    if (line.starts_with("VmHWM:")) return std::stod(line.substr(6)) * 1024.0;  // in kB
  }
  return 0;
}

TrainingMemory MeasureTrainingMemory(LlamaForCausalLMImpl& model, const OptimizerShard& optimizer) {
  TrainingMemory memory;
  std::set<const void*> gradient_storages;  // gradients may be views of one bucket: each storage counted once
  for (const torch::Tensor& parameter : model.parameters()) {
    memory.state_bytes += static_cast<double>(parameter.numel() * parameter.element_size());
    const torch::Tensor& gradient = parameter.grad();
    if (gradient.defined() && gradient_storages.insert(gradient.storage().data()).second) {
      memory.state_bytes += static_cast<double>(gradient.storage().nbytes());
    }
  }
  memory.state_bytes += static_cast<double>(optimizer.MomentBytes());
  memory.peak_rss_bytes = PeakResidentBytes();
  return memory;
}

/// Several ranks: the largest of each figure over the ranks.
TrainingMemory LargestOverRanks(const TrainingMemory& memory, RankGroup& ranks) {
  torch::Tensor figures = torch::tensor({memory.state_bytes, memory.peak_rss_bytes}, torch::kDouble);
  ranks.Max(figures);
  return {figures[0].item<double>(), figures[1].item<double>()};
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

/// The metrics line of step `step` (from 1) of epoch `epoch` (from 1).
StepMetrics MetricsOfStep(const StepTally& tally, int64_t step, int64_t total_steps, int64_t epoch, double lr,
                          double grad_norm, double seconds, const TrainingMemory& memory) {
  StepMetrics metrics;
  metrics.state_mb = memory.state_bytes / 1e6;
  metrics.peak_rss_mb = memory.peak_rss_bytes / 1e6;
  metrics.step = step;
  metrics.total_steps = total_steps;
  metrics.epoch = epoch;
  metrics.loss = tally.loss;
  metrics.lr = lr;
  metrics.grad_norm = grad_norm;
  metrics.tokens = static_cast<int64_t>(tally.tokens);
  metrics.tokens_per_s = tally.tokens / std::max(seconds, 1e-9);
  if (tally.pairs > 0) {
    metrics.chosen_reward = tally.chosen_sum / tally.pairs;
    metrics.rejected_reward = tally.rejected_sum / tally.pairs;
    metrics.margin = (tally.chosen_sum - tally.rejected_sum) / tally.pairs;
    metrics.accuracy = tally.correct / tally.pairs;
  }
  if (tally.weight_count > 0) {
    metrics.weight_min = tally.weight_min;
    metrics.weight_max = tally.weight_max;
    metrics.weight_mean = tally.weight_sum / tally.weight_count;
  }
  return metrics;
}

/// Checkpoints are written every `save_every` steps and after the last.
bool IsCheckpointStep(int64_t step, int64_t total_steps, const std::optional<int64_t>& save_every) {
  return step == total_steps || (save_every && step % *save_every == 0);
}

/// Several ranks: whether every rank's part of a checkpoint succeeded; a CheckpointError on every rank
/// naming the ranks that failed (their own errors are printed with their rank) when one did not.
void CheckEveryRankSucceeded(RankGroup& ranks, bool succeeded, const std::string& what, const std::string& error) {
  torch::Tensor failed = torch::zeros({ranks.size()}, torch::kDouble);  // [rank]
  failed[ranks.rank()] = succeeded ? 0.0 : 1.0;
  ranks.Sum(failed);
  std::string failing;
  for (int64_t rank = 0; rank < ranks.size(); ++rank) {
    if (failed[rank].item<double>() > 0) failing += (failing.empty() ? "" : ", ") + std::to_string(rank);
  }
  if (failing.empty()) return;
  throw CheckpointError(CheckpointError::When::Saving,
                        !succeeded ? error : "rank " + failing + " could not " + what + "; the previous checkpoint is kept");
}

/// One process writes the whole checkpoint. Several: the leader begins it, every rank writes its optimizer
/// moments into it, the leader writes the rest and publishes it; each part agreed on before the next.
void SaveCheckpoint(LlamaForCausalLMImpl& model, const OptimizerShard& optimizer, int64_t step, int64_t total_steps,
                    const TrainOptions& options, RankGroup* ranks) {
  const TrainingState state{step, total_steps, options.stage_hash,
                            options.metrics_so_far ? options.metrics_so_far() : std::string()};
  const std::string& dir = options.checkpoint_dir;
  std::string error;
  if (ranks == nullptr) {
    if (!SaveTrainingCheckpoint(model, optimizer.adamw(), state, dir, &error)) {
      throw CheckpointError(CheckpointError::When::Saving, error);
    }
    return;
  }
  const bool begun = !ranks->leader() || BeginTrainingCheckpoint(dir, step, &error);
  CheckEveryRankSucceeded(*ranks, begun, "begin the checkpoint", error);
  const bool written = WriteOptimizerShard(model, optimizer.adamw(), CheckpointStagingDirectory(dir, step),
                                           ranks->rank(), ranks->size(), &error);
  try {
    CheckEveryRankSucceeded(*ranks, written, "write its optimizer state", error);
  } catch (const CheckpointError&) {
    std::error_code ec;
    if (ranks->leader()) fs::remove_all(CheckpointStagingDirectory(dir, step), ec);
    throw;
  }
  const bool committed = !ranks->leader() || CommitTrainingCheckpoint(model, state, ranks->size(), dir, &error);
  CheckEveryRankSucceeded(*ranks, committed, "publish the checkpoint", error);
}

/// Loads the newest checkpoint of the stage into the model and optimizer, hands its metrics lines to
/// `on_resume` and returns its step; 0 when there is none.
int64_t ResumeFromLatestCheckpoint(LlamaForCausalLMImpl& model, torch::optim::Optimizer& optimizer,
                                   const TrainOptions& options, int64_t total_steps) {
  std::string error;
  const std::optional<std::string> latest = LatestTrainingCheckpoint(options.checkpoint_dir, &error);
  if (!latest && error.empty()) return 0;
  std::optional<TrainingState> state;
  if (latest) state = LoadTrainingCheckpoint(model, optimizer, *latest, options.stage_hash, &error);
  if (!state) throw CheckpointError(CheckpointError::When::Resuming, error);
  if (state->total_steps != total_steps) {
    throw CheckpointError(CheckpointError::When::Resuming,
                          *latest + "/state.json: `total_steps` is " + std::to_string(state->total_steps) +
                              ", the stage has " + std::to_string(total_steps) + " steps");
  }
  if (options.on_resume) options.on_resume(state->metrics);
  return state->step;
}

}  // namespace

double ScheduledLr(const TrainSettings& settings, int64_t step, int64_t total) {
  // `step` counts from 0. Warmup ramps up to the peak over the first ceil(warmup * total) steps.
  auto warmup_steps = static_cast<int64_t>(std::ceil(settings.spec.optim.warmup * static_cast<double>(total)));
  if (step < warmup_steps) return settings.spec.optim.lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (settings.spec.optim.schedule == ir::Schedule::Constant) return settings.spec.optim.lr;
  int64_t decay_steps = std::max<int64_t>(1, total - warmup_steps);
  double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  double shape = settings.spec.optim.schedule == ir::Schedule::Linear ? 1.0 - progress : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return settings.spec.optim.lr * (settings.spec.optim.min_lr_ratio + (1.0 - settings.spec.optim.min_lr_ratio) * shape);
}

int64_t Train(LlamaForCausalLMImpl& model, const TrainData& data, const ir::LossGraph& loss,
              const ir::Requirements& needs, const TrainSettings& settings, const TrainOptions& options) {
  const torch::Device device = model.OutputWeight().device();
  const StagePlan plan = PlanStage(data, needs, settings, options.stage);
  RankGroup* const ranks = options.ranks != nullptr && options.ranks->size() > 1 ? options.ranks : nullptr;
  const int64_t rank = ranks != nullptr ? ranks->rank() : 0;
  const int64_t world = ranks != nullptr ? ranks->size() : 1;
  const bool saves_checkpoints = !options.checkpoint_dir.empty();
  model.train();
  OptimizerShard optimizer(model, settings.spec.shard, ranks, AdamWOptionsOf(settings));
  int64_t step = 0;  // optimizer steps taken
  if (options.resume && saves_checkpoints) {
    step = ResumeFromLatestCheckpoint(model, optimizer.adamw(), options, plan.total_steps);
  }
  if (saves_checkpoints && (ranks == nullptr || ranks->leader())) fs::create_directories(options.checkpoint_dir);
  std::optional<GradientBuckets> buckets;  // several ranks: gradients summed during backward
  if (ranks != nullptr) {
    buckets.emplace(model.parameters(), *ranks, optimizer.shards_gradients() ? optimizer.owners() : std::vector<int64_t>{});
  }

  int64_t steps_this_run = 0;
  auto last_checkpoint = std::chrono::steady_clock::now();
  auto stop_is_asked = [&] { return options.should_stop && options.should_stop(); };
  auto checkpoint_interval_passed = [&] {
    return options.checkpoint_interval_s && SecondsSince(last_checkpoint) >= *options.checkpoint_interval_s;
  };
  while (step < plan.total_steps) {
    const std::string at_step = StepLabel(options.stage, step);
    const StepPrompts prompts = PromptsOfStep(plan, settings, step);
    const double progress = TrainingProgress(step, plan.total_steps);
    const double lr = ScheduledLr(settings, step, plan.total_steps);
    optimizer.SetLearningRate(lr);

    const auto start = std::chrono::steady_clock::now();
    StepTally tally;
    optimizer.ReleaseGradients();
    const std::vector<std::vector<size_t>> micro_batches =
        MicroBatches(plan, ShareOfRank(plan, prompts, rank, world), settings);
    for (size_t k = 0; k < micro_batches.size(); ++k) {
      const MicroBatch micro = GatherMicroBatch(data, plan.prompts, micro_batches[k], loss.unit);
      LossBatch batch;
      torch::Tensor micro_loss;  // [] this micro-batch's share of the step's loss (over every rank's prompts)
      // The forward pass and the loss under autocast when asked; backward outside it.
      {
        compat::AutocastScope autocast(settings.bf16_autocast, device.type(), at::kBFloat16);
        const torch::Tensor sequence_logp = PolicyLogProbs(model, micro, settings.logprobs);  // [S]
        batch = MakeLossBatch(data, micro, sequence_logp, progress, loss.unit, device);
        micro_loss = WeightedUnitLosses(loss, needs, batch, at_step).sum() / prompts.count();
      }
      const double loss_value = FiniteLossValue(micro_loss, loss.objective, at_step);
      if (buckets) buckets->BeforeBackward(k + 1 == micro_batches.size());
      micro_loss.backward();
      if (buckets) buckets->AfterBackward();
      tally.Add(loss_value, data, micro, batch);
    }
    // Several ranks decide before the step, together; one process after it.
    bool stop_asked = buckets && stop_is_asked();
    bool interval_due = buckets && checkpoint_interval_passed();
    if (buckets) {
      if (buckets->sums_every_micro_batch()) {  // a round for each micro-batch another rank has and this one lacks
        for (size_t k = micro_batches.size(); k < MostMicroBatchesOfAnyRank(plan, prompts, settings, world); ++k) {
          buckets->AfterBackward();
        }
      }
      buckets->Finish();
      tally.CombineOverRanks(*ranks, stop_asked, interval_due);  // the same decisions on every rank
    }
    const double grad_norm = optimizer.ClipGradients(settings.spec.grad_clip);
    optimizer.Step();
    ++step;
    ++steps_this_run;

    TrainingMemory memory = MeasureTrainingMemory(model, optimizer);
    if (ranks != nullptr) memory = LargestOverRanks(memory, *ranks);
    const StepMetrics metrics =
        MetricsOfStep(tally, step, plan.total_steps, prompts.epoch + 1, lr, grad_norm, SecondsSince(start), memory);
    if (options.on_step) options.on_step(metrics);
    if (!buckets) {
      stop_asked = stop_is_asked();
      interval_due = checkpoint_interval_passed();
    }
    const bool stopping = stop_asked && step < plan.total_steps;
    const bool checkpoint_is_due = IsCheckpointStep(step, plan.total_steps, settings.spec.save_every) || stopping ||
                                   interval_due;
    if (saves_checkpoints && checkpoint_is_due) {
      SaveCheckpoint(model, optimizer, step, plan.total_steps, options, ranks);
      last_checkpoint = std::chrono::steady_clock::now();
    }
    if (stopping) break;
    if (options.stop_after && steps_this_run >= *options.stop_after && step < plan.total_steps) break;
  }
  // Every rank leaves together, once the last checkpoint is published.
  if (ranks != nullptr) ranks->Barrier();
  model.eval();
  return step;
}

}  // namespace fusec::rt
