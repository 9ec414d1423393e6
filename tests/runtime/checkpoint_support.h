// Helpers of the training-checkpoint tests: a tiny model, its optimizer, and an optimizer step whose
// gradients are fixed, so that two models stepped alike end alike bit for bit.
#pragma once

#include <gtest/gtest.h>
#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <cstdint>
#include <string>

#include "runtime/model/config.h"
#include "runtime/model/llama.h"

namespace fusec::rt::testing {

inline ModelConfig TinyConfig(int64_t hidden_size = 32) {
  std::string error;
  auto config = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": )" +
                                     std::to_string(hidden_size) + R"(, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 260,
    "max_position_embeddings": 128, "tie_word_embeddings": true})",
                                 &error);
  EXPECT_TRUE(config) << error;
  return *config;
}

inline LlamaForCausalLM TinyModel(uint64_t seed, int64_t hidden_size = 32) {
  LlamaForCausalLM model(TinyConfig(hidden_size));
  InitializeWeights(*model, seed);
  return model;
}

inline torch::optim::AdamW Optimizer(LlamaForCausalLMImpl& model) {
  return torch::optim::AdamW(model.parameters(), torch::optim::AdamWOptions(1e-2));
}

/// One AdamW step with every gradient set to a fixed function of the parameter's shape.
inline void StepWithFixedGradients(LlamaForCausalLMImpl& model, torch::optim::AdamW& optimizer) {
  optimizer.zero_grad();
  for (auto& parameter : model.parameters()) {
    parameter.mutable_grad() = torch::linspace(-1.0, 1.0, parameter.numel()).reshape(parameter.sizes()).clone();
  }
  optimizer.step();
}

}  // namespace fusec::rt::testing
