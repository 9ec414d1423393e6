// Helpers of the model tests (model_test.cpp, model_families_test.cpp, generation_test.cpp): configs from
// config.json text, the tests' device, random ids, the
// independent Python references run as child processes, greedy decoding by recomputation, and log-probs with
// their parameter gradients.
#pragma once

#include <gtest/gtest.h>
#include <torch/types.h>
#include <torch/utils.h>

#include <cstdlib>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/model/inference.h"
#include "runtime/model/llama.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt::testing {

/// A config.json text as the model's config; a config that does not parse fails the test.
inline ModelConfig ParseConfig(const std::string& json) {
  std::string error;
  auto config = ParseModelConfig(json, &error);
  EXPECT_TRUE(config) << error;
  return config ? *config : ModelConfig{};
}

/// CPU, or CUDA with FUSEC_TEST_DEVICE=cuda.
inline torch::Device TestDevice() {
  const char* device = std::getenv("FUSEC_TEST_DEVICE");
  return device != nullptr && std::string(device) == "cuda" ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
}

/// [batch, length] ids below `vocab`, on the tests' device.
inline torch::Tensor RandomIds(int64_t batch, int64_t length, int64_t vocab, uint64_t seed) {
  torch::manual_seed(seed);
  return torch::randint(vocab, {batch, length}, torch::kLong).to(TestDevice());
}

inline double MaxDiff(const torch::Tensor& a, const torch::Tensor& b) {
  return (a.cpu().to(torch::kFloat) - b.cpu().to(torch::kFloat)).abs().max().item<double>();
}

/// Logits [B, T, vocab] of the Python reference `script` (reference_llama.py, reference_gemma2_qwen3.py) on
/// the model directory `dir` for `ids` [B, T], in `dtype` (fp32 or bf16).
inline torch::Tensor ReferenceLogits(const std::string& script, const std::string& dir, const torch::Tensor& ids,
                                     int64_t vocab, const std::string& dtype) {
  ScratchDir scratch("reference");
  nlohmann::json input = {{"ids", nlohmann::json::array()}};
  for (int64_t b = 0; b < ids.size(0); ++b) {
    torch::Tensor row = ids[b].cpu().contiguous();
    input["ids"].push_back(std::vector<int64_t>(row.data_ptr<int64_t>(), row.data_ptr<int64_t>() + ids.size(1)));
  }
  WriteFile(scratch / "ids.json", input.dump());
  // Debian's /usr/bin/python3 has Debian's torch (the python3 on PATH may not); the device machine names its own.
  const char* python = std::getenv("FUSEC_REFERENCE_PYTHON");
  const std::string command = std::string(python != nullptr ? python : "/usr/bin/python3") + " " +
                              FUSEC_TESTS_RUNTIME_DIR + "/" + script + " " + dir + " " + (scratch / "ids.json") + " " +
                              (scratch / "logits.bin") + " " + dtype;
  EXPECT_EQ(RunCommand(command), 0) << command;
  std::string bytes = ReadFile(scratch / "logits.bin");
  if (bytes.size() != static_cast<size_t>(ids.numel() * vocab) * 4) {
    ADD_FAILURE() << "the reference wrote " << bytes.size() << " bytes";
    return torch::zeros({ids.size(0), ids.size(1), vocab});
  }
  return torch::from_blob(bytes.data(), {ids.size(0), ids.size(1), vocab}, torch::kFloat).clone();
}

/// `steps` greedy tokens after `sequence`, each by a full forward of everything so far (no cache).
inline std::vector<int32_t> NaiveGreedy(LlamaForCausalLMImpl& model, std::vector<int32_t> sequence, int64_t steps) {
  torch::NoGradGuard no_grad;
  std::vector<int32_t> generated;
  for (int64_t i = 0; i < steps; ++i) {
    torch::Tensor input = torch::tensor(std::vector<int64_t>(sequence.begin(), sequence.end()), torch::kLong)
                              .unsqueeze(0)
                              .to(TestDevice());
    auto next = static_cast<int32_t>(model.forward(input)[0][-1].argmax().item<int64_t>());
    generated.push_back(next);
    sequence.push_back(next);
  }
  return generated;
}

/// Log-probs [responses] and every parameter's gradient of sum(logp * coefficient) under `options`.
struct LogProbsAndGradients {
  torch::Tensor logp;
  std::map<std::string, torch::Tensor> gradients;
  std::vector<int64_t> scored;
};

inline LogProbsAndGradients Differentiate(LlamaForCausalLMImpl& model, const std::vector<PromptResponses>& groups,
                                          const LogProbOptions& options) {
  model.zero_grad();
  LogProbsAndGradients out;
  out.logp = ResponseLogProbs(model, groups, options, &out.scored);
  torch::Tensor coefficients = torch::linspace(-1.0, 2.0, out.logp.size(0)).to(out.logp.device());
  (out.logp * coefficients).sum().backward();
  for (const auto& item : model.named_parameters()) out.gradients[item.key()] = item.value().grad().detach().cpu().clone();
  return out;
}

}  // namespace fusec::rt::testing
