// Issue 14, the driver's part, in fusec-rt: an unknown command or option of the runtime commands is named
// with a suggestion (exit status 2), as in `fusec`.
#include <gtest/gtest.h>

#include <cstdlib>
#include <sstream>

#include "runtime/cli/commands.h"
#include "tests/runtime/cli_support.h"

namespace fusec::rt {
namespace {

struct Usage {
  int status;
  std::string first_line;
};

Usage RunUsage(const std::vector<std::string>& args) {
  testing::CliResult result = testing::RunCli(args);
  return {result.status, result.err.substr(0, result.err.find('\n'))};
}

TEST(RuntimeCommandLine, AnUnknownOptionOrCommandIsNamedWithASuggestion) {
  Usage resume = RunUsage({"run", "x.fuse", "--resum"});
  EXPECT_EQ(resume.status, kExitUsage);
  EXPECT_EQ(resume.first_line, "error: unknown option `--resum`; did you mean `--resume`? [Usage]");
  Usage top_p = RunUsage({"generate", "--model", "m", "--prompts", "p.jsonl", "--top_p", "0.9"});
  EXPECT_EQ(top_p.status, kExitUsage);
  EXPECT_EQ(top_p.first_line, "error: unknown option `--top_p`; did you mean `--top-p`? [Usage]");
  Usage command = RunUsage({"scor", "--model", "m"});
  EXPECT_EQ(command.status, kExitUsage);
  EXPECT_EQ(command.first_line, "error: unknown command `scor`; did you mean `score`? [Usage]");
  Usage synth = RunUsage({"synth", "fusion-mni", "--out", "x"});
  EXPECT_EQ(synth.status, kExitUsage);
  EXPECT_EQ(synth.first_line, "error: unknown command `fusion-mni`; did you mean `fusion-mini`? [Usage]");
}

// Under torchrun or srun, `fusec run` is one rank of the launch: a rank whose peers never come stops after
// --dist-timeout with an error naming itself and where it looked; malformed variables are Launch errors.
TEST(RuntimeCommandLine, ARankWhosePeersNeverComeStopsNamingItselfAndMalformedVariablesAreRefused) {
  testing::ScratchDir dir("cli_launch");
  testing::WriteFile(dir / "x.fuse", "experiment e {}\n");
  setenv("WORLD_SIZE", "2", 1);
  setenv("RANK", "1", 1);
  setenv("MASTER_ADDR", "127.0.0.1", 1);
  setenv("MASTER_PORT", "9", 1);  // nothing listens there
  testing::CliResult alone = testing::RunCli({"run", dir / "x.fuse", "--dist-timeout", "2"});
  setenv("RANK", "2", 1);
  testing::CliResult outside = testing::RunCli({"run", dir / "x.fuse"});
  for (const char* name : {"WORLD_SIZE", "RANK", "MASTER_ADDR", "MASTER_PORT"}) unsetenv(name);
  EXPECT_EQ(alone.status, kExitErrors);
  EXPECT_NE(alone.err.find("rank 1 of 2: cannot connect to the other ranks at 127.0.0.1:9 within 2 s"),
            std::string::npos)
      << alone.err;
  EXPECT_NE(alone.err.find("[Distributed]"), std::string::npos) << alone.err;
  EXPECT_EQ(outside.status, kExitErrors);
  EXPECT_NE(outside.err.find("torchrun's `RANK` is 2, outside `WORLD_SIZE` 2"), std::string::npos) << outside.err;
}

}  // namespace
}  // namespace fusec::rt
