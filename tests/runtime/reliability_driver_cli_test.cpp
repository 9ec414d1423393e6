// Issue 14, the driver's part, in fusec-rt: an unknown command or option of the runtime commands is named
// with a suggestion (exit status 2), as in `fusec`.
#include <gtest/gtest.h>

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

}  // namespace
}  // namespace fusec::rt
