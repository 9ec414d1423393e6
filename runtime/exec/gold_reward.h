// `gold_reward(noise, seed)`: a benchmark's own scorer exposed as a reward model.
//
// Why: fusion-mini's prompts have gold answers, and a miniature pipeline needs a scorer that behaves like a
// reward model (it ranks responses, imperfectly) without an 8B model. The reward of a response is its true
// score, 1 - normalised edit distance to the gold answer (text.h EditSimilarity, both sides trimmed, as
// evaluation scores), plus Gaussian noise. The noise of a response depends only on (seed, prompt id, source,
// its index among that source's responses to the prompt), so rescoring gives the same rewards whatever else is
// in the data set; equal texts of two sources get different noise (a simulated scorer's error, not a function
// of the text).
#pragma once

#include <cstdint>
#include <string_view>

namespace fusec::rt {

/// The standard normal draw of (seed, prompt id, source, sample index): Box-Muller over the first two
/// uniforms of the stream StreamSeed(seed, source, prompt_id, sample_index) (generation.h).
double GoldRewardNoise(int64_t seed, std::string_view prompt_id, std::string_view source, int64_t sample_index);

/// EditSimilarity(trim(response), trim(gold)) + noise * GoldRewardNoise(...).
double GoldReward(std::string_view response, std::string_view gold, double noise, int64_t seed,
                  std::string_view prompt_id, std::string_view source, int64_t sample_index);

}  // namespace fusec::rt
