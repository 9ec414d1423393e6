// fusec-bench: a FusePO-DPO optimizer step in fusec against the same step computed the TRL way.
//
// Why a separate program: both sides must see the same weights, data and optimizer, and their memory must be
// measured apart. So the orchestrator (the default command) writes one workload directory (a policy and a
// reference model, the steps' prompts and weighted pairs, the settings), then runs each side in a process of
// its own: bench/baseline_trl_dpo.py under /usr/bin/python3, and itself as `fusec-bench workload` for fusec.
// The loss head's memory is measured the same way (`fusec-bench head`, naive and chunked, one process each).
// Every figure it prints is measured in that run: step times, tokens per second, peak memory, first-step
// losses, and the achieved FLOP/s against a matrix-multiply peak it measures first.
#include <sys/resource.h>
#include <torch/torch.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#ifdef FUSEC_BENCH_CUDA_STATS  // LibTorch built with CUDA (the device machine's)
#include <c10/cuda/CUDACachingAllocator.h>
#endif

#include "bench/bench_children.h"
#include "bench/collectives_bench.h"
#include "bench/generate_bench.h"
#include "compiler/driver/driver.h"
#include "runtime/exec/ref_logprobs.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/inference.h"
#include "runtime/support/torch_compat.h"
#include "runtime/train/trainer.h"

namespace fusec::bench {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using rt::LlamaForCausalLM;
using rt::LogProbOptions;

// --- configurations ---

/// A workload size: the model, the data's shape and the loss head's separate measurement.
struct BenchConfig {
  std::string name;
  Json model;  // Hugging Face config.json
  int64_t sources = 4;
  int64_t prompts_per_step = 4;
  int64_t steps = 3;
  int64_t warmup_steps = 0;  // the first steps, run but left out of the timings (CUDA's one-time costs)
  int64_t prompt_min = 64, prompt_max = 256;
  int64_t response_min = 32, response_max = 512, response_median = 96;
  int64_t head_vocab = 128256, head_hidden = 1024, head_tokens = 4096;
  std::string device = "cpu";
  bool bf16 = false;
};


std::optional<BenchConfig> NamedConfig(const std::string& name) {
  BenchConfig config;
  config.name = name;
  if (name == "cpu") {  // the workload: hidden 256, 4 layers, 4/2 heads, intermediate 704, vocab 32000
    config.model = LlamaConfig(256, 4, 4, 2, 704, 32000);
  } else if (name == "small") {  // the same shape in miniature, for the test suite
    config.model = LlamaConfig(32, 2, 4, 2, 64, 512);
    config.prompts_per_step = 2;
    config.prompt_min = 8, config.prompt_max = 32;
    config.response_min = 4, config.response_max = 64, config.response_median = 12;
    config.head_vocab = 32000, config.head_hidden = 64, config.head_tokens = 2048;
  } else if (name == "small-bf16") {
    // The small one run as the gpu one is (bf16 autocast, a warm-up step), on the CPU: for the test suite.
    config = *NamedConfig("small");
    config.name = name;
    config.steps = 4;
    config.warmup_steps = 1;
    config.bf16 = true;
  } else if (name == "gpu") {  // scaled up for the device machine: hidden 2048, 16 layers, vocab 128256
    config.model = LlamaConfig(2048, 16, 16, 8, 5632, 128256);
    config.model["torch_dtype"] = "bfloat16";
    // One prompt a step: by our estimate the baseline's 8 padded rows of up to 1872 tokens (`--shape`) keep
    // about 55 GB of activations (235 KiB a token a layer, measured on the CPU under bf16 autocast) and 30 GB
    // of float32 logits and their gradients beside 26 GB of weights, gradients and AdamW moments (policy and
    // reference): about 110 GB, an H200's. Two prompts would not fit.
    config.prompts_per_step = 1;
    config.steps = 4;
    config.warmup_steps = 1;
    config.prompt_min = 128, config.prompt_max = 512;
    config.response_min = 64, config.response_max = 1536, config.response_median = 384;
    config.head_tokens = 8192;
    config.device = "cuda";
    config.bf16 = true;
  } else {
    return std::nullopt;
  }
  return config;
}

// --- the workload ---

/// Settings both sides use: AdamW, a constant learning rate, gradient clipping at 1, DPO's beta.
Json OptimizerSettings() {
  return {{"lr", 1e-5},          {"betas", {0.9, 0.999}}, {"eps", 1e-8},
          {"weight_decay", 0.0}, {"grad_clip", 1.0},      {"beta", 0.1}};
}

/// Random token ids in [1, vocab) (0 is the baseline's pad id).
std::vector<int32_t> RandomTokens(std::mt19937_64& rng, int64_t count, int64_t vocab) {
  std::uniform_int_distribution<int32_t> token(1, static_cast<int32_t>(vocab - 1));
  std::vector<int32_t> ids(static_cast<size_t>(count));
  for (int32_t& id : ids) id = token(rng);
  return ids;
}

/// The steps: each prompt (uniform length) with K pairs whose responses have log-normal lengths (median
/// `response_median`, clipped to [min, max]: a long tail), and the FusePO source weights, a softmax over the
/// sources' (random) best rewards at temperature 1.
Json MakeSteps(const BenchConfig& config, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::uniform_int_distribution<int64_t> prompt_length(config.prompt_min, config.prompt_max);
  std::lognormal_distribution<double> response_length(std::log(static_cast<double>(config.response_median)), 0.8);
  std::uniform_real_distribution<double> reward(0.0, 1.0);
  const int64_t vocab = config.model["vocab_size"].get<int64_t>();
  auto response = [&]() {
    auto length = static_cast<int64_t>(std::lround(response_length(rng)));
    return RandomTokens(rng, std::clamp(length, config.response_min, config.response_max), vocab);
  };
  Json steps = Json::array();
  for (int64_t s = 0; s < config.steps; ++s) {
    Json step = Json::array();
    for (int64_t p = 0; p < config.prompts_per_step; ++p) {
      std::vector<double> rewards;
      double total = 0;
      for (int64_t k = 0; k < config.sources; ++k) total += rewards.emplace_back(std::exp(reward(rng)));
      Json pairs = Json::array();
      for (int64_t k = 0; k < config.sources; ++k) {
        pairs.push_back(
            {{"chosen", response()}, {"rejected", response()}, {"weight", rewards[static_cast<size_t>(k)] / total}});
      }
      step.push_back({{"prompt", RandomTokens(rng, prompt_length(rng), vocab)}, {"pairs", pairs}});
    }
    steps.push_back(step);
  }
  return steps;
}

void WriteModel(const Json& config_json, uint64_t seed, const fs::path& dir) {
  std::string error;
  auto config = rt::ParseModelConfig(config_json.dump(), &error);
  if (!config) throw std::runtime_error("bench model config: " + error);
  LlamaForCausalLM model(*config);
  rt::InitializeWeights(*model, seed);
  fs::remove_all(dir);
  if (!rt::SaveModel(*model, dir.string(), {}, &error)) throw std::runtime_error(error);
}

inline constexpr uint64_t kStepsSeed = 7;

/// Writes the workload directory: policy/ and reference/ (different seeds, so the first step's loss is not
/// the trivial log 2), workload.json.
void WriteWorkload(const BenchConfig& config, const fs::path& dir) {
  fs::create_directories(dir);
  WriteModel(config.model, 1, dir / "policy");
  WriteModel(config.model, 2, dir / "reference");
  Json workload = {
      {"config", config.name}, {"settings", OptimizerSettings()}, {"steps", MakeSteps(config, kStepsSeed)}};
  std::ofstream(dir / "workload.json") << workload.dump() << "\n";
}

// --- measurements ---

int64_t PeakResidentBytes() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<int64_t>(usage.ru_maxrss) * 1024;
}

int64_t CurrentResidentBytes() {
  std::ifstream statm("/proc/self/statm");
  int64_t size = 0, resident = 0;
  statm >> size >> resident;
  return resident * static_cast<int64_t>(sysconf(_SC_PAGESIZE));
}

/// Memory in use on `device` now (resident set on the CPU, the caching allocator's bytes on CUDA), and its
/// peak so far; null where this build cannot tell (CUDA without c10_cuda).
Json MemoryInUse(const torch::Device& device, bool peak) {
  if (!device.is_cuda()) return peak ? PeakResidentBytes() : CurrentResidentBytes();
#ifdef FUSEC_BENCH_CUDA_STATS
  const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.has_index() ? device.index() : 0);
  const auto& allocated = stats.allocated_bytes[0];  // the aggregate over the small and large pools
  return static_cast<int64_t>(peak ? allocated.peak : allocated.current);
#else
  return nullptr;
#endif
}

void Synchronize(const torch::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize();
}

/// Pays CUDA's one-time costs (the context, the cuBLAS handle) before anything is timed; nothing on the CPU.
void WarmUp(const torch::Device& device, bool bf16) {
  if (!device.is_cuda()) return;
  auto options = torch::TensorOptions().device(device).dtype(bf16 ? torch::kBFloat16 : torch::kFloat);
  torch::Tensor square = torch::ones({256, 256}, options);
  torch::matmul(square, square);
  Synchronize(device);
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

/// The matrix-multiply peak of this machine now: the best of a few square products (fp32 on the CPU, bf16 on
/// CUDA), in FLOP/s.
double MeasureMatmulPeak(const torch::Device& device, bool bf16) {
  const int64_t n = device.is_cuda() ? 8192 : 2048;
  auto options = torch::TensorOptions().device(device).dtype(bf16 ? torch::kBFloat16 : torch::kFloat);
  torch::Tensor a = torch::randn({n, n}, options), b = torch::randn({n, n}, options);
  double best = 1e30;
  for (int i = 0; i < 5; ++i) {
    Synchronize(device);
    auto start = std::chrono::steady_clock::now();
    torch::Tensor c = torch::matmul(a, b);
    Synchronize(device);
    best = std::min(best, Seconds(start));
  }
  return 2.0 * static_cast<double>(n * n * n) / best;
}

/// Model FLOPs: a forward's matmuls cost 2 * params a token; attention 4 * hidden * queries * keys a layer
/// (scores and the weighted sum; eager attention computes masked entries too). Training is the policy's
/// forward and backward (3 forwards) plus the reference's forward: 4 forwards in all.
struct FlopModel {
  double hidden, layers, matmul_params;

  explicit FlopModel(const Json& model) {
    hidden = model["hidden_size"].get<double>();
    layers = model["num_hidden_layers"].get<double>();
    const double head_dim = hidden / model["num_attention_heads"].get<double>();
    const double kv = model["num_key_value_heads"].get<double>() * head_dim;
    const double per_layer =
        hidden * hidden * 2 + hidden * kv * 2 + 3 * hidden * model["intermediate_size"].get<double>();
    matmul_params = layers * per_layer + hidden * model["vocab_size"].get<double>();
  }
  double Tokens(double tokens) const { return 4 * 2 * matmul_params * tokens; }
  double Attention(double queries, double keys) const { return 4 * 4 * hidden * layers * queries * keys; }
};

/// The FLOPs a step needs, the same numerator for both sides: every pair side's prompt + response as one
/// causal sequence (attention over half the square).
double StepFlops(const FlopModel& flops, const Json& step) {
  double total = 0;
  for (const Json& prompt : step) {
    const auto prompt_length = static_cast<double>(prompt["prompt"].size());
    for (const Json& pair : prompt["pairs"]) {
      for (const char* side : {"chosen", "rejected"}) {
        const double length = prompt_length + static_cast<double>(pair[side].size());
        total += flops.Tokens(length) + flops.Attention(length, length) / 2;
      }
    }
  }
  return total;
}

/// The FLOPs each side executes: the baseline computes 2 * pairs rows padded to the longest, attention over
/// the whole square; fusec computes each prompt once and each response against the prompt and itself.
std::pair<double, double> ExecutedFlops(const FlopModel& flops, const Json& step) {
  double width = 0, rows = 0, fusec = 0;
  for (const Json& prompt : step) {
    const auto prompt_length = static_cast<double>(prompt["prompt"].size());
    fusec += flops.Tokens(prompt_length) + flops.Attention(prompt_length, prompt_length);
    for (const Json& pair : prompt["pairs"]) {
      for (const char* side : {"chosen", "rejected"}) {
        const auto length = static_cast<double>(pair[side].size());
        width = std::max(width, prompt_length + length);
        rows += 1;
        fusec += flops.Tokens(length) + flops.Attention(length, prompt_length + length);
      }
    }
  }
  return {rows * (flops.Tokens(width) + flops.Attention(width, width)), fusec};
}

/// Prompt + response tokens of every pair side of a step.
int64_t StepTokens(const Json& step) {
  int64_t tokens = 0;
  for (const Json& prompt : step) {
    for (const Json& pair : prompt["pairs"]) {
      tokens += 2 * static_cast<int64_t>(prompt["prompt"].size()) +
                static_cast<int64_t>(pair["chosen"].size() + pair["rejected"].size());
    }
  }
  return tokens;
}

// --- the fusec side (`fusec-bench workload`) ---

/// The DPO loss graph as fusec's compiler plans it from the stdlib objective (a bench.fuse written into the
/// workload directory, planned as `fusec run` plans it).
std::pair<ir::LossGraph, ir::Requirements> CompiledDpo(double beta, const std::string& stdlib, const fs::path& dir) {
  std::ostringstream text;
  text << "import std.objectives.{dpo}\n"
       << "experiment bench {\n  target = hf_model(\"policy\")\n  data = jsonl(\"workload.jsonl\")\n"
       << "  stage po = fuse_po {\n    init = target\n    objective = dpo(beta: " << beta << ")\n  }\n}\n";
  const fs::path file = dir / "bench.fuse";
  std::ofstream(file) << text.str();
  PlanRequest request;
  request.file = file.string();
  request.stdlib = stdlib;
  request.cache = (dir / "cache").string();
  std::ostringstream diagnostics;
  std::unique_ptr<PlannedProgram> plan = PlanForRun(request, diagnostics);
  if (!plan) throw std::runtime_error(diagnostics.str());
  for (const ir::Node& node : plan->graph.nodes) {
    if (const auto* train = node.get_if<ir::Train>()) return {train->loss, *train->requirements};
  }
  throw std::runtime_error("the bench experiment has no training stage");
}

/// Runs fusec's FusePO-DPO on the workload and prints one JSON line: the reference pass's time, each step's
/// time and loss, the peak resident memory.
int RunFusecWorkload(const fs::path& dir, const std::string& device_name, bool bf16,
                     const std::vector<std::string>& off, const std::string& stdlib) {
  const torch::Device device(device_name);
  std::ifstream in(dir / "workload.json");
  const Json workload = Json::parse(in);
  const Json& settings_json = workload["settings"];
  std::string error;
  auto policy = rt::LoadModel((dir / "policy").string(), torch::kFloat, device, &error);
  auto reference = rt::LoadModel((dir / "reference").string(), torch::kFloat, device, &error);
  if (!policy || !reference) throw std::runtime_error(error);
  auto [loss, needs] = CompiledDpo(settings_json["beta"].get<double>(), stdlib, dir);

  // One prompt a step position; its 2K responses are the chosen and rejected of each source's pair.
  rt::TrainData data;
  data.items.roles = {"chosen", "rejected"};
  for (const Json& step : workload["steps"]) {
    for (const Json& prompt : step) {
      const auto p = static_cast<uint32_t>(data.prompt_ids.size());
      data.prompt_ids.push_back(prompt["prompt"].get<std::vector<int32_t>>());
      data.response_ids.emplace_back();
      data.rewards.emplace_back();
      for (const Json& pair : prompt["pairs"]) {
        const auto chosen = static_cast<int32_t>(data.response_ids[p].size());
        data.response_ids[p].push_back(pair["chosen"].get<std::vector<int32_t>>());
        data.response_ids[p].push_back(pair["rejected"].get<std::vector<int32_t>>());
        data.rewards[p].insert(data.rewards[p].end(), {1.0, 0.0});
        data.items.items.push_back(rt::Item{p, {chosen, chosen + 1}, -1, pair["weight"].get<double>()});
      }
    }
  }
  auto is_off = [&](const std::string& name) {
    return std::find(off.begin(), off.end(), name) != off.end() ||
           std::find(off.begin(), off.end(), "all") != off.end();
  };
  LogProbOptions logprobs;
  logprobs.pack = !is_off("pack");
  logprobs.share_prompts = logprobs.pack && !is_off("share");  // sharing lives inside a packed row
  logprobs.chunked_head = !is_off("chunk");

  // The reference log-probabilities, precomputed once for every step (the graph's hoisted ref_logprobs).
  WarmUp(device, bf16);
  auto start = std::chrono::steady_clock::now();
  {
    rt::compat::AutocastScope autocast(bf16, device.type(), at::kBFloat16);
    data.ref_logp = rt::ReferenceLogprobs(**reference, data, /*batch_tokens=*/16384, logprobs);  // fusec run's body
  }
  Synchronize(device);
  const double ref_seconds = Seconds(start);
  reference.reset();

  rt::TrainSettings settings;
  settings.spec.optim.lr = settings_json["lr"].get<double>();
  settings.spec.optim.beta1 = settings_json["betas"][0].get<double>();
  settings.spec.optim.beta2 = settings_json["betas"][1].get<double>();
  settings.spec.optim.eps = settings_json["eps"].get<double>();
  settings.spec.optim.weight_decay = settings_json["weight_decay"].get<double>();
  settings.spec.grad_clip = settings_json["grad_clip"].get<double>();
  settings.spec.optim.warmup = 0;
  settings.spec.optim.schedule = ir::Schedule::Constant;
  settings.spec.epochs = 1;
  settings.spec.batch = static_cast<int64_t>(workload["steps"][0].size());
  settings.spec.micro_batch = settings.spec.batch;
  settings.shuffle = false;  // step k holds the baseline's step k prompts
  settings.bf16_autocast = bf16;
  settings.logprobs = logprobs;
  settings.length_aware_batches = !is_off("length");
  std::vector<double> step_seconds, losses;
  rt::TrainOptions options;
  options.stage = "bench/po";
  Synchronize(device);
  start = std::chrono::steady_clock::now();
  options.on_step = [&](const rt::StepMetrics& metrics) {
    Synchronize(device);
    step_seconds.push_back(Seconds(start));
    losses.push_back(metrics.loss);
    std::cerr << "  fusec step " << metrics.step << "/" << metrics.total_steps << ": " << std::fixed
              << std::setprecision(2) << step_seconds.back() << " s, loss " << std::setprecision(6) << metrics.loss
              << std::defaultfloat << "\n";
    start = std::chrono::steady_clock::now();
  };
  rt::Train(**policy, data, loss, needs, settings, options);
  Json out = {{"ref_seconds", ref_seconds},
              {"step_seconds", step_seconds},
              {"losses", losses},
              {"peak_bytes", MemoryInUse(device, /*peak=*/true)}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// --- the loss head alone (`fusec-bench head`) ---

/// Forward and backward of the loss head on random hidden states, naive or chunked, in a fresh process:
/// prints the best time of two runs and the peak memory above what the inputs and the weight hold.
int RunHead(const std::string& mode, int64_t vocab, int64_t hidden_size, int64_t tokens, const std::string& device_name,
            bool bf16) {
  const torch::Device device(device_name);
  torch::manual_seed(0);
  torch::Tensor hidden = torch::randn({tokens, hidden_size}, torch::TensorOptions().device(device)).requires_grad_();
  torch::Tensor weight =
      (torch::randn({vocab, hidden_size}, torch::TensorOptions().device(device)) * 0.02).requires_grad_();
  torch::Tensor targets = torch::randint(vocab, {tokens}, torch::TensorOptions().device(device).dtype(torch::kLong));
  WarmUp(device, bf16);
  const Json before = MemoryInUse(device, /*peak=*/false);
  double best = 1e30, value = 0;
  for (int run = 0; run < 2; ++run) {
    hidden.mutable_grad().reset();
    weight.mutable_grad().reset();
    auto start = std::chrono::steady_clock::now();
    torch::Tensor logp;
    {
      rt::compat::AutocastScope autocast(bf16, device.type(), at::kBFloat16);
      if (mode == "chunked") {
        logp = rt::ChunkedTokenLogProbs(hidden, weight, targets, LogProbOptions{}.ChunkTokens(vocab));
      } else {
        logp = torch::log_softmax(torch::matmul(hidden, weight.t()), -1).gather(1, targets.unsqueeze(1)).squeeze(1);
      }
    }
    torch::Tensor total = logp.sum();
    total.backward();
    Synchronize(device);
    best = std::min(best, Seconds(start));
    value = total.item<double>();
  }
  const Json peak = MemoryInUse(device, /*peak=*/true);
  Json out = {{"mode", mode},
              {"seconds", best},
              {"sum_logp", value},
              {"peak_bytes", before.is_null() ? Json(nullptr) : Json(peak.get<int64_t>() - before.get<int64_t>())}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// --- the orchestrator ---



/// The last `count` non-empty lines of `text`, joined by " / ": the gist of a failed child's output.
std::string LastLines(const std::string& text, size_t count) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) {
    if (line.find_first_not_of(" \t") != std::string::npos) lines.push_back(line);
  }
  std::string gist;
  for (size_t i = lines.size() > count ? lines.size() - count : 0; i < lines.size(); ++i) {
    gist += (gist.empty() ? "" : " / ") + lines[i];
  }
  return gist;
}

/// The mean of values[from:], the steps after the warm-up ones.
double MeanFrom(const Json& values, size_t from) {
  double sum = 0;
  for (size_t i = from; i < values.size(); ++i) sum += values[i].get<double>();
  return values.size() <= from ? 0 : sum / static_cast<double>(values.size() - from);
}

std::string Mib(const Json& bytes) {
  if (bytes.is_null()) return "n/a";
  std::ostringstream out;
  out << std::fixed << std::setprecision(0) << bytes.get<double>() / (1 << 20) << " MiB";
  return out.str();
}

struct OrchestratorOptions {
  std::string config = "cpu";
  std::string dir;
  std::string python = "/usr/bin/python3";
  std::string baseline;
  std::string stdlib;
  bool skip_head = false;
  bool ablate = false;
  bool shape = false;
  double nominal_peak_tflops = 0;  // a datasheet figure; 0: report against the measured peak only
};

/// `--shape`: what each step of a configuration holds and what the two sides would compute, without running
/// anything (no model is written, no device needed): for sizing a run before spending device time on it.
int PrintShape(const BenchConfig& config) {
  const Json steps = MakeSteps(config, kStepsSeed);
  const FlopModel flop_model(config.model);
  const auto vocab = config.model["vocab_size"].get<double>();
  std::cout << std::fixed << std::setprecision(1);
  std::cout << "Workload `" << config.name << "`: " << config.model["hidden_size"] << " hidden, "
            << config.model["num_hidden_layers"] << " layers, vocab " << config.model["vocab_size"] << ", "
            << flop_model.matmul_params / 1e6 << " M matmul parameters\n\n"
            << "| step | pair-side tokens | baseline rows x width | baseline float32 logits | fusec tokens | "
               "model GFLOP | executed GFLOP, baseline / fusec |\n|---:|---:|---:|---:|---:|---:|---:|\n";
  for (size_t s = 0; s < steps.size(); ++s) {
    const Json& step = steps[s];
    int64_t rows = 0, width = 0, fusec_tokens = 0;
    for (const Json& prompt : step) {
      const auto prompt_length = static_cast<int64_t>(prompt["prompt"].size());
      fusec_tokens += prompt_length;
      for (const Json& pair : prompt["pairs"]) {
        for (const char* side : {"chosen", "rejected"}) {
          const auto length = static_cast<int64_t>(pair[side].size());
          width = std::max(width, prompt_length + length);
          fusec_tokens += length;
          ++rows;
        }
      }
    }
    auto [baseline_executed, fusec_executed] = ExecutedFlops(flop_model, step);
    std::cout << "| " << s + 1 << (static_cast<int64_t>(s) < config.warmup_steps ? " (warm-up)" : "") << " | "
              << StepTokens(step) << " | " << rows << " x " << width << " | "
              << static_cast<double>(rows * width) * vocab * 4 / (1 << 30) << " GiB | " << fusec_tokens << " | "
              << StepFlops(flop_model, step) / 1e9 << " | " << baseline_executed / 1e9 << " / " << fusec_executed / 1e9
              << " |\n";
  }
  return 0;
}

int Orchestrate(const OrchestratorOptions& options, const std::string& self) {
  auto config = NamedConfig(options.config);
  if (!config) {
    std::cerr << "fusec-bench: unknown --config `" << options.config << "` (cpu, small, small-bf16 or gpu)\n";
    return 2;
  }
  if (options.shape) return PrintShape(*config);
  const fs::path dir = options.dir.empty() ? fs::path("build/bench") / config->name : fs::path(options.dir);
  const torch::Device device(config->device);
  if (device.is_cuda() && !torch::cuda::is_available()) {
    std::cerr << "fusec-bench: --config " << config->name << " needs CUDA, and this LibTorch or machine has none\n";
    return 2;
  }
  std::cerr << "fusec-bench: workload `" << config->name << "` in " << dir.string() << "\n";
  WriteWorkload(*config, dir);
  std::ifstream in(dir / "workload.json");
  const Json workload = Json::parse(in);
  // The figures cover the timed steps, those after the warm-up ones.
  const auto warmup = static_cast<size_t>(config->warmup_steps);
  const FlopModel flop_model(config->model);
  double flops = 0, baseline_executed = 0, fusec_executed = 0;
  int64_t tokens = 0;
  for (size_t s = warmup; s < workload["steps"].size(); ++s) {
    const Json& step = workload["steps"][s];
    flops += StepFlops(flop_model, step);
    auto [baseline_step_flops, fusec_step_flops] = ExecutedFlops(flop_model, step);
    baseline_executed += baseline_step_flops;
    fusec_executed += fusec_step_flops;
    tokens += StepTokens(step);
  }
  const auto all_steps = static_cast<double>(workload["steps"].size());
  const auto steps = all_steps - static_cast<double>(warmup);
  const double peak = MeasureMatmulPeak(device, config->bf16);
  std::cerr << "fusec-bench: matrix-multiply peak " << peak / 1e9 << " GFLOP/s (" << (config->bf16 ? "bf16" : "fp32")
            << " on " << device.str() << ", " << at::get_num_threads() << " threads)\n";

  std::string device_flags = " --device " + config->device + (config->bf16 ? " --bf16" : "");
  std::cerr << "fusec-bench: the baseline (TRL's way) ...\n";
  // A baseline that fails (out of memory, most likely, on a GPU too small for TRL's way) still leaves fusec's
  // figures worth printing; its column then says so and the run ends with exit status 1.
  Json baseline;
  std::optional<std::string> baseline_failure;
  try {
    baseline = RunChild(
        Quote(options.python) + " " + Quote(options.baseline) + " " + Quote(dir.string()) + device_flags, "the baseline");
  } catch (const std::runtime_error& error) {
    baseline_failure = LastLines(error.what(), 2);
    std::cerr << "fusec-bench: " << error.what() << "\n";
  }
  std::cerr << "fusec-bench: fusec ...\n";
  Json fusec = RunChild(
      Quote(self) + " workload --dir " + Quote(dir.string()) + device_flags + " --stdlib " + Quote(options.stdlib),
      "fusec's workload");

  // fusec's step time includes its share of the precomputed reference pass, which serves every step.
  auto fusec_step_of = [&](const Json& run) {
    return MeanFrom(run["step_seconds"], warmup) + run["ref_seconds"].get<double>() / all_steps;
  };
  const double nan = std::nan("");
  const double baseline_step = baseline_failure ? nan : MeanFrom(baseline["step_seconds"], warmup);
  const double fusec_step = fusec_step_of(fusec);
  const double baseline_loss = baseline_failure ? nan : baseline["losses"][0].get<double>();
  const double fusec_loss = fusec["losses"][0].get<double>();
  const double loss_rel_diff = std::abs(fusec_loss - baseline_loss) / std::max(std::abs(baseline_loss), 1e-30);
  // In float32 both sides compute the same sums to rounding; under bf16 autocast each side's matmuls round
  // differently (other shapes, other kernels), and the log-prob sums over hundreds of tokens carry that.
  const double loss_tolerance = config->bf16 ? 2e-2 : 1e-4;
  const double tokens_per_step = static_cast<double>(tokens) / steps;
  const double flops_step = flops / steps;
  // A table cell: the value with `precision` decimals and `unit`, or "failed" for the failed baseline's NaNs.
  auto cell = [](double value, int precision, const std::string& unit = "") {
    if (std::isnan(value)) return std::string("failed");
    std::ostringstream text;
    text << std::fixed << std::setprecision(precision) << value << unit;
    return text.str();
  };

  std::cout << std::fixed;
  std::cout << "\nFusePO-DPO optimizer step, workload `" << config->name << "` on " << device.str() << " ("
            << config->model["hidden_size"] << " hidden, " << config->model["num_hidden_layers"] << " layers, vocab "
            << config->model["vocab_size"] << "; " << config->prompts_per_step << " prompts x " << config->sources
            << " pairs a step, " << workload["steps"].size() << " steps"
            << (warmup == 0   ? ""
                : warmup == 1 ? ", the first a warm-up left out of the timings"
                              : ", the first " + std::to_string(warmup) + " warm-ups left out of the timings")
            << "; " << std::setprecision(0) << tokens_per_step << " prompt+response tokens a step)\n\n";
  std::cout << "| | baseline (TRL's way) | fusec |\n|---|---:|---:|\n";
  std::cout << "| time per step (s) | " << cell(baseline_step, 3) << " | " << cell(fusec_step, 3) << " (reference pass "
            << cell(fusec["ref_seconds"].get<double>(), 3) << " s in all) |\n";
  std::cout << "| tokens per second | " << cell(tokens_per_step / baseline_step, 0) << " | "
            << cell(tokens_per_step / fusec_step, 0) << " |\n";
  std::cout << "| peak memory | " << (baseline_failure ? "failed" : Mib(baseline["peak_bytes"])) << " | "
            << Mib(fusec["peak_bytes"]) << " |\n";
  std::cout << "| first-step loss | " << cell(baseline_loss, 6) << " | " << cell(fusec_loss, 6) << " |\n";
  std::cout << "| model FLOP/s, % of the matmul peak | " << cell(100 * flops_step / baseline_step / peak, 1, " %")
            << " | " << cell(100 * flops_step / fusec_step / peak, 1, " %") << " |\n";
  if (options.nominal_peak_tflops > 0) {
    const double nominal = options.nominal_peak_tflops * 1e12;
    std::cout << "| model FLOP/s, % of the nominal peak (" << cell(options.nominal_peak_tflops, 1) << " TFLOP/s) | "
              << cell(100 * flops_step / baseline_step / nominal, 1, " %") << " | "
              << cell(100 * flops_step / fusec_step / nominal, 1, " %") << " |\n";
  }
  std::cout << "| executed FLOP/s, % of the matmul peak | "
            << cell(100 * baseline_executed / steps / baseline_step / peak, 1, " %") << " | "
            << cell(100 * fusec_executed / steps / fusec_step / peak, 1, " %") << " |\n";
  std::cout << "| executed GFLOP a step | " << cell(baseline_executed / steps / 1e9, 2) << " | "
            << cell(fusec_executed / steps / 1e9, 2) << " |\n";
  std::cout << std::setprecision(1)
            << "\nModel FLOPs count every pair side's prompt + response once (the work the step "
            << "needs, " << flops_step / 1e9 << " GFLOP); executed FLOPs count what each side computes (the baseline's "
            << "padding and repeated prompts, fusec's single prompt copies). Matrix-multiply peak: " << peak / 1e9
            << " GFLOP/s, measured in this run.\n";
  if (baseline_failure) {
    std::cout << "\nthe baseline failed, so there is no speedup: " << *baseline_failure << "\n";
  } else {
    std::cout << std::setprecision(2) << "\nspeedup " << baseline_step / fusec_step << "x (target: at least 2x);"
              << std::scientific << std::setprecision(2) << " first-step loss relative difference " << loss_rel_diff
              << " (at most " << loss_tolerance << (config->bf16 ? ", bf16" : "") << ")" << std::fixed << "\n";
  }

  if (options.ablate) {
    std::cout << "\nfusec with optimisations turned off (the same workload; time includes the reference pass):\n\n"
              << "| fusec | time per step (s) | peak memory | first-step loss |\n|---|---:|---:|---:|\n";
    std::cout << std::setprecision(3) << "| everything on | " << fusec_step << " | " << Mib(fusec["peak_bytes"])
              << " | " << std::setprecision(6) << fusec_loss << " |\n";
    const std::vector<std::pair<std::string, std::string>> ablations = {
        {"pack", "no packing (padded rows, so no shared prompts either)"},
        {"share", "packing without shared prompts"},
        {"chunk", "whole-vocabulary logits instead of the chunked head"},
        {"length", "micro-batches in visiting order instead of length-aware"},
        {"all", "everything off (the usual way)"}};
    for (const auto& [name, label] : ablations) {
      std::cerr << "fusec-bench: fusec with `" << name << "` off ...\n";
      Json run = RunChild(Quote(self) + " workload --dir " + Quote(dir.string()) + device_flags + " --stdlib " +
                              Quote(options.stdlib) + " --off " + name,
                          "fusec's workload with " + name + " off");
      const double step = fusec_step_of(run);
      std::cout << std::setprecision(3) << "| " << label << " | " << step << " | " << Mib(run["peak_bytes"]) << " | "
                << std::setprecision(6) << run["losses"][0].get<double>() << " |\n";
    }
  }

  double head_ratio = std::nan("");
  if (!options.skip_head) {
    std::string head_args = " --vocab " + std::to_string(config->head_vocab) + " --hidden " +
                            std::to_string(config->head_hidden) + " --tokens " + std::to_string(config->head_tokens) +
                            device_flags;
    std::cerr << "fusec-bench: the loss head alone ...\n";
    Json naive = RunChild(Quote(self) + " head --mode naive" + head_args, "the naive head");
    Json chunked = RunChild(Quote(self) + " head --mode chunked" + head_args, "the chunked head");
    if (!naive["peak_bytes"].is_null() && !chunked["peak_bytes"].is_null()) {
      head_ratio = naive["peak_bytes"].get<double>() / std::max(chunked["peak_bytes"].get<double>(), 1.0);
    }
    std::cout << "\nLoss head alone, forward and backward: vocab " << config->head_vocab << ", hidden "
              << config->head_hidden << ", " << config->head_tokens
              << " tokens (peak memory above the inputs and the weight)\n\n";
    std::cout << "| | naive (whole logits) | chunked (" << LogProbOptions{}.ChunkTokens(config->head_vocab)
              << " tokens a chunk) |\n|---|---:|---:|\n";
    std::cout << "| peak memory | " << Mib(naive["peak_bytes"]) << " | " << Mib(chunked["peak_bytes"]) << " |\n";
    std::cout << std::setprecision(3) << "| time (s) | " << naive["seconds"].get<double>() << " | "
              << chunked["seconds"].get<double>() << " |\n";
    std::cout << std::scientific << std::setprecision(3) << "| sum of log-probs | " << naive["sum_logp"].get<double>()
              << " | " << chunked["sum_logp"].get<double>() << " |\n"
              << std::fixed;
    std::cout << std::setprecision(2) << "\nhead memory ratio " << head_ratio << "x (target: at least 4x)\n";
  }
  std::cout << std::setprecision(3) << "\nRESULT speedup=" << baseline_step / fusec_step
            << " head_memory_ratio=" << head_ratio << std::scientific << std::setprecision(2)
            << " loss_rel_diff=" << loss_rel_diff << std::endl;
  if (baseline_failure) {
    std::cerr << "fusec-bench: the baseline failed; fusec's figures are above\n";
    return 1;
  }
  if (loss_rel_diff > loss_tolerance) {
    std::cerr << "fusec-bench: the first-step losses differ by more than " << loss_tolerance
              << " relative: the two sides do not compute the same step\n";
    return 1;
  }
  return 0;
}

}  // namespace
}  // namespace fusec::bench

int main(int argc, char** argv) {
  using namespace fusec::bench;
  if (IsGenerateBench(argc, argv)) return GenerateBenchMain(argc, argv);  // --config generate: generate_bench.h
  if (IsCollectivesBench(argc, argv)) return CollectivesBenchMain(argc, argv);  // collectives_bench.h
  CLI::App app{"fusec-bench: fusec's FusePO-DPO step against TRL's way; prints tables and a RESULT line"};
  OrchestratorOptions options;
  options.baseline = FUSEC_BENCH_BASELINE;
  options.stdlib = FUSEC_SOURCE_STDLIB;
  app.add_option(
         "--config", options.config,
         "cpu (the issue's workload), small (the test suite's), small-bf16 (the test suite's, run as gpu is) or gpu")
      ->capture_default_str();
  app.add_option("--dir", options.dir, "Where the workload is written (default: build/bench/CONFIG)");
  app.add_option("--python", options.python, "The Python that runs the baseline")->capture_default_str();
  app.add_option("--baseline", options.baseline, "The baseline script")->capture_default_str();
  app.add_option("--stdlib", options.stdlib, "fusec's stdlib directory")->capture_default_str();
  app.add_flag("--skip-head", options.skip_head, "Leave out the loss-head table");
  app.add_flag("--ablate", options.ablate, "Also run fusec with each optimisation off in turn, and with all off");
  app.add_flag("--shape", options.shape,
               "Print what each step holds and what each side would compute, and run nothing (no device needed)");
  app.add_option("--nominal-peak", options.nominal_peak_tflops,
                 "The accelerator's nominal matrix-multiply peak in TFLOP/s (a datasheet figure: 989 for an H100 SXM "
                 "or H200 in bf16), to report model FLOP/s against it too")
      ->check(CLI::Range(0.001, 100000.0));

  std::string dir, device = "cpu", mode;
  bool bf16 = false;
  std::vector<std::string> off;
  int64_t vocab = 0, hidden = 0, tokens = 0;
  CLI::App* workload = app.add_subcommand("workload", "(internal) run fusec's side on a workload directory");
  workload->add_option("--dir", dir)->required();
  workload->add_option("--device", device);
  workload->add_flag("--bf16", bf16);
  workload->add_option("--off", off, "Optimisations to turn off: pack, share, chunk, length, all")
      ->check(CLI::IsMember({"pack", "share", "chunk", "length", "all"}));
  workload->add_option("--stdlib", options.stdlib);
  CLI::App* head = app.add_subcommand("head", "(internal) measure the loss head alone");
  head->add_option("--mode", mode)->required()->check(CLI::IsMember({"naive", "chunked"}));
  head->add_option("--vocab", vocab)->required();
  head->add_option("--hidden", hidden)->required();
  head->add_option("--tokens", tokens)->required();
  head->add_option("--device", device);
  head->add_flag("--bf16", bf16);
  CLI11_PARSE(app, argc, argv);
  try {
    if (*workload) return RunFusecWorkload(dir, device, bf16, off, options.stdlib);
    if (*head) return RunHead(mode, vocab, hidden, tokens, device, bf16);
    std::string self = std::filesystem::read_symlink("/proc/self/exe").string();
    return Orchestrate(options, self);
  } catch (const std::exception& error) {
    std::cerr << "fusec-bench: " << error.what() << "\n";
    return 1;
  }
}
