// Helpers of the tests that run experiments end to end: `fusec run` in-process (RunExperiments) or as a child
// process (to kill it or signal it), on experiments/smoke.fuse in a scratch directory.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/cli/run_experiments.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt::testing {

inline const std::string kSmoke = std::string(FUSEC_REPO_DIR) + "/experiments/smoke.fuse";

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

inline Outcome RunFuse(RunOptions options) {
  options.stdlib = FUSEC_SOURCE_STDLIB;
  std::ostringstream out;
  std::ostringstream err;
  int status = RunExperiments(options, out, err);
  return {status, out.str(), err.str()};
}

/// experiments/smoke.fuse with its cache and run directory in `dir`.
inline RunOptions Smoke(const ScratchDir& dir, const std::string& run = "run") {
  RunOptions options;
  options.file = kSmoke;
  options.cache = dir / "cache";
  options.out = dir / run;
  return options;
}

/// The metrics lines of `stage` in the metrics.jsonl at `path`.
inline std::vector<nlohmann::json> Metrics(const std::string& path, const std::string& stage) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(ReadFile(path));
  for (std::string line; std::getline(in, line);) {
    auto json = nlohmann::json::parse(line);
    if (json["stage"] == stage) lines.push_back(json);
  }
  return lines;
}

/// `fusec run` on experiments/smoke.fuse as a command line, with `extra` arguments.
inline std::vector<std::string> SmokeCommand(const std::string& cache, const std::string& out,
                                             const std::vector<std::string>& extra) {
  std::vector<std::string> args = {std::string(FUSEC_BINARY_DIR) + "/fusec", "run", kSmoke, "--cache", cache,
                                   "--out", out, "--stdlib", FUSEC_SOURCE_STDLIB};
  args.insert(args.end(), extra.begin(), extra.end());
  return args;
}

/// Starts `args` as a child process, its stderr to `log` and its stdout to `log_out` (or /dev/null).
inline pid_t Spawn(const std::vector<std::string>& args, const std::string& log, const std::string& log_out = "/dev/null") {
  pid_t pid = fork();
  if (pid == 0) {
    FILE* sink = std::freopen(log.c_str(), "w", stderr);
    (void)sink;
    sink = std::freopen(log_out.c_str(), "w", stdout);
    std::vector<char*> argv;
    for (const std::string& arg : args) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    execv(argv[0], argv.data());
    _exit(127);
  }
  return pid;
}

/// Waits for `pid`; its wait status.
inline int WaitFor(pid_t pid) {
  int status = 0;
  waitpid(pid, &status, 0);
  return status;
}

/// Waits (up to a minute) until the file `log` contains `text`; whether it did.
inline bool WaitForText(const std::string& log, const std::string& text) {
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    if (ReadFile(log).find(text) != std::string::npos) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return false;
}

}  // namespace fusec::rt::testing
