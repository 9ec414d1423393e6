// gold_reward's rewards (gold_reward.h).

#include "runtime/exec/gold_reward.h"

#include <cmath>
#include <numbers>

#include "runtime/model/generation.h"
#include "runtime/support/text.h"

namespace fusec::rt {

double GoldRewardNoise(int64_t seed, std::string_view prompt_id, std::string_view source, int64_t sample_index) {
  const uint64_t stream = StreamSeed(static_cast<uint64_t>(seed), source, prompt_id, sample_index);
  const double u1 = 1.0 - StreamUniform(stream, 0);  // in (0, 1]: log(u1) is finite
  const double u2 = StreamUniform(stream, 1);
  return std::sqrt(-2.0 * std::log(u1)) * std::cos(2.0 * std::numbers::pi * u2);
}

double GoldReward(std::string_view response, std::string_view gold, double noise, int64_t seed,
                  std::string_view prompt_id, std::string_view source, int64_t sample_index) {
  const double truth = EditSimilarity(TrimPythonSpace(response), TrimPythonSpace(gold));
  if (noise == 0) return truth;
  return truth + noise * GoldRewardNoise(seed, prompt_id, source, sample_index);
}

}  // namespace fusec::rt
