// fusion-mini: a synthetic fusion benchmark whose truth is known.
//
// Real models and data sets cannot be downloaded where fusec is developed and tested, so fusec generates a
// benchmark with the shape of FuseRL's data: prompts from several task families with exactly checkable
// answers, K simulated source models with complementary skills (each family has its own best source, none is
// best everywhere), N samples per source per prompt with realistic partial errors, and a reward that behaves
// like a reward model's: the true quality (one minus the normalised edit distance to the gold answer) plus
// Gaussian noise. Training files carry rewards only; the gold answers are kept in the evaluation split.
// Everything is a pure function of the seed, with its own random number generation (no std::
// distributions, whose output differs between standard libraries).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace fusec::rt {

struct SynthOptions {
  uint64_t seed = 0;
  int64_t prompts = 20000;  // in all; split 40% SFT, 40% preference optimisation, 20% evaluation
  double noise = 0.1;       // standard deviation of the reward noise
  int64_t samples = 5;      // N, per source per prompt
  int64_t source_examples = 3000;  // training examples of each real source model (SynthSourceModels)
};

/// The task families, in order: reverse, sort, add, upper, count, replace.
const std::vector<std::string>& SynthFamilies();
/// The simulated sources, in order: four names.
const std::vector<std::string>& SynthSources();

/// One generated prompt: its task, gold answer and every sampled response with true quality and reward.
struct SynthResponse {
  std::string source;
  std::string text;
  double quality = 0;  // the true score, 1 - normalised edit distance to the gold answer
  double reward = 0;   // quality + noise, what training sees
};
struct SynthPrompt {
  std::string id;
  std::string family;
  std::string prompt;
  std::string gold;
  std::vector<SynthResponse> responses;
  /// The target's own samples, for WRPO: simulated (source "target"), from a random stream of their own so
  /// that every other file is the same with or without them.
  std::vector<SynthResponse> target_samples;
};

/// The real source models of fusion-mini: tiny models fusec trains itself (experiments/demo.fuse), each a
/// specialist of two families. Its training file (`sources/<name>.jsonl`) has the gold answers of its own
/// families for most prompts and of the other families for a few (so it knows their format, not their skill).
struct SynthSourceModel {
  std::string name;
  std::vector<std::string> specialties;
};
const std::vector<SynthSourceModel>& SynthSourceModels();
/// The share of a source model's training examples from its specialties; the rest is spread over the others.
inline constexpr double kSynthSpecialtyShare = 0.85;

/// The simulated target's skill at every family (the probability of an exactly right sample): about the
/// SFT-trained target's on fusion-mini's held-out prompts, below every source's.
inline constexpr double kSynthTargetSkill = 0.1;

std::vector<SynthPrompt> GenerateFusionMini(const SynthOptions& options);

/// The true score of a response: 1 - Levenshtein(response, gold) / max(length, 1), in [0, 1].
double TrueScore(const std::string& response, const std::string& gold);

/// Writes the benchmark under `dir`: sft.jsonl, po.jsonl (prompts with responses and rewards), po_target.jsonl
/// (po.jsonl's prompts with the simulated target's own samples added, for WRPO), eval.jsonl (prompts with
/// `family` and `gold`, no responses), for the real sources sft_prompts.jsonl and po_prompts.jsonl (the
/// prompts of sft.jsonl and po.jsonl with `family` and `gold`, no responses: what the sources are sampled on
/// and gold_reward scores against) and sources/<name>.jsonl (each source model's training data), and README.md (what it is and how it was made). Returns
/// false with `error` set when a file cannot be written.
bool WriteFusionMini(const SynthOptions& options, const std::string& dir, std::string* error);

}  // namespace fusec::rt
