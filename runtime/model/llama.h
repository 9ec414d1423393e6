// The Llama-family decoder (Llama, Mistral, Qwen2), equation for equation as Hugging Face's modeling_llama.
//
// Modules are registered under Hugging Face's names, so `named_parameters()` yields exactly the tensor names
// of a safetensors checkpoint (`model.layers.0.self_attn.q_proj.weight`) and loading is a name lookup. The
// numerics follow the reference where they matter: RMSNorm computed in float32 and cast back before the
// weight, rotary frequencies in float32, attention softmax in float32. One forward serves training (packed
// sequences: positions and segments come from the caller), scoring and generation (a KV cache).
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include <vector>

#include "runtime/model/config.h"

namespace fusec::rt {

/// Keys and values of past positions, for generation. One [B, kv_heads, capacity, head_dim] pair a layer;
/// the first `length` positions are filled.
struct KvCache {
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;
  int64_t length = 0;
  int64_t capacity = 0;

  static KvCache Allocate(const ModelConfig& config, int64_t batch, int64_t capacity, const torch::TensorOptions& options);
};

/// How the tokens of one packed (padding-free) sequence attend to each other: a block-diagonal causal mask,
/// described by its blocks rather than materialised. Segment s holds tokens [begin, begin + length); its
/// queries attend causally to its own keys and, before them, to every key of its context segment (the
/// shared prompt a response continues), if it has one. Prompts are segments without a context.
struct PackedLayout {
  struct Segment {
    int64_t begin = 0;
    int64_t length = 0;
    int64_t context = -1;  // index of the segment this one continues, or -1
  };
  std::vector<Segment> segments;  // contiguous, in token order

  int64_t Tokens() const { return segments.empty() ? 0 : segments.back().begin + segments.back().length; }
};

/// How a packed sequence's attention is computed, planned once a forward from its layout (llama.cpp).
struct PackedAttentionPlan;

class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t size, double eps);
  torch::Tensor forward(const torch::Tensor& x);  // [..., size] -> [..., size]
  torch::Tensor weight;

 private:
  double eps_;
};
TORCH_MODULE(RmsNorm);

/// Rotary embedding frequencies, with Llama-3's and linear rope scaling.
class RotaryEmbeddingImpl : public torch::nn::Module {
 public:
  explicit RotaryEmbeddingImpl(const ModelConfig& config);
  /// cos and sin for `positions` [B, T]: each [B, T, head_dim], in float32.
  std::pair<torch::Tensor, torch::Tensor> forward(const torch::Tensor& positions);
  torch::Tensor inv_freq;  // [head_dim / 2], float32
};
TORCH_MODULE(RotaryEmbedding);

class AttentionImpl : public torch::nn::Module {
 public:
  explicit AttentionImpl(const ModelConfig& config);
  /// x [B, T, hidden]; cos, sin [B, T, head_dim]; allowed: bool [B, T, S] or undefined for causal; with a
  /// cache, this layer's keys and values for the T positions are written at cache->length. With `packed`
  /// (B = 1, no cache, no mask), attention follows its segments instead.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed, KvCache* cache, size_t layer, const PackedAttentionPlan* packed);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};

 private:
  int64_t num_heads_, num_kv_heads_, head_dim_;
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // SwiGLU: down(silu(gate(x)) * up(x))
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};
};
TORCH_MODULE(Mlp);

class DecoderLayerImpl : public torch::nn::Module {
 public:
  explicit DecoderLayerImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const torch::Tensor& allowed, KvCache* cache, size_t layer, const PackedAttentionPlan* packed);
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
};
TORCH_MODULE(DecoderLayer);

class LlamaModelImpl : public torch::nn::Module {
 public:
  explicit LlamaModelImpl(const ModelConfig& config);
  torch::nn::Embedding embed_tokens{nullptr};
  torch::nn::ModuleList layers{nullptr};
  RmsNorm norm{nullptr};
  RotaryEmbedding rotary_emb{nullptr};
};
TORCH_MODULE(LlamaModel);

/// Throws the RunError OutOfMemory, with the size the config asks for, when the model's float32 weights do not
/// fit in the machine's memory (a `num_hidden_layers` of 2^31 would otherwise allocate until it crashed).
void CheckModelFitsInMemory(const ModelConfig& config);

class LlamaForCausalLMImpl : public torch::nn::Module {
 public:
  /// Checks CheckModelFitsInMemory first.
  explicit LlamaForCausalLMImpl(ModelConfig config);

  /// Final hidden states [B, T, hidden]. input_ids, positions: [B, T] int64. allowed: bool [B, T, S] with
  /// S = (cache length) + T, true where query t may attend to key s; undefined means causal over T (no cache
  /// or an empty one). With a cache, the T positions are appended to it.
  torch::Tensor Hidden(const torch::Tensor& input_ids, const torch::Tensor& positions, const torch::Tensor& allowed,
                       KvCache* cache = nullptr);
  /// Final hidden states [1, N, hidden] of one packed sequence: input_ids, positions [1, N] int64 (positions
  /// restart or continue per segment, as the caller lays them out), attention as `layout` says.
  torch::Tensor HiddenPacked(const torch::Tensor& input_ids, const torch::Tensor& positions, const PackedLayout& layout);
  /// Logits [..., vocab] in float32 for hidden states [..., hidden].
  torch::Tensor Logits(const torch::Tensor& hidden);
  /// Causal logits [B, T, vocab] of whole sequences starting at position 0.
  torch::Tensor forward(const torch::Tensor& input_ids);

  const ModelConfig& config() const { return config_; }
  /// The directory the model was loaded from (LoadModel sets it), so errors about its outputs can name it;
  /// empty for a model built in memory.
  const std::string& source() const { return source_; }
  void set_source(std::string dir) { source_ = std::move(dir); }
  /// The weight the LM head multiplies by: lm_head's, or the token embedding when tied. [vocab, hidden]
  torch::Tensor OutputWeight() const;

  LlamaModel model{nullptr};
  torch::nn::Linear lm_head{nullptr};  // null when tied

 private:
  ModelConfig config_;
  std::string source_;
};
TORCH_MODULE(LlamaForCausalLM);

/// Hugging Face's initialisation: normal(0, initializer_range) for linear and embedding weights, zero biases,
/// ones for norms. Deterministic for a seed.
void InitializeWeights(LlamaForCausalLMImpl& model, uint64_t seed);

}  // namespace fusec::rt
