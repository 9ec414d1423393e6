#include "runtime/train/trainer.h"

#include <torch/torch.h>

#include <chrono>
#include <cmath>
#include <filesystem>
#include <map>
#include <numbers>
#include <random>

#include "runtime/model/inference.h"
#include "runtime/model/training_checkpoint.h"
#include "runtime/objectives/loss.h"
#include "runtime/support/torch_compat.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

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

struct BatchPlan {
  const std::vector<int64_t>& prompt_tokens;  // [prompt position] computed tokens
  int64_t token_budget;
};

/// The micro-batches of the step made of visiting positions [first, last): lists of prompt positions.
/// Length-aware: first fit, longest first, into bins of the token budget (a prompt over the budget is a
/// micro-batch of its own). Otherwise `micro_batch` prompts at a time in visiting order.
std::vector<std::vector<size_t>> MicroBatches(const BatchPlan& plan, const std::vector<size_t>& order, int64_t first,
                                              int64_t last, const TrainSettings& settings) {
  std::vector<std::vector<size_t>> batches;
  if (!settings.length_aware_batches) {
    for (int64_t begin = first; begin < last; begin += settings.micro_batch) {
      std::vector<size_t>& batch = batches.emplace_back();
      for (int64_t k = begin; k < std::min(last, begin + settings.micro_batch); ++k) batch.push_back(order[static_cast<size_t>(k)]);
    }
    return batches;
  }
  std::vector<size_t> step_prompts(order.begin() + first, order.begin() + last);
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

bool IsGrouped(sema::ObjectiveUnit unit) {
  return unit == sema::ObjectiveUnit::GroupOfResponses || unit == sema::ObjectiveUnit::GroupOfPairs;
}

// --- checkpoints (runtime/model/training_checkpoint.h) ---

void SaveCheckpoint(LlamaForCausalLMImpl& model, const torch::optim::AdamW& optimizer, const TrainingState& state,
                    const std::string& dir) {
  std::string error;
  if (!SaveTrainingCheckpoint(model, optimizer, state, dir, &error)) throw TrainError(error);
}

/// Loads the newest checkpoint of `dir` into the model and optimizer and returns its step; 0 when there is none.
int64_t ResumeFromLatestCheckpoint(LlamaForCausalLMImpl& model, torch::optim::AdamW& optimizer,
                                   const std::string& dir) {
  const std::optional<std::string> latest = LatestTrainingCheckpoint(dir);
  if (!latest) return 0;
  std::string error;
  const std::optional<TrainingState> state = LoadTrainingCheckpoint(model, optimizer, *latest, &error);
  if (!state) throw TrainError(error);
  return state->step;
}

}  // namespace

TrainSettings TrainSettings::FromParams(const nlohmann::ordered_json& params) {
  TrainSettings s;
  const auto& optim = params.at("optim");
  s.lr = optim.at("lr").get<double>();
  s.beta1 = optim.at("betas").at(0).get<double>();
  s.beta2 = optim.at("betas").at(1).get<double>();
  s.eps = optim.at("eps").get<double>();
  s.weight_decay = optim.at("weight_decay").get<double>();
  s.warmup = optim.at("warmup").get<double>();
  s.schedule = optim.at("schedule").get<std::string>();
  s.min_lr_ratio = optim.at("min_lr_ratio").get<double>();
  s.epochs = params.at("epochs").get<int64_t>();
  if (!params.at("max_steps").is_null()) s.max_steps = params.at("max_steps").get<int64_t>();
  s.batch = params.at("batch").get<int64_t>();
  s.micro_batch = params.at("micro_batch").get<int64_t>();
  if (!params.at("grad_clip").is_null()) {
    s.grad_clip = params.at("grad_clip").get<double>();
  } else {
    s.grad_clip.reset();
  }
  s.seed = params.at("seed").get<int64_t>();
  if (!params.at("save_every").is_null()) s.save_every = params.at("save_every").get<int64_t>();
  return s;
}

double ScheduledLr(const TrainSettings& settings, int64_t step, int64_t total) {
  // `step` counts from 0. Warmup ramps up to the peak over the first ceil(warmup * total) steps.
  auto warmup_steps = static_cast<int64_t>(std::ceil(settings.warmup * static_cast<double>(total)));
  if (step < warmup_steps) return settings.lr * static_cast<double>(step + 1) / static_cast<double>(warmup_steps);
  if (settings.schedule == "constant") return settings.lr;
  int64_t decay_steps = std::max<int64_t>(1, total - warmup_steps);
  double progress = std::min(1.0, static_cast<double>(step - warmup_steps) / static_cast<double>(decay_steps));
  double shape = settings.schedule == "linear" ? 1.0 - progress : 0.5 * (1.0 + std::cos(std::numbers::pi * progress));
  return settings.lr * (settings.min_lr_ratio + (1.0 - settings.min_lr_ratio) * shape);
}

int64_t Train(LlamaForCausalLMImpl& model, const TrainData& data, const ir::LossGraph& loss,
              const ir::Requirements& needs, const TrainSettings& settings, const TrainOptions& options) {
  const torch::Device device = model.OutputWeight().device();
  const std::vector<PromptUnits> prompts = ByPrompt(data, needs);
  if (prompts.empty()) throw TrainError("stage `" + options.stage + "` has no items to train on");
  const auto prompt_count = static_cast<int64_t>(prompts.size());
  const int64_t steps_per_epoch = (prompt_count + settings.batch - 1) / settings.batch;
  int64_t total_steps = settings.epochs * steps_per_epoch;
  if (settings.max_steps) total_steps = std::min(total_steps, *settings.max_steps);
  const bool grouped = IsGrouped(loss.unit);
  const std::vector<std::string>& roles = data.items.roles;

  model.train();
  torch::optim::AdamW optimizer(model.parameters(), torch::optim::AdamWOptions(settings.lr)
                                                         .betas({settings.beta1, settings.beta2})
                                                         .eps(settings.eps)
                                                         .weight_decay(settings.weight_decay));
  int64_t step = 0;
  if (options.resume && !options.checkpoint_dir.empty()) {
    step = ResumeFromLatestCheckpoint(model, optimizer, options.checkpoint_dir);
  }
  if (!options.checkpoint_dir.empty()) fs::create_directories(options.checkpoint_dir);

  auto tensor = [&](const std::vector<double>& values) {
    return torch::tensor(values, torch::kDouble).to(device, torch::kFloat);
  };
  const std::vector<int64_t> prompt_tokens = ComputedTokensByPrompt(data, prompts, settings.logprobs);
  const BatchPlan plan{prompt_tokens, MicroBatchTokenBudget(prompt_tokens, settings.micro_batch)};
  int64_t steps_this_run = 0;
  while (step < total_steps) {
    const int64_t epoch = step / steps_per_epoch;
    const int64_t step_in_epoch = step % steps_per_epoch;
    const std::vector<size_t> order = EpochOrder(prompts.size(), settings.seed, settings.shuffle ? epoch : -1);
    const int64_t first = step_in_epoch * settings.batch;
    const int64_t last = std::min(prompt_count, first + settings.batch);
    const double step_prompts = static_cast<double>(last - first);
    const double progress = total_steps > 1 ? static_cast<double>(step) / static_cast<double>(total_steps - 1) : 0.0;
    const double lr = ScheduledLr(settings, step, total_steps);
    for (auto& group : optimizer.param_groups()) static_cast<torch::optim::AdamWOptions&>(group.options()).lr(lr);

    auto start = std::chrono::steady_clock::now();
    double step_loss = 0;
    int64_t tokens = 0;
    std::vector<double> chosen_rewards, rejected_rewards, weights;
    optimizer.zero_grad();
    for (const std::vector<size_t>& micro_prompts : MicroBatches(plan, order, first, last, settings)) {
      // The items of these prompts, and the distinct (prompt, response) sequences the loss reads, grouped
      // by prompt so that the responses of a prompt share one copy of it.
      std::vector<size_t> items;
      std::vector<int64_t> local_group;
      std::map<int64_t, int64_t> group_ids;
      std::map<std::pair<uint32_t, int32_t>, size_t> sequence_index;  // (prompt, response) -> row of the result
      std::vector<PromptResponses> groups;
      for (size_t prompt_position : micro_prompts) {
        const PromptUnits& units = prompts[prompt_position];
        for (size_t i : units.items) {
          items.push_back(i);
          int64_t key = loss.unit == sema::ObjectiveUnit::GroupOfPairs ? static_cast<int64_t>(units.prompt)
                                                                        : data.items.items[i].group;
          auto [it, inserted] = group_ids.emplace(key, static_cast<int64_t>(group_ids.size()));
          local_group.push_back(it->second);
        }
        const PromptResponses& group = groups.emplace_back(PolicyGroup(data, units));
        for (size_t k = 0; k < group.responses.size(); ++k) {
          sequence_index.emplace(std::make_pair(units.prompt, units.policy_responses[k]), sequence_index.size());
          tokens += static_cast<int64_t>(group.prompt.size() + group.responses[k].size());
        }
      }
      // The forward pass and the loss under autocast when asked; backward (below) outside it.
      std::optional<compat::AutocastScope> autocast;
      autocast.emplace(settings.bf16_autocast, device.type(), at::kBFloat16);
      torch::Tensor sequence_logp =
          sequence_index.empty() ? torch::Tensor() : ResponseLogProbs(model, groups, settings.logprobs).to(torch::kFloat);

      LossBatch batch;
      batch.progress = progress;
      std::vector<double> item_weights;
      for (size_t i : items) item_weights.push_back(data.items.items[i].weight);
      batch.weight = tensor(item_weights);
      for (size_t role_index = 0; role_index < roles.size(); ++role_index) {
        const std::string& role = roles[role_index];
        std::vector<int64_t> rows;
        std::vector<double> lengths, rewards, refs;
        for (size_t i : items) {
          const Item& item = data.items.items[i];
          int32_t r = item.responses[role_index];
          if (auto it = sequence_index.find({item.prompt, r}); it != sequence_index.end()) {
            rows.push_back(static_cast<int64_t>(it->second));
          }
          lengths.push_back(static_cast<double>(data.response_ids[item.prompt][static_cast<size_t>(r)].size()));
          rewards.push_back(data.rewards[item.prompt][static_cast<size_t>(r)]);
          if (!data.ref_logp.empty()) refs.push_back(data.ref_logp[i][role_index]);
        }
        if (rows.size() == items.size()) {
          batch.logp[role] = sequence_logp.index_select(0, torch::tensor(rows, torch::kLong).to(device));
        }
        batch.length[role] = tensor(lengths);
        batch.reward[role] = tensor(rewards);
        if (!refs.empty()) batch.ref_logp[role] = tensor(refs);
      }
      if (grouped) {
        batch.group = torch::tensor(local_group, torch::kLong).to(device);
        batch.groups = static_cast<int64_t>(group_ids.size());
      }
      torch::Tensor unit_losses;
      try {
        unit_losses = EvaluateLoss(loss, batch);
      } catch (const LossError& error) {
        throw TrainError("stage `" + options.stage + "`, step " + std::to_string(step + 1) + ": " + error.what());
      }
      if (!needs.weight_in_loss) {
        torch::Tensor unit_weights = batch.weight;
        if (grouped) {  // a group's weight: the mean of its members'
          torch::Tensor sums = torch::zeros({batch.groups}, batch.weight.options()).index_add(0, batch.group, batch.weight);
          torch::Tensor counts =
              torch::zeros({batch.groups}, batch.weight.options()).index_add(0, batch.group, torch::ones_like(batch.weight));
          unit_weights = sums / counts;
        }
        unit_losses = unit_losses * unit_weights;
      }
      torch::Tensor micro_loss = unit_losses.sum() / step_prompts;
      autocast.reset();
      double value = micro_loss.item<double>();
      if (!std::isfinite(value)) {
        throw TrainError("stage `" + options.stage + "`, step " + std::to_string(step + 1) + ": the loss is " +
                         (std::isnan(value) ? "NaN" : "infinite") + " (objective `" + loss.objective +
                         "`); the last good checkpoint is kept");
      }
      micro_loss.backward();
      step_loss += value;
      weights.insert(weights.end(), item_weights.begin(), item_weights.end());
      // Implicit rewards of pair stages, for the metrics.
      if (roles.size() >= 2 && batch.logp.count(roles[0]) && batch.logp.count(roles[1])) {
        auto implicit = [&](const std::string& role) {
          torch::Tensor logp = batch.logp[role].detach();
          return batch.ref_logp.count(role) ? logp - batch.ref_logp[role] : logp / batch.length[role];
        };
        torch::Tensor c = implicit(roles[0]).to(torch::kDouble).cpu();
        torch::Tensor r = implicit(roles[1]).to(torch::kDouble).cpu();
        for (int64_t k = 0; k < c.size(0); ++k) {
          chosen_rewards.push_back(c[k].item<double>());
          rejected_rewards.push_back(r[k].item<double>());
        }
      }
    }
    double grad_norm = 0;
    if (settings.grad_clip) {
      grad_norm = torch::nn::utils::clip_grad_norm_(model.parameters(), *settings.grad_clip);
    } else {
      for (const auto& parameter : model.parameters()) {
        if (parameter.grad().defined()) grad_norm += parameter.grad().pow(2).sum().item<double>();
      }
      grad_norm = std::sqrt(grad_norm);
    }
    optimizer.step();
    ++step;
    ++steps_this_run;

    StepMetrics metrics;
    metrics.step = step;
    metrics.total_steps = total_steps;
    metrics.epoch = epoch + 1;
    metrics.loss = step_loss;
    metrics.lr = lr;
    metrics.grad_norm = grad_norm;
    metrics.tokens = tokens;
    double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    metrics.tokens_per_s = static_cast<double>(tokens) / std::max(seconds, 1e-9);
    if (!chosen_rewards.empty()) {
      double c = 0, r = 0, correct = 0;
      for (size_t k = 0; k < chosen_rewards.size(); ++k) {
        c += chosen_rewards[k];
        r += rejected_rewards[k];
        correct += chosen_rewards[k] > rejected_rewards[k];
      }
      auto n = static_cast<double>(chosen_rewards.size());
      metrics.chosen_reward = c / n;
      metrics.rejected_reward = r / n;
      metrics.margin = (c - r) / n;
      metrics.accuracy = correct / n;
    }
    if (!weights.empty()) {
      metrics.weight_min = *std::min_element(weights.begin(), weights.end());
      metrics.weight_max = *std::max_element(weights.begin(), weights.end());
      double sum = 0;
      for (double w : weights) sum += w;
      metrics.weight_mean = sum / static_cast<double>(weights.size());
    }
    if (options.on_step) options.on_step(metrics);

    bool save = step == total_steps || (settings.save_every && step % *settings.save_every == 0);
    if (save && !options.checkpoint_dir.empty()) {
      SaveCheckpoint(model, optimizer, {step, total_steps}, options.checkpoint_dir);
    }
    if (options.stop_after && steps_this_run >= *options.stop_after && step < total_steps) break;
  }
  model.eval();
  return step;
}

}  // namespace fusec::rt
