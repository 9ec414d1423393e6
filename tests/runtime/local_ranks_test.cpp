// runtime/support/local_ranks.h with `/bin/sh -c` scripts as the ranks: the variables each rank sees, whose
// output reaches where, the exit status of a failing or killed rank and how fast the others are stopped, a
// command that cannot start, an interrupt forwarded to the ranks, and no launcher pipe leaking into a rank.
#include "runtime/support/local_ranks.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <regex>
#include <set>
#include <sstream>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

namespace fusec::rt {
namespace {

using namespace std::chrono_literals;

struct Launch {
  int status = -1;
  std::string out, err;
  std::chrono::duration<double> elapsed{};
};

Launch RunScript(int nproc, const std::string& script, std::chrono::seconds grace = 2s) {
  LocalRanksOptions options;
  options.nproc = nproc;
  options.argv = {"/bin/sh", "-c", script};
  options.grace = grace;
  std::ostringstream out, err;
  const auto start = std::chrono::steady_clock::now();
  Launch launch;
  launch.status = RunLocalRanks(options, out, err);
  launch.elapsed = std::chrono::steady_clock::now() - start;
  launch.out = out.str();
  launch.err = err.str();
  return launch;
}

/// The lines of `text` that start with `prefix`, without it.
std::vector<std::string> LinesAfter(const std::string& text, const std::string& prefix) {
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) {
    if (line.rfind(prefix, 0) == 0) lines.push_back(line.substr(prefix.size()));
  }
  return lines;
}

/// Sets (or unsets, with nullopt) an environment variable for one test, and puts it back.
class ScopedVariable {
 public:
  ScopedVariable(const char* name, std::optional<std::string> value) : name_(name) {
    if (const char* old = std::getenv(name)) previous_ = old;
    if (value) {
      setenv(name, value->c_str(), 1);
    } else {
      unsetenv(name);
    }
  }
  ~ScopedVariable() {
    if (previous_) {
      setenv(name_, previous_->c_str(), 1);
    } else {
      unsetenv(name_);
    }
  }
  ScopedVariable(const ScopedVariable&) = delete;
  ScopedVariable& operator=(const ScopedVariable&) = delete;

 private:
  const char* name_;
  std::optional<std::string> previous_;
};

TEST(LocalRanks, EveryRankSeesItsPlaceInTheLaunch) {
  const ScopedVariable omp("OMP_NUM_THREADS", std::nullopt);
  const Launch launch = RunScript(3,
                                  "echo \"place $RANK $LOCAL_RANK $WORLD_SIZE $LOCAL_WORLD_SIZE $GROUP_RANK "
                                  "$MASTER_ADDR $MASTER_PORT $FUSEC_LOCAL_RANKS $TORCHELASTIC_USE_AGENT_STORE "
                                  "$OMP_NUM_THREADS\" >&2");
  ASSERT_EQ(launch.status, 0) << launch.err;
  const int threads = std::max(1, static_cast<int>(std::thread::hardware_concurrency()) / 3);
  const std::regex place(R"(place (\d) (\d) 3 3 0 127\.0\.0\.1 (\d+) 1 False (\d+))");
  std::set<std::string> ports;
  for (int k = 0; k < 3; ++k) {
    const auto lines = LinesAfter(launch.err, "[rank " + std::to_string(k) + "] ");
    ASSERT_EQ(lines.size(), 1u) << launch.err;
    std::smatch match;
    ASSERT_TRUE(std::regex_match(lines[0], match, place)) << lines[0];
    EXPECT_EQ(match[1], std::to_string(k));  // RANK
    EXPECT_EQ(match[2], std::to_string(k));  // LOCAL_RANK
    EXPECT_GT(std::stoi(match[3]), 0);
    EXPECT_LT(std::stoi(match[3]), 65536);
    EXPECT_EQ(std::stoi(match[4]), threads);  // OMP_NUM_THREADS, the parent having none
    ports.insert(match[3]);
  }
  EXPECT_EQ(ports.size(), 1u) << "every rank has the same MASTER_PORT:\n" << launch.err;
  EXPECT_EQ(launch.out, "");
}

TEST(LocalRanks, KeepsTheParentsOmpNumThreadsAndReplacesItsRank) {
  const ScopedVariable omp("OMP_NUM_THREADS", "7");
  const ScopedVariable rank("RANK", "5");
  const Launch launch = RunScript(2, "echo \"$OMP_NUM_THREADS $RANK\" >&2");
  ASSERT_EQ(launch.status, 0) << launch.err;
  EXPECT_EQ(LinesAfter(launch.err, "[rank 0] "), std::vector<std::string>{"7 0"});
  EXPECT_EQ(LinesAfter(launch.err, "[rank 1] "), std::vector<std::string>{"7 1"});
}

TEST(LocalRanks, OnlyRankZerosStdoutReachesOut) {
  const Launch launch = RunScript(3, "echo \"summary from $RANK\"; echo second line; echo \"log $RANK\" >&2");
  ASSERT_EQ(launch.status, 0) << launch.err;
  EXPECT_EQ(launch.out, "summary from 0\nsecond line\n");
  for (int k = 0; k < 3; ++k) {
    EXPECT_EQ(LinesAfter(launch.err, "[rank " + std::to_string(k) + "] "),
              std::vector<std::string>{"log " + std::to_string(k)});
  }
  EXPECT_EQ(launch.err.find("summary"), std::string::npos) << launch.err;
}

TEST(LocalRanks, FlushesAPartialLastLineWhenAPipeCloses) {
  const Launch launch = RunScript(1, "printf 'no newline' >&2; printf 'first\\ntail'");
  ASSERT_EQ(launch.status, 0) << launch.err;
  EXPECT_EQ(launch.out, "first\ntail");  // unchanged
  EXPECT_EQ(launch.err, "[rank 0] no newline\n");
}

TEST(LocalRanks, AllRanksExitingZeroIsZero) {
  const Launch launch = RunScript(4, "exit 0");
  EXPECT_EQ(launch.status, 0);
  EXPECT_EQ(launch.out, "");
  EXPECT_EQ(launch.err, "");
}

TEST(LocalRanks, AFailingRankStopsTheOthersAndGivesItsStatus) {
  const Launch launch = RunScript(3, "if [ \"$RANK\" = 1 ]; then echo 'bad data' >&2; exit 3; fi; sleep 30");
  EXPECT_EQ(launch.status, 3);
  EXPECT_LT(launch.elapsed, 10s);
  EXPECT_EQ(launch.err, "[rank 1] bad data\nfusec: rank 1 exited with status 3; stopping the other ranks\n");
}

TEST(LocalRanks, ARankThatIgnoresSigtermIsKilledAfterTheGrace) {
  const Launch launch = RunScript(2, "if [ \"$RANK\" = 1 ]; then sleep 0.3; exit 4; fi; trap '' TERM; sleep 30", 1s);
  EXPECT_EQ(launch.status, 4);
  EXPECT_GE(launch.elapsed, 1s);
  EXPECT_LT(launch.elapsed, 5s);
  EXPECT_EQ(launch.err, "fusec: rank 1 exited with status 4; stopping the other ranks\n");
}

/// Whether process `pid` is gone (or a zombie that only waits to be reaped), within a second.
bool EndsSoon(int pid) {
  for (int tries = 0; tries < 100; ++tries) {
    std::ifstream stat("/proc/" + std::to_string(pid) + "/stat");
    std::string line;
    if (!std::getline(stat, line)) return true;
    const size_t state = line.rfind(") ");
    if (state != std::string::npos && line.compare(state + 2, 1, "Z") == 0) return true;
    std::this_thread::sleep_for(10ms);
  }
  return false;
}

TEST(LocalRanks, WhatARankLeftRunningWithItsPipesIsKilledSoonAfter) {
  const Launch launch = RunScript(2, "sleep 30 & echo \"left $!\" >&2; exit 0");
  EXPECT_EQ(launch.status, 0);
  EXPECT_LT(launch.elapsed, 3s);
  for (int k = 0; k < 2; ++k) {
    const auto lines = LinesAfter(launch.err, "[rank " + std::to_string(k) + "] left ");
    ASSERT_EQ(lines.size(), 1u) << launch.err;
    EXPECT_TRUE(EndsSoon(std::stoi(lines[0]))) << "rank " << k << "'s `sleep 30` still runs";
  }
}

TEST(LocalRanks, ARankKilledBySignalGives128PlusTheSignal) {
  const Launch launch = RunScript(2, "if [ \"$RANK\" = 1 ]; then kill -9 $$; fi; sleep 30");
  EXPECT_EQ(launch.status, 128 + 9);
  EXPECT_LT(launch.elapsed, 10s);
  EXPECT_EQ(launch.err, "fusec: rank 1 was killed by signal 9 (SIGKILL); stopping the other ranks\n");
}

TEST(LocalRanks, AMissingExecutableIs127) {
  LocalRanksOptions options;
  options.nproc = 2;
  options.argv = {"/nonexistent/fusec-rank"};
  std::ostringstream out, err;
  EXPECT_EQ(RunLocalRanks(options, out, err), 127);
  EXPECT_EQ(err.str(), "fusec: cannot start rank 0: No such file or directory\n");
  EXPECT_EQ(out.str(), "");
}

TEST(LocalRanks, ForwardsSigtermToEveryRankAndWaitsForThem) {
  struct sigaction before {};
  ASSERT_EQ(sigaction(SIGTERM, nullptr, &before), 0);
  // The last rank sends SIGTERM to the launcher once every rank has had time to set its trap; each rank's
  // trap stands for a checkpoint saved on the first signal.
  const Launch launch = RunScript(2,
                                  "trap 'echo saved >&2; exit 130' TERM; sleep 30 & "
                                  "if [ \"$RANK\" = 1 ]; then sleep 0.3; kill -TERM $PPID; fi; wait");
  EXPECT_EQ(launch.status, 130);
  EXPECT_LT(launch.elapsed, 3s);  // each rank's `sleep 30` got the signal too (its process group did)
  EXPECT_EQ(LinesAfter(launch.err, "[rank 0] "), std::vector<std::string>{"saved"}) << launch.err;
  EXPECT_EQ(LinesAfter(launch.err, "[rank 1] "), std::vector<std::string>{"saved"}) << launch.err;
  EXPECT_EQ(launch.err.find("fusec:"), std::string::npos) << "the ranks were stopping already:\n" << launch.err;
  struct sigaction after {};
  ASSERT_EQ(sigaction(SIGTERM, nullptr, &after), 0);
  EXPECT_EQ(after.sa_handler, before.sa_handler) << "the previous SIGTERM handler is back";
}

/// The pipes this process holds now (`pipe:[inode]`): what a rank inherits from outside, not from the launcher.
std::set<std::string> PipesHeldNow() {
  std::set<std::string> pipes;
  for (const auto& entry : std::filesystem::directory_iterator("/proc/self/fd")) {
    std::error_code error;
    const std::string target = std::filesystem::read_symlink(entry.path(), error).string();
    if (!error && target.rfind("pipe:", 0) == 0) pipes.insert(target);
  }
  return pipes;
}

TEST(LocalRanks, RanksInheritNoPipeOfTheLauncher) {
  const std::set<std::string> inherited = PipesHeldNow();  // from whoever started the tests
  // The descriptors a program started by the rank holds, as `ls -l` shows them (`... 3 -> pipe:[1234]`): its
  // stdout and stderr are the rank's stderr pipe; any other pipe not inherited from outside is the launcher's.
  const Launch launch = RunScript(3, "ls -l /proc/self/fd >&2");
  ASSERT_EQ(launch.status, 0) << launch.err;
  const std::regex descriptor(R"((\d+) -> (pipe:\[\d+\]))");
  for (int k = 0; k < 3; ++k) {
    std::map<int, std::string> pipes;  // descriptor -> pipe
    for (const std::string& line : LinesAfter(launch.err, "[rank " + std::to_string(k) + "] ")) {
      std::smatch match;
      if (std::regex_search(line, match, descriptor)) pipes[std::stoi(match[1])] = match[2];
    }
    ASSERT_TRUE(pipes.count(1) == 1 && pipes.count(2) == 1) << "stdout and stderr are pipes:\n" << launch.err;
    for (const auto& [fd, pipe] : pipes) {
      EXPECT_TRUE(fd <= 2 || inherited.count(pipe) == 1) << "rank " << k << " holds fd " << fd << ", " << pipe;
    }
  }
}

TEST(LocalRanks, RejectsNoRanksAndNoCommand) {
  std::ostringstream out, err;
  LocalRanksOptions options;
  options.argv = {"/bin/true"};
  options.nproc = 0;
  EXPECT_THROW(RunLocalRanks(options, out, err), std::invalid_argument);
  options.nproc = 2;
  options.argv.clear();
  EXPECT_THROW(RunLocalRanks(options, out, err), std::invalid_argument);
}

}  // namespace
}  // namespace fusec::rt
