// What fusec-bench's benchmarks share: the model configs they build and the child processes they run.
//
// Why: each benchmark (fusepo_bench.cpp, generate_bench.cpp) runs its sides in processes of their own, so
// that their memory is measured apart, and reads each side's figures from the last line of its output.
#pragma once

#include <sys/wait.h>

#include <cstdint>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>

namespace fusec::bench {

/// A random Llama model's config.json.
inline nlohmann::json LlamaConfig(int64_t hidden, int64_t layers, int64_t heads, int64_t kv_heads, int64_t intermediate,
                                  int64_t vocab) {
  return {{"architectures", {"LlamaForCausalLM"}},
          {"model_type", "llama"},
          {"hidden_size", hidden},
          {"num_hidden_layers", layers},
          {"num_attention_heads", heads},
          {"num_key_value_heads", kv_heads},
          {"intermediate_size", intermediate},
          {"vocab_size", vocab},
          {"max_position_embeddings", 4096},
          {"rms_norm_eps", 1e-5},
          {"rope_theta", 10000.0},
          {"initializer_range", 0.05},
          {"tie_word_embeddings", false},
          {"torch_dtype", "float32"}};
}

/// `text` quoted for the shell.
inline std::string Quote(const std::string& text) {
  std::string quoted = "'";
  for (char c : text) quoted += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return quoted + "'";
}

/// Runs `command` (stderr passes through) and parses the last line of its standard output as a JSON object.
/// A failed child's own `{"error": ...}` line is its message; otherwise its output is.
inline nlohmann::json RunChild(const std::string& command, const std::string& what) {
  FILE* pipe = popen(command.c_str(), "r");
  if (pipe == nullptr) throw std::runtime_error("cannot start " + what);
  std::string output;
  char buffer[4096];
  while (size_t n = fread(buffer, 1, sizeof buffer, pipe)) output.append(buffer, n);
  const int status = pclose(pipe);
  std::string last = output.substr(0, output.find_last_not_of('\n') + 1);
  last = last.substr(last.find_last_of('\n') == std::string::npos ? 0 : last.find_last_of('\n') + 1);
  nlohmann::json json = nlohmann::json::parse(last, nullptr, false);
  if (status != 0 && json.is_object() && json.contains("error")) {
    throw std::runtime_error(what + " failed: " + json["error"].get<std::string>());
  }
  if (status != 0 || json.is_discarded() || !json.is_object()) {
    throw std::runtime_error(what + " failed (exit status " + std::to_string(WEXITSTATUS(status)) + "); its output:\n" +
                             output);
  }
  return json;
}

}  // namespace fusec::bench
