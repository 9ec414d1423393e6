// `fusec-bench --config collectives`: the orchestrator starts N local ranks of this binary (N = 2, then 3),
// each running `collectives-rank`: the same random Llama model on every rank, a few data-parallel steps of
// random tokens (a forward, the loss, backward with the gradient buckets' sums started from the hooks, and
// their wait), and the figures of the steps after the first written to a JSON file per rank. Each world runs
// both paths of the gradient buckets: every rank gets every sum (`shard = none | optimizer`: all-reduce) and
// sums to owners (`shard = gradients`, the default: each bucket reduced to the rank owning its parameters).
// Then one table and a RESULT line.

#include "bench/collectives_bench.h"

#include <torch/torch.h>

#include <CLI/CLI.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iomanip>
#include <iostream>
#include <nlohmann/json.hpp>
#include <optional>
#include <sstream>
#include <thread>

#include "bench/bench_children.h"
#include "runtime/dist/gradient_buckets.h"
#include "runtime/dist/rank_group.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/config.h"
#include "runtime/model/llama.h"
#include "runtime/support/launch_environment.h"
#include "runtime/support/local_ranks.h"
#include "runtime/train/optimizer_shard.h"

namespace fusec::bench {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;
using Clock = std::chrono::steady_clock;

struct CollectivesConfig {
  std::string name;
  Json model;
  int64_t sequences = 4;  // per rank and step
  int64_t length = 128;
  int64_t steps = 6;      // the first is a warm-up, not counted
};

std::optional<CollectivesConfig> NamedCollectivesConfig(const std::string& name) {
  CollectivesConfig config;
  config.name = name;
  if (name == "collectives") {  // 15.6 M parameters (62.3 MB of fp32 gradients, 3 buckets); about 10 s on 2 cores
    config.model = LlamaConfig(384, 6, 6, 2, 1024, 8000);
  } else if (name == "collectives-tiny") {  // the test suite's: a few seconds
    config.model = LlamaConfig(32, 2, 4, 2, 64, 512);
    config.sequences = 2, config.length = 16, config.steps = 3;
  } else {
    return std::nullopt;
  }
  return config;
}

/// Bytes this process handed to write(2)-like calls so far (/proc/self/io's wchar): its sockets' sends, plus
/// its few lines of output.
int64_t BytesWritten() {
  std::ifstream io("/proc/self/io");
  std::string key;
  int64_t value = 0;
  while (io >> key >> value) {
    if (key == "wchar:") return value;
  }
  throw std::runtime_error("/proc/self/io has no wchar line");
}

double SecondsSince(Clock::time_point start) { return std::chrono::duration<double>(Clock::now() - start).count(); }

/// The gradient buckets' two paths: `all` (every rank gets every sum) and `owner` (sums to owners).
bool SumsToOwners(const std::string& path) { return path == "owner"; }

/// One rank: connects to the others, trains `steps` data-parallel steps with the buckets' `path`, writes its
/// figures to `out_dir`/rank-K.json.
int RunRank(const CollectivesConfig& config, const std::string& path, const fs::path& out_dir) {
  std::string error;
  auto launch = rt::ReadLaunchEnvironment([](const char* name) { return std::getenv(name); }, &error);
  if (!launch) throw std::runtime_error(error);
  auto ranks = rt::RankGroup::Connect(*launch, std::chrono::seconds(120));
  auto model_config = rt::ParseModelConfig(config.model.dump(), &error);
  if (!model_config) throw std::runtime_error("bench model config: " + error);
  rt::LlamaForCausalLM model(*model_config);
  rt::InitializeWeights(*model, 7);  // the same weights on every rank
  model->train();
  const std::vector<int64_t> owners =
      SumsToOwners(path) ? rt::PartitionParameters(model->parameters(), ranks->size()) : std::vector<int64_t>{};
  rt::GradientBuckets buckets(model->parameters(), *ranks, owners);
  int64_t gradient_bytes = 0;
  for (const auto& parameter : model->parameters()) gradient_bytes += parameter.numel() * parameter.element_size();

  torch::manual_seed(static_cast<uint64_t>(100 + ranks->rank()));  // each rank its own data
  const int64_t vocab = config.model["vocab_size"].get<int64_t>();
  double step_s = 0, waiting_s = 0;
  int64_t sent = 0;
  for (int64_t step = 0; step < config.steps; ++step) {
    const torch::Tensor tokens = torch::randint(vocab, {config.sequences, config.length}, torch::kLong);
    model->zero_grad();
    const auto start = Clock::now();
    const int64_t bytes_before = BytesWritten();
    const double waiting_before = ranks->tally().seconds_waiting;
    const torch::Tensor logits = model->forward(tokens);  // [B, T, vocab]
    const torch::Tensor loss = torch::nn::functional::cross_entropy(
        logits.slice(1, 0, config.length - 1).reshape({-1, vocab}), tokens.slice(1, 1).reshape({-1}));
    buckets.BeforeBackward(/*last=*/true);
    loss.backward();
    buckets.AfterBackward();
    buckets.Finish();
    if (step == 0) continue;  // warm-up
    step_s += SecondsSince(start);
    waiting_s += ranks->tally().seconds_waiting - waiting_before;
    sent += BytesWritten() - bytes_before;
  }
  const auto counted = static_cast<double>(config.steps - 1);
  const Json figures = {{"rank", ranks->rank()},
                        {"ranks", ranks->size()},
                        {"gradient_bytes", gradient_bytes},
                        {"buckets", buckets.bucket_count()},
                        {"step_s", step_s / counted},
                        {"waiting_s", waiting_s / counted},
                        {"sent_bytes", static_cast<double>(sent) / counted}};
  std::ofstream(out_dir / ("rank-" + std::to_string(ranks->rank()) + ".json")) << figures.dump() << "\n";
  ranks->Barrier();
  return 0;
}

/// The figures of one world size: each rank's, read back.
struct WorldFigures {
  int64_t ranks = 0;
  std::string path;  // `all` or `owner`
  double gradient_mb = 0, step_ms = 0, waiting_ms = 0, sent_mb = 0;
  double least_mb = 0;  // what the path must send at least: ring all-reduce 2(N-1)/N·G, reduce-scatter (N-1)/N·G
  int64_t buckets = 0;
};

WorldFigures RunWorld(const CollectivesConfig& config, int64_t ranks, const std::string& path, const fs::path& dir,
                      const std::string& self) {
  const fs::path out_dir = dir / ("ranks-" + std::to_string(ranks) + "-" + path);
  fs::remove_all(out_dir);
  fs::create_directories(out_dir);
  rt::LocalRanksOptions options;
  options.nproc = static_cast<int>(ranks);
  options.argv = {self, "collectives-rank", "--config", config.name, "--path", path, "--dir", out_dir.string()};
  const auto threads = std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency()) / ranks);
  setenv("OMP_NUM_THREADS", std::to_string(threads).c_str(), 1);
  if (rt::RunLocalRanks(options, std::cout, std::cerr) != 0) {
    throw std::runtime_error("the " + std::to_string(ranks) + " ranks failed (their errors are above)");
  }
  WorldFigures world;
  world.ranks = ranks;
  world.path = path;
  for (int64_t k = 0; k < ranks; ++k) {
    std::ifstream in(out_dir / ("rank-" + std::to_string(k) + ".json"));
    const Json figures = Json::parse(in);
    world.gradient_mb = figures["gradient_bytes"].get<double>() / 1e6;
    world.buckets = figures["buckets"].get<int64_t>();
    world.step_ms += figures["step_s"].get<double>() * 1e3 / static_cast<double>(ranks);
    world.waiting_ms += figures["waiting_s"].get<double>() * 1e3 / static_cast<double>(ranks);
    world.sent_mb += figures["sent_bytes"].get<double>() / 1e6 / static_cast<double>(ranks);
  }
  const double others = static_cast<double>(ranks - 1) / static_cast<double>(ranks);
  world.least_mb = (SumsToOwners(path) ? 1.0 : 2.0) * others * world.gradient_mb;
  return world;
}

int Orchestrate(const CollectivesConfig& config, const fs::path& dir, const std::string& self) {
  std::vector<WorldFigures> worlds;
  for (int64_t ranks : {2, 3}) {
    for (const char* path : {"all", "owner"}) worlds.push_back(RunWorld(config, ranks, path, dir, self));
  }
  std::cout << "\nData-parallel step over Gloo on this machine (" << config.name << ": "
            << config.sequences << " sequences of " << config.length << " tokens a rank; the mean over "
            << config.steps - 1 << " steps after a warm-up, and over the ranks)\n\n"
            << "| ranks | sums | gradient MB | buckets | step ms | waiting for sums, ms | sent per rank, MB | "
               "least: ring 2(N-1)/N·G or reduce-scatter (N-1)/N·G, MB | sent / least |\n"
            << "|---:|---|---:|---:|---:|---:|---:|---:|---:|\n";
  std::ostringstream result;
  result << "RESULT collectives";
  bool sent_all = true;
  for (const WorldFigures& w : worlds) {
    const double ratio = w.sent_mb / w.least_mb;
    const bool owner = SumsToOwners(w.path);
    std::cout << std::fixed << "| " << w.ranks << " | " << (owner ? "to owners" : "to every rank") << " | "
              << std::setprecision(2) << w.gradient_mb << " | " << w.buckets << " | " << std::setprecision(1)
              << w.step_ms << " | " << w.waiting_ms << " | " << std::setprecision(2) << w.sent_mb << " | "
              << w.least_mb << " | " << std::setprecision(3) << ratio << " |\n";
    const std::string key = " ranks" + std::to_string(w.ranks) + (owner ? "_owner" : "");
    result << std::fixed << std::setprecision(1) << key << "_step_ms=" << w.step_ms << key
           << "_wait_ms=" << w.waiting_ms << std::setprecision(3) << key
           << (owner ? "_sent_over_reduce_scatter=" : "_sent_over_ring=") << ratio;
    sent_all = sent_all && ratio >= 0.95;
  }
  std::cout << "\n(sent: each rank's socket writes during the step, from /proc/self/io; waiting: the time its\n"
               "backward did not hide, in the buckets' waits and the step's final exchange; to owners: `shard =\n"
               "gradients`, each bucket reduced to its parameters' owner, at least what a reduce-scatter sends)\n\n"
            << result.str() << "\n";
  if (!sent_all) {
    std::cerr << "fusec-bench: a rank sent less than its sums must: some gradients were not summed\n";
    return 1;
  }
  return 0;
}

}  // namespace

bool IsCollectivesBench(int argc, char** argv) {
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (i == 1 && arg == "collectives-rank") return true;
    if (arg.starts_with("--config=collectives")) return true;
    if (arg == "--config" && i + 1 < argc && std::string(argv[i + 1]).starts_with("collectives")) return true;
  }
  return false;
}

int CollectivesBenchMain(int argc, char** argv) {
  CLI::App app{"fusec-bench --config collectives: the gradient sums of a data-parallel step at 2 and 3 ranks"};
  std::string config_name = "collectives";
  std::string dir;
  app.add_option("--config", config_name, "collectives (the issue's workload) or collectives-tiny (the test suite's)")
      ->capture_default_str();
  app.add_option("--dir", dir, "Where the ranks write their figures (default: build/bench/CONFIG)");
  std::string rank_dir;
  std::string path = "all";
  CLI::App* rank = app.add_subcommand("collectives-rank", "(internal) one rank of the benchmark");
  rank->add_option("--config", config_name);
  rank->add_option("--path", path)->check(CLI::IsMember({"all", "owner"}));
  rank->add_option("--dir", rank_dir)->required();
  CLI11_PARSE(app, argc, argv);
  const std::optional<CollectivesConfig> config = NamedCollectivesConfig(config_name);
  if (!config) {
    std::cerr << "fusec-bench: unknown --config `" << config_name << "` (collectives or collectives-tiny)\n";
    return 2;
  }
  try {
    if (*rank) return RunRank(*config, path, rank_dir);
    const fs::path where = dir.empty() ? fs::path("build/bench") / config_name : fs::path(dir);
    return Orchestrate(*config, where, fs::read_symlink("/proc/self/exe").string());
  } catch (const std::exception& error) {
    std::cerr << "fusec-bench: " << error.what() << "\n";
    return 1;
  }
}

}  // namespace fusec::bench
