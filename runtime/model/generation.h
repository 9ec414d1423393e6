// Sampling many sequences from a model: a KV cache of many rows and continuous batching, with Hugging Face's
// sampling rules.
//
// Why this shape: sampling a data set means thousands of requests of very different lengths. A static batch
// waits for its longest row; here every row has a slot of the KV cache with a length of its own, and a row
// that finishes hands its slot to the next waiting request at once, so the batch stays full. A new request is
// prefilled alone (one forward of its prompt, no padding) straight into its slot; then all rows advance one
// token a forward, each at its own cache column.
//
// Why the draws are counter-based: a request's tokens must not depend on which requests share its batch or on
// the order they come in (a resumed run, a different budget or device batch must give the same samples). So
// nothing random is shared: the draw of a request's step `t` is a uniform computed from (its stream, t) alone
// (StreamUniform), turned into a token by inverse CDF, in double precision, over the filtered probabilities in
// ascending token id order. The stream comes from StreamSeed(seed, source, prompt id, sample index).
//
// The rules are transformers' (generation/logits_process.py), in its order: RepetitionPenaltyLogitsProcessor
// over the prompt's and the generated tokens (a logit l of a token seen is l / p if l > 0, else l * p), then
// TemperatureLogitsWarper (l / T), TopKLogitsWarper (keeps every token at least as likely as the k-th), then
// TopPLogitsWarper (keeps the smallest set of most likely tokens whose mass reaches top_p, at least one:
// a token is kept when the tokens more likely than it weigh less than top_p), then a draw from the softmax
// of what is left. Temperature 0 is greedy: the argmax after the repetition penalty (ties: the lowest id).
// Ties in top-p's order go to the lower id.
//
// Legend: B = rows running at once, V = vocabulary, S = cache columns read.
#pragma once

#include <cstdint>
#include <functional>
#include <span>
#include <string_view>
#include <vector>

#include "runtime/model/inference.h"
#include "runtime/model/llama.h"

namespace fusec::rt {

/// Hugging Face's sampling rules, applied in its order: repetition penalty, temperature, top-k, top-p.
struct SamplerSettings {
  double temperature = 1.0;         // 0: greedy (argmax)
  double top_p = 1.0;               // 1: off
  int64_t top_k = 0;                // 0: off
  double repetition_penalty = 1.0;  // 1: off; over the prompt's and the generated tokens, as HF does
};

/// One sequence to generate: its prompt and its own random stream.
struct GenerationRequest {
  std::vector<int32_t> prompt;
  uint64_t stream = 0;  // StreamSeed(...): the draws depend on this only, not on the batch or the order
};

struct GenerationLimits {
  int64_t max_new_tokens = 256;
  std::vector<int32_t> stop_ids;  // a row ends after any of these (it is kept in Generation::ids)
  int64_t token_budget = 16384;   // KV-cache positions of all running rows together
  int64_t max_rows = 64;          // rows running at once
};

/// The random stream of sample `sample_index` of prompt `prompt_id` from source `source` under `seed`:
/// FNV-1a (64-bit) over the bytes of seed (8, little-endian), source's length (8, little-endian) and bytes,
/// prompt_id's length and bytes, sample_index (8, little-endian), finished with SplitMix64's mixer.
/// Stable across machines and versions: changing it changes every sampled data set.
uint64_t StreamSeed(uint64_t seed, std::string_view source, std::string_view prompt_id, int64_t sample_index);

/// The uniform in [0, 1) that step `step` of stream `stream` draws with: the top 53 bits of
/// SplitMix64(SplitMix64(stream) ^ SplitMix64(step)), SplitMix64 being x + 0x9E3779B97F4A7C15, then its mixer.
double StreamUniform(uint64_t stream, int64_t step);

/// The distribution one step draws from: the tokens left after the rules, ascending, and their
/// probabilities (summing to 1).
struct TokenDistribution {
  std::vector<int32_t> tokens;
  std::vector<double> probabilities;
};

/// The rules applied to one row's logits [V] (float32, finite), `seen` being the distinct ids of the prompt
/// and of the tokens generated so far (for the repetition penalty; ids outside [0, V) are ignored).
TokenDistribution NextTokenDistribution(std::span<const float> logits, std::span<const int32_t> seen,
                                        const SamplerSettings& sampler);

/// The token of `distribution` that `uniform` in [0, 1) selects by inverse CDF in its (ascending id) order.
int32_t DrawToken(const TokenDistribution& distribution, double uniform);

/// How many rows GenerateContinuous runs at once: token_budget / (longest prompt + max_new_tokens), capped by
/// max_rows and by the number of requests, at least 1.
int64_t GenerationSlots(const std::vector<GenerationRequest>& requests, const GenerationLimits& limits);

/// Called once per request as it finishes (index into `requests`), in finishing order, on the calling thread.
using OnGenerated = std::function<void(size_t, const Generation&)>;

/// Generates every request with a KV cache and continuous batching: a finished row's slot is refilled by the
/// next waiting request, within limits.token_budget. Each request needs prompt + max_new_tokens <= token_budget
/// and <= the model's max_position_embeddings (callers check; violated: RunError Internal).
/// `Generation` is inference.h's {ids, stopped}. A non-finite logit is RunError NonFiniteModel.
std::vector<Generation> GenerateContinuous(LlamaForCausalLMImpl& model, const std::vector<GenerationRequest>& requests,
                                           const SamplerSettings& sampler, const GenerationLimits& limits,
                                           const OnGenerated& on_done = nullptr);

}  // namespace fusec::rt
