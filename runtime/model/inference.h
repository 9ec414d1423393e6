// Inference with a loaded model: log-probabilities of responses (scoring) and generation with a KV cache.
//
// Both run without gradients. Log-probabilities are computed a chunk of positions at a time so the full
// [tokens, vocab] logits are never materialized (a 128k vocabulary makes them the largest tensor by far).
// Generation batches prompts of different lengths by left-padding them: pad keys are masked out and
// positions count real tokens only, so a prompt generates the same tokens alone or in a batch.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "runtime/data/examples.h"
#include "runtime/model/llama.h"

namespace fusec::rt {

/// Log-probability of each target under the logits of the matching hidden state: hidden [N, hidden_size],
/// targets [N] int64 -> [N] float32. `chunk` positions at a time.
torch::Tensor TokenLogProbs(LlamaForCausalLMImpl& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                            int64_t chunk = 512);

/// A sequence whose response part is scored: the tokens after the first `prompt_length`.
struct ScoredSequence {
  size_t prompt_length = 0;
  std::vector<int32_t> ids;
};

/// Summed log-probability of the response part of each sequence, in one right-padded batch: [N] float32 on
/// the model's device, with gradients when grad mode is on (training). `scored_tokens`, if given, receives
/// how many tokens of each were scored.
torch::Tensor SequenceLogProbs(LlamaForCausalLMImpl& model, const std::vector<ScoredSequence>& sequences,
                              std::vector<int64_t>* scored_tokens = nullptr);

struct ResponseScore {
  double logp = 0;     // summed over the response's tokens, given the prompt
  int64_t tokens = 0;  // how many tokens were scored
};

/// Scores every response of every prompt; the result is indexed like `prompts[p].responses[r]`. Sequences are
/// batched up to `max_batch_tokens` (padded) tokens. `progress(done, total)` is called after each batch.
std::vector<std::vector<ResponseScore>> ScoreResponses(
    LlamaForCausalLMImpl& model, const std::vector<TokenizedPrompt>& prompts, int64_t max_batch_tokens,
    const std::function<void(int64_t, int64_t)>& progress = nullptr);

struct SamplingOptions {
  int64_t max_new_tokens = 256;
  double temperature = 0.0;  // 0: greedy
  double top_p = 1.0;
  uint64_t seed = 0;
  std::vector<int32_t> stop_ids;  // generation of a sequence ends after any of these
};

struct Generation {
  std::vector<int32_t> ids;  // generated tokens, the stop token included when there was one
  bool stopped = false;      // ended at a stop token rather than at max_new_tokens
};

/// Generates a continuation of each prompt (token ids), all in one batch.
std::vector<Generation> Generate(LlamaForCausalLMImpl& model, const std::vector<std::vector<int32_t>>& prompts,
                                 const SamplingOptions& options);

}  // namespace fusec::rt
