// Inference with a loaded model: log-probabilities of responses (scoring) and generation with a KV cache.
//
// Log-probabilities serve training too (with gradients): sequences are packed without padding, a prompt's
// responses share one copy of it, and the head works a chunk of positions at a time so the full
// [tokens, vocab] logits are never materialized (a 128k vocabulary makes them the largest tensor by far),
// not even in backward. Generation runs without gradients.
// Generation batches prompts of different lengths by left-padding them: pad keys are masked out and
// positions count real tokens only, so a prompt generates the same tokens alone or in a batch.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string>
#include <vector>

#include "runtime/data/examples.h"
#include "runtime/model/llama.h"

namespace fusec::rt {

/// How response log-probabilities are computed. Every switch keeps the result (to rounding) and changes only
/// the work and memory; all on is the default, all off is the usual padded computation (logits still only at
/// response positions), kept for comparisons and tests.
struct LogProbOptions {
  /// Padding-free packing: the sequences of a call are one flat row with position ids and segment-wise
  /// (block-diagonal causal) attention, so no pad token is computed. Off: right-padded rows.
  bool pack = true;
  /// Each prompt once, its responses packed behind it: a response attends to the prompt and to itself, its
  /// positions continue from the prompt's end. Needs `pack`. Off: every response repeats its prompt.
  bool share_prompts = true;
  /// Log-probabilities from the final hidden states a chunk of tokens at a time, the logits recomputed in
  /// backward (ChunkedTokenLogProbs), so [tokens, vocab] logits never exist whole. Off: whole logits.
  bool chunked_head = true;
  /// Tokens per chunk; 0 chooses as many as keep one chunk's logits near kHeadChunkValues values.
  int64_t head_chunk = 0;

  static constexpr int64_t kHeadChunkValues = int64_t{32} << 20;
  /// Every optimisation off.
  static LogProbOptions Naive() { return {false, false, false, 0}; }
  /// The chunk length for a vocabulary of `vocab`.
  int64_t ChunkTokens(int64_t vocab) const;
};

/// Log-probability of each target under the logits of the matching hidden state: hidden [N, hidden_size],
/// targets [N] int64 -> [N] float32. With `options.chunked_head`, chunk by chunk with the logits recomputed in
/// backward; otherwise through whole [N, vocab] logits.
torch::Tensor TokenLogProbs(LlamaForCausalLMImpl& model, const torch::Tensor& hidden, const torch::Tensor& targets,
                            const LogProbOptions& options = {});

/// The chunked log-prob head as a function of its tensors: hidden [N, H] (any float dtype), weight [V, H],
/// targets [N] int64 -> [N] float32, differentiable in hidden and weight. Under autocast the matmuls run in
/// the autocast dtype (bf16) with float32 accumulation and a float32 softmax; backward recomputes each
/// chunk's logits, so peak memory is one [chunk, V] block instead of [N, V]. `softcap` > 0 caps the logits to
/// softcap * tanh(logits / softcap) first (Gemma-2's `final_logit_softcapping`).
torch::Tensor ChunkedTokenLogProbs(const torch::Tensor& hidden, const torch::Tensor& weight, const torch::Tensor& targets,
                                   int64_t chunk, double softcap = 0);

/// A prompt and responses that continue it.
struct PromptResponses {
  std::span<const int32_t> prompt;
  std::vector<std::span<const int32_t>> responses;
};

/// Summed log-probability of every response given its prompt, group after group: [sum of responses] float32
/// on the model's device, with gradients when grad mode is on. A response token at position 0 (an empty
/// prompt) has nothing to be predicted from and is not scored. `scored_tokens`, if given, receives how many
/// tokens of each were scored. Packed and shared as `options` say; the result does not depend on them.
torch::Tensor ResponseLogProbs(LlamaForCausalLMImpl& model, const std::vector<PromptResponses>& groups,
                               const LogProbOptions& options = {}, std::vector<int64_t>* scored_tokens = nullptr);

/// Tokens a call of ResponseLogProbs computes for `group`: with shared prompts the prompt once, otherwise
/// once a response.
int64_t ComputedTokens(const PromptResponses& group, const LogProbOptions& options);

struct ResponseScore {
  double logp = 0;     // summed over the response's tokens, given the prompt
  int64_t tokens = 0;  // how many tokens were scored
};

/// Which batches of ScoreResponses this process computes (by the batch's index, from 0); null: all.
using BatchFilter = std::function<bool(int64_t batch)>;

/// Scores every response of every group; the result is indexed like `groups[g].responses[r]`. Groups are
/// batched up to `max_batch_tokens` computed tokens (a larger group is a batch of its own).
/// `progress(done, total)` (responses) is called after each batch. With `computes_batch`, only the batches it
/// accepts are computed and the others' scores are left {0, 0}: the ranks of a run each compute their share
/// of the same batches (dist/work_split.h).
std::vector<std::vector<ResponseScore>> ScoreResponses(
    LlamaForCausalLMImpl& model, const std::vector<PromptResponses>& groups, int64_t max_batch_tokens,
    const LogProbOptions& options = {}, const std::function<void(int64_t, int64_t)>& progress = nullptr,
    const BatchFilter& computes_batch = nullptr);

/// The same for tokenized prompts of a data set.
std::vector<std::vector<ResponseScore>> ScoreResponses(
    LlamaForCausalLMImpl& model, const std::vector<TokenizedPrompt>& prompts, int64_t max_batch_tokens,
    const std::function<void(int64_t, int64_t)>& progress = nullptr, const LogProbOptions& options = {},
    const BatchFilter& computes_batch = nullptr);

/// Throws [NonFiniteModel] naming the model's directory when a row of `values` ([N] or [N, ...], one row a
/// `unit`) holds a NaN or an Inf: a broken model is an error where its outputs are consumed, never a `null`
/// score or a completion of token 0s.
void RequireFinite(const LlamaForCausalLMImpl& model, const torch::Tensor& values, const std::string& what,
                   const std::string& unit);

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
