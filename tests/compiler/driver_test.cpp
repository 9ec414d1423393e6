// The command line: subcommands, exit statuses (0 clean, 1 errors, 2 usage), --help and --version.
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include <nlohmann/json.hpp>

#include "compiler/cache/cache.h"
#include "compiler/driver/driver.h"
#include "run_fusec.h"

namespace fusec {
namespace {

using test_support::Fusec;
using test_support::Outcome;

/// Writes a .fuse file into the test directory, beside the model directory `m` and the data file `d.jsonl`
/// that kClean reads (check and plan report missing inputs).
/// This process's scratch directory: ctest runs the test cases as parallel processes, which must not share
/// files (one case's `remove_all` would pull another's inputs away).
std::filesystem::path TempBase() {
  return std::filesystem::temp_directory_path() / ("fusec_driver_test_" + std::to_string(::getpid()));
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  auto path = TempBase();
  std::filesystem::create_directories(path / "m");
  std::ofstream(path / "d.jsonl", std::ios::app).flush();
  path /= name;
  std::ofstream(path) << text;
  return path.string();
}

const char* kClean = R"(
experiment e {
  target = hf_model("m")
  stage s = sft { init = target; data = jsonl("d.jsonl") }
}
)";

TEST(Driver, CheckExitsZeroWhenCleanAndOneOnErrors) {
  Outcome clean = Fusec({"check", WriteTemp("clean.fuse", kClean)});
  EXPECT_EQ(clean.status, kExitOk) << clean.err;
  EXPECT_EQ(clean.out, "ok: 1 file, 1 experiment, 1 stage\n");
  EXPECT_EQ(clean.err, "");
  Outcome broken = Fusec({"check", WriteTemp("broken.fuse", "experiment e { target = 1 }\n")});
  EXPECT_EQ(broken.status, kExitErrors);
  EXPECT_NE(broken.err.find("[TypeMismatch]"), std::string::npos) << broken.err;
  EXPECT_EQ(broken.out, "");
}

TEST(Driver, WarningsDoNotFailACheck) {
  Outcome warned = Fusec({"check", WriteTemp("warned.fuse", "import std.objectives.{dpo}\n" + std::string(kClean))});
  EXPECT_EQ(warned.status, kExitOk);
  EXPECT_NE(warned.err.find("warning: `dpo` is imported but never used"), std::string::npos) << warned.err;
  EXPECT_NE(warned.err.find("1 warning"), std::string::npos);
}

TEST(Driver, SeveralFilesAreCheckedInOneRun) {
  Outcome both = Fusec({"check", WriteTemp("one.fuse", kClean), WriteTemp("two.fuse", kClean)});
  EXPECT_EQ(both.status, kExitOk) << both.err;
  EXPECT_EQ(both.out, "ok: 2 files, 2 experiments, 2 stages\n");
}

TEST(Driver, UsageErrorsExitTwo) {
  EXPECT_EQ(Fusec({}).status, kExitUsage);
  EXPECT_EQ(Fusec({"check"}).status, kExitUsage);
  EXPECT_EQ(Fusec({"frobnicate", "x.fuse"}).status, kExitUsage);
  EXPECT_EQ(Fusec({"check", "--frobnicate", "x.fuse"}).status, kExitUsage);
  EXPECT_EQ(Fusec({"plan", "--emit=bytecode", WriteTemp("clean.fuse", kClean)}).status, kExitUsage);
  EXPECT_EQ(Fusec({"check", "--stdlib", "/nonexistent", "x.fuse"}).status, kExitUsage);
}

TEST(Driver, HelpAndVersion) {
  Outcome help = Fusec({"--help"});
  EXPECT_EQ(help.status, kExitOk);
  EXPECT_NE(help.out.find("check"), std::string::npos) << help.out;
  EXPECT_NE(help.out.find("plan"), std::string::npos);
  EXPECT_NE(help.out.find("Exit status"), std::string::npos);
  Outcome check_help = Fusec({"check", "--help"});
  EXPECT_EQ(check_help.status, kExitOk);
  EXPECT_NE(check_help.out.find("--stdlib"), std::string::npos);
  Outcome version = Fusec({"--version"});
  EXPECT_EQ(version.status, kExitOk);
  EXPECT_EQ(version.out.rfind(VersionString(), 0), 0u) << version.out;
  EXPECT_NE(version.out.find("stdlib: "), std::string::npos);
}

TEST(Driver, PlanPrintsTheCheckedProgramOnlyWhenClean) {
  Outcome plan = Fusec({"plan", "--emit=ast", WriteTemp("clean.fuse", kClean)});
  EXPECT_EQ(plan.status, kExitOk) << plan.err;
  EXPECT_NE(plan.out.find("experiment e"), std::string::npos);
  EXPECT_NE(plan.out.find("  stage s: sft -> train"), std::string::npos) << plan.out;
  Outcome broken = Fusec({"plan", WriteTemp("broken.fuse", "experiment e { target = 1 }\n")});
  EXPECT_EQ(broken.status, kExitErrors);
  EXPECT_EQ(broken.out, "");
}

TEST(Driver, AnExplicitStdlibIsUsed) {
  auto dir = TempBase() / "stdlib";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "stages.fuse") << "stage only_kind() = train { select = all }\n";
  std::string file = WriteTemp("own_stdlib.fuse", "experiment e { target = hf_model(\"m\"); stage s = sft { init = target } }\n");
  Outcome run = Fusec({"check", "--stdlib", dir.string(), file});
  EXPECT_EQ(run.status, kExitErrors);
  EXPECT_NE(run.err.find("unknown stage kind `sft`"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace fusec

namespace fusec {
namespace {

TEST(Driver, PlanEmitsTheGraphInEachFormat) {
  std::string file = WriteTemp("plan.fuse", kClean);
  std::string cache = (TempBase() / "no-cache").string();
  Outcome ir = Fusec({"plan", file, "--cache", cache});
  EXPECT_EQ(ir.status, kExitOk) << ir.err;
  EXPECT_NE(ir.out.find("= train(init: %0, items: %3)"), std::string::npos) << ir.out;
  Outcome json = Fusec({"plan", "--emit=json", file, "--cache", cache});
  auto parsed = nlohmann::json::parse(json.out);
  ASSERT_EQ(parsed["nodes"].size(), 6u);
  for (const auto& node : parsed["nodes"]) {
    for (const char* key : {"id", "kind", "stage", "hash", "inputs", "span"}) EXPECT_TRUE(node.contains(key)) << key;
  }
  EXPECT_EQ(parsed["nodes"][4]["kind"], "train");
  EXPECT_EQ(parsed["nodes"][4]["stage"], "e/s");
  EXPECT_EQ(parsed["nodes"][4]["inputs"], nlohmann::json::array({0, 3}));
  Outcome dot = Fusec({"plan", "--emit=dot", file, "--cache", cache});
  EXPECT_EQ(dot.out.rfind("digraph fusec {", 0), 0u);
  EXPECT_NE(dot.out.find("n0 -> n4 [label=\"init\"]"), std::string::npos) << dot.out;
}

TEST(Driver, AManifestReproducesThePlan) {
  std::string dir = (TempBase() / "manifest").string();
  std::filesystem::create_directories(dir + "/lib");
  std::filesystem::create_directories(dir + "/m");
  std::ofstream(dir + "/d.jsonl") << "{}\n";
  std::ofstream(dir + "/lib/shared.fuse") << "let lr = 2e-5\n";
  std::ofstream(dir + "/grid.toml") << "seed = [1, 2]\n";
  std::ofstream(dir + "/exp.fuse") << R"(
import "lib/shared.fuse".{lr}
import std.objectives.{dpo}
experiment t(seed: int = 0) {
  target = hf_model("m")
  seed = seed
  data = jsonl("d.jsonl")
  stage sft = fuse_sft { init = target; optim = adamw(lr: lr) }
  stage po = fuse_po { init = sft; objective = dpo(beta: 0.1) }
}
sweep seeds = t over grid("grid.toml")
)";
  std::string manifest = dir + "/run.toml";
  Outcome plan = Fusec({"plan", dir + "/exp.fuse", "--set", "po.epochs=2", "--manifest", manifest, "--cache", dir + "/c"});
  ASSERT_EQ(plan.status, kExitOk) << plan.err;
  std::ifstream in(manifest);
  std::stringstream text;
  text << in.rdbuf();
  EXPECT_NE(text.str().find("po.epochs=2"), std::string::npos);
  EXPECT_NE(text.str().find("std/objectives.fuse"), std::string::npos);
  EXPECT_NE(text.str().find("grid.toml"), std::string::npos);
  // Reproduced from the manifest alone: the experiment directory is gone.
  std::filesystem::remove_all(dir + "/lib");
  std::filesystem::remove(dir + "/exp.fuse");
  std::filesystem::remove(dir + "/grid.toml");
  Outcome replay = Fusec({"plan", "--from-manifest", manifest, "--cache", dir + "/c"});
  EXPECT_EQ(replay.status, kExitOk) << replay.err;
  EXPECT_NE(replay.err.find("every hash matches the manifest"), std::string::npos) << replay.err;
  // A manifest whose hashes do not match is an error.
  std::string tampered = text.str();
  size_t at = tampered.find("hash = '");
  ASSERT_NE(at, std::string::npos);
  tampered[at + 8] = tampered[at + 8] == 'a' ? 'b' : 'a';
  std::ofstream(dir + "/tampered.toml") << tampered;
  Outcome mismatch = Fusec({"plan", "--from-manifest", dir + "/tampered.toml", "--cache", dir + "/c"});
  EXPECT_EQ(mismatch.status, kExitErrors);
  EXPECT_NE(mismatch.err.find("node hashes do not match"), std::string::npos) << mismatch.err;
}

TEST(Driver, CacheCommandsListVerifyAndCollect) {
  std::string dir = (TempBase() / "cache").string();
  std::filesystem::remove_all(dir);
  std::string file = WriteTemp("cached.fuse", kClean);
  // Put an entry for the plan's train node in the cache, as a run would.
  Outcome json = Fusec({"plan", "--emit=json", file, "--cache", dir});
  std::string train_hash = nlohmann::json::parse(json.out)["nodes"][4]["hash"];
  std::string open_error;
  StageCache cache = StageCache::Open(dir, CacheUse::Write, &open_error).value();
  std::string staging = cache.BeginEntry(train_hash);
  std::ofstream(staging + "/model.safetensors") << "weights";
  CacheManifest manifest;
  manifest.hash = train_hash;
  manifest.kind = "train";
  manifest.stages = {"e/s"};
  manifest.params = "{}";
  manifest.fusec_version = VersionString();
  std::string error;
  ASSERT_TRUE(cache.CommitEntry(staging, manifest, &error)) << error;
  std::string orphan = cache.BeginEntry(std::string(64, '0'));  // an interrupted write

  Outcome plan = Fusec({"plan", file, "--cache", dir});
  EXPECT_NE(plan.out.find("; 6 nodes, 1 cached"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find(", cached, for e/s"), std::string::npos) << plan.out;
  Outcome ls = Fusec({"cache", "ls", "--cache", dir});
  EXPECT_EQ(ls.status, kExitOk);
  EXPECT_NE(ls.out.find(train_hash.substr(0, 12) + "  train  7 B"), std::string::npos) << ls.out;
  EXPECT_EQ(Fusec({"cache", "verify", "--cache", dir}).status, kExitOk);

  std::ofstream(cache.EntryPath(train_hash) + "/model.safetensors") << "WEIGHTS";
  Outcome verify = Fusec({"cache", "verify", "--cache", dir});
  EXPECT_EQ(verify.status, kExitErrors);
  EXPECT_NE(verify.err.find("corrupt: "), std::string::npos) << verify.err;
  // A plan checks sizes only (reading every output would make planning as slow as a run); this corruption
  // keeps the size, so only `verify` (and the full check a run makes before reuse) sees it.
  Outcome corrupt_plan = Fusec({"plan", file, "--cache", dir});
  EXPECT_NE(corrupt_plan.out.find("1 cached"), std::string::npos);
  std::ofstream(cache.EntryPath(train_hash) + "/model.safetensors") << "w";
  Outcome size_plan = Fusec({"plan", file, "--cache", dir});
  EXPECT_NE(size_plan.err.find("[CacheEntryCorrupt]"), std::string::npos) << size_plan.err;

  Outcome gc = Fusec({"cache", "gc", "--cache", dir});
  EXPECT_EQ(gc.status, kExitOk);
  EXPECT_FALSE(std::filesystem::exists(orphan));
  EXPECT_FALSE(std::filesystem::exists(cache.EntryPath(train_hash)));  // corrupt
}

}  // namespace
}  // namespace fusec
