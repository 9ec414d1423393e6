// The trainer: one stage's optimisation of a model on weighted items with a loss graph.
//
// A step takes `batch` prompts (in micro-batches whose gradients accumulate), computes the policy
// log-probabilities of the responses the loss reads (packed, each prompt once, through the chunked head),
// evaluates the loss graph per unit, weights each unit (unless the loss places the weight itself), sums
// within a prompt and averages over the step's prompts, as docs/language.md says. Then: gradient clipping, AdamW at the scheduled learning rate, one
// metrics line. Prompts are visited in an order drawn from the stage's seed, so a run is reproducible; the
// checkpoint holds everything the next step depends on (weights, optimizer moments, step, order), so a
// resumed run ends with the same weights as an uninterrupted one. A loss that is not finite stops the stage
// with an error naming it and the step, keeping the last good checkpoint.
//
// On several ranks (TrainOptions::ranks), each takes its share of every step's prompts, balanced by computed
// tokens; the loss is still divided by the whole step's prompt count, and the gradients are summed over the
// ranks during backward (runtime/dist/gradient_buckets.h), so every rank takes the single process's step.
// The stage's `shard` says what the ranks partition: AdamW's moments (`optimizer`), and gradients too
// (`gradients`); each rank then updates its own parameters and the owners broadcast them
// (runtime/train/optimizer_shard.h). A checkpoint holds every rank's moments, by parameter name.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/ir.h"
#include "runtime/dist/rank_group.h"
#include "runtime/exec/rules.h"
#include "runtime/model/inference.h"
#include "runtime/model/llama.h"

namespace fusec::rt {

struct TrainSettings {
  /// The stage's settings, every one as the compiler resolved it (the runtime has no defaults of its own for
  /// what the language sets); the fields below are the runtime's own switches.
  ir::TrainSpec spec;
  /// Visit prompts in an order drawn from `spec.seed` each epoch; off: in data order (benchmarks comparing steps
  /// with another implementation).
  bool shuffle = true;
  /// Mixed precision: forward passes under bf16 autocast, fp32 master weights and optimizer (none: fp32).
  bool bf16_autocast = false;
  /// How policy log-probabilities are computed (packing, shared prompts, the chunked head); the losses do
  /// not depend on it beyond rounding.
  LogProbOptions logprobs;
  /// Length-aware micro-batches: a step's prompts go into micro-batches by computed tokens (first fit,
  /// longest first), each holding up to `micro_batch` prompts' worth of tokens at the data's mean, so every
  /// packed forward is full. Off: `micro_batch` prompts at a time in visiting order. Which prompts make a
  /// step is the same either way, and so is the loss.
  bool length_aware_batches = true;

  /// Every optimisation of the log-prob computation and batching off (the usual way), for comparisons.
  void DisableOptimizations() {
    logprobs = LogProbOptions::Naive();
    length_aware_batches = false;
  }

  /// From a train node's spec (the compiler's resolved stage), the runtime's switches at their defaults.
  static TrainSettings FromSpec(const ir::TrainSpec& spec) {
    TrainSettings settings;
    settings.spec = spec;
    return settings;
  }
};

/// The learning rate at optimizer step `step` of `total`: linear warmup over the first `warmup` fraction,
/// then constant, linear or cosine decay to `min_lr_ratio * lr`.
double ScheduledLr(const TrainSettings& settings, int64_t step, int64_t total);

/// Everything the trainer reads, tokenized. Items refer to prompts and responses by index.
struct TrainData {
  std::vector<std::vector<int32_t>> prompt_ids;                 // [prompt] tokens (empty when unused)
  std::vector<std::vector<std::vector<int32_t>>> response_ids;  // [prompt][response] tokens (empty when unused)
  std::vector<std::vector<double>> rewards;                     // [prompt][response] (NaN when missing)
  ItemSet items;
  std::vector<std::vector<double>> ref_logp;  // [item][role], when the loss reads ref_logp
};

/// One optimizer step's metrics, as written to metrics.jsonl.
struct StepMetrics {
  int64_t step = 0;  // 1-based
  int64_t total_steps = 0;
  int64_t epoch = 0;
  double loss = 0;
  double lr = 0;
  double grad_norm = 0;
  int64_t tokens = 0;
  double tokens_per_s = 0;
  // Preference stages: implicit rewards (logp - ref_logp, or logp / len without a reference) of the first
  // two roles, their margin and how often it is positive.
  std::optional<double> chosen_reward, rejected_reward, margin, accuracy;
  double weight_mean = 0, weight_min = 0, weight_max = 0;
  // Memory, the largest over the ranks: the training state a rank holds after the step (weights, gradients,
  // AdamW moments: what `shard` partitions; activations and the few bucket buffers in flight during backward
  // excluded) and the process's peak resident memory so far (everything).
  double state_mb = 0;
  double peak_rss_mb = 0;
};

struct TrainOptions {
  std::string stage;          // `experiment/stage`, for messages and metrics
  std::string checkpoint_dir;  // where checkpoints go (and are resumed from)
  bool resume = false;
  /// Stop (as if killed) after this many optimizer steps of this run: for tests of resuming.
  std::optional<int64_t> stop_after;
  /// Besides every `save_every` steps and after the last, a checkpoint is written when this many seconds
  /// passed since the last one (so a long stage without `save_every` loses at most that much to a kill).
  std::optional<double> checkpoint_interval_s;
  /// Asked after each step: true stops the stage there (SIGINT, SIGTERM), after writing a checkpoint.
  std::function<bool()> should_stop;
  std::function<void(const StepMetrics&)> on_step;
  std::string stage_hash;  // recorded in each checkpoint: one of another stage is not resumed
  /// The stage's metrics lines so far (after on_step of the step just taken), kept in each checkpoint.
  std::function<std::string()> metrics_so_far;
  /// Called when resuming, with the metrics lines of the checkpoint's steps.
  std::function<void(const std::string& metrics)> on_resume;
  /// Several ranks (data parallel): each takes its share of every step's prompts and the gradients are summed
  /// over the ranks; the leader alone writes checkpoints. nullptr, or a group of one: this process alone.
  RankGroup* ranks = nullptr;
};

/// A stage that cannot train on: a loss that is not finite, a loss graph the batch does not fit. The message
/// names the stage and the step.
class TrainError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// A checkpoint cannot be written (a full disk) or resumed from (damaged, foreign, of another format). The
/// message names the file and what is wrong.
class CheckpointError : public TrainError {
 public:
  enum class When { Saving, Resuming };
  CheckpointError(When when, const std::string& message) : TrainError(message), when(when) {}
  When when;
};

/// The loss became NaN or infinite: the stage stops at that step, keeping its last good checkpoint.
class NonFiniteLossError : public TrainError {
 public:
  using TrainError::TrainError;
};

/// Trains `model` in place. Returns the number of optimizer steps taken in all (after resuming, the total).
int64_t Train(LlamaForCausalLMImpl& model, const TrainData& data, const ir::LossGraph& loss,
              const ir::Requirements& needs, const TrainSettings& settings, const TrainOptions& options);

}  // namespace fusec::rt
