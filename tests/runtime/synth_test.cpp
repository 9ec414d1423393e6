// fusion-mini: deterministic, complementary skills, realistic partial errors, rewards with the asked noise.
#include "runtime/data/synth.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
#include <sstream>

#include "runtime/data/jsonl.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

std::string Serialize(const std::vector<SynthPrompt>& prompts) {
  std::string out;
  for (const SynthPrompt& p : prompts) {
    out += p.id + "|" + p.prompt + "|" + p.gold + "\n";
    for (const SynthResponse& r : p.responses) out += r.source + "|" + r.text + "|" + std::to_string(r.reward) + "\n";
    for (const SynthResponse& r : p.target_samples) out += r.source + "|" + r.text + "|" + std::to_string(r.reward) + "\n";
  }
  return out;
}

TEST(FusionMini, IsAPureFunctionOfTheSeed) {
  SynthOptions options;
  options.prompts = 60;
  options.seed = 1;
  std::string a = Serialize(GenerateFusionMini(options));
  EXPECT_EQ(Serialize(GenerateFusionMini(options)), a);
  options.seed = 2;
  EXPECT_NE(Serialize(GenerateFusionMini(options)), a);
}

TEST(FusionMini, EachFamilyHasItsOwnBestSourceAndNoneIsBestEverywhere) {
  SynthOptions options;
  options.prompts = 600;
  std::vector<SynthPrompt> prompts = GenerateFusionMini(options);
  std::map<std::string, std::map<std::string, std::pair<double, int>>> quality;  // family -> source -> (sum, n)
  int wrong = 0;
  int partial = 0;
  for (const SynthPrompt& p : prompts) {
    EXPECT_EQ(p.responses.size(), 20U);  // 4 sources x 5 samples
    for (const SynthResponse& r : p.responses) {
      auto& [sum, n] = quality[p.family][r.source];
      sum += r.quality;
      ++n;
      if (r.quality < 1) {
        ++wrong;
        partial += r.quality > 0.3;
      }
    }
  }
  std::map<std::string, std::string> best;
  for (const auto& [family, by_source] : quality) {
    double top = -1;
    for (const auto& [source, stats] : by_source) {
      double mean = stats.first / stats.second;
      if (mean > top) {
        top = mean;
        best[family] = source;
      }
    }
  }
  std::map<std::string, std::string> expected = {{"reverse", "alpha"}, {"sort", "beta"},  {"add", "gamma"},
                                                 {"upper", "delta"},   {"count", "beta"}, {"replace", "gamma"}};
  EXPECT_EQ(best, expected);
  std::set<std::string> bests;
  for (const auto& [family, source] : best) bests.insert(source);
  EXPECT_EQ(bests.size(), 4U) << "every source is best at something, none everywhere";
  // Wrong answers are mostly near misses, not garbage.
  EXPECT_GT(static_cast<double>(partial) / wrong, 0.6) << partial << " of " << wrong;
}

TEST(FusionMini, RewardsAreTheTrueScorePlusTheAskedNoise) {
  for (double noise : {0.0, 0.1, 0.3}) {
    SynthOptions options;
    options.prompts = 300;
    options.noise = noise;
    double sum = 0;
    double squares = 0;
    int n = 0;
    for (const SynthPrompt& p : GenerateFusionMini(options)) {
      for (const SynthResponse& r : p.responses) {
        EXPECT_NEAR(r.quality, TrueScore(r.text, p.gold), 1e-12);
        double e = r.reward - r.quality;
        sum += e;
        squares += e * e;
        ++n;
      }
    }
    double mean = sum / n;
    double sd = std::sqrt(squares / n - mean * mean);
    // Within four standard errors (rounding rewards to 4 decimals adds at most 5e-5).
    EXPECT_NEAR(mean, 0.0, 4 * noise / std::sqrt(n) + 1e-4) << "noise " << noise;
    EXPECT_NEAR(sd, noise, 4 * noise / std::sqrt(2.0 * n) + 1e-4) << "noise " << noise;
  }
  EXPECT_DOUBLE_EQ(TrueScore("abc", "abc"), 1.0);
  EXPECT_DOUBLE_EQ(TrueScore("abd", "abc"), 1.0 - 1.0 / 3);
  EXPECT_DOUBLE_EQ(TrueScore("", "ab"), 0.0);
}

// WRPO's target samples: N a prompt, as often exactly right as kSynthTargetSkill says, weaker than every
// source.
TEST(FusionMini, TargetSamplesAreWeakAndLeaveTheSourcesUnchanged) {
  SynthOptions options;
  options.prompts = 1200;
  std::vector<SynthPrompt> prompts = GenerateFusionMini(options);
  std::map<std::string, std::pair<double, double>> exact;  // source -> (exactly right, samples)
  for (const SynthPrompt& p : prompts) {
    ASSERT_EQ(p.target_samples.size(), static_cast<size_t>(options.samples));
    for (const auto* list : {&p.responses, &p.target_samples}) {
      for (const SynthResponse& r : *list) {
        exact[r.source].first += r.text == p.gold;
        exact[r.source].second += 1;
      }
    }
  }
  const double target_rate = exact["target"].first / exact["target"].second;
  // A little above the skill: a misreading or an edit sometimes lands on the gold answer.
  EXPECT_GT(target_rate, kSynthTargetSkill - 0.02);
  EXPECT_LT(target_rate, kSynthTargetSkill + 0.08);
  for (const std::string& source : SynthSources()) EXPECT_GT(exact[source].first / exact[source].second, target_rate + 0.1);
  EXPECT_EQ(prompts[0].responses.size(), SynthSources().size() * static_cast<size_t>(options.samples));
}

TEST(FusionMini, WritesSplitsThatTheReaderReads) {
  testing::ScratchDir dir("synth");
  SynthOptions options;
  options.prompts = 50;
  std::string error;
  ASSERT_TRUE(WriteFusionMini(options, dir.path().string(), &error)) << error;
  auto count = [&](const std::string& file, JsonlOptions reader_options) {
    auto reader = JsonlReader::Open(dir / file, reader_options, &error);
    PromptRecord record;
    int n = 0;
    while (reader->Next(&record)) ++n;
    EXPECT_EQ(reader->error(), "") << file;
    return n;
  };
  JsonlOptions training;
  training.require_reward = true;
  EXPECT_EQ(count("sft.jsonl", training), 20);
  EXPECT_EQ(count("po.jsonl", training), 20);
  JsonlOptions prompts;
  prompts.require_responses = false;
  EXPECT_EQ(count("eval.jsonl", prompts), 10);
  EXPECT_EQ(count("po_target.jsonl", training), 20);
  // po_target.jsonl is po.jsonl with the target's samples appended to each line's responses.
  std::istringstream po(testing::ReadFile(dir / "po.jsonl")), po_target(testing::ReadFile(dir / "po_target.jsonl"));
  for (std::string a, b; std::getline(po, a) && std::getline(po_target, b);) {
    nlohmann::json with = nlohmann::json::parse(b), without = nlohmann::json::parse(a);
    ASSERT_EQ(with["responses"].size(), without["responses"].size() + static_cast<size_t>(options.samples));
    for (size_t r = 0; r < without["responses"].size(); ++r) EXPECT_EQ(with["responses"][r], without["responses"][r]);
    EXPECT_EQ(with["responses"].back()["source"], "target");
  }
  EXPECT_EQ(testing::ReadFile(dir / "sft.jsonl").find("gold"), std::string::npos) << "training never sees the truth";
  EXPECT_NE(testing::ReadFile(dir / "eval.jsonl").find("\"gold\""), std::string::npos);
}

// The real sources' files: sampling prompts that are exactly sft.jsonl's and po.jsonl's prompts with their gold
// answers, and each source model's training data, mostly from its own two families.
TEST(FusionMini, WritesSourceModelTrainingDataAndSamplingPrompts) {
  testing::ScratchDir dir("synth-sources");
  SynthOptions options;
  options.prompts = 50;
  options.source_examples = 400;
  std::string error;
  ASSERT_TRUE(WriteFusionMini(options, dir.path().string(), &error)) << error;
  for (const auto& [with_responses, prompts_only] :
       {std::pair<std::string, std::string>{"sft.jsonl", "sft_prompts.jsonl"}, {"po.jsonl", "po_prompts.jsonl"}}) {
    std::istringstream a(testing::ReadFile(dir / with_responses)), b(testing::ReadFile(dir / prompts_only));
    int lines = 0;
    for (std::string x, y; std::getline(a, x) && std::getline(b, y); ++lines) {
      nlohmann::json full = nlohmann::json::parse(x), bare = nlohmann::json::parse(y);
      EXPECT_EQ(bare["id"], full["id"]);
      EXPECT_EQ(bare["prompt"], full["prompt"]);
      EXPECT_FALSE(bare.contains("responses")) << prompts_only;
      ASSERT_TRUE(bare.contains("gold")) << prompts_only;
    }
    EXPECT_EQ(lines, 20) << prompts_only;
  }
  for (const SynthSourceModel& source : SynthSourceModels()) {
    std::istringstream lines(testing::ReadFile(dir / ("sources/" + source.name + ".jsonl")));
    int total = 0, own = 0;
    for (std::string line; std::getline(lines, line); ++total) {
      nlohmann::json record = nlohmann::json::parse(line);
      const std::string family = record["family"];
      if (std::find(source.specialties.begin(), source.specialties.end(), family) != source.specialties.end()) ++own;
      ASSERT_EQ(record["responses"].size(), 1U);
      // The response is the task's gold answer: recompute the simplest families' answers from the prompt.
      const std::string prompt = record["prompt"], text = record["responses"][0]["text"];
      if (family == "upper") {
        std::string word = prompt.substr(7, prompt.size() - 9), upper = word;
        for (char& c : upper) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
        EXPECT_EQ(text, upper) << prompt;
      } else if (family == "reverse") {
        std::string word = prompt.substr(9, prompt.size() - 11);
        EXPECT_EQ(text, std::string(word.rbegin(), word.rend())) << prompt;
      }
    }
    EXPECT_EQ(total, 400) << source.name;
    EXPECT_NEAR(static_cast<double>(own) / total, kSynthSpecialtyShare, 0.06) << source.name;
  }
  // Written from a stream of their own: the simulated files are the same as without them.
  testing::ScratchDir other("synth-sources-other");
  options.source_examples = 10;
  ASSERT_TRUE(WriteFusionMini(options, other.path().string(), &error)) << error;
  EXPECT_EQ(testing::ReadFile(dir / "sft.jsonl"), testing::ReadFile(other / "sft.jsonl"));
  EXPECT_EQ(testing::ReadFile(dir / "po_target.jsonl"), testing::ReadFile(other / "po_target.jsonl"));
}

}  // namespace
}  // namespace fusec::rt
