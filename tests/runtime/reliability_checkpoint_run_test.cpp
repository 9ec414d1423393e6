// `fusec run` with a stage stopped between publishing its final checkpoint and writing its cache entry (as a
// kill there would): the resumed run reports the stage as an uninterrupted run does, its final loss and every
// metrics line, and a damaged checkpoint is refused with an error naming the file.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>

#include "runtime/cli/run_experiments.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

using testing::Outcome;
using testing::RunFuse;

RunOptions Smoke(const ScratchDir& dir, const std::string& run, const std::string& cache) {
  RunOptions options = testing::Smoke(dir, run);
  options.cache = dir / cache;
  return options;
}

/// summary.json's stages and evaluation, with the run directory's name replaced by RUN.
std::string Summary(const ScratchDir& dir, const std::string& run) {
  nlohmann::json summary = nlohmann::json::parse(ReadFile(dir / (run + "/summary.json")));
  std::string text = nlohmann::json{summary["stages"], summary["evaluation"]}.dump(1);
  for (size_t at; (at = text.find(dir / run)) != std::string::npos;) text.replace(at, (dir / run).size(), "RUN");
  return text;
}

/// metrics.jsonl without the fields that depend on the machine's speed and the process's memory.
std::vector<nlohmann::json> Metrics(const ScratchDir& dir, const std::string& run) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(ReadFile(dir / (run + "/metrics.jsonl")));
  for (std::string line; std::getline(in, line);) {
    nlohmann::json json = nlohmann::json::parse(line);
    json.erase("tokens_per_s");
    json.erase("peak_rss_mb");
    lines.push_back(json);
  }
  return lines;
}

/// The one stage checkpoint directory of `cache` (checkpoints/<stage hash>/).
std::string OnlyCheckpointDir(const std::string& cache) {
  std::vector<std::string> dirs;
  for (const auto& entry : fs::directory_iterator(cache + "/checkpoints")) dirs.push_back(entry.path().string());
  EXPECT_EQ(dirs.size(), 1U);
  return dirs.empty() ? "" : dirs[0];
}

/// Runs smoke.fuse into `run` until FuseSFT has published its final checkpoint and cannot write its cache
/// entry (the cache's staging directory is made a file once the init model is cached): the state a kill
/// between the two leaves. Returns that stage's checkpoint directory.
std::string StopAfterTheFinalCheckpoint(const ScratchDir& dir, const std::string& run, const std::string& cache) {
  RunOptions first = Smoke(dir, run, cache);
  first.stop_after_steps = 1;
  EXPECT_EQ(RunFuse(first).status, 1);
  fs::remove_all(dir / (cache + "/tmp"));
  WriteFile(dir / (cache + "/tmp"), "");
  RunOptions second = Smoke(dir, run, cache);
  second.resume = true;
  Outcome stopped = RunFuse(second);
  EXPECT_EQ(stopped.status, 1) << stopped.err;
  fs::remove(dir / (cache + "/tmp"));
  const std::string checkpoints = OnlyCheckpointDir(dir / cache);
  EXPECT_EQ(ReadFile(checkpoints + "/LATEST"), "step-00000020\n");
  return checkpoints;
}

TEST(ReliabilityCheckpointRun, AStageStoppedAfterItsFinalCheckpointResumesToTheSameSummaryAndMetrics) {
  ScratchDir dir("ckpt_run_final");
  ASSERT_EQ(RunFuse(Smoke(dir, "whole", "cache_whole")).status, 0);
  StopAfterTheFinalCheckpoint(dir, "parts", "cache");
  RunOptions resumed = Smoke(dir, "parts", "cache");
  resumed.resume = true;
  Outcome outcome = RunFuse(resumed);
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  EXPECT_EQ(Summary(dir, "parts"), Summary(dir, "whole"));
  const std::vector<nlohmann::json> metrics = Metrics(dir, "parts");
  EXPECT_EQ(metrics, Metrics(dir, "whole"));
  EXPECT_EQ(std::count_if(metrics.begin(), metrics.end(), [](const auto& m) { return m["stage"] == "smoke/sft"; }), 20);
  // The cache entry's metrics are whole too: a cached rerun reports the same.
  RunOptions cached = Smoke(dir, "cached", "cache");
  ASSERT_EQ(RunFuse(cached).status, 0);
  EXPECT_EQ(Summary(dir, "cached").find("\"how\": \"trained\""), std::string::npos);
  EXPECT_EQ(Metrics(dir, "cached"), Metrics(dir, "whole"));
}

TEST(ReliabilityCheckpointRun, ADamagedCheckpointIsRefusedWithTheFileAndHowToGoOn) {
  ScratchDir dir("ckpt_run_damaged");
  const std::string checkpoints = StopAfterTheFinalCheckpoint(dir, "parts", "cache");
  const std::string weights = checkpoints + "/step-00000020/model.safetensors";
  std::string bytes = ReadFile(weights);
  bytes[bytes.size() / 2] = static_cast<char>(bytes[bytes.size() / 2] ^ 1);
  WriteFile(weights, bytes);
  RunOptions resumed = Smoke(dir, "parts", "cache");
  resumed.resume = true;
  Outcome outcome = RunFuse(resumed);
  EXPECT_EQ(outcome.status, 1);
  EXPECT_NE(outcome.err.find("cannot resume: " + weights + ": its SHA-256 is not the one the manifest records"),
            std::string::npos)
      << outcome.err;
  EXPECT_NE(outcome.err.find("[Checkpoint]"), std::string::npos) << outcome.err;
  EXPECT_NE(outcome.err.find("help: the checkpoint cannot be trusted: `fusec run --restart` discards it"),
            std::string::npos)
      << outcome.err;
}

}  // namespace
}  // namespace fusec::rt
