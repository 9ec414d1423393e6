// Gemma-2 and Qwen3 (and Mistral's sliding window) through every path the Llama family has: the forward
// against reference_gemma2_qwen3.py (an independent transcription of modeling_gemma2/modeling_qwen3, run by
// Debian's /usr/bin/python3), packed sequences and shared prompts against padded rows, the soft-capped
// chunked head against the naive one, the KV cache against full recomputation past the sliding window,
// batched generation, scoring, bf16 under autocast, init-model's weights and checkpoints. Sequences are
// longer than the window and weights large, so that the window and the soft caps change the numbers (each
// parity test also checks that leaving one out would have failed it). CPU, or CUDA with FUSEC_TEST_DEVICE.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <set>

#include "runtime/model/checkpoint.h"
#include "runtime/model/inference.h"
#include "runtime/model/llama.h"
#include "runtime/support/torch_compat.h"
#include "tests/runtime/model_support.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::Differentiate;
using testing::LogProbsAndGradients;
using testing::MaxDiff;
using testing::NaiveGreedy;
using testing::RandomIds;
using testing::ReferenceLogits;
using testing::ScratchDir;
using testing::ParseConfig;
using testing::TestDevice;

std::optional<ModelConfig> TryParse(const std::string& json, std::string* error) {
  return ParseModelConfig(json, error);
}

// Gemma-2: GQA, an explicit head_dim unlike hidden / heads, query_pre_attn_scalar unlike head_dim, a window
// of 8 (sequences of 40), soft caps low enough for these weights' scores and logits to reach them. Three
// layers: windowed, full, windowed.
constexpr const char* kGemma2Json = R"({"architectures": ["Gemma2ForCausalLM"], "model_type": "gemma2",
  "hidden_size": 48, "intermediate_size": 80, "num_hidden_layers": 3, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 16, "vocab_size": 260, "max_position_embeddings": 512,
  "rope_theta": 10000.0, "initializer_range": 0.25, "rms_norm_eps": 1e-6, "query_pre_attn_scalar": 24,
  "attn_logit_softcapping": 4.0, "final_logit_softcapping": 6.0, "sliding_window": 8,
  "hidden_act": "gelu_pytorch_tanh", "hidden_activation": "gelu_pytorch_tanh", "tie_word_embeddings": true})";

// Qwen3: GQA, head_dim 24 with hidden 64 and 4 heads (not 16), untied.
constexpr const char* kQwen3Json = R"({"architectures": ["Qwen3ForCausalLM"], "model_type": "qwen3",
  "hidden_size": 64, "intermediate_size": 96, "num_hidden_layers": 2, "num_attention_heads": 4,
  "num_key_value_heads": 2, "head_dim": 24, "vocab_size": 290, "max_position_embeddings": 512,
  "rope_theta": 1000000.0, "initializer_range": 0.25, "rms_norm_eps": 1e-6, "attention_bias": false,
  "use_sliding_window": false, "sliding_window": 4096, "max_window_layers": 28, "tie_word_embeddings": false})";

// Mistral with a window, every layer.
constexpr const char* kMistralWindowJson = R"({"architectures": ["MistralForCausalLM"], "hidden_size": 32,
  "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 1,
  "vocab_size": 200, "max_position_embeddings": 512, "initializer_range": 0.25, "sliding_window": 6})";

ModelConfig Gemma2Config() { return ParseConfig(kGemma2Json); }
ModelConfig Qwen3Config() { return ParseConfig(kQwen3Json); }
ModelConfig MistralWindowConfig() { return ParseConfig(kMistralWindowJson); }

/// Every parameter random, norms included (around their identity, 0 for Gemma's offsets, 1 for Llama-style),
/// so that forgetting a norm, or its `1 +`, shows.
LlamaForCausalLM RandomModel(const ModelConfig& config, uint64_t seed) {
  LlamaForCausalLM model(config);
  InitializeWeights(*model, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& item : model->named_parameters()) {
    if (item.key().ends_with("norm.weight")) item.value().add_(torch::randn_like(item.value()) * 0.3);
  }
  model->to(TestDevice());
  model->eval();
  return model;
}

/// The logits of `dir`'s weights under `config` (a variant of the one the directory was written with).
torch::Tensor LogitsUnder(const ModelConfig& config, const std::string& dir, const torch::Tensor& ids) {
  LlamaForCausalLM model(config);
  std::string error;
  EXPECT_TRUE(LoadWeights(*model, dir, &error)) << error;
  model->to(TestDevice());
  torch::NoGradGuard no_grad;
  return model->forward(ids);
}

struct Family {
  const char* name;
  ModelConfig (*config)();
};

class FamilyReferenceParity : public ::testing::TestWithParam<Family> {};

TEST_P(FamilyReferenceParity, LogitsEqualTheIndependentPythonImplementation) {
  const ModelConfig config = GetParam().config();
  ScratchDir dir(std::string("families_parity_") + GetParam().name);
  const std::string model_dir = dir / "model";
  {
    LlamaForCausalLM model = RandomModel(config, 11);
    std::string error;
    ASSERT_TRUE(SaveModel(*model, model_dir, {}, &error)) << error;
  }
  const torch::Tensor ids = RandomIds(2, 40, config.vocab_size, 5);
  const torch::Tensor reference = ReferenceLogits("reference_gemma2_qwen3.py", model_dir, ids, config.vocab_size, "fp32");
  const double scale = reference.abs().max().item<double>();
  EXPECT_GT(scale, 0.5) << "logits this small would hide differences";
  std::string error;
  auto fp32 = LoadModel(model_dir, torch::kFloat, TestDevice(), &error);
  ASSERT_TRUE(fp32) << error;
  torch::NoGradGuard no_grad;
  const double fp32_diff = MaxDiff((*fp32)->forward(ids), reference);
  std::cout << "  " << GetParam().name << " fp32 on " << TestDevice().str() << ": max |logit difference| " << fp32_diff
            << " (logits up to " << scale << ")\n";
  EXPECT_LE(fp32_diff, 1e-4);

  // The test can fail: without the window, or without a soft cap, the logits are far from the reference's.
  if (config.sliding_window) {
    ModelConfig unwindowed = config;
    unwindowed.sliding_window.reset();
    const double diff = MaxDiff(LogitsUnder(unwindowed, model_dir, ids), reference);
    std::cout << "    without the sliding window: " << diff << "\n";
    EXPECT_GT(diff, 1e-2);
  }
  if (config.attn_logit_softcapping) {
    ModelConfig uncapped = config;
    uncapped.attn_logit_softcapping.reset();
    const double diff = MaxDiff(LogitsUnder(uncapped, model_dir, ids), reference);
    std::cout << "    without attention soft-capping: " << diff << "\n";
    EXPECT_GT(diff, 1e-2);
  }
  if (config.final_logit_softcapping) {
    ModelConfig uncapped = config;
    uncapped.final_logit_softcapping.reset();
    const double diff = MaxDiff(LogitsUnder(uncapped, model_dir, ids), reference);
    std::cout << "    without final soft-capping: " << diff << "\n";
    EXPECT_GT(diff, 1e-2);
  }

  // bf16: as accurate as the reference's own bf16 run (see model_test.cpp's ReferenceParity).
  auto bf16 = LoadModel(model_dir, torch::kBFloat16, TestDevice(), &error);
  ASSERT_TRUE(bf16) << error;
  auto mean_diff = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.cpu().to(torch::kFloat) - b.cpu()).abs().mean().item<double>();
  };
  const double ours = mean_diff((*bf16)->forward(ids), reference);
  const double theirs = mean_diff(ReferenceLogits("reference_gemma2_qwen3.py", model_dir, ids, config.vocab_size, "bf16"), reference);
  std::cout << "  " << GetParam().name << " bf16 on " << TestDevice().str() << ": mean |logit error| " << ours
            << " (the reference in bf16: " << theirs << ")\n";
  EXPECT_LE(ours, 1.5 * theirs + 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Models, FamilyReferenceParity,
                         ::testing::Values(Family{"gemma2", &Gemma2Config}, Family{"qwen3", &Qwen3Config},
                                           Family{"mistral_sliding_window", &MistralWindowConfig}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// --- packing, shared prompts, the chunked head: the same log-probs and gradients as padded rows ---

std::vector<int32_t> TokenRun(int32_t first, int32_t count) {
  std::vector<int32_t> ids;
  for (int32_t i = 0; i < count; ++i) ids.push_back(1 + (first + i * 7) % 190);
  return ids;
}

TEST(FamilyPacking, SameLogProbsAndGradientsAsPaddedRows) {
  for (auto make_config : {Gemma2Config, Qwen3Config}) {
    const ModelConfig config = make_config();
    SCOPED_TRACE(config.architecture);
    LlamaForCausalLM model = RandomModel(config, 21);
    // Prompts and responses longer than the window of 8 (so a response's window reaches back into its
    // shared prompt), one empty prompt, one empty response, and a group over kTileTokens (segment by segment).
    std::vector<std::vector<int32_t>> prompts = {TokenRun(1, 12), {9}, {}, TokenRun(4, 5), TokenRun(3, 40)};
    std::vector<std::vector<std::vector<int32_t>>> responses = {{TokenRun(2, 11), {23}, TokenRun(6, 3)},
                                                                {{31, 32}, {}, TokenRun(8, 14)},
                                                                {TokenRun(10, 9), {43, 44}},
                                                                {{50}, TokenRun(12, 20)},
                                                                {TokenRun(5, 150), TokenRun(9, 120)}};
    std::vector<PromptResponses> groups;
    for (size_t g = 0; g < prompts.size(); ++g) {
      PromptResponses& group = groups.emplace_back();
      group.prompt = prompts[g];
      for (const auto& response : responses[g]) group.responses.emplace_back(response);
    }
    const LogProbsAndGradients naive = Differentiate(*model, groups, LogProbOptions::Naive());
    LogProbOptions packed = LogProbOptions::Naive();
    packed.pack = true;
    LogProbOptions shared = packed;
    shared.share_prompts = true;
    LogProbOptions all;
    all.head_chunk = 4;
    for (const LogProbOptions& options : {packed, shared, all}) {
      SCOPED_TRACE(std::string("pack ") + (options.share_prompts ? "+share " : "") +
                   (options.chunked_head ? "+chunked" : ""));
      const LogProbsAndGradients fast = Differentiate(*model, groups, options);
      EXPECT_EQ(fast.scored, naive.scored);
      EXPECT_LE(((fast.logp - naive.logp).abs() / (naive.logp.abs() + 1)).max().item<double>(), 1e-5);
      for (const auto& [name, gradient] : naive.gradients) {
        const double scale = gradient.abs().max().item<double>() + 1e-6;
        EXPECT_LE(MaxDiff(fast.gradients.at(name), gradient) / scale, 1e-4) << name;
      }
    }
  }
}

TEST(FamilyChunkedHead, SoftCappedEqualsTheNaiveHeadAndItsGradients) {
  torch::manual_seed(5);
  const torch::Device device = TestDevice();
  const int64_t tokens = 37, hidden_size = 24, vocab = 301;
  const double cap = 5.0;
  torch::Tensor hidden = (torch::randn({tokens, hidden_size}) * 2).to(device).requires_grad_();
  torch::Tensor weight = torch::randn({vocab, hidden_size}).to(device).requires_grad_();
  torch::Tensor targets = torch::randint(vocab, {tokens}, torch::kLong).to(device);
  torch::Tensor upstream = torch::randn({tokens}).to(device);
  torch::Tensor raw = torch::matmul(hidden, weight.t());
  EXPECT_GT(raw.abs().max().item<double>(), 3 * cap) << "the cap must bend these logits";
  torch::Tensor naive = torch::log_softmax(torch::tanh(raw / cap) * cap, -1).gather(1, targets.unsqueeze(1)).squeeze(1);
  (naive * upstream).sum().backward();
  const torch::Tensor naive_hidden_grad = hidden.grad().clone(), naive_weight_grad = weight.grad().clone();
  for (int64_t chunk : {1, 5, 37, 1000}) {
    hidden.mutable_grad().reset();
    weight.mutable_grad().reset();
    torch::Tensor chunked = ChunkedTokenLogProbs(hidden, weight, targets, chunk, cap);
    (chunked * upstream).sum().backward();
    EXPECT_LE(MaxDiff(chunked, naive), 1e-5) << chunk;
    EXPECT_LE(MaxDiff(hidden.grad(), naive_hidden_grad) / naive_hidden_grad.abs().max().item<double>(), 1e-5) << chunk;
    EXPECT_LE(MaxDiff(weight.grad(), naive_weight_grad) / naive_weight_grad.abs().max().item<double>(), 1e-5) << chunk;
  }
  // And uncapped it is another function (the cap is applied, not ignored).
  EXPECT_GT(MaxDiff(ChunkedTokenLogProbs(hidden, weight, targets, 5), naive), 0.1);
}

// --- the KV cache, generation and scoring ---

class FamilyDecoding : public ::testing::TestWithParam<Family> {};

TEST_P(FamilyDecoding, KvCacheStepByStepEqualsFullRecomputationPastTheWindow) {
  const ModelConfig config = GetParam().config();
  LlamaForCausalLM model = RandomModel(config, 3);
  torch::NoGradGuard no_grad;
  const int64_t length = 30;  // several windows
  torch::Tensor ids = RandomIds(2, length, config.vocab_size, 9);
  torch::Tensor full = model->forward(ids);
  KvCache cache =
      KvCache::Allocate(config, 2, length, torch::TensorOptions().dtype(torch::kFloat).device(TestDevice()));
  torch::Tensor positions = torch::arange(length, torch::kLong).unsqueeze(0).expand({2, length}).to(TestDevice());
  torch::Tensor hidden = model->Hidden(ids.narrow(1, 0, 5), positions.narrow(1, 0, 5), {}, &cache);
  double diff = MaxDiff(model->Logits(hidden), full.narrow(1, 0, 5));
  for (int64_t t = 5; t < length; ++t) {
    torch::Tensor allowed = torch::ones({2, 1, t + 1}, torch::kBool).to(TestDevice());
    hidden = model->Hidden(ids.narrow(1, t, 1), positions.narrow(1, t, 1), allowed, &cache);
    diff = std::max(diff, MaxDiff(model->Logits(hidden), full.narrow(1, t, 1)));
  }
  EXPECT_EQ(cache.length, length);
  EXPECT_LE(diff, 1e-4);
}

TEST_P(FamilyDecoding, GreedyGenerationEqualsRecomputingAndBatchesEqualSinglePrompts) {
  const ModelConfig config = GetParam().config();
  LlamaForCausalLM model = RandomModel(config, 4);
  SamplingOptions options;
  options.max_new_tokens = 16;  // past the window
  std::vector<std::vector<int32_t>> prompts = {{5, 17, 42, 99, 7, 3}, TokenRun(2, 13), {120}};
  std::vector<Generation> batched = Generate(*model, prompts, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(batched[i].ids, NaiveGreedy(*model, prompts[i], 16)) << "prompt " << i;
  }
}

TEST_P(FamilyDecoding, ScoresAreTheLogSoftmaxOfTheFullForward) {
  const ModelConfig config = GetParam().config();
  LlamaForCausalLM model = RandomModel(config, 7);
  std::vector<TokenizedPrompt> prompts = {
      {"a", 1, TokenRun(1, 10), {{"s", 0, 1.0, TokenRun(3, 12)}, {"t", 1, 0.0, {8}}}},
      {"b", 2, {9, 10}, {{"s", 0, 1.0, TokenRun(7, 15)}}},
  };
  auto scores = ScoreResponses(*model, prompts, /*max_batch_tokens=*/30);
  torch::NoGradGuard no_grad;
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (size_t r = 0; r < prompts[p].responses.size(); ++r) {
      std::vector<int32_t> sequence = prompts[p].Sequence(r);
      torch::Tensor input = torch::tensor(std::vector<int64_t>(sequence.begin(), sequence.end()), torch::kLong)
                                .unsqueeze(0)
                                .to(TestDevice());
      torch::Tensor log_probs = torch::log_softmax(model->forward(input)[0], -1).cpu();
      double expected = 0;
      for (size_t t = prompts[p].prompt_ids.size(); t < sequence.size(); ++t) {
        expected += log_probs[static_cast<int64_t>(t) - 1][sequence[t]].item<double>();
      }
      EXPECT_NEAR(scores[p][r].logp, expected, 1e-4) << p << "/" << r;
    }
  }
}

// Under bf16 autocast (the trainer's mixed precision), packed log-probs and gradients stay close to float32:
// within 2% of the log-prob sums and 8% of each gradient's largest entry. How close depends on the CPU's bf16
// kernels: Gemma-2's worst gradient is off by 6.2% where oneDNN has AVX512-BF16 (AMD EPYC) and by less than 5%
// where it emulates bf16; a gradient computed wrongly is off by its own size.
TEST_P(FamilyDecoding, Bf16AutocastLogProbsAndGradientsAreCloseToFloat32) {
  const ModelConfig config = GetParam().config();
  LlamaForCausalLM model = RandomModel(config, 12);
  std::vector<int32_t> prompt = TokenRun(1, 14);
  std::vector<int32_t> first = TokenRun(3, 20), second = TokenRun(5, 9);
  std::vector<PromptResponses> groups = {{prompt, {first, second}}};
  const LogProbsAndGradients fp32 = Differentiate(*model, groups, {});
  LogProbsAndGradients mixed;
  {
    model->zero_grad();
    torch::Tensor logp;
    {
      compat::AutocastScope autocast(true, TestDevice().type(), torch::kBFloat16);
      logp = ResponseLogProbs(*model, groups, {});
    }
    EXPECT_EQ(logp.scalar_type(), torch::kFloat);
    (logp * torch::linspace(-1.0, 2.0, logp.size(0)).to(logp.device())).sum().backward();
    mixed.logp = logp.detach();
    for (const auto& item : model->named_parameters()) mixed.gradients[item.key()] = item.value().grad().detach().cpu();
  }
  const double logp_diff = ((mixed.logp - fp32.logp).abs() / fp32.logp.abs()).max().item<double>();
  std::cout << "  " << GetParam().name << " bf16 autocast: relative log-prob difference " << logp_diff << "\n";
  EXPECT_LE(logp_diff, 0.02);
  EXPECT_GT(logp_diff, 1e-6) << "bf16 was not used";
  for (const auto& [name, gradient] : fp32.gradients) {
    EXPECT_LE(MaxDiff(mixed.gradients.at(name), gradient) / (gradient.abs().max().item<double>() + 1e-6), 0.08) << name;
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FamilyDecoding,
                         ::testing::Values(Family{"gemma2", &Gemma2Config}, Family{"qwen3", &Qwen3Config}),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

// --- init-model's weights, checkpoints and config.json ---

TEST(FamilyCheckpoint, InitializedModelsAreSaneAndRoundTripWithTheirConfig) {
  for (auto make_config : {Gemma2Config, Qwen3Config}) {
    const ModelConfig config = make_config();
    SCOPED_TRACE(config.architecture);
    LlamaForCausalLM model(config);
    InitializeWeights(*model, 1);
    std::set<std::string> names;
    for (const auto& item : model->named_parameters()) {
      names.insert(item.key());
      // Norms start as the identity: Gemma's `1 + weight` at 0, Qwen3's (Llama-style, q/k too) at 1.
      if (item.key().ends_with("norm.weight")) {
        const bool gemma = config.norm_style == NormStyle::Gemma;
        EXPECT_TRUE(torch::all(item.value() == (gemma ? 0.0 : 1.0)).item<bool>()) << item.key();
      }
    }
    if (config.model_type == "gemma2") {
      for (const char* norm :
           {"input_layernorm", "post_attention_layernorm", "pre_feedforward_layernorm", "post_feedforward_layernorm"}) {
        EXPECT_EQ(names.count(std::string("model.layers.2.") + norm + ".weight"), 1U) << norm;
      }
      EXPECT_EQ(names.count("lm_head.weight"), 0U) << "tied";
    } else {
      EXPECT_EQ(names.count("model.layers.1.self_attn.q_norm.weight"), 1U);
      EXPECT_EQ(names.count("model.layers.1.self_attn.k_norm.weight"), 1U);
      EXPECT_EQ(names.count("model.layers.0.self_attn.q_proj.bias"), 0U);
      EXPECT_EQ(names.count("lm_head.weight"), 1U);
    }
    uint64_t weights = 0;
    for (const auto& item : model->named_parameters()) weights += static_cast<uint64_t>(item.value().numel());
    EXPECT_EQ(ModelWeightCount(config), weights);

    // A freshly initialised model's log-probs are finite and near uniform (the norms at their identity).
    torch::NoGradGuard no_grad;
    torch::Tensor logits = model->forward(torch::randint(config.vocab_size, {1, 20}, torch::kLong));
    EXPECT_TRUE(logits.isfinite().all().item<bool>());
    EXPECT_LT(logits.abs().max().item<double>(), 10.0);

    ScratchDir dir("families_checkpoint");
    std::string error;
    ASSERT_TRUE(SaveModel(*model, dir / "model", {}, &error)) << error;
    auto loaded = LoadModel(dir / "model", torch::kFloat, torch::kCPU, &error);
    ASSERT_TRUE(loaded) << error;
    auto original = model->named_parameters();
    for (const auto& item : (*loaded)->named_parameters()) {
      EXPECT_TRUE(torch::equal(item.value(), original[item.key()])) << item.key();
    }
    const ModelConfig& written = (*loaded)->config();
    EXPECT_EQ(written.architecture, config.architecture);
    EXPECT_EQ(written.head_dim, config.head_dim);
    EXPECT_EQ(written.query_pre_attn_scalar, config.query_pre_attn_scalar);
    EXPECT_EQ(written.attn_logit_softcapping, config.attn_logit_softcapping);
    EXPECT_EQ(written.final_logit_softcapping, config.final_logit_softcapping);
    EXPECT_EQ(written.sliding_window, config.sliding_window);
    EXPECT_EQ(written.sliding_layers, config.sliding_layers);
    EXPECT_EQ(written.tie_word_embeddings, config.tie_word_embeddings);
    EXPECT_TRUE(torch::equal((*loaded)->forward(torch::arange(12).unsqueeze(0)),
                             model->forward(torch::arange(12).unsqueeze(0))));
  }
}

// --- config.json: the families' switches, HF's defaults, and what is refused by name ---

TEST(FamilyConfig, SetsEachFamilysSwitches) {
  const ModelConfig gemma = Gemma2Config();
  EXPECT_EQ(gemma.norm_style, NormStyle::Gemma);
  EXPECT_EQ(gemma.mlp_activation, MlpActivation::GeluTanh);
  EXPECT_TRUE(gemma.scale_embeddings);
  EXPECT_TRUE(gemma.sandwich_norms);
  EXPECT_FALSE(gemma.qk_norm);
  EXPECT_EQ(gemma.sliding_window, 8);
  EXPECT_EQ(gemma.sliding_layers, (std::vector<bool>{true, false, true}));  // `not bool(layer_idx % 2)`
  const ModelConfig qwen3 = Qwen3Config();
  EXPECT_TRUE(qwen3.qk_norm);
  EXPECT_FALSE(qwen3.qkv_bias);
  EXPECT_EQ(qwen3.norm_style, NormStyle::Llama);
  EXPECT_FALSE(qwen3.sliding_window) << "use_sliding_window false: the window is unused";
  EXPECT_EQ(MistralWindowConfig().sliding_layers, (std::vector<bool>{true, true}));

  // Gemma2Config's defaults where a config leaves a field out.
  const ModelConfig defaults = ParseConfig(R"({"architectures": ["Gemma2ForCausalLM"], "hidden_size": 32,
    "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 100})");
  EXPECT_EQ(defaults.head_dim, 256);
  EXPECT_EQ(defaults.query_pre_attn_scalar, 224.0);
  EXPECT_EQ(defaults.attn_logit_softcapping, 50.0);
  EXPECT_EQ(defaults.final_logit_softcapping, 30.0);
  EXPECT_EQ(defaults.sliding_window, 4096);
  EXPECT_TRUE(defaults.tie_word_embeddings);
  EXPECT_EQ(defaults.rms_norm_eps, 1e-6);
  // null turns soft-capping and the window off; layer_types says which layers are windowed.
  const ModelConfig variant = ParseConfig(R"({"architectures": ["Gemma2ForCausalLM"], "hidden_size": 32,
    "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 100, "head_dim": 16,
    "attn_logit_softcapping": null, "final_logit_softcapping": null,
    "layer_types": ["full_attention", "sliding_attention"]})");
  EXPECT_FALSE(variant.attn_logit_softcapping);
  EXPECT_FALSE(variant.final_logit_softcapping);
  EXPECT_EQ(variant.sliding_layers, (std::vector<bool>{false, true}));
  EXPECT_EQ(ParseConfig(R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 32, "intermediate_size": 48,
    "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 100})")
                .head_dim,
            128);
}

TEST(FamilyConfig, RefusesWhatIsNotImplementedByFieldName) {
  const std::string qwen3 = R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 32, "intermediate_size": 48,
    "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 100, )";
  const std::string gemma = R"({"architectures": ["Gemma2ForCausalLM"], "hidden_size": 32, "intermediate_size": 48,
    "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 100, )";
  const std::string llama = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 48,
    "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 100, )";
  const std::pair<std::string, std::string> cases[] = {
      {qwen3 + R"("use_sliding_window": true})", "`use_sliding_window` true is not supported"},
      {qwen3 + R"("attention_bias": true})", "`attention_bias` true is not supported for Qwen3ForCausalLM"},
      {qwen3 + R"("hidden_act": "gelu"})", "`hidden_act` gelu is not supported"},
      {gemma + R"("attention_bias": true})", "`attention_bias` true is not supported for Gemma2ForCausalLM"},
      {gemma + R"("hidden_activation": "gelu"})", "`hidden_activation` gelu is not supported"},
      {gemma + R"("query_pre_attn_scalar": 0})", "`query_pre_attn_scalar` must be a positive number or null, not 0"},
      {gemma + R"("query_pre_attn_scalar": null})", "`query_pre_attn_scalar` must be a positive number, not null"},
      {gemma + R"("attn_logit_softcapping": "50"})", "`attn_logit_softcapping` must be a positive number or null"},
      {gemma + R"("sliding_window": 0})", "`sliding_window` must be an integer >= 1 or null, not 0"},
      {gemma + R"("layer_types": ["full_attention"]})", "`layer_types` must be a list of `num_hidden_layers` (2)"},
      {gemma + R"("layer_types": ["full_attention", "chunked_attention"]})",
       "`layer_types[1]` \"chunked_attention\" is not supported"},
      {llama + R"("final_logit_softcapping": 30.0})",
       "`final_logit_softcapping` is not supported for LlamaForCausalLM"},
      {R"({"architectures": ["Gemma3ForCausalLM"], "hidden_size": 32})", "Qwen3ForCausalLM and Gemma2ForCausalLM are"},
  };
  for (const auto& [json, expected] : cases) {
    std::string error;
    EXPECT_FALSE(TryParse(json, &error)) << json;
    EXPECT_NE(error.find(expected), std::string::npos) << error;
  }
}

}  // namespace
}  // namespace fusec::rt
