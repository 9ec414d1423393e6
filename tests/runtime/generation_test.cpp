// The generation engine (runtime/model/generation.h): the sampler's frequencies against the exact
// probabilities of an independent reference (reference_sampling.py: transformers' warpers transcribed, on
// reference_llama.py's forward), greedy decoding with the KV cache and continuous batching against
// recomputation from scratch, results that do not depend on the batch, its slots or the requests' order,
// stop ids and max_new_tokens, and the stream seeds. CPU, or CUDA with FUSEC_TEST_DEVICE=cuda.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <nlohmann/json.hpp>
#include <random>
#include <set>

#include "runtime/model/checkpoint.h"
#include "runtime/model/generation.h"
#include "runtime/model/inference.h"
#include "runtime/model/llama.h"
#include "runtime/support/run_error.h"
#include "tests/runtime/model_support.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::NaiveGreedy;
using testing::ScratchDir;
using testing::ParseConfig;
using testing::TestDevice;

// Llama with GQA (reference_llama.py reads it). A large initializer_range spreads the logits, so that the
// rules (top-k, top-p, the penalty) cut where it shows.
ModelConfig LlamaConfig() {
  return ParseConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 48,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 120,
    "max_position_embeddings": 256, "rope_theta": 10000.0, "initializer_range": 0.3, "rms_norm_eps": 1e-5,
    "tie_word_embeddings": false})");
}

// Gemma-2: a sliding window of 6 (generations run past it), soft caps.
ModelConfig Gemma2Config() {
  return ParseConfig(R"({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
    "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 3, "num_attention_heads": 4,
    "num_key_value_heads": 2, "head_dim": 8, "vocab_size": 110, "max_position_embeddings": 256,
    "rope_theta": 10000.0, "initializer_range": 0.25, "rms_norm_eps": 1e-6, "query_pre_attn_scalar": 8,
    "attn_logit_softcapping": 4.0, "final_logit_softcapping": 6.0, "sliding_window": 6,
    "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": true})");
}

LlamaForCausalLM RandomModel(const ModelConfig& config, uint64_t seed) {
  LlamaForCausalLM model(config);
  InitializeWeights(*model, seed);
  model->to(TestDevice());
  model->eval();
  return model;
}

std::vector<int32_t> RandomPrompt(int64_t length, int64_t vocab, uint32_t seed) {
  std::mt19937 random(seed);
  std::vector<int32_t> prompt(static_cast<size_t>(length));
  for (int32_t& id : prompt) id = static_cast<int32_t>(random() % static_cast<uint32_t>(vocab));
  return prompt;
}

/// Requests of different lengths, each with its own stream.
std::vector<GenerationRequest> MixedRequests(int64_t count, int64_t vocab) {
  std::vector<GenerationRequest> requests;
  for (int64_t i = 0; i < count; ++i) {
    GenerationRequest& request = requests.emplace_back();
    request.prompt = RandomPrompt(1 + (i * 7) % 13, vocab, static_cast<uint32_t>(100 + i));
    request.stream = StreamSeed(42, "source", "prompt-" + std::to_string(i / 3), i % 3);
  }
  return requests;
}

// ---------------------------------------------------------------------------------------------------------
// Greedy decoding through the cache, with continuous batching, equals recomputation from scratch.

void ExpectGreedyEqualsRecomputation(const ModelConfig& config) {
  LlamaForCausalLM model = RandomModel(config, 7);
  std::vector<GenerationRequest> requests = MixedRequests(7, config.vocab_size);
  SamplerSettings greedy;
  greedy.temperature = 0;
  GenerationLimits limits;
  limits.max_new_tokens = 14;
  limits.max_rows = 3;  // 7 requests through 3 slots: refills, and rows of different lengths side by side
  std::vector<size_t> finished;
  std::vector<Generation> generated =
      GenerateContinuous(*model, requests, greedy, limits, [&](size_t i, const Generation& g) {
        finished.push_back(i);
        EXPECT_EQ(g.ids.size(), 14U);
      });
  ASSERT_EQ(generated.size(), requests.size());
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(generated[i].ids, NaiveGreedy(*model, requests[i].prompt, 14)) << "request " << i;
    EXPECT_FALSE(generated[i].stopped);
  }
  std::sort(finished.begin(), finished.end());
  EXPECT_EQ(finished, std::vector<size_t>({0, 1, 2, 3, 4, 5, 6})) << "on_done once per request";
}

TEST(GenerateContinuous, GreedyWithTheCacheAndRefillsEqualsRecomputationLlama) {
  ExpectGreedyEqualsRecomputation(LlamaConfig());
}

TEST(GenerateContinuous, GreedyWithTheCacheAndRefillsEqualsRecomputationGemma2SlidingWindow) {
  ExpectGreedyEqualsRecomputation(Gemma2Config());
}

TEST(GenerateContinuous, GreedyIsTheArgmaxOfTheLogits) {
  ModelConfig config = LlamaConfig();
  LlamaForCausalLM model = RandomModel(config, 8);
  std::vector<int32_t> prompt = RandomPrompt(9, config.vocab_size, 3);
  SamplerSettings greedy;
  greedy.temperature = 0;
  GenerationLimits limits;
  limits.max_new_tokens = 1;
  Generation one = GenerateContinuous(*model, {{prompt, 1}}, greedy, limits)[0];
  torch::NoGradGuard no_grad;
  torch::Tensor ids = torch::tensor(std::vector<int64_t>(prompt.begin(), prompt.end())).unsqueeze(0).to(TestDevice());
  torch::Tensor logits = model->forward(ids)[0][-1].cpu();
  ASSERT_EQ(one.ids.size(), 1U);
  EXPECT_EQ(one.ids[0], logits.argmax().item<int64_t>());
  // Sampling at a vanishing top-p keeps only the best token too.
  SamplerSettings narrow;
  narrow.top_p = 1e-9;
  EXPECT_EQ(GenerateContinuous(*model, {{prompt, 99}}, narrow, limits)[0].ids, one.ids);
}

// ---------------------------------------------------------------------------------------------------------
// Stops and limits.

TEST(GenerateContinuous, StopsAtAnyStopIdAndHonoursMaxNewTokens) {
  ModelConfig config = LlamaConfig();
  LlamaForCausalLM model = RandomModel(config, 9);
  SamplerSettings sampler;
  sampler.temperature = 1.2;
  std::vector<GenerationRequest> requests = MixedRequests(6, config.vocab_size);
  GenerationLimits free_run;
  free_run.max_new_tokens = 20;
  std::vector<Generation> free = GenerateContinuous(*model, requests, sampler, free_run);
  for (const Generation& g : free) {
    EXPECT_EQ(g.ids.size(), 20U);
    EXPECT_FALSE(g.stopped);
  }
  // Stop ids: request 0's 4th token and request 1's 7th; every request ends at its first stop id, kept.
  GenerationLimits stopping = free_run;
  stopping.stop_ids = {free[0].ids[3], free[1].ids[6]};
  std::vector<Generation> stopped = GenerateContinuous(*model, requests, sampler, stopping);
  for (size_t i = 0; i < requests.size(); ++i) {
    const auto& ids = free[i].ids;
    auto first = std::find_first_of(ids.begin(), ids.end(), stopping.stop_ids.begin(), stopping.stop_ids.end());
    const bool stops = first != ids.end();
    EXPECT_EQ(stopped[i].stopped, stops) << "request " << i;
    EXPECT_EQ(stopped[i].ids, std::vector<int32_t>(ids.begin(), stops ? first + 1 : ids.end())) << "request " << i;
  }
  EXPECT_TRUE(stopped[0].stopped);
  EXPECT_LE(stopped[0].ids.size(), 4U);
  // A shorter max_new_tokens is a prefix of the same draws.
  GenerationLimits short_run = free_run;
  short_run.max_new_tokens = 5;
  std::vector<Generation> short_generated = GenerateContinuous(*model, requests, sampler, short_run);
  for (size_t i = 0; i < requests.size(); ++i) {
    EXPECT_EQ(short_generated[i].ids, std::vector<int32_t>(free[i].ids.begin(), free[i].ids.begin() + 5));
  }
}

TEST(GenerateContinuous, RefusesRequestsOverTheBudgetOrThePositions) {
  ModelConfig config = LlamaConfig();
  LlamaForCausalLM model = RandomModel(config, 10);
  SamplerSettings sampler;
  GenerationLimits limits;
  limits.max_new_tokens = 10;
  limits.token_budget = 20;
  auto message_of = [&](const std::vector<GenerationRequest>& requests) -> std::string {
    try {
      GenerateContinuous(*model, requests, sampler, limits);
    } catch (const RunError& error) {
      EXPECT_EQ(error.kind(), RunErrorKind::Internal);
      return error.what();
    }
    return "no error";
  };
  EXPECT_NE(message_of({{RandomPrompt(5, config.vocab_size, 1), 1}, {RandomPrompt(11, config.vocab_size, 2), 2}})
                .find("generation request 1 needs 21 cache positions"),
            std::string::npos);
  limits.token_budget = 1000;
  limits.max_new_tokens = 250;
  EXPECT_NE(message_of({{RandomPrompt(7, config.vocab_size, 1), 1}}).find("`max_position_embeddings` 256"),
            std::string::npos);
  limits.max_new_tokens = 4;
  EXPECT_NE(message_of({{{}, 1}}).find("empty prompt"), std::string::npos);
  EXPECT_NE(message_of({{{3, 120}, 1}}).find("the id 120, outside the vocabulary of 120"), std::string::npos);
  EXPECT_TRUE(GenerateContinuous(*model, {}, sampler, limits).empty());
}

TEST(GenerateContinuous, SlotsComeFromTheBudget) {
  std::vector<GenerationRequest> requests(10);
  for (size_t i = 0; i < requests.size(); ++i) requests[i].prompt.assign(i + 1, 1);  // longest: 10
  GenerationLimits limits;
  limits.max_new_tokens = 30;
  limits.token_budget = 130;  // 130 / (10 + 30) = 3
  EXPECT_EQ(GenerationSlots(requests, limits), 3);
  limits.max_rows = 2;
  EXPECT_EQ(GenerationSlots(requests, limits), 2);
  limits.max_rows = 64;
  limits.token_budget = 39;
  EXPECT_EQ(GenerationSlots(requests, limits), 1);
  limits.token_budget = 1 << 20;
  EXPECT_EQ(GenerationSlots(requests, limits), 10) << "no more rows than requests";
}

// ---------------------------------------------------------------------------------------------------------
// Invariance: a request's tokens depend on its prompt and stream only.

TEST(GenerateContinuous, SameIdsAloneInABigBatchWithFewSlotsAndShuffled) {
  for (ModelConfig config : {LlamaConfig(), Gemma2Config()}) {
    LlamaForCausalLM model = RandomModel(config, 11);
    SamplerSettings sampler;
    sampler.temperature = 1.3;
    sampler.top_k = 40;
    sampler.top_p = 0.9;
    sampler.repetition_penalty = 1.2;
    std::vector<GenerationRequest> requests = MixedRequests(12, config.vocab_size);
    GenerationLimits limits;
    limits.max_new_tokens = 16;
    // Stop ids drawn by two requests of a free run: rows finish at different steps, so refills happen
    // while other rows are mid-flight.
    std::vector<Generation> free = GenerateContinuous(*model, requests, sampler, limits);
    limits.stop_ids = {free[0].ids[4], free[5].ids[2]};
    std::vector<Generation> together = GenerateContinuous(*model, requests, sampler, limits);
    int64_t stopped = 0;
    for (const Generation& g : together) stopped += g.stopped ? 1 : 0;
    EXPECT_GT(stopped, 0) << "some rows should stop early for refills to interleave";
    for (size_t i = 0; i < requests.size(); ++i) {
      EXPECT_EQ(GenerateContinuous(*model, {requests[i]}, sampler, limits)[0].ids, together[i].ids) << "alone " << i;
    }
    GenerationLimits few = limits;
    few.max_rows = 3;
    std::vector<Generation> refilled = GenerateContinuous(*model, requests, sampler, few);
    GenerationLimits budget = limits;
    budget.token_budget = 2 * (12 + 16);  // two slots from the budget
    std::vector<Generation> tight = GenerateContinuous(*model, requests, sampler, budget);
    std::vector<size_t> order(requests.size());
    std::iota(order.begin(), order.end(), 0);
    std::shuffle(order.begin(), order.end(), std::mt19937(5));
    std::vector<GenerationRequest> shuffled;
    for (size_t i : order) shuffled.push_back(requests[i]);
    few.max_rows = 5;
    std::vector<Generation> reordered = GenerateContinuous(*model, shuffled, sampler, few);
    std::set<std::vector<int32_t>> distinct;
    for (size_t k = 0; k < order.size(); ++k) {
      const size_t i = order[k];
      EXPECT_EQ(refilled[i].ids, together[i].ids) << "3 slots, request " << i;
      EXPECT_EQ(tight[i].ids, together[i].ids) << "2 slots from the budget, request " << i;
      EXPECT_EQ(reordered[k].ids, together[i].ids) << "shuffled, request " << i;
      EXPECT_EQ(reordered[k].stopped, together[i].stopped);
      distinct.insert(together[i].ids);
    }
    EXPECT_EQ(distinct.size(), requests.size()) << "streams differ, so samples do";
  }
}

TEST(StreamSeed, IsStableAndSeparatesItsFields) {
  // Pinned: changing the hash changes every sampled data set (and the cache keys that name them).
  EXPECT_EQ(StreamSeed(13, "gemma", "p1", 0), StreamSeed(13, "gemma", "p1", 0));
  std::set<uint64_t> seeds = {StreamSeed(13, "gemma", "p1", 0), StreamSeed(21, "gemma", "p1", 0),
                              StreamSeed(13, "qwen", "p1", 0),  StreamSeed(13, "gemma", "p2", 0),
                              StreamSeed(13, "gemma", "p1", 1), StreamSeed(13, "gemm", "ap1", 0),
                              StreamSeed(13, "", "gemmap1", 0)};
  EXPECT_EQ(seeds.size(), 7U);
  // The uniforms of a stream: in [0, 1), and different across steps and streams.
  std::set<double> uniforms;
  for (int64_t step = 0; step < 100; ++step) {
    for (uint64_t stream : {1ULL, 2ULL}) {  // streams 1 and 2 at steps 2 and 1 too: no symmetry
      const double u = StreamUniform(stream, step);
      EXPECT_GE(u, 0.0);
      EXPECT_LT(u, 1.0);
      uniforms.insert(u);
    }
  }
  EXPECT_EQ(uniforms.size(), 200U);
}

// ---------------------------------------------------------------------------------------------------------
// The rules on hand-made logits, worked out by hand.

TEST(Sampler, RepetitionPenaltyDividesPositiveAndMultipliesNegativeLogits) {
  const std::vector<float> logits = {2.0F, -1.0F, 0.5F, 1.5F};
  const std::vector<int32_t> seen = {0, 1, 7000};  // an id outside the vocabulary is ignored
  SamplerSettings sampler;
  sampler.repetition_penalty = 2.0;
  TokenDistribution d = NextTokenDistribution(logits, seen, sampler);
  // Scores after the penalty: {1, -2, 0.5, 1.5}.
  const double z = std::exp(1.0) + std::exp(-2.0) + std::exp(0.5) + std::exp(1.5);
  ASSERT_EQ(d.tokens, std::vector<int32_t>({0, 1, 2, 3}));
  EXPECT_NEAR(d.probabilities[0], std::exp(1.0) / z, 1e-12);
  EXPECT_NEAR(d.probabilities[1], std::exp(-2.0) / z, 1e-12);
  EXPECT_NEAR(d.probabilities[2], std::exp(0.5) / z, 1e-12);
  // Greedy reads the penalised logits (2 > 1.5 before, 1 < 1.5 after); of equal ones the lowest id wins.
  sampler.temperature = 0;
  EXPECT_EQ(NextTokenDistribution(logits, seen, sampler).tokens, std::vector<int32_t>({3}));
  EXPECT_EQ(NextTokenDistribution(std::vector<float>{1.0F, 4.0F, 4.0F}, {}, sampler).tokens, std::vector<int32_t>({1}));
  // Temperature divides the penalised scores.
  sampler.temperature = 0.5;
  d = NextTokenDistribution(logits, seen, sampler);
  const double z2 = std::exp(2.0) + std::exp(-4.0) + std::exp(1.0) + std::exp(3.0);
  EXPECT_NEAR(d.probabilities[1], std::exp(-4.0) / z2, 1e-12);
}

TEST(Sampler, TopKKeepsTiesWithTheKthAndTopPKeepsTheTokenThatReachesIt) {
  SamplerSettings sampler;
  sampler.top_k = 2;
  TokenDistribution d = NextTokenDistribution(std::vector<float>{1.0F, 3.0F, 2.0F, 2.0F, 0.0F}, {}, sampler);
  EXPECT_EQ(d.tokens, std::vector<int32_t>({1, 2, 3})) << "TopKLogitsWarper removes only scores below the k-th";
  const double z = std::exp(3.0) + 2 * std::exp(2.0);
  EXPECT_NEAR(d.probabilities[0], std::exp(3.0) / z, 1e-12);
  // Probabilities {0.5, 0.3, 0.15, 0.05}, in a scrambled id order.
  const std::vector<float> logits = {std::log(0.15F), std::log(0.5F), std::log(0.05F), std::log(0.3F)};
  sampler = {};
  sampler.top_p = 0.75;  // 0.5 < 0.75: the 0.3 token reaches it and stays; nothing after it
  d = NextTokenDistribution(logits, {}, sampler);
  ASSERT_EQ(d.tokens, std::vector<int32_t>({1, 3}));
  EXPECT_NEAR(d.probabilities[0], 0.5 / 0.8, 1e-6);
  EXPECT_NEAR(d.probabilities[1], 0.3 / 0.8, 1e-6);
  sampler.top_p = 0.85;
  EXPECT_EQ(NextTokenDistribution(logits, {}, sampler).tokens, std::vector<int32_t>({0, 1, 3}));
  sampler.top_p = 0.45;
  EXPECT_EQ(NextTokenDistribution(logits, {}, sampler).tokens, std::vector<int32_t>({1}));
  // A long flat tail: the nucleus of 700 of 1000 equal tokens is found past the first sorted prefix, and
  // of equal tokens the lower ids come first.
  sampler.top_p = 0.6995;
  d = NextTokenDistribution(std::vector<float>(1000, 0.0F), {}, sampler);
  ASSERT_EQ(d.tokens.size(), 700U);
  EXPECT_EQ(d.tokens.front(), 0);
  EXPECT_EQ(d.tokens.back(), 699);
}

TEST(Sampler, DrawIsTheInverseCdfInAscendingIdOrder) {
  const TokenDistribution d = {{2, 5, 9}, {0.2, 0.5, 0.3}};
  EXPECT_EQ(DrawToken(d, 0.0), 2);
  EXPECT_EQ(DrawToken(d, 0.19), 2);
  EXPECT_EQ(DrawToken(d, 0.21), 5);
  EXPECT_EQ(DrawToken(d, 0.69), 5);
  EXPECT_EQ(DrawToken(d, 0.71), 9);
  EXPECT_EQ(DrawToken(d, 0.999999), 9);
  EXPECT_EQ(DrawToken({{4, 6}, {1.0, 0.0}}, 0.9999999999), 4) << "a token of probability 0 is never drawn";
}

// ---------------------------------------------------------------------------------------------------------
// The sampler's distribution against the reference.

struct ReferenceAnswer {
  std::vector<std::vector<double>> exact;                            // a setting -> [V]
  std::vector<std::map<std::string, std::vector<double>>> wrong;     // a setting -> mistake -> [V]
  std::vector<int32_t> greedy;
};

ReferenceAnswer AskSamplingReference(const std::string& model_dir, const std::vector<int32_t>& prompt,
                                     const std::vector<SamplerSettings>& settings, int64_t greedy_steps,
                                     double greedy_penalty) {
  ScratchDir scratch("sampling_reference");
  nlohmann::json input = {{"prompt", prompt}, {"settings", nlohmann::json::array()},
                          {"greedy_steps", greedy_steps}, {"greedy_penalty", greedy_penalty}};
  for (const SamplerSettings& s : settings) {
    input["settings"].push_back({{"temperature", s.temperature}, {"top_p", s.top_p}, {"top_k", s.top_k},
                                 {"repetition_penalty", s.repetition_penalty}});
  }
  testing::WriteFile(scratch / "input.json", input.dump());
  const char* python = std::getenv("FUSEC_REFERENCE_PYTHON");
  const std::string command = std::string(python != nullptr ? python : "/usr/bin/python3") + " " +
                              FUSEC_TESTS_RUNTIME_DIR + "/reference_sampling.py " + model_dir + " " +
                              (scratch / "input.json") + " " + (scratch / "output.json");
  EXPECT_EQ(testing::RunCommand(command), 0) << command;
  ReferenceAnswer answer;
  nlohmann::json output = nlohmann::json::parse(testing::ReadFile(scratch / "output.json"));
  for (const auto& d : output["distributions"]) {
    answer.exact.push_back(d["exact"].get<std::vector<double>>());
    answer.wrong.push_back(d["wrong"].get<std::map<std::string, std::vector<double>>>());
  }
  answer.greedy = output["greedy"].get<std::vector<int32_t>>();
  return answer;
}

/// Pearson's statistic of `counts` against `probabilities` and its degrees of freedom, tokens expected
/// fewer than 5 times pooled into one cell; infinite when a token of probability 0 was drawn.
std::pair<double, int64_t> ChiSquare(const std::vector<int64_t>& counts, const std::vector<double>& probabilities) {
  const double n = static_cast<double>(std::accumulate(counts.begin(), counts.end(), int64_t{0}));
  double statistic = 0, pooled_expected = 0, pooled_count = 0;
  int64_t cells = 0;
  for (size_t t = 0; t < counts.size(); ++t) {
    const double expected = n * probabilities[t];
    if (probabilities[t] <= 0) {
      if (counts[t] > 0) return {std::numeric_limits<double>::infinity(), 1};
      continue;
    }
    if (expected < 5) {
      pooled_expected += expected;
      pooled_count += static_cast<double>(counts[t]);
      continue;
    }
    statistic += std::pow(static_cast<double>(counts[t]) - expected, 2) / expected;
    ++cells;
  }
  if (pooled_expected > 0) {
    statistic += std::pow(pooled_count - pooled_expected, 2) / pooled_expected;
    ++cells;
  }
  return {statistic, std::max<int64_t>(cells - 1, 1)};
}

/// The chi-square quantile at p = 1e-4 (z = 3.719) by Wilson and Hilferty's approximation.
double ChiSquareCritical(int64_t degrees) {
  const double k = static_cast<double>(degrees);
  const double a = 2.0 / (9.0 * k);
  return k * std::pow(1.0 - a + 3.719 * std::sqrt(a), 3);
}

TEST(Sampler, FrequenciesOfManyDrawsMatchTheHuggingFaceRulesOfTheReference) {
  ModelConfig config = LlamaConfig();
  ScratchDir dir("sampler_distribution");
  const std::string model_dir = dir / "model";
  LlamaForCausalLM model = RandomModel(config, 12);
  {
    std::string error;
    ASSERT_TRUE(SaveModel(*model, model_dir, {}, &error)) << error;
  }
  // Twelve ids of 120: some of them among the likely next tokens, so that the penalty moves mass.
  const std::vector<int32_t> prompt = RandomPrompt(12, config.vocab_size, 21);
  std::vector<SamplerSettings> settings(4);
  settings[0].temperature = 0.6;                                                                   // temperature
  settings[1] = {/*temperature=*/1.4, /*top_p=*/0.8, /*top_k=*/25, /*repetition_penalty=*/1.6};  // every rule
  settings[2] = {/*temperature=*/0.8, /*top_p=*/0.7, /*top_k=*/0, /*repetition_penalty=*/1.0};   // top-p
  settings[3] = {/*temperature=*/2.0, /*top_p=*/1.0, /*top_k=*/0, /*repetition_penalty=*/3.0};   // the penalty
  const int64_t greedy_steps = 12;
  const double greedy_penalty = 1.5;
  ReferenceAnswer reference = AskSamplingReference(model_dir, prompt, settings, greedy_steps, greedy_penalty);
  ASSERT_EQ(reference.exact.size(), settings.size());

  constexpr int64_t kDraws = 20000;
  GenerationLimits one_token;
  one_token.max_new_tokens = 1;
  std::vector<GenerationRequest> requests(kDraws);
  for (int64_t i = 0; i < kDraws; ++i) requests[static_cast<size_t>(i)] = {prompt, StreamSeed(7, "s", "p", i)};
  for (size_t s = 0; s < settings.size(); ++s) {
    std::vector<Generation> drawn = GenerateContinuous(*model, requests, settings[s], one_token);
    std::vector<int64_t> counts(static_cast<size_t>(config.vocab_size), 0);
    for (const Generation& g : drawn) {
      ASSERT_EQ(g.ids.size(), 1U);
      ++counts[static_cast<size_t>(g.ids[0])];
    }
    const std::vector<double>& exact = reference.exact[s];
    int64_t outside = 0, support = 0;
    for (size_t t = 0; t < exact.size(); ++t) {
      if (exact[t] == 0) outside += counts[t];
      support += exact[t] > 0 ? 1 : 0;
    }
    EXPECT_EQ(outside, 0) << "setting " << s << ": tokens outside top-k/top-p were drawn";
    auto [statistic, degrees] = ChiSquare(counts, exact);
    std::cout << "  setting " << s << ": " << support << " tokens kept, chi-square " << statistic << " on "
              << degrees << " degrees of freedom (critical at p=1e-4: " << ChiSquareCritical(degrees) << ")\n";
    EXPECT_LT(statistic, ChiSquareCritical(degrees)) << "setting " << s;
    // The same frequencies reject every plausible mistake, so the statistic can tell the rules apart.
    ASSERT_FALSE(reference.wrong[s].empty());
    for (const auto& [mistake, probabilities] : reference.wrong[s]) {
      auto [wrong_statistic, wrong_degrees] = ChiSquare(counts, probabilities);
      std::cout << "    against `" << mistake << "`: chi-square " << wrong_statistic << " on " << wrong_degrees << "\n";
      EXPECT_GT(wrong_statistic, ChiSquareCritical(wrong_degrees)) << "setting " << s << " cannot tell `" << mistake << "`";
    }
  }

  // Greedy with the repetition penalty over the prompt and the generated tokens, against the reference's
  // full recomputation.
  SamplerSettings greedy;
  greedy.temperature = 0;
  greedy.repetition_penalty = greedy_penalty;
  GenerationLimits limits;
  limits.max_new_tokens = greedy_steps;
  std::vector<int32_t> ours = GenerateContinuous(*model, {{prompt, 0}}, greedy, limits)[0].ids;
  EXPECT_EQ(ours, reference.greedy);
  greedy.repetition_penalty = 1.0;
  EXPECT_NE(GenerateContinuous(*model, {{prompt, 0}}, greedy, limits)[0].ids, reference.greedy)
      << "the penalty should change this greedy run, or the comparison shows nothing";
}

}  // namespace
}  // namespace fusec::rt
