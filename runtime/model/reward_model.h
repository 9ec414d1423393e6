// Reward models: a decoder whose final hidden states a small head turns into one score per conversation.
//
// Two heads, as their checkpoints ship them. `LlamaForSequenceClassification` (Skywork-Reward-Llama-3.1-8B;
// also Mistral's, Qwen2's, Qwen3's and Gemma-2's `...ForSequenceClassification`, whose backbones fusec runs):
// score = score.weight @ h[last], one label. `LlamaForRewardModelWithGating` (ArmoRM-Llama3-8B-v0.1): a
// regression layer reads 19 objectives at the last token, a gating MLP reads the hidden state at the end of the
// user turn and mixes them: score = sum(gate * (rewards @ reward_transform_matrix)), with
// gate = softmax(MLP(h[gating]) / gating_temperature) * logit_scale.
//
// The backbone is fusec's own decoder (llama.h), built from config.json as a causal LM with no LM head, so
// loading is the same name lookup and the same checks as any model (checkpoint.h): the head's tensors are
// registered under their checkpoint names and checked with the backbone's (a missing or misshaped one names
// itself and both shapes). The head is kept and computed in float32, whatever dtype the backbone runs in.
//
// Scoring packs several conversations into one padding-free row (llama.h's PackedLayout: each conversation a
// segment of its own), at most `batch_tokens` tokens a forward, so a conversation scores the same alone or in
// a batch. The last token is the conversation's last token: what Hugging Face reads when the conversation holds
// no pad token.
//
// The gating position. Upstream ArmoRM searches the ids for the last `<|eot_id|><|start_header_id|>assistant
// <|end_header_id|>\n\n` and reads its `<|eot_id|>`, the token that ends the last user turn. fusec's rule works
// for any template: the last end-of-turn token (the template's EndOfTurn(), tokenized) in the prompt, which
// ends with the generation header, so that token closes the last turn before the assistant's; a prompt without
// one (the plain template) reads its own last token. On Llama-3 templates both rules give the same position.
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/ir/enums.h"
#include "runtime/data/jsonl.h"
#include "runtime/model/llama.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace fusec::rt {

enum class RewardHead { SequenceClassification, GatedRegression };  // LlamaForSequenceClassification, ArmoRM

/// One conversation to score: the reward model's tokens of prompt + response (its own template), and the
/// position ArmoRM's gating reads (the last token of the user turn; -1 for heads that read none).
struct RewardInput {
  std::vector<int32_t> ids;
  int64_t gating_position = -1;
};

/// The position the gating network reads for a conversation whose prompt (rendered with the generation header)
/// tokenizes to `prompt_ids`: the last end-of-turn token of the prompt (the template's EndOfTurn(), tokenized),
/// else the prompt's last token; -1 for an empty prompt.
int64_t GatingPosition(const std::vector<int32_t>& prompt_ids, const Tokenizer& tokenizer, const ChatTemplate& chat);

/// The architectures a reward model's config.json may name, for messages: "LlamaForSequenceClassification, ...".
std::string SupportedRewardArchitectures();

class RewardModel {
 public:
  /// Loads config.json, safetensors and the tokenizer of `dir` on `device`; `chat` as hf_model's `chat`. The
  /// backbone runs in the config's torch_dtype on CUDA and in float32 on the CPU (checkpoint.h ResolveDtype);
  /// the head in float32. Throws RunError ModelDirectory naming `dir` and what is wrong (an unknown
  /// architecture names it and the supported ones; a missing head tensor names it; a misshaped one names both
  /// shapes; `num_labels` other than 1). `warning`, if given, receives what the user should hear about an
  /// `auto` template choice (DetectChatTemplate); empty if nothing.
  static RewardModel Load(const std::string& dir, ir::ChatTemplateName chat, torch::Device device,
                          std::string* warning = nullptr);

  RewardModel(RewardModel&&) noexcept;
  RewardModel& operator=(RewardModel&&) noexcept;
  ~RewardModel();

  RewardHead head() const;
  const Tokenizer& tokenizer() const;
  const ChatTemplate& chat() const;
  /// The backbone (for its config and device); its `source()` is `dir`.
  const LlamaForCausalLMImpl& backbone() const;

  /// The input for one response of `record` (a prompt or messages): rendered with the model's template, ids =
  /// prompt ids + response ids exactly as training tokenizes them (examples.h TokenizePrompt, TokenizeResponse).
  /// nullopt with `error` when the template refuses the conversation, or when it tokenizes to an id outside the
  /// model's `vocab_size` (a tokenizer may have more tokens than the embedding, e.g. an added pad token).
  std::optional<RewardInput> Input(const PromptRecord& record, std::string_view response, std::string* error) const;

  /// One reward per input, in order, batched so that one forward computes at most `batch_tokens` tokens (an
  /// input longer than that is a forward of its own). `progress(done, total)` (inputs) after each forward.
  /// Throws RunError NonFiniteModel when a score is NaN or infinite, PositionLimit when an input is longer than
  /// the model's max_position_embeddings, and Internal for an input that is empty, holds an id outside the
  /// vocabulary or (gated head) has no gating position inside it. With `computes_batch`, only the batches it
  /// accepts (by index, from 0) are computed, the others' rewards left 0: the ranks of a run each score their
  /// share of the same batches (dist/work_split.h).
  std::vector<double> Score(const std::vector<RewardInput>& inputs, int64_t batch_tokens,
                            const std::function<void(int64_t, int64_t)>& progress = nullptr,
                            const std::function<bool(int64_t batch)>& computes_batch = nullptr);

 private:
  struct State;
  explicit RewardModel(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

}  // namespace fusec::rt
