// What each kind of execution-graph node computes: one payload struct per kind in node_kind.def.
//
// This is the contract between the compiler and the runtime. Lowering fills a payload from sema's checked
// program, with every value the language sets already final (defaults included: they are written once, in
// sema's builtin and stage-field tables); the runtime reads the same struct, so a field renamed here is a
// compile error in the runtime, and the runtime keeps no defaults of its own for what the language sets.
// Enumerations stay enumerations (enums.h) and data rules are IR expressions (expr.h). The JSON that content
// hashes, `--emit=json` and cache manifests read is printed from these structs (ir.cpp, ParamsJson): a view,
// never something the runtime parses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "compiler/ir/enums.h"
#include "compiler/ir/expr.h"
#include "compiler/ir/loss_graph.h"

namespace fusec::ir {

// ---------------------------------------------------------------------------------------------------------
// Models and data

/// `hf_model(path, chat)`: a Hugging Face model directory.
struct HfModelSpec {
  std::string path;  // relative to the .fuse file
  ChatTemplateName chat = ChatTemplateName::Auto;
  std::string fingerprint;  // of the directory's files, so a changed model changes the hash (driver)
};

/// `new_model(...)`: a freshly initialised Llama-family model with a given tokenizer.
struct NewModelSpec {
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  std::optional<int64_t> num_kv_heads;  // none: num_heads
  std::optional<int64_t> vocab_size;    // none: the tokenizer's
  int64_t max_position = 0;
  double rope_theta = 0;
  double rms_norm_eps = 0;
  bool tie_embeddings = false;
  Architecture architecture = Architecture::Llama;
  std::string tokenizer;  // `byte`, or a directory or tokenizer.json path relative to the .fuse file
  ChatTemplateName chat = ChatTemplateName::Plain;
  int64_t seed = 0;
};

using ModelSpec = std::variant<HfModelSpec, NewModelSpec>;

/// The field names of `jsonl(...)`: where a record keeps each part.
struct JsonlFields {
  std::string id, prompt, messages, responses, source, text, reward, gold, family;
};

/// `jsonl(path, ...)`: prompts with responses, one JSON object a line.
struct DatasetSpec {
  std::string path;  // relative to the .fuse file
  JsonlFields fields;
  BadLines bad_lines = BadLines::Stop;
  std::optional<int64_t> limit;  // read at most this many prompts
  std::string fingerprint;       // SHA-256 of the file (driver)
};

// ---------------------------------------------------------------------------------------------------------
// Sampling and scoring: the source models in the language

/// How one source model is sampled, every default resolved (sema's `sample` builtin and its per-source
/// records). Hugging Face's sampling rules, in its order: repetition penalty, temperature, top-k, top-p.
struct SamplingSettings {
  int64_t n = 0;                  // samples per prompt
  double temperature = 0;         // 0: greedy
  double top_p = 1;               // 1: off
  std::optional<int64_t> top_k;   // none: off
  double repetition_penalty = 1;  // 1: off; seen tokens' logits divided by it (multiplied when negative)
  int64_t max_new_tokens = 0;
  std::vector<int64_t> seeds;     // one per sample: sample i's random stream starts from seeds[i]
};

/// One source of a sampling step: the responses' `source` name and how it is sampled. Its model is the
/// sample node's `model` input at the same position.
struct SampledSource {
  std::string name;
  SamplingSettings settings;
};

/// `reward_model(path, chat)`: a reward-model directory (LlamaForSequenceClassification with one label, or
/// ArmoRM's LlamaForRewardModelWithGating), rendered with its own tokenizer and chat template.
struct RewardModelSpec {
  std::string path;  // relative to the .fuse file
  ChatTemplateName chat = ChatTemplateName::Auto;
  std::string fingerprint;  // of the directory's files (driver)
};

/// `gold_reward(noise, seed)`: a benchmark's own scorer exposed as a reward: 1 - the normalised edit
/// distance of the response to the record's `gold` answer, plus Gaussian noise of standard deviation
/// `noise` drawn from a stream seeded by (seed, prompt id, source, sample index).
struct GoldRewardSpec {
  double noise = 0;
  int64_t seed = 0;
};

using ScorerSpec = std::variant<RewardModelSpec, GoldRewardSpec>;

// ---------------------------------------------------------------------------------------------------------
// Data rules

/// Which responses of each prompt a response-item stage (SFT) trains on: the top `k` by `by` (all when k is
/// none) among those passing `where`, per prompt or per source.
struct SelectionRule {
  Scope scope = Scope::Prompt;
  std::optional<int64_t> k;
  ExprRef by;     // null: keep the responses' order
  ExprRef where;  // null: every response
};

/// One role of a pair: the response of the scope with the highest (argmax) or lowest score.
struct RoleRule {
  std::string name;
  bool argmax = true;
  ExprRef score;
  ExprRef where;  // candidates; null = all responses of the scope
};

/// How a preference stage builds its pairs (PairingKind says which rule applies).
struct PairingRule {
  PairingKind kind = PairingKind::Within;
  Scope scope = Scope::Source;
  std::vector<RoleRule> roles;  // Within; AllPairs and AcrossSources have chosen and rejected
  ExprRef by;
  double min_gap = 0;
  ExprRef where;  // filter over whole pairs; null = keep all
};

/// Groups of responses for group objectives (RLOO): all samples of a source, or of a prompt.
struct GroupingRule {
  Scope scope = Scope::Source;
  ExprRef where;
};

// ---------------------------------------------------------------------------------------------------------
// Training

struct OptimSpec {
  std::string name;  // `adamw`, the only optimizer so far
  double lr = 0;
  double beta1 = 0;
  double beta2 = 0;
  double eps = 0;
  double weight_decay = 0;
  double warmup = 0;  // fraction of the stage's optimizer steps
  Schedule schedule = Schedule::Cosine;
  double min_lr_ratio = 0;
};

/// A stage's training settings, as the checked stage resolved them.
struct TrainSpec {
  std::string objective;  // `dpo(beta: 10.0, length_norm: true)`, for messages
  OptimSpec optim;
  int64_t epochs = 0;
  std::optional<int64_t> max_steps;
  int64_t batch = 0;        // prompts per optimizer step
  int64_t micro_batch = 0;  // prompts per forward and backward
  int64_t max_len = 0;      // prompt + response tokens; longer items are dropped
  std::optional<int64_t> max_prompt_len;
  int64_t seed = 0;
  Precision precision = Precision::Auto;
  std::optional<double> grad_clip;
  std::optional<int64_t> save_every;
  /// What several data-parallel ranks partition; it changes rounding only, so it is not in the stage's hash.
  Shard shard = Shard::Gradients;
};

// ---------------------------------------------------------------------------------------------------------
// The payloads, one per node kind

struct LoadModel {
  ModelSpec model;
};
struct LoadData {
  DatasetSpec data;
};
/// The prompts' responses of the listed sources only; prompts left with none are dropped.
struct FilterSources {
  std::vector<std::string> sources;
};
/// One part of `split(data, a: 0.4, b: 0.6, seed: s)`.
struct Split {
  std::string part;
  std::vector<std::pair<std::string, double>> fractions;  // every part's, in the order written
  int64_t seed = 0;
};
/// `sample(prompts, models: {...}, ...)`: every source model's responses to every prompt, with `source`
/// set to the source's name and no reward. Inputs: `prompts`, then one `model` per source, in order.
struct Sample {
  std::vector<SampledSource> sources;
  bool keep_responses = true;   // the prompts' own responses stay, before the new ones
  bool drop_identical = false;  // prompts whose new samples all have the same text are dropped
  int64_t batch_tokens = 0;     // continuous batching's budget: KV-cache positions of all rows together
};
/// `score(data, by: scorer)`: every response's reward from the scorer.
struct Score {
  ScorerSpec scorer;
  bool keep_existing = false;  // responses that have a reward keep it; only the others are scored
  int64_t batch_tokens = 0;    // tokens a reward-model forward computes
};
struct Select {
  SelectionRule rule;
};
struct Pairs {
  PairingRule rule;
};
struct Groups {
  GroupingRule rule;
};
/// Each item's weight from the stage's weighting; a null expression weighs every item 1.
struct Weight {
  ExprRef weight;
};
/// The reference model's log-probabilities of the items' `roles`, for items that fit the stage's lengths.
struct RefLogprobs {
  std::vector<std::string> roles;
  int64_t max_len = 0;
  std::optional<int64_t> max_prompt_len;
};
struct Train {
  TrainSpec spec;
  LossGraph loss;
  std::optional<Requirements> requirements;  // once inferred (passes)
};
/// Greedy completions of the data's prompts by each input model, scored against gold answers where the data
/// has them, and the held-out NLL of each prompt's best response.
struct Evaluate {
  int64_t max_new_tokens = 0;
  int64_t batch = 0;  // prompts per generation batch
  std::string output;  // the run directory's eval/ folder
};
/// Copies a trained model to the run directory.
struct Export {
  std::string path;
};

}  // namespace fusec::ir
