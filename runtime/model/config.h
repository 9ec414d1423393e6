// Model configuration, read from and written to a Hugging Face `config.json`.
//
// fusec runs one decoder for five architectures: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM,
// Qwen3ForCausalLM and Gemma2ForCausalLM (RMSNorm, rotary embeddings, grouped-query attention, a gated MLP).
// Where the families differ, ModelConfig has a named switch (Qwen2's biases on q/k/v, Qwen3's norms of q and
// k, Gemma-2's `1 + weight` norms, GeGLU, sandwich norms, soft-capping and sliding window), set from the
// architecture and then from the fields that tune it, so the decoder reads switches, never architecture
// names. Whatever a config asks for that the decoder does not implement (another architecture, activation
// or rope scaling) is an error naming the field, so a model is never run with silently different equations.
// Fields fusec does not use are kept and written back.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

namespace fusec::rt {

struct RopeScaling {
  enum class Kind : uint8_t { None, Linear, Llama3 };
  Kind kind = Kind::None;
  double factor = 1.0;
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position = 8192;
};

/// RMSNorm's weight: Llama's `weight * normed.to(dtype)`, or Gemma's `normed * (1 + weight)` in float32.
enum class NormStyle : uint8_t { Llama, Gemma };
/// The gate's activation of the gated MLP: SwiGLU (silu) or GeGLU (`gelu_pytorch_tanh`).
enum class MlpActivation : uint8_t { Silu, GeluTanh };

struct ModelConfig {
  std::string architecture = "LlamaForCausalLM";
  std::string model_type = "llama";
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;  // hidden_size / num_heads unless the config says
  int64_t vocab_size = 0;
  int64_t max_position = 2048;
  double rms_norm_eps = 1e-5;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // Qwen2, or `attention_bias` in Llama configs

  // The family switches (Gemma-2 and Qwen3 set most of them; Llama, Mistral and Qwen2 none).
  NormStyle norm_style = NormStyle::Llama;
  MlpActivation mlp_activation = MlpActivation::Silu;
  bool scale_embeddings = false;  // Gemma: embeddings times sqrt(hidden_size), in the embeddings' dtype
  bool sandwich_norms = false;    // Gemma-2: attention and MLP outputs normed too (four norms a layer)
  bool qk_norm = false;           // Qwen3: RMSNorm over each head's q and k (`q_norm`, `k_norm`), before rotary
  std::optional<double> query_pre_attn_scalar;    // attention scores scaled by its -1/2 power, else head_dim's
  std::optional<double> attn_logit_softcapping;   // scores become tanh(s / c) * c before the mask
  std::optional<double> final_logit_softcapping;  // logits become tanh(z / c) * c
  std::optional<int64_t> sliding_window;          // a windowed layer's query sees keys less than this far back
  std::vector<bool> sliding_layers;               // [num_layers], true where a layer uses the window

  std::optional<int64_t> bos_token_id;
  std::vector<int64_t> eos_token_ids;
  std::string torch_dtype = "float32";
  double initializer_range = 0.02;
  /// The config as read, so fields fusec does not use are written back unchanged.
  nlohmann::ordered_json raw = nlohmann::ordered_json::object();
};

/// Parses and validates a config.json. On failure returns nullopt with `error` naming the field and its value
/// (`hidden_size` must be an integer >= 1 and <= 2147483647, not 32.5); every field fusec reads has its JSON
/// type checked, so no library text reaches the user.
std::optional<ModelConfig> ParseModelConfig(const std::string& text, std::string* error);
/// Reads and validates `dir`/config.json; `error` starts with the file's path.
std::optional<ModelConfig> ReadModelConfig(const std::string& dir, std::string* error);
/// How many weights the model has (embeddings, layers, norms, the head unless tied), as llama.cpp builds it;
/// nullopt when the count does not fit in 64 bits (ParseModelConfig refuses such configs).
std::optional<uint64_t> ModelWeightCount(const ModelConfig& config);
/// The config.json text Hugging Face tools read (raw fields first, then fusec's values over them).
std::string ModelConfigToJson(const ModelConfig& config);

}  // namespace fusec::rt
