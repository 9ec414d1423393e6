#include "runtime/model/config.h"

#include <gtest/gtest.h>

namespace fusec::rt {
namespace {

// Meta-Llama-3.1-8B's config.json, as published.
constexpr const char* kLlama31Config = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0,
  "bos_token_id": 128000, "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096,
  "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05,
  "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                   "original_max_position_embeddings": 8192, "rope_type": "llama3"},
  "rope_theta": 500000.0, "tie_word_embeddings": false, "torch_dtype": "bfloat16",
  "transformers_version": "4.43.0.dev0", "use_cache": true, "vocab_size": 128256})";

// Qwen2-0.5B-Instruct's.
constexpr const char* kQwen2Config = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643, "eos_token_id": 151645,
  "hidden_act": "silu", "hidden_size": 896, "initializer_range": 0.02, "intermediate_size": 4864,
  "max_position_embeddings": 32768, "max_window_layers": 24, "model_type": "qwen2", "num_attention_heads": 14,
  "num_hidden_layers": 24, "num_key_value_heads": 2, "rms_norm_eps": 1e-06, "rope_theta": 1000000.0,
  "sliding_window": 32768, "tie_word_embeddings": true, "torch_dtype": "bfloat16", "use_cache": true,
  "use_sliding_window": false, "vocab_size": 151936})";

TEST(ModelConfig, ReadsLlama31) {
  std::string error;
  auto config = ParseModelConfig(kLlama31Config, &error);
  ASSERT_TRUE(config) << error;
  EXPECT_EQ(config->architecture, "LlamaForCausalLM");
  EXPECT_EQ(config->num_layers, 32);
  EXPECT_EQ(config->num_kv_heads, 8);
  EXPECT_EQ(config->head_dim, 128);
  EXPECT_EQ(config->vocab_size, 128256);
  EXPECT_EQ(config->rope_theta, 500000.0);
  EXPECT_EQ(config->rope_scaling.kind, RopeScaling::Kind::Llama3);
  EXPECT_EQ(config->rope_scaling.factor, 8.0);
  EXPECT_EQ(config->rope_scaling.original_max_position, 8192);
  EXPECT_FALSE(config->qkv_bias);
  EXPECT_FALSE(config->tie_word_embeddings);
  EXPECT_EQ(config->eos_token_ids, (std::vector<int64_t>{128001, 128008, 128009}));
  EXPECT_EQ(config->torch_dtype, "bfloat16");
}

TEST(ModelConfig, ReadsQwen2WithBiasAndTiedEmbeddings) {
  std::string error;
  auto config = ParseModelConfig(kQwen2Config, &error);
  ASSERT_TRUE(config) << error;
  EXPECT_EQ(config->model_type, "qwen2");
  EXPECT_TRUE(config->qkv_bias);
  EXPECT_TRUE(config->tie_word_embeddings);
  EXPECT_EQ(config->head_dim, 64);
  EXPECT_EQ(config->rms_norm_eps, 1e-6);
}

TEST(ModelConfig, WritesWhatItReadsAndKeepsUnknownFields) {
  std::string error;
  auto config = ParseModelConfig(kLlama31Config, &error);
  ASSERT_TRUE(config) << error;
  std::string written = ModelConfigToJson(*config);
  EXPECT_NE(written.find("\"transformers_version\""), std::string::npos);
  auto again = ParseModelConfig(written, &error);
  ASSERT_TRUE(again) << error;
  EXPECT_EQ(again->hidden_size, config->hidden_size);
  EXPECT_EQ(again->rope_scaling.kind, RopeScaling::Kind::Llama3);
  EXPECT_EQ(again->rope_scaling.low_freq_factor, 1.0);
  EXPECT_EQ(again->eos_token_ids, config->eos_token_ids);
  EXPECT_EQ(ModelConfigToJson(*again), written);
}

TEST(ModelConfig, NamesWhatItDoesNotSupport) {
  struct Case {
    std::string patch_key;
    std::string patch_value;
    const char* expected;
  };
  std::vector<Case> cases = {
      {"architectures", R"(["GPT2LMHeadModel"])", "GPT2LMHeadModel` is not supported"},
      {"architectures", R"([])", "needs `architectures`"},
      {"hidden_act", R"("gelu")", "`hidden_act` gelu"},
      {"rope_scaling", R"({"rope_type": "yarn", "factor": 4.0})", "`yarn` is not supported"},
      {"rope_scaling", R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 4.0, "high_freq_factor": 1.0})",
       "high_freq_factor"},
      {"num_key_value_heads", "5", "not a multiple"},
      {"hidden_size", R"("4096")", "`hidden_size` must be an integer"},
      {"vocab_size", "0", "`vocab_size` must be an integer >= 1"},
      {"rms_norm_eps", "-1", "`rms_norm_eps` must be a positive number"},
      {"mlp_bias", "true", "`mlp_bias`"},
      {"pretraining_tp", "2", "`pretraining_tp` 2"},
      {"torch_dtype", R"("int8")", "`torch_dtype` int8"},
      {"rope_scaling", R"({"rope_type": "llama3", "factor": "big"})", "`rope_scaling.factor` must be a positive number, not \"big\""},
  };
  for (const Case& c : cases) {
    auto json = nlohmann::ordered_json::parse(kLlama31Config);
    json[c.patch_key] = nlohmann::ordered_json::parse(c.patch_value);
    std::string error;
    EXPECT_FALSE(ParseModelConfig(json.dump(), &error)) << c.patch_key << " = " << c.patch_value;
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.patch_key << ": " << error;
  }
  std::string error;
  EXPECT_FALSE(ParseModelConfig("not json", &error));
  EXPECT_FALSE(ParseModelConfig("[1, 2]", &error));
  auto json = nlohmann::ordered_json::parse(kLlama31Config);
  json.erase("num_hidden_layers");
  EXPECT_FALSE(ParseModelConfig(json.dump(), &error));
  EXPECT_NE(error.find("has no `num_hidden_layers`"), std::string::npos) << error;
}

}  // namespace
}  // namespace fusec::rt
