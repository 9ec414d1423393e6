// The model stack on LibTorch: forward against an independent Python reference, the KV cache against full
// recomputation, batching against single prompts, checkpoints written and read back (sharded, bf16), and
// checkpoint errors; packing, shared prompts and the chunked head against the usual computation. Models run
// on the CPU, or on CUDA with FUSEC_TEST_DEVICE=cuda (scripts/device-check.sh).
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <map>
#include <random>

#include "runtime/model/checkpoint.h"
#include "runtime/model/inference.h"
#include "runtime/model/llama.h"
#include "runtime/model/safetensors.h"
#include "runtime/support/torch_compat.h"
#include "runtime/tokenizer/tokenizer.h"
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

// Three variants that together cover every switch of the decoder. Weights are drawn with a large
// initializer_range so that activations, and any difference between implementations, are far from zero.
ModelConfig LlamaGqaConfig() {
  return ParseConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 96,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 300,
    "max_position_embeddings": 512, "rope_theta": 500000.0, "initializer_range": 0.25, "rms_norm_eps": 1e-5,
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 32},
    "tie_word_embeddings": false})");
}

ModelConfig Qwen2Config() {
  return ParseConfig(R"({"architectures": ["Qwen2ForCausalLM"], "hidden_size": 48, "intermediate_size": 80,
    "num_hidden_layers": 2, "num_attention_heads": 6, "num_key_value_heads": 2, "vocab_size": 280,
    "max_position_embeddings": 512, "rope_theta": 1000000.0, "initializer_range": 0.25, "rms_norm_eps": 1e-6,
    "tie_word_embeddings": true})");
}

ModelConfig MistralConfig() {
  return ParseConfig(R"({"architectures": ["MistralForCausalLM"], "hidden_size": 64, "intermediate_size": 64,
    "num_hidden_layers": 3, "num_attention_heads": 4, "num_key_value_heads": 4, "head_dim": 32, "vocab_size": 270,
    "max_position_embeddings": 512, "rope_theta": 10000.0, "initializer_range": 0.25,
    "rope_scaling": {"type": "linear", "factor": 2.0}, "tie_word_embeddings": false})");
}

/// A model with every parameter random: norms around 1 and biases around 0 too, so that forgetting a norm
/// weight or a bias shows.
LlamaForCausalLM RandomModel(const ModelConfig& config, uint64_t seed) {
  LlamaForCausalLM model(config);
  InitializeWeights(*model, seed);
  torch::NoGradGuard no_grad;
  torch::manual_seed(seed);
  for (auto& item : model->named_parameters()) {
    if (item.key().ends_with("norm.weight")) item.value().normal_(1.0, 0.3);
    if (item.key().ends_with(".bias")) item.value().normal_(0.0, 0.3);
  }
  model->to(TestDevice());
  model->eval();
  return model;
}

class ReferenceParity : public ::testing::TestWithParam<std::pair<const char*, ModelConfig (*)()>> {};

TEST_P(ReferenceParity, LogitsEqualTheIndependentPythonImplementation) {
  ModelConfig config = GetParam().second();
  ScratchDir dir(std::string("parity_") + GetParam().first);
  std::string model_dir = dir / "model";
  {
    LlamaForCausalLM model = RandomModel(config, 11);
    std::string error;
    ASSERT_TRUE(SaveModel(*model, model_dir, {}, &error)) << error;
  }
  torch::Tensor ids = RandomIds(2, 40, config.vocab_size, 5);
  torch::Tensor reference = ReferenceLogits("reference_llama.py", model_dir, ids, config.vocab_size, "fp32");
  double scale = reference.abs().max().item<double>();
  EXPECT_GT(scale, 0.5) << "logits this small would hide differences";
  std::string error;
  torch::NoGradGuard no_grad;

  // fp32: every logit to 1e-4.
  auto fp32 = LoadModel(model_dir, torch::kFloat, TestDevice(), &error);  // through the loader, as users do
  ASSERT_TRUE(fp32) << error;
  double fp32_diff = MaxDiff((*fp32)->forward(ids), reference);
  std::cout << "  " << GetParam().first << " fp32 on " << TestDevice().str() << ": max |logit difference| "
            << fp32_diff << " (logits up to " << scale << ")\n";
  EXPECT_LE(fp32_diff, 1e-4);

  // bf16 rounds every activation, and these deliberately large random weights amplify rounding, so bf16
  // cannot match to 1e-4. It must be as accurate as the reference's own bf16 run (transformers' bf16
  // semantics: bf16 weights and activations, norms and softmax in fp32): its mean error against the fp32
  // logits at most 1.5 times that of the reference in bf16.
  auto bf16 = LoadModel(model_dir, torch::kBFloat16, TestDevice(), &error);
  ASSERT_TRUE(bf16) << error;
  auto MeanDiff = [](const torch::Tensor& a, const torch::Tensor& b) {
    return (a.cpu().to(torch::kFloat) - b.cpu()).abs().mean().item<double>();
  };
  double ours = MeanDiff((*bf16)->forward(ids), reference);
  double theirs = MeanDiff(ReferenceLogits("reference_llama.py", model_dir, ids, config.vocab_size, "bf16"), reference);
  std::cout << "  " << GetParam().first << " bf16 on " << TestDevice().str() << ": mean |logit error| " << ours
            << " (the reference in bf16: " << theirs << ")\n";
  EXPECT_LE(ours, 1.5 * theirs + 1e-3);
}

INSTANTIATE_TEST_SUITE_P(Models, ReferenceParity,
                         ::testing::Values(std::make_pair("llama_gqa_llama3_rope", &LlamaGqaConfig),
                                           std::make_pair("qwen2_bias_tied", &Qwen2Config),
                                           std::make_pair("mistral_head_dim_linear_rope", &MistralConfig)),
                         [](const auto& param_info) { return std::string(param_info.param.first); });

TEST(KvCache, StepByStepEqualsFullRecomputation) {
  ModelConfig config = LlamaGqaConfig();
  LlamaForCausalLM model = RandomModel(config, 3);
  torch::NoGradGuard no_grad;
  torch::Tensor ids = RandomIds(2, 24, config.vocab_size, 9);
  torch::Tensor full = model->forward(ids);  // [2, 24, vocab]
  // Prefill 10 positions, then feed the remaining 14 one at a time through the cache.
  KvCache cache = KvCache::Allocate(config, 2, 24, torch::TensorOptions().dtype(torch::kFloat).device(TestDevice()));
  torch::Tensor positions = torch::arange(24, torch::kLong).unsqueeze(0).expand({2, 24}).to(TestDevice());
  torch::Tensor hidden = model->Hidden(ids.narrow(1, 0, 10), positions.narrow(1, 0, 10), {}, &cache);
  double diff = MaxDiff(model->Logits(hidden), full.narrow(1, 0, 10));
  for (int64_t t = 10; t < 24; ++t) {
    torch::Tensor allowed = torch::ones({2, 1, t + 1}, torch::kBool).to(TestDevice());
    hidden = model->Hidden(ids.narrow(1, t, 1), positions.narrow(1, t, 1), allowed, &cache);
    diff = std::max(diff, MaxDiff(model->Logits(hidden), full.narrow(1, t, 1)));
  }
  EXPECT_EQ(cache.length, 24);
  EXPECT_LE(diff, 1e-4);
}

TEST(Generate, GreedyWithTheCacheEqualsRecomputingEverything) {
  ModelConfig config = Qwen2Config();
  LlamaForCausalLM model = RandomModel(config, 4);
  std::vector<int32_t> prompt = {5, 17, 42, 99, 7, 3};
  SamplingOptions options;
  options.max_new_tokens = 20;
  std::vector<Generation> generated = Generate(*model, {prompt}, options);
  ASSERT_EQ(generated.size(), 1U);
  EXPECT_EQ(generated[0].ids, NaiveGreedy(*model, prompt, 20));
  EXPECT_FALSE(generated[0].stopped);
}

TEST(Generate, ABatchOfUnequalPromptsGeneratesWhatEachWouldAlone) {
  ModelConfig config = LlamaGqaConfig();
  LlamaForCausalLM model = RandomModel(config, 5);
  std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0, 11, 12}, {200}};
  SamplingOptions options;
  options.max_new_tokens = 12;
  std::vector<Generation> batched = Generate(*model, prompts, options);
  for (size_t i = 0; i < prompts.size(); ++i) {
    EXPECT_EQ(batched[i].ids, Generate(*model, {prompts[i]}, options)[0].ids) << "prompt " << i;
  }
}

TEST(Generate, StopsAtStopTokensAndSamplesReproducibly) {
  ModelConfig config = LlamaGqaConfig();
  LlamaForCausalLM model = RandomModel(config, 6);
  std::vector<int32_t> prompt = {10, 20, 30};
  SamplingOptions greedy;
  greedy.max_new_tokens = 10;
  std::vector<int32_t> free_run = Generate(*model, {prompt}, greedy)[0].ids;
  // Stop at the third generated token: output ends with it, and says it stopped.
  greedy.stop_ids = {free_run[2]};
  Generation stopped = Generate(*model, {prompt}, greedy)[0];
  size_t first = std::find(free_run.begin(), free_run.end(), free_run[2]) - free_run.begin();
  EXPECT_TRUE(stopped.stopped);
  EXPECT_EQ(stopped.ids, std::vector<int32_t>(free_run.begin(), free_run.begin() + static_cast<long>(first) + 1));

  SamplingOptions sampling;
  sampling.max_new_tokens = 16;
  sampling.temperature = 1.5;
  sampling.seed = 123;
  auto a = Generate(*model, {prompt, prompt}, sampling);
  auto b = Generate(*model, {prompt, prompt}, sampling);
  EXPECT_EQ(a[0].ids, b[0].ids);
  EXPECT_EQ(a[1].ids, b[1].ids);
  EXPECT_NE(a[0].ids, a[1].ids) << "rows draw from their own generators";
  sampling.seed = 124;
  EXPECT_NE(Generate(*model, {prompt}, sampling)[0].ids, a[0].ids);
  // A vanishing top-p keeps only the most likely token: sampling becomes greedy.
  sampling.top_p = 1e-9;
  greedy.stop_ids.clear();
  greedy.max_new_tokens = 16;
  EXPECT_EQ(Generate(*model, {prompt}, sampling)[0].ids, Generate(*model, {prompt}, greedy)[0].ids);
}

TEST(Score, SumsResponseLogProbsGivenThePrompt) {
  ModelConfig config = MistralConfig();
  LlamaForCausalLM model = RandomModel(config, 7);
  std::vector<TokenizedPrompt> prompts = {
      {"a", 1, {1, 2, 3, 4}, {{"s", 0, 1.0, {5, 6, 7}}, {"t", 1, 0.0, {8}}}},
      {"b", 2, {9, 10}, {{"s", 0, 1.0, {11, 12, 13, 14, 15, 16, 17}}}},
  };
  // A small batch budget forces several batches with padding.
  auto scores = ScoreResponses(*model, prompts, /*max_batch_tokens=*/12);
  torch::NoGradGuard no_grad;
  for (size_t p = 0; p < prompts.size(); ++p) {
    for (size_t r = 0; r < prompts[p].responses.size(); ++r) {
      std::vector<int32_t> sequence = prompts[p].Sequence(r);
      torch::Tensor input =
          torch::tensor(std::vector<int64_t>(sequence.begin(), sequence.end()), torch::kLong).unsqueeze(0).to(TestDevice());
      torch::Tensor log_probs = torch::log_softmax(model->forward(input)[0], -1).cpu();
      double expected = 0;
      for (size_t t = prompts[p].prompt_ids.size(); t < sequence.size(); ++t) {
        expected += log_probs[static_cast<int64_t>(t) - 1][sequence[t]].item<double>();
      }
      EXPECT_NEAR(scores[p][r].logp, expected, 1e-4) << p << "/" << r;
      EXPECT_EQ(scores[p][r].tokens, static_cast<int64_t>(prompts[p].responses[r].ids.size()));
    }
  }
  // The head's chunking changes nothing.
  torch::Tensor hidden = torch::randn({10, config.hidden_size}).to(TestDevice());
  torch::Tensor targets = torch::randint(config.vocab_size, {10}, torch::kLong).to(TestDevice());
  LogProbOptions chunked;
  chunked.head_chunk = 3;
  EXPECT_LE(MaxDiff(TokenLogProbs(*model, hidden, targets, chunked), TokenLogProbs(*model, hidden, targets, LogProbOptions::Naive())),
            1e-5);
}

// --- packing, shared prompts and the chunked head: the same numbers as the usual way ---

TEST(Packing, SameLogProbsAndGradientsAsUnpacked) {
  for (auto make_config : {LlamaGqaConfig, Qwen2Config}) {
    ModelConfig config = make_config();
    LlamaForCausalLM model = RandomModel(config, 21);
    // Prompts of several lengths (one empty), several responses each (one empty, one of a single token).
    std::vector<std::vector<int32_t>> prompts = {{1, 2, 3, 4, 5}, {9}, {}, {7, 7, 8, 9, 10, 11, 12, 13}};
    std::vector<std::vector<std::vector<int32_t>>> responses = {
        {{20, 21, 22}, {23}, {24, 25, 26, 27, 28, 29, 30}},
        {{31, 32}, {}, {33, 34, 35, 36}},
        {{40, 41, 42}, {43, 44}},
        {{50}, {51, 52, 53, 54, 55, 56, 57, 58, 59}},
    };
    // A group over PackedAttentionPlan::kTileTokens (a prompt and two long responses) takes the
    // segment-by-segment path; the short ones share dense-masked tiles.
    auto run = [](int32_t first, int32_t count) {
      std::vector<int32_t> ids;
      for (int32_t i = 0; i < count; ++i) ids.push_back(1 + (first + i * 7) % 250);
      return ids;
    };
    prompts.push_back(run(3, 40));
    responses.push_back({run(5, 150), run(9, 120)});
    std::vector<PromptResponses> groups;
    for (size_t g = 0; g < prompts.size(); ++g) {
      PromptResponses& group = groups.emplace_back();
      group.prompt = prompts[g];
      for (const auto& response : responses[g]) group.responses.emplace_back(response);
    }
    LogProbsAndGradients naive = Differentiate(*model, groups, LogProbOptions::Naive());
    LogProbOptions packed = LogProbOptions::Naive();
    packed.pack = true;
    LogProbOptions shared = packed;
    shared.share_prompts = true;
    LogProbOptions all;
    all.head_chunk = 4;  // several chunks
    for (const LogProbOptions& options : {packed, shared, all}) {
      SCOPED_TRACE(std::string("pack ") + (options.share_prompts ? "+share " : "") + (options.chunked_head ? "+chunked" : ""));
      LogProbsAndGradients fast = Differentiate(*model, groups, options);
      EXPECT_EQ(fast.scored, naive.scored);
      // Relative to the sums (long responses reach -1000, where float32 rounds in the fourth decimal).
      EXPECT_LE(((fast.logp - naive.logp).abs() / (naive.logp.abs() + 1)).max().item<double>(), 1e-5);
      for (const auto& [name, gradient] : naive.gradients) {
        double scale = gradient.abs().max().item<double>() + 1e-6;
        EXPECT_LE(MaxDiff(fast.gradients.at(name), gradient) / scale, 1e-4) << name;
      }
    }
    // Scored token counts: an empty prompt leaves the first response token unscored.
    EXPECT_EQ(naive.scored, (std::vector<int64_t>{3, 1, 7, 2, 0, 4, 2, 1, 1, 9, 150, 120}));
  }
}

TEST(ChunkedHead, EqualsTheNaiveHeadAndItsGradients) {
  torch::manual_seed(5);
  const torch::Device device = TestDevice();
  const int64_t tokens = 37, hidden_size = 24, vocab = 301;
  torch::Tensor hidden = (torch::randn({tokens, hidden_size}) * 2).to(device).requires_grad_();
  torch::Tensor weight = torch::randn({vocab, hidden_size}).to(device).requires_grad_();
  torch::Tensor targets = torch::randint(vocab, {tokens}, torch::kLong).to(device);
  torch::Tensor upstream = torch::randn({tokens}).to(device);

  torch::Tensor naive = torch::log_softmax(torch::matmul(hidden, weight.t()), -1).gather(1, targets.unsqueeze(1)).squeeze(1);
  (naive * upstream).sum().backward();
  torch::Tensor naive_hidden_grad = hidden.grad().clone(), naive_weight_grad = weight.grad().clone();
  for (int64_t chunk : {1, 5, 37, 1000}) {
    hidden.mutable_grad().reset();
    weight.mutable_grad().reset();
    torch::Tensor chunked = ChunkedTokenLogProbs(hidden, weight, targets, chunk);
    (chunked * upstream).sum().backward();
    EXPECT_LE(MaxDiff(chunked, naive), 1e-5) << chunk;
    EXPECT_LE(MaxDiff(hidden.grad(), naive_hidden_grad) / naive_hidden_grad.abs().max().item<double>(), 1e-5) << chunk;
    EXPECT_LE(MaxDiff(weight.grad(), naive_weight_grad) / naive_weight_grad.abs().max().item<double>(), 1e-5) << chunk;
  }
}

// The chunked head under bf16 autocast (bf16 matmuls, float32 accumulation, softmax and gradients) on the
// test device (the CPU here; CUDA under FUSEC_TEST_DEVICE=cuda, the device check's CUDA path) against float32
// on the CPU. Stated tolerance: log-probs within 0.05 absolute (bf16 keeps 8 bits of mantissa; the logits
// here are of order 10), gradients within 2% of their largest entry. The log-probs must also differ from
// float32's by more than float32 rounding: otherwise bf16 was never used.
TEST(ChunkedHead, Bf16AutocastMatchesCpuFloat32) {
  const torch::Device device = TestDevice();
  torch::manual_seed(6);
  const int64_t tokens = 300, hidden_size = 64, vocab = 5000;
  torch::Tensor hidden_cpu = torch::randn({tokens, hidden_size}).requires_grad_();
  torch::Tensor weight_cpu = (torch::randn({vocab, hidden_size}) * 0.3).requires_grad_();
  torch::Tensor targets = torch::randint(vocab, {tokens}, torch::kLong);
  torch::Tensor upstream = torch::randn({tokens});
  torch::Tensor cpu = ChunkedTokenLogProbs(hidden_cpu, weight_cpu, targets, 64);
  (cpu * upstream).sum().backward();

  torch::Tensor hidden = hidden_cpu.detach().to(device).requires_grad_();
  torch::Tensor weight = weight_cpu.detach().to(device).requires_grad_();
  torch::Tensor mixed;
  {
    compat::AutocastScope autocast(true, device.type(), torch::kBFloat16);
    mixed = ChunkedTokenLogProbs(hidden, weight, targets.to(device), 64);
  }
  EXPECT_EQ(mixed.scalar_type(), torch::kFloat);
  (mixed * upstream.to(device)).sum().backward();
  EXPECT_EQ(hidden.grad().scalar_type(), torch::kFloat);
  EXPECT_EQ(weight.grad().scalar_type(), torch::kFloat);
  const double logp_diff = MaxDiff(mixed, cpu);
  std::cout << "  bf16 chunked head on " << device.str() << ": max |log-prob difference| " << logp_diff << "\n";
  EXPECT_LE(logp_diff, 0.05);
  EXPECT_GE(logp_diff, 1e-3) << "bf16 was not used";
  EXPECT_LE(MaxDiff(hidden.grad(), hidden_cpu.grad()) / hidden_cpu.grad().abs().max().item<double>(), 0.02);
  EXPECT_LE(MaxDiff(weight.grad(), weight_cpu.grad()) / weight_cpu.grad().abs().max().item<double>(), 0.02);
}

TEST(Checkpoint, ShardedRoundTripIsExact) {
  ModelConfig config = LlamaGqaConfig();
  LlamaForCausalLM model = RandomModel(config, 8);
  ScratchDir dir("sharded");
  SaveOptions options;
  options.max_shard_bytes = 40000;
  std::string error;
  ASSERT_TRUE(SaveModel(*model, dir / "model", options, &error)) << error;
  EXPECT_TRUE(std::filesystem::exists(dir / "model/model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model/model.safetensors"));
  int shards = 0;
  for (const auto& entry : std::filesystem::directory_iterator(dir / "model")) {
    if (entry.path().extension() == ".safetensors") {
      ++shards;
      auto file = SafetensorsFile::Open(entry.path().string(), &error);
      ASSERT_TRUE(file) << error;
      uint64_t data_bytes = 0;
      for (const TensorInfo& tensor : file->tensors()) data_bytes += tensor.end - tensor.begin;
      // A shard stays under the limit unless one tensor alone exceeds it (the embeddings here).
      if (file->tensors().size() > 1) {
        EXPECT_LE(data_bytes, 40000U) << entry.path();
      }
      EXPECT_EQ(file->metadata().at("format"), "pt");  // transformers refuses files without it
    }
  }
  EXPECT_GT(shards, 2);
  auto loaded = LoadModel(dir / "model", torch::kFloat, torch::kCPU, &error);
  ASSERT_TRUE(loaded) << error;
  auto original = model->named_parameters();
  for (const auto& item : (*loaded)->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), original[item.key()].cpu())) << item.key();
  }
  auto written = ParseConfig(testing::ReadFile(dir / "model/config.json"));
  EXPECT_EQ(written.rope_scaling.kind, RopeScaling::Kind::Llama3);
  EXPECT_EQ(written.num_kv_heads, 2);

  // Saving over an existing model directory replaces it whole.
  options.max_shard_bytes = uint64_t{1} << 30;
  ASSERT_TRUE(SaveModel(*model, dir / "model", options, &error)) << error;
  EXPECT_TRUE(std::filesystem::exists(dir / "model/model.safetensors"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model/model.safetensors.index.json"));
  EXPECT_FALSE(std::filesystem::exists(dir / "model.partial"));
}

TEST(Checkpoint, Bf16WeightsRoundTripAndRunClose) {
  ModelConfig config = Qwen2Config();
  LlamaForCausalLM model = RandomModel(config, 9);
  ScratchDir dir("bf16");
  SaveOptions options;
  options.dtype = torch::kBFloat16;
  std::string error;
  ASSERT_TRUE(SaveModel(*model, dir / "model", options, &error)) << error;
  EXPECT_EQ(ParseConfig(testing::ReadFile(dir / "model/config.json")).torch_dtype, "bfloat16");
  auto bf16 = LoadModel(dir / "model", torch::kBFloat16, TestDevice(), &error);
  ASSERT_TRUE(bf16) << error;
  auto original = model->named_parameters();
  for (const auto& item : (*bf16)->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value().cpu(), original[item.key()].cpu().to(torch::kBFloat16))) << item.key();
  }
  // The bf16 weights run in bf16 and in fp32; the outputs agree to bf16 precision.
  auto fp32 = LoadModel(dir / "model", torch::kFloat, TestDevice(), &error);
  ASSERT_TRUE(fp32) << error;
  torch::NoGradGuard no_grad;
  torch::Tensor ids = RandomIds(1, 16, config.vocab_size, 2);
  torch::Tensor a = (*bf16)->forward(ids);
  torch::Tensor b = (*fp32)->forward(ids);
  EXPECT_EQ(a.scalar_type(), torch::kFloat);  // logits come back in float32
  double scale = b.abs().max().item<double>();
  EXPECT_LE(MaxDiff(a, b), 0.05 * scale) << "scale " << scale;
}

TEST(Checkpoint, ErrorsNameTheFileAndTheTensor) {
  ModelConfig config = LlamaGqaConfig();
  LlamaForCausalLM model = RandomModel(config, 10);
  ScratchDir dir("checkpoint_errors");
  std::string error;
  ASSERT_TRUE(SaveModel(*model, dir / "model", {}, &error)) << error;
  auto with_config = [&](const std::string& key, const nlohmann::json& value) {
    auto json = nlohmann::json::parse(testing::ReadFile(dir / "model/config.json"));
    json[key] = value;
    std::filesystem::create_directories(dir / "variant");
    std::filesystem::copy_file(dir / "model/model.safetensors", dir / "variant/model.safetensors",
                               std::filesystem::copy_options::overwrite_existing);
    testing::WriteFile(dir / "variant/config.json", json.dump());
    return dir / "variant";
  };
  EXPECT_FALSE(LoadModel(with_config("num_hidden_layers", 3), torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("no tensor `model.layers.2."), std::string::npos) << error;
  EXPECT_FALSE(LoadModel(with_config("intermediate_size", 100), torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("has shape [96, 64], but config.json makes it [100, 64]"), std::string::npos) << error;
  EXPECT_FALSE(LoadModel(with_config("num_hidden_layers", 1), torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("does not use"), std::string::npos) << error;
  EXPECT_FALSE(LoadModel(with_config("architectures", {"BertModel"}), torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("config.json: architecture `BertModel`"), std::string::npos) << error;

  std::string bytes = testing::ReadFile(dir / "model/model.safetensors");
  testing::WriteFile(dir / "model/model.safetensors", bytes.substr(0, bytes.size() / 2));
  EXPECT_FALSE(LoadModel(dir / "model", torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("model.safetensors: tensor `"), std::string::npos) << error;
  std::filesystem::remove(dir / "model/model.safetensors");
  EXPECT_FALSE(LoadModel(dir / "model", torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("no model.safetensors or model.safetensors.index.json"), std::string::npos) << error;
  testing::WriteFile(dir / "model/model.safetensors.index.json",
                     R"({"weight_map": {"model.norm.weight": "../elsewhere.safetensors"}})");
  EXPECT_FALSE(LoadModel(dir / "model", torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("not a file name in the directory"), std::string::npos) << error;
  EXPECT_FALSE(LoadModel(dir / "absent", torch::kFloat, torch::kCPU, &error));
  EXPECT_NE(error.find("not a model directory"), std::string::npos) << error;
  // SaveModel refuses to overwrite a directory that is not a model.
  std::filesystem::create_directories(dir / "precious");
  testing::WriteFile(dir / "precious/notes.txt", "keep me");
  EXPECT_FALSE(SaveModel(*model, dir / "precious", {}, &error));
  EXPECT_EQ(testing::ReadFile(dir / "precious/notes.txt"), "keep me");
}

TEST(Initialization, IsDeterministicForASeed) {
  ModelConfig config = Qwen2Config();
  LlamaForCausalLM a(config);
  LlamaForCausalLM b(config);
  LlamaForCausalLM c(config);
  InitializeWeights(*a, 1);
  InitializeWeights(*b, 1);
  InitializeWeights(*c, 2);
  auto pb = b->named_parameters();
  auto pc = c->named_parameters();
  bool any_differs = false;
  for (const auto& item : a->named_parameters()) {
    EXPECT_TRUE(torch::equal(item.value(), pb[item.key()])) << item.key();
    any_differs |= !torch::equal(item.value(), pc[item.key()]);
    if (item.key().ends_with("norm.weight")) {
      EXPECT_TRUE(torch::all(item.value() == 1).item<bool>());
    }
    if (item.key().ends_with(".bias")) {
      EXPECT_TRUE(torch::all(item.value() == 0).item<bool>());
    }
  }
  EXPECT_TRUE(any_differs);
  double std = a->model->embed_tokens->weight.std().item<double>();
  EXPECT_NEAR(std, config.initializer_range, 0.02);
}

}  // namespace
}  // namespace fusec::rt
