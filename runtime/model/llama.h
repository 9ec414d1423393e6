// The decoder of every supported family (Llama, Mistral, Qwen2, Qwen3, Gemma-2), equation for equation as
// Hugging Face's modeling_llama, modeling_qwen3 and modeling_gemma2. One class for all: the families differ
// in a handful of steps, each a named switch of ModelConfig (config.h) that the modules below read, so the
// shared path stays one readable forward and each difference is visible where it applies.
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
/// the first `length` positions are filled. The keys' positions are kept for the sliding window, which is a
/// mask over the whole cache (a windowed layer's old keys stay, unseen).
///
/// Rows of lengths of their own (continuous batching, generation.h): with `row_lengths` defined, a forward
/// of one token a row writes row b's key and value at column row_lengths[b], attention reads the first
/// `length` columns under the caller's mask, and the caller advances both (Hidden leaves them as they are).
struct KvCache {
  std::vector<torch::Tensor> keys;
  std::vector<torch::Tensor> values;
  torch::Tensor positions;  // [B, capacity] int64
  int64_t length = 0;
  int64_t capacity = 0;
  torch::Tensor row_lengths;  // [B] int64 on the cache's device, or undefined: every row at `length`

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

/// The masks of one forward, built once for every layer: bool [B, T, S], true where query t may attend to key
/// s (`full` undefined: causal over T), and, when the model has a sliding window, `sliding`, the same
/// restricted to keys less than `sliding_window` positions before the query.
struct AttentionMasks {
  torch::Tensor full;
  torch::Tensor sliding;
};

/// RMSNorm, normalised in float32; the weight applied as NormStyle says (Llama: cast back, then times weight;
/// Gemma: times 1 + weight in float32, then cast back).
class RmsNormImpl : public torch::nn::Module {
 public:
  RmsNormImpl(int64_t size, double eps, NormStyle style = NormStyle::Llama);
  torch::Tensor forward(const torch::Tensor& x);  // [..., size] -> [..., size]
  torch::Tensor weight;

 private:
  double eps_;
  NormStyle style_;
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

/// Grouped-query attention with rotary embeddings; Qwen3's q/k norms, Gemma-2's scale, soft-capping and
/// sliding window where the config has them.
class AttentionImpl : public torch::nn::Module {
 public:
  AttentionImpl(const ModelConfig& config, size_t layer);
  /// x [B, T, hidden]; cos, sin [B, T, head_dim]; masks as AttentionMasks says (this layer uses `sliding` if
  /// it is a windowed layer); with a cache, this layer's keys and values for the T positions are written at
  /// cache->length. With `packed` (B = 1, no cache, no masks), attention follows its segments instead.
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const AttentionMasks& masks, KvCache* cache, const PackedAttentionPlan* packed);
  torch::nn::Linear q_proj{nullptr}, k_proj{nullptr}, v_proj{nullptr}, o_proj{nullptr};
  RmsNorm q_norm{nullptr}, k_norm{nullptr};  // Qwen3 only: over head_dim, each head

 private:
  int64_t num_heads_, num_kv_heads_, head_dim_;
  size_t layer_;
  bool sliding_;    // this layer attends within the sliding window
  double scale_;    // of the scores: query_pre_attn_scalar^-1/2 or head_dim^-1/2
  double softcap_;  // attn_logit_softcapping, 0 for none
};
TORCH_MODULE(Attention);

class MlpImpl : public torch::nn::Module {
 public:
  explicit MlpImpl(const ModelConfig& config);
  torch::Tensor forward(const torch::Tensor& x);  // down(act(gate(x)) * up(x)): SwiGLU, or GeGLU with tanh GELU
  torch::nn::Linear gate_proj{nullptr}, up_proj{nullptr}, down_proj{nullptr};

 private:
  MlpActivation activation_;
};
TORCH_MODULE(Mlp);

/// Pre-norm residual blocks. Llama: x + attn(norm(x)), then h + mlp(norm(h)), `post_attention_layernorm`
/// being the MLP's input norm. Gemma-2 (sandwich_norms) norms both sides: x + post_attention_layernorm(attn(
/// input_layernorm(x))), then h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h))).
class DecoderLayerImpl : public torch::nn::Module {
 public:
  DecoderLayerImpl(const ModelConfig& config, size_t layer);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                        const AttentionMasks& masks, KvCache* cache, const PackedAttentionPlan* packed);
  Attention self_attn{nullptr};
  Mlp mlp{nullptr};
  RmsNorm input_layernorm{nullptr}, post_attention_layernorm{nullptr};
  RmsNorm pre_feedforward_layernorm{nullptr}, post_feedforward_layernorm{nullptr};  // Gemma-2 only
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
  /// or an empty one). With a cache, the T positions are appended to it. With a cache of per-row lengths
  /// (KvCache::row_lengths), T = 1, S = cache->length, and row b's token goes to column row_lengths[b].
  torch::Tensor Hidden(const torch::Tensor& input_ids, const torch::Tensor& positions, const torch::Tensor& allowed,
                       KvCache* cache = nullptr);
  /// Final hidden states [1, N, hidden] of one packed sequence: input_ids, positions [1, N] int64 (positions
  /// restart or continue per segment, as the caller lays them out), attention as `layout` says.
  torch::Tensor HiddenPacked(const torch::Tensor& input_ids, const torch::Tensor& positions, const PackedLayout& layout);
  /// Logits [..., vocab] in float32 for hidden states [..., hidden], soft-capped when the config says.
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
  /// Token embeddings [B, T, hidden], times sqrt(hidden_size) for Gemma.
  torch::Tensor Embed(const torch::Tensor& input_ids);

  ModelConfig config_;
  std::string source_;
};
TORCH_MODULE(LlamaForCausalLM);

/// Hugging Face's initialisation: normal(0, initializer_range) for linear and embedding weights, zero biases,
/// norms that start as the identity (ones; zeros for Gemma's `1 + weight`). Deterministic for a seed.
void InitializeWeights(LlamaForCausalLMImpl& model, uint64_t seed);

}  // namespace fusec::rt
