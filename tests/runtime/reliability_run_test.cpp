// `fusec run` under interruptions and reruns: resuming is the default, SIGINT/SIGTERM stop after a
// checkpoint, a run directory is replaced only by a finished run and keeps the user's files, two runs never
// share one run directory, a corrupt cache entry is rebuilt and what is exported is what was verified, and
// exports are links to the cache, not copies (issue 14's "never lose work" and "never silently wrong").
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <filesystem>

#include "compiler/cache/cache.h"
#include "compiler/support/file_lock.h"
#include "runtime/support/interrupt.h"
#include "runtime/support/run_error.h"
#include "runtime/support/torch_errors.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using namespace testing;

TEST(Reliability, ARerunResumesAnInterruptedStageWithoutBeingAskedAndRestartDiscardsIt) {
  ScratchDir dir("rel_resume");
  RunOptions whole = Smoke(dir, "whole");
  whole.cache = dir / "cache_whole";
  ASSERT_EQ(RunFuse(whole).status, 0);

  RunOptions stopped = Smoke(dir, "parts");
  stopped.overrides = {"sft.save_every=3"};
  stopped.stop_after_steps = 7;
  ASSERT_EQ(RunFuse(stopped).status, 1);
  // Another cadence is the same stage: no --resume, and save_every changed.
  RunOptions rerun = Smoke(dir, "parts");
  rerun.overrides = {"sft.save_every=5"};
  rerun.stop_after_steps = 1;
  Outcome resumed = RunFuse(rerun);
  EXPECT_NE(resumed.err.find("resuming from its last checkpoint"), std::string::npos) << resumed.err;
  EXPECT_NE(resumed.err.find("stopped after step 7 of 20"), std::string::npos) << resumed.err;  // 6 + 1

  RunOptions restart = Smoke(dir, "parts");
  restart.restart = true;
  restart.stop_after_steps = 2;
  Outcome restarted = RunFuse(restart);
  EXPECT_NE(restarted.err.find("--restart: discarding its checkpoints"), std::string::npos) << restarted.err;
  EXPECT_NE(restarted.err.find("stopped after step 2 of 20"), std::string::npos) << restarted.err;

  Outcome finished = RunFuse(Smoke(dir, "parts"));
  ASSERT_EQ(finished.status, 0) << finished.err;
  EXPECT_EQ(ReadFile(dir / "parts/export/po/model.safetensors"), ReadFile(dir / "whole/export/po/model.safetensors"));
  auto sft = Metrics(dir / "parts/metrics.jsonl", "smoke/sft");
  ASSERT_EQ(sft.size(), 20U);
  for (size_t i = 0; i < sft.size(); ++i) EXPECT_EQ(sft[i]["step"], static_cast<int>(i + 1));
}

TEST(Reliability, SigtermStopsAfterACheckpointAndTheRerunEndsWithTheSameWeights) {
  ScratchDir dir("rel_sigterm");
  const std::vector<std::string> longer = {"--set", "sft.epochs=30"};  // no save_every: only the signal saves
  ASSERT_EQ(WaitFor(Spawn(SmokeCommand(dir / "cache_a", dir / "a", longer), dir / "a.log")), 0) << ReadFile(dir / "a.log");

  pid_t pid = Spawn(SmokeCommand(dir / "cache_b", dir / "b", longer), dir / "b.log");
  ASSERT_TRUE(WaitForText(dir / "b.log", "[smoke/sft] step ")) << ReadFile(dir / "b.log");
  kill(pid, SIGTERM);
  int status = WaitFor(pid);
  const std::string log = ReadFile(dir / "b.log");
  ASSERT_TRUE(WIFEXITED(status)) << "killed by the signal instead of stopping: " << log;
  EXPECT_EQ(WEXITSTATUS(status), kExitInterrupted) << log;
  EXPECT_NE(log.find("stopped by SIGTERM after step "), std::string::npos) << log;
  EXPECT_NE(log.find("[Interrupted]"), std::string::npos) << log;
  EXPECT_NE(log.find("run the same command again to resume"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir / "b")) << "an unfinished first run publishes no run directory";
  std::string error;
  StageCache cache = StageCache::Open(dir / "cache_b", CacheUse::Inspect, &error).value();
  ASSERT_EQ(cache.Resumable().size(), 1U) << error;
  EXPECT_GT(cache.Resumable()[0].step, 0);

  ASSERT_EQ(WaitFor(Spawn(SmokeCommand(dir / "cache_b", dir / "b", longer), dir / "b2.log")), 0) << ReadFile(dir / "b2.log");
  EXPECT_NE(ReadFile(dir / "b2.log").find("resuming from its last checkpoint"), std::string::npos);
  EXPECT_EQ(ReadFile(dir / "b/export/po/model.safetensors"), ReadFile(dir / "a/export/po/model.safetensors"));
}

TEST(Reliability, AnInterruptBetweenNodesStopsBeforeTheNext) {
  ScratchDir dir("rel_interrupt");
  SetInterruptForTesting(SIGINT);
  Outcome outcome = RunFuse(Smoke(dir));
  SetInterruptForTesting(0);
  EXPECT_EQ(outcome.status, kExitInterrupted);
  EXPECT_NE(outcome.err.find("stopped by SIGINT before"), std::string::npos) << outcome.err;
}

TEST(Reliability, AFailedRerunLeavesTheLastRunWholeAndAFinishedOneKeepsTheUsersFiles) {
  ScratchDir dir("rel_rundir");
  ASSERT_EQ(RunFuse(Smoke(dir)).status, 0);
  const std::string metrics = ReadFile(dir / "run/metrics.jsonl");
  const std::string summary = ReadFile(dir / "run/summary.json");
  WriteFile(dir / "run/export/po/NOTES.md", "what I saw");
  WriteFile(dir / "run/notes.txt", "mine");

  RunOptions failing = Smoke(dir);
  failing.overrides = {"sft.optim.lr=2e-3"};
  failing.stop_after_steps = 3;
  Outcome failed = RunFuse(failing);
  ASSERT_EQ(failed.status, 1);
  EXPECT_NE(failed.err.find("still holds the last finished run"), std::string::npos) << failed.err;
  EXPECT_EQ(ReadFile(dir / "run/metrics.jsonl"), metrics);
  EXPECT_EQ(ReadFile(dir / "run/summary.json"), summary);
  EXPECT_TRUE(fs::exists(dir / "run.partial/metrics.jsonl"));

  RunOptions other = Smoke(dir);
  other.overrides = {"po.optim.lr=1e-3"};
  Outcome finished = RunFuse(other);
  ASSERT_EQ(finished.status, 0) << finished.err;
  EXPECT_NE(ReadFile(dir / "run/metrics.jsonl"), metrics);
  EXPECT_EQ(ReadFile(dir / "run/export/po/NOTES.md"), "what I saw");
  EXPECT_EQ(ReadFile(dir / "run/notes.txt"), "mine");
  EXPECT_FALSE(fs::exists(dir / "run.partial"));
  EXPECT_NE(ReadFile(dir / "run/summary.json").find("\"run_dir\": \"" + (dir / "run") + "\""), std::string::npos);
}

TEST(Reliability, ASecondRunIntoTheSameDirectoryIsRefusedNamingTheFirst) {
  ScratchDir dir("rel_lock");
  const fs::path run = dir / "run";
  std::string holder;
  auto lock = FileLock::TryAcquire((run.parent_path() / ".run.lock").string(), "fusec run first.fuse", &holder);
  ASSERT_TRUE(lock) << holder;
  Outcome second = RunFuse(Smoke(dir));
  EXPECT_EQ(second.status, 1);
  EXPECT_NE(second.err.find("another run is writing this run directory: pid " + std::to_string(::getpid())),
            std::string::npos)
      << second.err;
  EXPECT_NE(second.err.find("fusec run first.fuse"), std::string::npos) << second.err;
}

TEST(Reliability, TwoRunsOnOneCacheBothFinishWithWholeMetrics) {
  ScratchDir dir("rel_concurrent");
  pid_t a = Spawn(SmokeCommand(dir / "cache", dir / "a", {}), dir / "a.log");
  pid_t b = Spawn(SmokeCommand(dir / "cache", dir / "b", {}), dir / "b.log");
  ASSERT_EQ(WaitFor(a), 0) << ReadFile(dir / "a.log");
  ASSERT_EQ(WaitFor(b), 0) << ReadFile(dir / "b.log");
  for (const char* run : {"a", "b"}) {
    auto sft = Metrics(dir / (std::string(run) + "/metrics.jsonl"), "smoke/sft");
    ASSERT_EQ(sft.size(), 20U) << run;
    for (size_t i = 0; i < sft.size(); ++i) EXPECT_EQ(sft[i]["step"], static_cast<int>(i + 1)) << run;
  }
  EXPECT_EQ(ReadFile(dir / "a/export/po/model.safetensors"), ReadFile(dir / "b/export/po/model.safetensors"));
}

TEST(Reliability, ACorruptEntryIsRebuiltAndTheExportIsTheVerifiedModel) {
  ScratchDir dir("rel_corrupt");
  ASSERT_EQ(RunFuse(Smoke(dir)).status, 0);
  const std::string good = ReadFile(dir / "run/export/po/model.safetensors");
  // Exports are links to the cache entry, not copies.
  struct stat exported {};
  ASSERT_EQ(::stat((dir / "run/export/po/model.safetensors").c_str(), &exported), 0);
  EXPECT_GE(exported.st_nlink, 2U);
  std::string error;
  StageCache cache = StageCache::Open(dir / "cache", CacheUse::Inspect, &error).value();
  std::string po_entry;
  for (const CacheLookup& entry : cache.List(CacheCheck::Quick)) {
    if (entry.manifest.kind == "train" && entry.manifest.stages == std::vector<std::string>{"smoke/po"}) {
      po_entry = entry.path;
    }
  }
  ASSERT_FALSE(po_entry.empty());
  const fs::path weights = fs::path(po_entry) / "model/model.safetensors";
  fs::permissions(weights, fs::perms::owner_write, fs::perm_options::add);
  {
    std::fstream file(weights, std::ios::in | std::ios::out | std::ios::binary);
    file.seekp(-4, std::ios::end);
    file.write("\x7f\x7f\x7f\x7f", 4);  // same size, other bytes
  }
  Outcome again = RunFuse(Smoke(dir));
  ASSERT_EQ(again.status, 0) << again.err;
  EXPECT_NE(again.err.find("its cache entry is corrupt"), std::string::npos) << again.err;
  EXPECT_EQ(ReadFile(dir / "run/export/po/model.safetensors"), good);
  EXPECT_EQ(cache.Find(fs::path(po_entry).filename().string(), CacheCheck::Full).status, CacheStatus::Complete);
}

TEST(Reliability, ASweepSharesItsCommonModelsAndEvaluatesThemOnce) {
  ScratchDir dir("rel_sweep");
  std::string text = ReadFile(kSmoke);
  text.replace(text.find("experiment smoke {"), std::string("experiment smoke {").size(),
               "experiment smoke(tau: float > 0 = 1.0) {");
  text.replace(text.find("fuse_po(tau: 1.0)"), std::string("fuse_po(tau: 1.0)").size(), "fuse_po(tau: tau)");
  text += "\nsweep taus = smoke over { tau: [0.5, 2.0] }\n";
  fs::create_directories(dir / "data");
  fs::copy_file(std::string(FUSEC_REPO_DIR) + "/experiments/data/smoke.jsonl", dir / "data/smoke.jsonl");
  WriteFile(dir / "sweep.fuse", text);
  const fs::path previous = fs::current_path();
  fs::current_path(dir.path());  // sweep points write runs/taus/<point>/ under the current directory
  RunOptions options;
  options.file = dir / "sweep.fuse";
  options.cache = dir / "cache";
  Outcome outcome = RunFuse(options);
  fs::current_path(previous);
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  std::vector<fs::path> points;
  for (const auto& entry : fs::directory_iterator(dir / "runs/taus")) {
    if (entry.is_directory() && !entry.path().string().ends_with(".partial")) points.push_back(entry.path());
  }
  ASSERT_EQ(points.size(), 2U);
  // The shared stage's export is one file in the cache, linked into both points.
  struct stat a {}, b {};
  ASSERT_EQ(::stat((points[0] / "export/sft/model.safetensors").c_str(), &a), 0);
  ASSERT_EQ(::stat((points[1] / "export/sft/model.safetensors").c_str(), &b), 0);
  EXPECT_EQ(a.st_ino, b.st_ino);
  // The target and the shared stage are evaluated once; the second point reuses their results.
  size_t reused = 0;
  for (size_t at = 0; (at = outcome.err.find("as before in this run, reused", at)) != std::string::npos; ++at) ++reused;
  EXPECT_EQ(reused, 2U) << outcome.err;
  auto first = nlohmann::json::parse(ReadFile((points[0] / "eval/results.json").string()));
  auto second = nlohmann::json::parse(ReadFile((points[1] / "eval/results.json").string()));
  ASSERT_EQ(first.size(), 3U);
  ASSERT_EQ(second.size(), 3U);
  EXPECT_EQ(first[0], second[0]);  // target
  EXPECT_EQ(first[1], second[1]);  // sft
  EXPECT_EQ(ReadFile((points[0] / "eval/sft.jsonl").string()), ReadFile((points[1] / "eval/sft.jsonl").string()));
}

TEST(Reliability, OutOfMemoryMessagesGiveTheSizeInUnitsThatFit) {
  auto message = [](const std::string& bytes) {
    const std::string what = "DefaultCPUAllocator: can't allocate memory: you tried to allocate " + bytes +
                             " bytes. Error code 12 (Cannot allocate memory)";
    return OutOfMemoryMessage(c10::Error(c10::SourceLocation{__func__, __FILE__, __LINE__}, what)).value_or("none");
  };
  EXPECT_EQ(message("512"), "out of memory: an allocation of 512 bytes failed");
  EXPECT_EQ(message("3145728"), "out of memory: an allocation of 3.0 MiB failed");
  EXPECT_EQ(message("1125899906842624"), "out of memory: an allocation of 1.0 PiB failed");
  EXPECT_EQ(message("0"), "out of memory: an allocation failed (the machine's memory is exhausted)");
}

}  // namespace
}  // namespace fusec::rt
