// Issue 14, the driver's part: overrides that a sweep would ignore, run-manifest replay of experiments that
// read data, missing inputs reported at their span, unknown commands and options with a suggestion, and a
// cache location that does not depend on the current directory.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <sstream>

#include "compiler/driver/driver.h"
#include "run_fusec.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

using test_support::Fusec;
using test_support::Outcome;

/// A fresh directory for one test, with the model directory `m` and the data file `d.jsonl` the experiments
/// below read (check and plan report missing inputs).
fs::path TestDir(const std::string& name) {
  fs::path dir = fs::temp_directory_path() / "fusec_reliability_driver" / name;
  fs::remove_all(dir);
  fs::create_directories(dir / "m");
  std::ofstream(dir / "d.jsonl").flush();
  return dir;
}

void Write(const fs::path& path, const std::string& text) { std::ofstream(path, std::ios::binary) << text; }

size_t Count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++n;
  return n;
}

const char* kSweep = R"(
import std.objectives.{dpo}
experiment fuserl(tau: float > 0 = 1.0) {
  target = hf_model("m")
  data = jsonl("d.jsonl")
  stage po = fuse_po(tau: tau) { init = target; objective = dpo(beta: 0.1) }
}
sweep taus = fuserl over {tau: [0.1, 1.0]}
)";

TEST(SweepOverrides, ASweptParameterCannotBeOverridden) {
  fs::path dir = TestDir("swept");
  Write(dir / "exp.fuse", kSweep);
  for (const char* set : {"tau=2", "fuserl.tau=2", "taus.tau=2"}) {
    Outcome check = Fusec({"check", (dir / "exp.fuse").string(), "--set", set});
    EXPECT_EQ(check.status, kExitErrors) << set << "\n" << check.err;
    EXPECT_NE(check.err.find("`tau` is swept by sweep `taus`"), std::string::npos) << set << "\n" << check.err;
  }
}

TEST(SweepOverrides, TheHelpForASweepsNameIsAnOverrideThatWorks) {
  fs::path dir = TestDir("sweep_help");
  Write(dir / "exp.fuse", kSweep);
  Outcome refused = Fusec({"check", (dir / "exp.fuse").string(), "--set", "taus.po.epochs=2"});
  EXPECT_EQ(refused.status, kExitErrors);
  const std::string marker = "`--set ";
  size_t at = refused.err.find(marker);
  ASSERT_NE(at, std::string::npos) << refused.err;
  size_t end = refused.err.find('`', at + marker.size());
  std::string suggested = refused.err.substr(at + marker.size(), end - at - marker.size());
  EXPECT_EQ(suggested, "fuserl.po.epochs=2");
  Outcome plan = Fusec({"plan", "--emit=ast", (dir / "exp.fuse").string(), "--set", suggested});
  ASSERT_EQ(plan.status, kExitOk) << plan.err;
  EXPECT_EQ(Count(plan.out, "experiment taus["), 2u) << plan.out;
  EXPECT_EQ(Count(plan.out, "    epochs = 2\n"), 2u) << plan.out;
}

TEST(SweepOverrides, StageKindArgumentsCanBeOverridden) {
  fs::path dir = TestDir("kind_args");
  Write(dir / "exp.fuse", R"(
import std.objectives.{dpo}
experiment e {
  target = hf_model("m")
  data = jsonl("d.jsonl")
  stage sft = fuse_sft(k: 2) { init = target }
  stage po = fuse_po { init = sft; objective = dpo(beta: 0.1) }
}
)");
  Outcome plan = Fusec({"plan", "--emit=ast", (dir / "exp.fuse").string(), "--set", "sft.k=3", "--set", "po.tau=0.5"});
  ASSERT_EQ(plan.status, kExitOk) << plan.err;
  EXPECT_NE(plan.out.find("select = top 3 by reward over prompt"), std::string::npos) << plan.out;
  EXPECT_NE(plan.out.find("over source / 0.5) over sources"), std::string::npos) << plan.out;
  Outcome unknown = Fusec({"check", (dir / "exp.fuse").string(), "--set", "sft.kk=3"});
  EXPECT_EQ(unknown.status, kExitErrors);
  EXPECT_NE(unknown.err.find("did you mean `k`?"), std::string::npos) << unknown.err;
}


// A manifest records each input's fingerprint, so an experiment that reads data replays; a changed input is
// named with its node, its path and both fingerprints.
TEST(ManifestReplay, AnExperimentThatReadsDataReplaysAndAChangedInputIsNamed) {
  fs::path dir = TestDir("replay");
  fs::create_directories(dir / "data");
  fs::create_directories(dir / "m");
  Write(dir / "m" / "config.json", "{}");
  Write(dir / "data" / "d.jsonl", "{\"id\": 1, \"prompt\": \"p\", \"responses\": []}\n");
  Write(dir / "exp.fuse", R"(
experiment e {
  target = hf_model("m")
  stage s = sft { init = target; data = jsonl("data/d.jsonl") }
}
)");
  std::string manifest = (dir / "run.toml").string();
  std::string cache = (dir / "cache").string();
  Outcome plan = Fusec({"plan", (dir / "exp.fuse").string(), "--manifest", manifest, "--cache", cache});
  ASSERT_EQ(plan.status, kExitOk) << plan.err;
  // From another directory, as a user replaying a run's manifest.toml would.
  fs::path previous = fs::current_path();
  fs::current_path(fs::temp_directory_path());
  Outcome replay = Fusec({"plan", "--from-manifest", manifest, "--cache", cache});
  EXPECT_EQ(replay.status, kExitOk) << replay.err;
  EXPECT_NE(replay.err.find("every hash matches the manifest"), std::string::npos) << replay.err;

  Write(dir / "data" / "d.jsonl", "{\"id\": 2, \"prompt\": \"q\", \"responses\": []}\n");
  Outcome changed = Fusec({"plan", "--from-manifest", manifest, "--cache", cache});
  fs::current_path(previous);
  EXPECT_EQ(changed.status, kExitErrors);
  EXPECT_NE(changed.err.find("load_data"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find((dir / "data" / "d.jsonl").string()), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("recorded sha256:"), std::string::npos) << changed.err;
  EXPECT_NE(changed.err.find("now sha256:"), std::string::npos) << changed.err;
  EXPECT_EQ(changed.err.find("every hash matches"), std::string::npos) << changed.err;
}

TEST(MissingInputs, CheckAndPlanReportThemAtTheirCall) {
  fs::path dir = TestDir("missing");
  fs::create_directories(dir / "data_dir");
  Write(dir / "exp.fuse", R"(experiment e {
  target = hf_model("d.jsonl")
  stage s = sft { init = target; data = jsonl("data_dir") }
  stage t = sft { init = s; data = jsonl("gone.jsonl") }
}
)");
  for (const char* command : {"check", "plan"}) {
    Outcome outcome = Fusec({command, (dir / "exp.fuse").string(), "--cache", (dir / "cache").string()});
    if (std::string(command) == "check") outcome = Fusec({command, (dir / "exp.fuse").string()});
    EXPECT_EQ(outcome.status, kExitErrors) << command;
    EXPECT_EQ(outcome.out, "") << command;
    EXPECT_NE(outcome.err.find("exp.fuse:2:12: error: the model directory `d.jsonl` is not a directory"),
              std::string::npos) << command << "\n" << outcome.err;
    EXPECT_NE(outcome.err.find("exp.fuse:3:41: error: the data file `data_dir` is a directory, not a file"),
              std::string::npos) << command << "\n" << outcome.err;
    EXPECT_NE(outcome.err.find("exp.fuse:4:36: error: the data file `gone.jsonl` does not exist (" +
                               (dir / "gone.jsonl").string() + ") [MissingInput]"),
              std::string::npos) << command << "\n" << outcome.err;
    EXPECT_EQ(Count(outcome.err, "`d.jsonl` is not a directory"), 1u) << command << "\n" << outcome.err;
    EXPECT_NE(outcome.err.find("3 errors"), std::string::npos) << command << "\n" << outcome.err;
  }
  // Inputs made later: allowed on request.
  Outcome later = Fusec({"check", "--allow-missing-inputs", (dir / "exp.fuse").string()});
  EXPECT_EQ(later.status, kExitOk) << later.err;
  // From another directory, the paths still start at the .fuse file.
  Write(dir / "ok.fuse", "experiment e {\n  target = hf_model(\"m\")\n  stage s = sft { init = target; data = jsonl(\"d.jsonl\") }\n}\n");
  fs::path previous = fs::current_path();
  fs::current_path(fs::temp_directory_path());
  Outcome elsewhere = Fusec({"check", (dir / "ok.fuse").string()});
  fs::current_path(previous);
  EXPECT_EQ(elsewhere.status, kExitOk) << elsewhere.err;
}

TEST(CommandLine, AnUnknownCommandOrOptionIsNamedWithASuggestion) {
  fs::path dir = TestDir("command_line");
  std::string file = (dir / "x.fuse").string();
  Write(file, "experiment e {\n  target = hf_model(\"m\")\n  stage s = sft { init = target; data = jsonl(\"d.jsonl\") }\n}\n");
  struct Case {
    std::vector<std::string> args;
    std::string message;
  };
  const Case cases[] = {
      {{"chekc", file}, "error: unknown command `chekc`; did you mean `check`? [Usage]\n"},
      {{"rnu", file}, "error: unknown command `rnu`; did you mean `run`? [Usage]\n"},  // a runtime command
      {{"check", file, "--stdlb", "x"}, "error: unknown option `--stdlb`; did you mean `--stdlib`? [Usage]\n"},
      {{"plan", "--emit", "json", file, "--cahce", "c"}, "error: unknown option `--cahce`; did you mean `--cache`? [Usage]\n"},
      {{"cache", "lss"}, "error: unknown command `lss`; did you mean `ls`? [Usage]\n"},
      {{"frobnicate"}, "error: unknown command `frobnicate` [Usage]\n"},
  };
  for (const Case& c : cases) {
    Outcome outcome = Fusec(c.args);
    EXPECT_EQ(outcome.status, kExitUsage) << c.args[0];
    EXPECT_EQ(outcome.err.substr(0, outcome.err.find('\n') + 1), c.message) << outcome.err;
    EXPECT_NE(outcome.err.find("help: run `fusec --help`"), std::string::npos) << outcome.err;
  }
  // An option's value is not an option, and a known option with a bad value keeps CLI11's message.
  EXPECT_EQ(Fusec({"check", file, "--set", "seed=-1"}).status, kExitOk);
  Outcome bad_value = Fusec({"plan", "--emit", "bytecode", file});
  EXPECT_EQ(bad_value.status, kExitUsage);
  EXPECT_NE(bad_value.err.find("bytecode"), std::string::npos) << bad_value.err;
  EXPECT_EQ(bad_value.err.find("unknown"), std::string::npos) << bad_value.err;
}

/// Sets (or, with null, unsets) an environment variable for one scope.
class ScopedEnvironment {
 public:
  ScopedEnvironment(const char* name, const char* value) : name_(name) {
    const char* old = std::getenv(name);
    if (old != nullptr) old_ = old;
    if (value != nullptr) {
      setenv(name, value, 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedEnvironment() {
    if (old_) {
      setenv(name_.c_str(), old_->c_str(), 1);
    } else {
      unsetenv(name_.c_str());
    }
  }
  ScopedEnvironment(const ScopedEnvironment&) = delete;
  ScopedEnvironment& operator=(const ScopedEnvironment&) = delete;

 private:
  std::string name_;
  std::optional<std::string> old_;
};

/// The directory in `; N nodes, M cached (cache: DIR)`.
std::string CacheOfPlan(const std::string& out) {
  size_t at = out.find("(cache: ");
  if (at == std::string::npos) return "";
  at += 8;
  return out.substr(at, out.find(")\n", at) - at);
}

TEST(CacheLocation, TheDefaultDoesNotDependOnTheCurrentDirectory) {
  fs::path dir = TestDir("cache_location");
  fs::create_directories(dir / "a");
  fs::create_directories(dir / "b");
  std::string file = (dir / "x.fuse").string();
  Write(file, "experiment e {\n  target = hf_model(\"m\")\n  stage s = sft { init = target; data = jsonl(\"d.jsonl\") }\n}\n");
  ScopedEnvironment no_fusec_cache("FUSEC_CACHE", nullptr);
  ScopedEnvironment xdg("XDG_CACHE_HOME", (dir / "xdg").c_str());
  fs::path previous = fs::current_path();
  fs::current_path(dir / "a");
  Outcome from_a = Fusec({"plan", file});
  Outcome ls_a = Fusec({"cache", "ls"});
  fs::current_path(dir / "b");
  Outcome from_b = Fusec({"plan", file});
  {
    ScopedEnvironment configured("FUSEC_CACHE", (dir / "env-cache").c_str());
    Outcome from_environment = Fusec({"plan", file});
    EXPECT_EQ(CacheOfPlan(from_environment.out), (dir / "env-cache").string()) << from_environment.err;
    Outcome given = Fusec({"plan", file, "--cache", (dir / "given").string()});
    EXPECT_EQ(CacheOfPlan(given.out), (dir / "given").string()) << given.err;
  }
  {
    ScopedEnvironment no_xdg("XDG_CACHE_HOME", nullptr);
    ScopedEnvironment home("HOME", (dir / "home").c_str());
    Outcome from_home = Fusec({"plan", file});
    EXPECT_EQ(CacheOfPlan(from_home.out), (dir / "home" / ".cache" / "fusec").string()) << from_home.err;
  }
  fs::current_path(previous);
  ASSERT_EQ(from_a.status, kExitOk) << from_a.err;
  EXPECT_EQ(CacheOfPlan(from_a.out), (dir / "xdg" / "fusec").string()) << from_a.out;
  EXPECT_EQ(CacheOfPlan(from_b.out), CacheOfPlan(from_a.out));
  EXPECT_EQ(ls_a.out.rfind("cache " + (dir / "xdg" / "fusec").string() + ":", 0), 0u) << ls_a.out << ls_a.err;
}

}  // namespace
}  // namespace fusec
