// The command line: subcommands, exit statuses (0 clean, 1 errors, 2 usage), --help and --version.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/driver/driver.h"

namespace fusec {
namespace {

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

Outcome Fusec(std::vector<std::string> args) {
  std::ostringstream out;
  std::ostringstream err;
  int status = Main(args, out, err);
  return {status, out.str(), err.str()};
}

std::string WriteTemp(const std::string& name, const std::string& text) {
  auto path = std::filesystem::temp_directory_path() / "fusec_driver_test";
  std::filesystem::create_directories(path);
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
  auto dir = std::filesystem::temp_directory_path() / "fusec_driver_test" / "stdlib";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "stages.fuse") << "stage only_kind() = train { select = all }\n";
  std::string file = WriteTemp("own_stdlib.fuse", "experiment e { target = hf_model(\"m\"); stage s = sft { init = target } }\n");
  Outcome run = Fusec({"check", "--stdlib", dir.string(), file});
  EXPECT_EQ(run.status, kExitErrors);
  EXPECT_NE(run.err.find("unknown stage kind `sft`"), std::string::npos) << run.err;
}

}  // namespace
}  // namespace fusec
