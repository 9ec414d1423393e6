// Helpers of the tests that run the runtime's commands in-process (RuntimeMain): `fusec-rt ARGS...` with its
// exit status and output, and copies of a model directory with one config.json field changed.
#pragma once

#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "runtime/cli/commands.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt::testing {

struct CliResult {
  int status;
  std::string out;
  std::string err;
};

/// `fusec-rt ARGS...` with `input` on stdin.
inline CliResult RunCli(const std::vector<std::string>& args, const std::string& input = "") {
  std::istringstream in(input);
  std::ostringstream out;
  std::ostringstream err;
  int status = RuntimeMain(args, in, out, err);
  return {status, out.str(), err.str()};
}

/// A copy of the model directory `model` at `copy` with config.json's `key` set to the JSON `value`.
inline std::string CopyWithConfigField(const std::string& model, const std::string& copy, const std::string& key,
                                       const std::string& value) {
  std::filesystem::copy(model, copy, std::filesystem::copy_options::recursive);
  auto config = nlohmann::ordered_json::parse(ReadFile(copy + "/config.json"));
  config[key] = nlohmann::ordered_json::parse(value);
  WriteFile(copy + "/config.json", config.dump());
  return copy;
}

}  // namespace fusec::rt::testing
