// fusec-bench's sampling benchmark: generation throughput of fusec against the usual Python loop.
//
// The orchestrator (`fusec-bench --config generate`) writes one workload directory: a random Llama-shaped
// model (model/, safetensors) and generate.json (the prompts, of varied lengths, and the settings: temperature,
// top-p, max_new_tokens, the stop ids, the rows at once, the seed, the thread count). Then it runs each side in
// a process of its own with the same thread count: bench/baseline_hf_generate.py under /usr/bin/python3
// (Hugging Face's `generate` loop by hand: a static left-padded batch, a cache grown by torch.cat, finished
// rows computed until their batch ends), and itself as `fusec-bench generate-side` (the engine `sample` runs:
// a KV cache and continuous batching). Each side reports its wall time without model loading, and the tokens
// it generated; throughput is generated tokens (the stop included) per second. The two sides sample different
// random streams, so their token counts differ a little; each side's throughput uses its own count.
//
// A random model rarely samples any one token, so the stop rule is a set of ids, every `stop_every`-th id of
// the vocabulary: a row ends after about `stop_every` tokens on average, with a geometric spread, as a real
// model's responses end at its EOS at varied lengths. Before the timed run both sides decode a few prompts
// greedily, which must give the same tokens: the check that both compute the same model (and a warm-up).
#include "bench/bench_children.h"
#include "bench/generate_bench.h"

#include <sys/resource.h>
#include <torch/torch.h>

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
#include <optional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "runtime/model/checkpoint.h"
#include "runtime/model/generation.h"

namespace fusec::bench {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

/// A sampling workload: the model, the prompts and the settings both sides use.
struct GenerateConfig {
  std::string name;
  Json model;  // Hugging Face config.json
  int64_t prompts = 128;
  int64_t prompt_min = 16, prompt_max = 128;
  int64_t rows = 16;  // the baseline's batch, and fusec's rows running at once
  int64_t max_new_tokens = 256;
  int64_t stop_every = 128;  // the stop ids: every stop_every-th id of the vocabulary
  double temperature = 0.8, top_p = 0.95;
  int64_t greedy_prompts = 4, greedy_new_tokens = 16;  // the check that both sides compute the same model
};


std::optional<GenerateConfig> NamedGenerateConfig(const std::string& name) {
  GenerateConfig config;
  config.name = name;
  if (name == "generate") {  // the issue's: hidden 384, 6 layers, vocab 32000; about 1-2 minutes on 2 cores
    config.model = LlamaConfig(384, 6, 6, 2, 1024, 32000);
    config.prompts = 64;
  } else if (name == "generate-tiny") {  // the test suite's: a few seconds
    config.model = LlamaConfig(32, 2, 4, 2, 64, 512);
    config.prompts = 10;
    config.prompt_min = 4, config.prompt_max = 24;
    config.rows = 4;
    config.max_new_tokens = 24;
    config.stop_every = 16;
    config.greedy_prompts = 3, config.greedy_new_tokens = 8;
  } else {
    return std::nullopt;
  }
  return config;
}

// --- the workload ---

inline constexpr uint64_t kModelSeed = 1, kPromptSeed = 7, kSamplingSeed = 13;

std::vector<int32_t> StopIds(const GenerateConfig& config) {
  std::vector<int32_t> ids;
  const auto vocab = config.model["vocab_size"].get<int32_t>();
  for (int32_t id = static_cast<int32_t>(config.stop_every); id < vocab; id += static_cast<int32_t>(config.stop_every)) {
    ids.push_back(id);
  }
  return ids;
}

/// Prompts of uniform lengths in [prompt_min, prompt_max], random ids in [1, vocab) (0 is the pad id).
Json MakePrompts(const GenerateConfig& config) {
  std::mt19937_64 rng(kPromptSeed);
  std::uniform_int_distribution<int64_t> length(config.prompt_min, config.prompt_max);
  std::uniform_int_distribution<int32_t> token(1, config.model["vocab_size"].get<int32_t>() - 1);
  Json prompts = Json::array();
  for (int64_t p = 0; p < config.prompts; ++p) {
    std::vector<int32_t> ids(static_cast<size_t>(length(rng)));
    for (int32_t& id : ids) id = token(rng);
    prompts.push_back(ids);
  }
  return prompts;
}

void WriteWorkload(const GenerateConfig& config, int64_t threads, const fs::path& dir) {
  fs::create_directories(dir);
  std::string error;
  auto model_config = rt::ParseModelConfig(config.model.dump(), &error);
  if (!model_config) throw std::runtime_error("bench model config: " + error);
  rt::LlamaForCausalLM model(*model_config);
  rt::InitializeWeights(*model, kModelSeed);
  fs::remove_all(dir / "model");
  if (!rt::SaveModel(*model, (dir / "model").string(), {}, &error)) throw std::runtime_error(error);
  const Json prompts = MakePrompts(config);
  Json greedy_prompts = Json::array();
  for (int64_t p = 0; p < std::min<int64_t>(config.greedy_prompts, config.prompts); ++p) {
    greedy_prompts.push_back(prompts[static_cast<size_t>(p)]);
  }
  Json workload = {{"config", config.name},
                   {"settings",
                    {{"temperature", config.temperature},
                     {"top_p", config.top_p},
                     {"top_k", 0},
                     {"max_new_tokens", config.max_new_tokens},
                     {"stop_ids", StopIds(config)},
                     {"pad_id", 0},
                     {"batch", config.rows},
                     {"token_budget", config.rows * (config.prompt_max + config.max_new_tokens)},
                     {"seed", kSamplingSeed},
                     {"threads", threads}}},
                   {"prompts", prompts},
                   {"greedy", {{"prompts", greedy_prompts}, {"max_new_tokens", config.greedy_new_tokens}}}};
  std::ofstream(dir / "generate.json") << workload.dump() << "\n";
}

// --- fusec's side (`fusec-bench generate-side`) ---

struct Settings {
  double temperature = 0, top_p = 1;
  int64_t top_k = 0, max_new_tokens = 0, rows = 0, token_budget = 0;
  std::vector<int32_t> stop_ids;
  uint64_t seed = 0;
};

/// Generates every prompt as `sample` does: the continuous-batching engine (generation.h), `rows` rows at once.
std::vector<std::vector<int32_t>> GenerateAll(rt::LlamaForCausalLMImpl& model,
                                              const std::vector<std::vector<int32_t>>& prompts, const Settings& s) {
  std::vector<rt::GenerationRequest> requests;
  for (size_t p = 0; p < prompts.size(); ++p) {
    requests.push_back({prompts[p], rt::StreamSeed(s.seed, "bench", std::to_string(p), 0)});
  }
  rt::SamplerSettings sampler;
  sampler.temperature = s.temperature;
  sampler.top_p = s.top_p;
  sampler.top_k = s.top_k;
  rt::GenerationLimits limits;
  limits.max_new_tokens = s.max_new_tokens;
  limits.stop_ids = s.stop_ids;
  limits.token_budget = s.token_budget;
  limits.max_rows = s.rows;
  std::vector<std::vector<int32_t>> ids;
  for (rt::Generation& generation : rt::GenerateContinuous(model, requests, sampler, limits)) {
    ids.push_back(std::move(generation.ids));
  }
  return ids;
}

double Seconds(std::chrono::steady_clock::time_point since) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - since).count();
}

/// Loads the workload's model, decodes the greedy check's prompts, then times the sampling of every prompt;
/// prints one JSON line like the baseline's.
int RunFusecSide(const fs::path& dir) {
  std::ifstream in(dir / "generate.json");
  const Json workload = Json::parse(in);
  const Json& json = workload["settings"];
  at::set_num_threads(json["threads"].get<int>());
  Settings settings;
  settings.temperature = json["temperature"].get<double>();
  settings.top_p = json["top_p"].get<double>();
  settings.top_k = json["top_k"].get<int64_t>();
  settings.max_new_tokens = json["max_new_tokens"].get<int64_t>();
  settings.rows = json["batch"].get<int64_t>();
  settings.token_budget = json["token_budget"].get<int64_t>();
  settings.stop_ids = json["stop_ids"].get<std::vector<int32_t>>();
  settings.seed = json["seed"].get<uint64_t>();
  std::string error;
  auto model = rt::LoadModel((dir / "model").string(), torch::kFloat, torch::Device("cpu"), &error);
  if (!model) throw std::runtime_error(error);
  torch::NoGradGuard no_grad;

  Settings greedy = settings;
  greedy.temperature = 0;
  greedy.max_new_tokens = workload["greedy"]["max_new_tokens"].get<int64_t>();
  const auto greedy_ids = GenerateAll(**model, workload["greedy"]["prompts"].get<std::vector<std::vector<int32_t>>>(),
                                      greedy);
  const auto prompts = workload["prompts"].get<std::vector<std::vector<int32_t>>>();
  const auto start = std::chrono::steady_clock::now();
  const auto generated = GenerateAll(**model, prompts, settings);
  const double seconds = Seconds(start);
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  Json out = {{"seconds", seconds},
              {"generated", generated},
              {"greedy", greedy_ids},
              {"peak_bytes", static_cast<int64_t>(usage.ru_maxrss) * 1024}};
  std::cout << out.dump() << std::endl;
  return 0;
}

// --- the orchestrator ---



/// What a side generated: tokens in all, rows that ended at a stop id, and, for a static batch of `rows`,
/// the row-steps its batches computed (every row until the batch's longest ends).
struct Tally {
  int64_t tokens = 0, stopped = 0, row_steps = 0;
};

Tally Count(const Json& generated, const std::vector<int32_t>& stop_ids, int64_t rows) {
  Tally tally;
  int64_t longest = 0, in_batch = 0;
  for (const Json& row : generated) {
    const auto length = static_cast<int64_t>(row.size());
    tally.tokens += length;
    if (length > 0 && std::find(stop_ids.begin(), stop_ids.end(), row.back().get<int32_t>()) != stop_ids.end()) {
      ++tally.stopped;
    }
    longest = std::max(longest, length);
    if (++in_batch == rows) tally.row_steps += rows * longest, longest = 0, in_batch = 0;
  }
  tally.row_steps += in_batch * longest;
  return tally;
}

struct GenerateOptions {
  std::string config = "generate";
  std::string dir;
  std::string python = "/usr/bin/python3";
  std::string baseline;
  int64_t threads = 0;  // 0: the machine's cores
};

int Orchestrate(const GenerateOptions& options, const std::string& self) {
  auto config = NamedGenerateConfig(options.config);
  if (!config) {
    std::cerr << "fusec-bench: unknown --config `" << options.config << "` (generate or generate-tiny)\n";
    return 2;
  }
  const int64_t threads =
      options.threads > 0 ? options.threads : std::max<int64_t>(1, std::thread::hardware_concurrency());
  const fs::path dir = options.dir.empty() ? fs::path("build/bench") / config->name : fs::path(options.dir);
  std::cerr << "fusec-bench: workload `" << config->name << "` in " << dir.string() << " (" << threads
            << " threads a side)\n";
  WriteWorkload(*config, threads, dir);
  const std::string env = "OMP_NUM_THREADS=" + std::to_string(threads) + " ";

  std::cerr << "fusec-bench: the baseline (Hugging Face's generate loop) ...\n";
  Json baseline;
  std::optional<std::string> baseline_failure;
  try {
    baseline = RunChild(env + Quote(options.python) + " " + Quote(options.baseline) + " " + Quote(dir.string()),
                        "the baseline");
  } catch (const std::runtime_error& error) {
    baseline_failure = error.what();
    std::cerr << "fusec-bench: " << error.what() << "\n";
  }
  std::cerr << "fusec-bench: fusec ...\n";
  const Json fusec = RunChild(env + Quote(self) + " generate-side --dir " + Quote(dir.string()), "fusec's side");

  const std::vector<int32_t> stop_ids = StopIds(*config);
  const double nan = std::nan("");
  const Tally fusec_tally = Count(fusec["generated"], stop_ids, config->rows);
  const Tally baseline_tally = baseline_failure ? Tally{} : Count(baseline["generated"], stop_ids, config->rows);
  const double fusec_rate = static_cast<double>(fusec_tally.tokens) / fusec["seconds"].get<double>();
  const double baseline_rate =
      baseline_failure ? nan : static_cast<double>(baseline_tally.tokens) / baseline["seconds"].get<double>();
  const bool greedy_equal = !baseline_failure && baseline["greedy"] == fusec["greedy"];
  auto cell = [](double value, int precision) {
    if (std::isnan(value)) return std::string("failed");
    std::ostringstream text;
    text << std::fixed << std::setprecision(precision) << value;
    return text.str();
  };
  auto count = [&](int64_t value) { return baseline_failure ? std::string("failed") : std::to_string(value); };

  const Json& model = config->model;
  std::cout << "\nSampling throughput, workload `" << config->name << "` (hidden " << model["hidden_size"] << ", "
            << model["num_hidden_layers"] << " layers, vocab " << model["vocab_size"] << "; " << config->prompts
            << " prompts of " << config->prompt_min << "-" << config->prompt_max << " tokens, " << config->rows
            << " rows at once, temperature " << config->temperature << ", top-p " << config->top_p
            << ", max_new_tokens " << config->max_new_tokens << ", " << stop_ids.size() << " stop ids; " << threads
            << " threads a side)\n\n";
  std::cout << "| | Python (HF-style generate, static batch) | fusec |\n|---|---:|---:|\n";
  std::cout << "| generated tokens | " << count(baseline_tally.tokens) << " | " << fusec_tally.tokens << " |\n";
  std::cout << "| rows ended at a stop id | " << count(baseline_tally.stopped) << " / " << config->prompts << " | "
            << fusec_tally.stopped << " / " << config->prompts << " |\n";
  std::cout << "| wall time, model loading excluded (s) | "
            << cell(baseline_failure ? nan : baseline["seconds"].get<double>(), 2) << " | "
            << cell(fusec["seconds"].get<double>(), 2) << " |\n";
  std::cout << "| tokens per second | " << cell(baseline_rate, 1) << " | " << cell(fusec_rate, 1) << " |\n";
  std::cout << "| peak memory (MiB) | "
            << cell(baseline_failure ? nan : baseline["peak_bytes"].get<double>() / (1 << 20), 0) << " | "
            << cell(fusec["peak_bytes"].get<double>() / (1 << 20), 0) << " |\n";
  if (!baseline_failure) {
    std::cout << "\nThe baseline's static batches computed " << baseline_tally.row_steps << " row-steps for "
              << baseline_tally.tokens << " tokens: "
              << cell(100.0 * static_cast<double>(baseline_tally.row_steps - baseline_tally.tokens) /
                          static_cast<double>(std::max<int64_t>(baseline_tally.row_steps, 1)),
                      1)
              << " % of its decoding went to rows that had already ended.\n";
    std::cout << "Greedy check (" << fusec["greedy"].size() << " prompts, " << config->greedy_new_tokens
              << " tokens each): " << (greedy_equal ? "the same tokens on both sides" : "the tokens DIFFER") << "\n";
    std::cout << "\nspeedup " << cell(fusec_rate / baseline_rate, 2) << "x (target: at least 2x)\n";
  } else {
    std::cout << "\nthe baseline failed, so there is no speedup: " << *baseline_failure << "\n";
  }
  std::cout << std::fixed << std::setprecision(1) << "\nRESULT generate fusec_tok_s=" << fusec_rate
            << " python_tok_s=" << baseline_rate << std::setprecision(3) << " speedup=" << fusec_rate / baseline_rate
            << std::endl;
  if (baseline_failure) return 1;
  if (!greedy_equal) {
    std::cerr << "fusec-bench: the greedy check's tokens differ: the two sides do not compute the same model\n"
              << "  baseline: " << baseline["greedy"].dump() << "\n  fusec:    " << fusec["greedy"].dump() << "\n";
    return 1;
  }
  return 0;
}

}  // namespace

bool IsGenerateBench(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i == 1 && arg == "generate-side") return true;
    if (arg.starts_with("--config=generate")) return true;
    if (arg == "--config" && i + 1 < argc && std::string(argv[i + 1]).starts_with("generate")) return true;
  }
  return false;
}

int GenerateBenchMain(int argc, char** argv) {
  CLI::App app{"fusec-bench --config generate: fusec's sampling throughput against Hugging Face's generate loop"};
  GenerateOptions options;
  options.baseline = FUSEC_BENCH_GENERATE_BASELINE;
  app.add_option("--config", options.config, "generate (the issue's workload) or generate-tiny (the test suite's)")
      ->capture_default_str();
  app.add_option("--dir", options.dir, "Where the workload is written (default: build/bench/CONFIG)");
  app.add_option("--python", options.python, "The Python that runs the baseline")->capture_default_str();
  app.add_option("--baseline", options.baseline, "The baseline script")->capture_default_str();
  app.add_option("--threads", options.threads, "Threads a side (default: the machine's cores)")
      ->check(CLI::Range(1, 1024));
  std::string side_dir;
  CLI::App* side = app.add_subcommand("generate-side", "(internal) run fusec's side on a workload directory");
  side->add_option("--dir", side_dir)->required();
  CLI11_PARSE(app, argc, argv);
  try {
    if (*side) return RunFusecSide(side_dir);
    return Orchestrate(options, fs::read_symlink("/proc/self/exe").string());
  } catch (const std::exception& error) {
    std::cerr << "fusec-bench: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace fusec::bench
