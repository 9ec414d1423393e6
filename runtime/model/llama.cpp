#include "runtime/model/llama.h"

#include <ATen/CPUGeneratorImpl.h>
#include <torch/nn/functional/linear.h>

#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <limits>
#include <numbers>

#include "runtime/support/run_error.h"
#include "runtime/support/torch_compat.h"

namespace fusec::rt {
namespace {

torch::nn::Linear MakeLinear(int64_t in, int64_t out, bool bias) {
  return torch::nn::Linear(torch::nn::LinearOptions(in, out).bias(bias));
}

/// Rotates the two halves of the last dimension: [x1, x2] -> [-x2, x1].
torch::Tensor RotateHalf(const torch::Tensor& x) {
  int64_t half = x.size(-1) / 2;
  return torch::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

/// Inverse frequencies [head_dim / 2] in float32, scaled as the config's rope_scaling says.
torch::Tensor InverseFrequencies(const ModelConfig& config) {
  const int64_t dim = config.head_dim;
  torch::Tensor exponents = torch::arange(0, dim, 2, torch::kInt64).to(torch::kFloat) / static_cast<double>(dim);
  torch::Tensor inv_freq = 1.0 / torch::pow(config.rope_theta, exponents);
  const RopeScaling& scaling = config.rope_scaling;
  switch (scaling.kind) {
    case RopeScaling::Kind::None:
      break;
    case RopeScaling::Kind::Linear:
      inv_freq = inv_freq / scaling.factor;
      break;
    case RopeScaling::Kind::Llama3: {
      // transformers' _compute_llama3_parameters: long wavelengths are slowed by `factor`, short ones kept,
      // and the band between is interpolated.
      const double old_context = static_cast<double>(scaling.original_max_position);
      const double low_freq_wavelen = old_context / scaling.low_freq_factor;
      const double high_freq_wavelen = old_context / scaling.high_freq_factor;
      torch::Tensor wavelen = 2 * std::numbers::pi / inv_freq;
      torch::Tensor scaled = torch::where(wavelen > low_freq_wavelen, inv_freq / scaling.factor, inv_freq);
      torch::Tensor smooth =
          (old_context / wavelen - scaling.low_freq_factor) / (scaling.high_freq_factor - scaling.low_freq_factor);
      torch::Tensor smoothed = (1 - smooth) * scaled / scaling.factor + smooth * scaled;
      torch::Tensor medium = (wavelen >= high_freq_wavelen).logical_and(wavelen <= low_freq_wavelen);
      inv_freq = torch::where(medium, smoothed, scaled);
      break;
    }
  }
  return inv_freq;
}

}  // namespace

namespace {

/// Where keys are less than `window` positions before their query: query positions [..., T], key positions
/// [..., S] -> bool [..., T, S]. Positions, not indices: a response packed behind its shared prompt sees the
/// prompt's last keys exactly as it would in a padded row.
torch::Tensor WithinWindow(const torch::Tensor& query_positions, const torch::Tensor& key_positions, int64_t window) {
  return (query_positions.unsqueeze(-1) - key_positions.unsqueeze(-2)) < window;
}

}  // namespace

/// A packed sequence's attention in blocks. Short groups (a prompt segment and the segments that continue it,
/// or a lone segment) are gathered into tiles of up to kTileTokens tokens, each one attention call under a
/// dense mask: one call for many tiny sequences rather than one each. Longer groups go segment by segment,
/// so no masked-out score of a long sequence is computed. Masks are built once a forward, not once a layer;
/// with a sliding window each block has a windowed mask too, from the tokens' positions.
struct PackedAttentionPlan {
  static constexpr int64_t kTileTokens = 256;

  struct Block {
    int64_t begin = 0, length = 0;  // the queries (and, for a tile, the keys)
    torch::Tensor allowed;          // tile: bool [length, length]; segment with a context: [length, context + length]
    torch::Tensor sliding;          // `allowed` (or causal) within the window; undefined without one
    int64_t context_begin = 0, context_length = 0;  // segment blocks: the keys before its own
  };
  std::vector<Block> blocks;

  /// positions: [N] int64, the packed tokens' positions; window: the config's sliding window, if any.
  PackedAttentionPlan(const PackedLayout& layout, const torch::Tensor& positions, std::optional<int64_t> window) {
    const torch::Device device = positions.device();
    Build(layout, device);
    if (!window) return;
    for (Block& block : blocks) {
      torch::Tensor queries = positions.narrow(0, block.begin, block.length);
      torch::Tensor keys = block.context_length > 0
                               ? torch::cat({positions.narrow(0, block.context_begin, block.context_length), queries})
                               : queries;
      torch::Tensor allowed =
          block.allowed.defined()
              ? block.allowed
              : torch::ones({block.length, block.length}, torch::TensorOptions().dtype(torch::kBool).device(device))
                    .tril();
      block.sliding = allowed & WithinWindow(queries, keys, *window);
    }
  }

 private:
  void Build(const PackedLayout& layout, const torch::Device& device) {
    // Groups: a segment without a context starts one; segments continuing it follow it in the layout.
    std::vector<std::pair<size_t, size_t>> groups;  // [first segment, end segment)
    for (size_t s = 0; s < layout.segments.size(); ++s) {
      const int64_t context = layout.segments[s].context;
      TORCH_CHECK(context < static_cast<int64_t>(s), "a packed segment's context must come before it");
      if (context < 0 || groups.empty() || static_cast<size_t>(context) < groups.back().first) {
        groups.emplace_back(s, s + 1);
      } else {
        groups.back().second = s + 1;
      }
    }
    std::vector<std::pair<size_t, size_t>> tile;  // groups of the tile being gathered
    auto close_tile = [&]() {
      if (tile.empty()) return;
      AddTile(layout, tile, device);
      tile.clear();
    };
    int64_t tile_tokens = 0;
    for (const auto& group : groups) {
      int64_t tokens = 0;
      for (size_t s = group.first; s < group.second; ++s) tokens += layout.segments[s].length;
      if (tokens > kTileTokens) {
        close_tile();
        tile_tokens = 0;
        for (size_t s = group.first; s < group.second; ++s) AddSegment(layout, s, device);
        continue;
      }
      if (tile_tokens + tokens > kTileTokens) {
        close_tile();
        tile_tokens = 0;
      }
      tile.push_back(group);
      tile_tokens += tokens;
    }
    close_tile();
  }

  void AddTile(const PackedLayout& layout, const std::vector<std::pair<size_t, size_t>>& groups, const torch::Device& device) {
    const int64_t begin = layout.segments[groups.front().first].begin;
    const PackedLayout::Segment& last = layout.segments[groups.back().second - 1];
    const int64_t length = last.begin + last.length - begin;
    std::vector<uint8_t> allowed(static_cast<size_t>(length * length), 0);
    for (const auto& group : groups) {
      for (size_t s = group.first; s < group.second; ++s) {
        const PackedLayout::Segment& segment = layout.segments[s];
        for (int64_t i = 0; i < segment.length; ++i) {
          uint8_t* row = allowed.data() + (segment.begin - begin + i) * length;
          if (segment.context >= 0) {
            const PackedLayout::Segment& context = layout.segments[static_cast<size_t>(segment.context)];
            std::fill_n(row + (context.begin - begin), context.length, 1);
          }
          std::fill_n(row + (segment.begin - begin), i + 1, 1);
        }
      }
    }
    Block block;
    block.begin = begin;
    block.length = length;
    block.allowed = torch::from_blob(allowed.data(), {length, length}, torch::kUInt8).to(device, torch::kBool);
    blocks.push_back(std::move(block));
  }

  void AddSegment(const PackedLayout& layout, size_t s, const torch::Device& device) {
    const PackedLayout::Segment& segment = layout.segments[s];
    Block block;
    block.begin = segment.begin;
    block.length = segment.length;
    if (segment.context >= 0) {
      const PackedLayout::Segment& context = layout.segments[static_cast<size_t>(segment.context)];
      block.context_begin = context.begin;
      block.context_length = context.length;
      const auto options = torch::TensorOptions().dtype(torch::kBool).device(device);
      block.allowed = torch::cat({torch::ones({segment.length, context.length}, options),
                                  torch::ones({segment.length, segment.length}, options).tril()},
                                 1);
    }
    blocks.push_back(std::move(block));
  }
};

namespace {

/// Attention of a packed sequence as its plan says: q, k, v [1, H, N, D] -> [1, H, N, D]; `sliding`: under
/// the blocks' windowed masks.
torch::Tensor PackedAttention(const torch::Tensor& q, const torch::Tensor& k, const torch::Tensor& v,
                              const PackedAttentionPlan& plan, bool sliding, double scale, double softcap) {
  std::vector<torch::Tensor> outputs;
  outputs.reserve(plan.blocks.size());
  for (const PackedAttentionPlan::Block& block : plan.blocks) {
    torch::Tensor q_b = q.narrow(2, block.begin, block.length);
    torch::Tensor k_b = k.narrow(2, block.begin, block.length);
    torch::Tensor v_b = v.narrow(2, block.begin, block.length);
    if (block.context_length > 0) {  // a segment after its context: [context keys, own keys]
      k_b = torch::cat({k.narrow(2, block.context_begin, block.context_length), k_b}, 2);
      v_b = torch::cat({v.narrow(2, block.context_begin, block.context_length), v_b}, 2);
    }
    const torch::Tensor& allowed = sliding ? block.sliding : block.allowed;
    outputs.push_back(compat::Attention(q_b, k_b, v_b, allowed, scale, softcap));  // undefined mask: causal
  }
  return torch::cat(outputs, 2);
}

}  // namespace

KvCache KvCache::Allocate(const ModelConfig& config, int64_t batch, int64_t capacity, const torch::TensorOptions& options) {
  KvCache cache;
  cache.capacity = capacity;
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    cache.keys.push_back(torch::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, options));
    cache.values.push_back(torch::zeros({batch, config.num_kv_heads, capacity, config.head_dim}, options));
  }
  cache.positions = torch::zeros({batch, capacity}, options.dtype(torch::kLong));
  return cache;
}

RmsNormImpl::RmsNormImpl(int64_t size, double eps, NormStyle style) : eps_(eps), style_(style) {
  // Each style's identity: Gemma's weight is an offset from 1 (modeling_gemma2 starts it at zeros).
  weight = register_parameter("weight", style == NormStyle::Gemma ? torch::zeros({size}) : torch::ones({size}));
}

torch::Tensor RmsNormImpl::forward(const torch::Tensor& x) {
  torch::Tensor x32 = x.to(torch::kFloat);
  torch::Tensor variance = x32.pow(2).mean(-1, /*keepdim=*/true);
  x32 = x32 * torch::rsqrt(variance + eps_);
  switch (style_) {
    case NormStyle::Llama:
      return weight * x32.to(x.scalar_type());
    case NormStyle::Gemma:
      return (x32 * (1.0 + weight.to(torch::kFloat))).to(x.scalar_type());
  }
  return x;
}

RotaryEmbeddingImpl::RotaryEmbeddingImpl(const ModelConfig& config) {
  // A buffer so that .to(device) moves it; checkpoints neither hold nor need it.
  inv_freq = register_buffer("inv_freq", InverseFrequencies(config));
}

std::pair<torch::Tensor, torch::Tensor> RotaryEmbeddingImpl::forward(const torch::Tensor& positions) {
  torch::Tensor freqs = positions.to(torch::kFloat).unsqueeze(-1) * inv_freq.to(torch::kFloat);  // [B, T, D/2]
  torch::Tensor angles = torch::cat({freqs, freqs}, -1);
  return {angles.cos(), angles.sin()};
}

AttentionImpl::AttentionImpl(const ModelConfig& config, size_t layer)
    : num_heads_(config.num_heads),
      num_kv_heads_(config.num_kv_heads),
      head_dim_(config.head_dim),
      layer_(layer),
      sliding_(config.sliding_window && config.sliding_layers.at(layer)),
      scale_(1.0 / std::sqrt(config.query_pre_attn_scalar.value_or(static_cast<double>(config.head_dim)))),
      softcap_(config.attn_logit_softcapping.value_or(0.0)) {
  q_proj = register_module("q_proj", MakeLinear(config.hidden_size, num_heads_ * head_dim_, config.qkv_bias));
  k_proj = register_module("k_proj", MakeLinear(config.hidden_size, num_kv_heads_ * head_dim_, config.qkv_bias));
  v_proj = register_module("v_proj", MakeLinear(config.hidden_size, num_kv_heads_ * head_dim_, config.qkv_bias));
  o_proj = register_module("o_proj", MakeLinear(num_heads_ * head_dim_, config.hidden_size, false));
  if (config.qk_norm) {
    q_norm = register_module("q_norm", RmsNorm(head_dim_, config.rms_norm_eps));
    k_norm = register_module("k_norm", RmsNorm(head_dim_, config.rms_norm_eps));
  }
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                     const AttentionMasks& masks, KvCache* cache, const PackedAttentionPlan* packed) {
  const int64_t batch = x.size(0);
  const int64_t length = x.size(1);
  torch::Tensor q = q_proj(x).view({batch, length, num_heads_, head_dim_});
  torch::Tensor k = k_proj(x).view({batch, length, num_kv_heads_, head_dim_});
  if (q_norm) {  // Qwen3: each head's q and k normed over head_dim, before rotary
    q = q_norm(q);
    k = k_norm(k);
  }
  q = q.transpose(1, 2);
  k = k.transpose(1, 2);
  torch::Tensor v = v_proj(x).view({batch, length, num_kv_heads_, head_dim_}).transpose(1, 2);
  torch::Tensor c = cos.unsqueeze(1).to(x.scalar_type());
  torch::Tensor s = sin.unsqueeze(1).to(x.scalar_type());
  q = q * c + RotateHalf(q) * s;
  k = k * c + RotateHalf(k) * s;
  if (cache != nullptr && cache->row_lengths.defined()) {  // one token a row, each at its own column
    const torch::Tensor at = cache->row_lengths.view({batch, 1, 1, 1}).expand({batch, num_kv_heads_, 1, head_dim_});
    cache->keys[layer_].scatter_(2, at, k);
    cache->values[layer_].scatter_(2, at, v);
    k = cache->keys[layer_].narrow(2, 0, cache->length);
    v = cache->values[layer_].narrow(2, 0, cache->length);
  } else if (cache != nullptr) {
    const int64_t start = cache->length;
    cache->keys[layer_].narrow(2, start, length).copy_(k);
    cache->values[layer_].narrow(2, start, length).copy_(v);
    k = cache->keys[layer_].narrow(2, 0, start + length);
    v = cache->values[layer_].narrow(2, 0, start + length);
  }
  const int64_t groups = num_heads_ / num_kv_heads_;
  if (groups > 1) {  // grouped-query attention: query head h reads key/value head h / groups
    k = k.repeat_interleave(groups, 1);
    v = v.repeat_interleave(groups, 1);
  }
  torch::Tensor out;
  if (packed != nullptr) {
    out = PackedAttention(q, k, v, *packed, sliding_, scale_, softcap_);
  } else {
    const torch::Tensor& allowed = sliding_ ? masks.sliding : masks.full;
    out = compat::Attention(q, k, v, allowed.defined() ? allowed.unsqueeze(1) : allowed, scale_, softcap_);
  }
  return o_proj(out.transpose(1, 2).reshape({batch, length, num_heads_ * head_dim_}));
}

MlpImpl::MlpImpl(const ModelConfig& config) : activation_(config.mlp_activation) {
  gate_proj = register_module("gate_proj", MakeLinear(config.hidden_size, config.intermediate_size, false));
  up_proj = register_module("up_proj", MakeLinear(config.hidden_size, config.intermediate_size, false));
  down_proj = register_module("down_proj", MakeLinear(config.intermediate_size, config.hidden_size, false));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  torch::Tensor gate = gate_proj(x);
  switch (activation_) {
    case MlpActivation::Silu:
      gate = torch::silu(gate);
      break;
    case MlpActivation::GeluTanh:  // gelu_pytorch_tanh
      gate = torch::gelu(gate, "tanh");
      break;
  }
  return down_proj(gate * up_proj(x));
}

DecoderLayerImpl::DecoderLayerImpl(const ModelConfig& config, size_t layer) {
  auto norm = [&] { return RmsNorm(config.hidden_size, config.rms_norm_eps, config.norm_style); };
  self_attn = register_module("self_attn", Attention(config, layer));
  mlp = register_module("mlp", Mlp(config));
  input_layernorm = register_module("input_layernorm", norm());
  post_attention_layernorm = register_module("post_attention_layernorm", norm());
  if (config.sandwich_norms) {
    pre_feedforward_layernorm = register_module("pre_feedforward_layernorm", norm());
    post_feedforward_layernorm = register_module("post_feedforward_layernorm", norm());
  }
}

torch::Tensor DecoderLayerImpl::forward(const torch::Tensor& x, const torch::Tensor& cos, const torch::Tensor& sin,
                                        const AttentionMasks& masks, KvCache* cache,
                                        const PackedAttentionPlan* packed) {
  torch::Tensor attention = self_attn(input_layernorm(x), cos, sin, masks, cache, packed);
  if (!pre_feedforward_layernorm) {
    torch::Tensor h = x + attention;
    return h + mlp(post_attention_layernorm(h));
  }
  torch::Tensor h = x + post_attention_layernorm(attention);  // Gemma-2's sandwich
  return h + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(h)));
}

LlamaModelImpl::LlamaModelImpl(const ModelConfig& config) {
  embed_tokens = register_module("embed_tokens", torch::nn::Embedding(config.vocab_size, config.hidden_size));
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < config.num_layers; ++i) layers->push_back(DecoderLayer(config, static_cast<size_t>(i)));
  norm = register_module("norm", RmsNorm(config.hidden_size, config.rms_norm_eps, config.norm_style));
  rotary_emb = register_module("rotary_emb", RotaryEmbedding(config));
}

namespace {

std::string ByteSizeText(double bytes) {
  const char* unit = "B";
  for (const char* larger : {"KiB", "MiB", "GiB", "TiB", "PiB", "EiB"}) {
    if (bytes < 1024) break;
    bytes /= 1024;
    unit = larger;
  }
  char text[64];
  std::snprintf(text, sizeof text, "%.1f %s", bytes, unit);
  return text;
}

/// The machine's memory, or 0 when it cannot be told.
uint64_t PhysicalMemoryBytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES);
  const long page_size = ::sysconf(_SC_PAGE_SIZE);
  return pages > 0 && page_size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page_size) : 0;
}

}  // namespace

void CheckModelFitsInMemory(const ModelConfig& config) {
  // The model is built in float32 on the CPU before it moves to its device and dtype, so this is what it needs.
  const uint64_t weights = ModelWeightCount(config).value_or(std::numeric_limits<uint64_t>::max());
  const double bytes = static_cast<double>(weights) * sizeof(float);
  const uint64_t memory = PhysicalMemoryBytes();
  if (memory == 0 || bytes <= static_cast<double>(memory)) return;
  throw RunError(RunErrorKind::OutOfMemory, "out of memory: the model needs " + ByteSizeText(bytes) + " for its " +
                                                std::to_string(weights) + " weights in float32, more than the " +
                                                ByteSizeText(static_cast<double>(memory)) + " this machine has")
      .Note("`num_hidden_layers` " + std::to_string(config.num_layers) + ", `hidden_size` " +
            std::to_string(config.hidden_size) + ", `intermediate_size` " + std::to_string(config.intermediate_size) +
            ", `vocab_size` " + std::to_string(config.vocab_size))
      .Help("check the sizes in config.json, or use a machine with more memory");
}

LlamaForCausalLMImpl::LlamaForCausalLMImpl(ModelConfig config) : config_(std::move(config)) {
  CheckModelFitsInMemory(config_);  // before any allocation: an absurd config is one clear error, not a crash
  model = register_module("model", LlamaModel(config_));
  if (!config_.tie_word_embeddings) {
    lm_head = register_module("lm_head", MakeLinear(config_.hidden_size, config_.vocab_size, false));
  }
}

torch::Tensor LlamaForCausalLMImpl::Hidden(const torch::Tensor& input_ids, const torch::Tensor& positions,
                                           const torch::Tensor& allowed, KvCache* cache) {
  const bool per_row = cache != nullptr && cache->row_lengths.defined();
  TORCH_CHECK(allowed.defined() || cache == nullptr || cache->length == 0,
              "attention over a filled KV cache needs an explicit mask");
  TORCH_CHECK(cache == nullptr || per_row || cache->length + input_ids.size(1) <= cache->capacity, "the KV cache is full");
  TORCH_CHECK(!per_row || (input_ids.size(1) == 1 && cache->length <= cache->capacity &&
                           allowed.size(-1) == cache->length),
              "a KV cache of per-row lengths takes one token a row and a mask over its `length` columns");
  AttentionMasks masks{allowed, {}};
  if (config_.sliding_window) {
    torch::Tensor key_positions = positions;
    if (per_row) {
      cache->positions.scatter_(1, cache->row_lengths.view({-1, 1}), positions);
      key_positions = cache->positions.narrow(1, 0, cache->length);
    } else if (cache != nullptr) {
      cache->positions.narrow(1, cache->length, positions.size(1)).copy_(positions);
      key_positions = cache->positions.narrow(1, 0, cache->length + positions.size(1));
    }
    torch::Tensor full = allowed;
    if (!full.defined()) {
      const int64_t t = positions.size(1);
      full = torch::ones({1, t, t}, positions.options().dtype(torch::kBool)).tril();
    }
    masks.sliding = full & WithinWindow(positions, key_positions, *config_.sliding_window);
  }
  torch::Tensor h = Embed(input_ids);
  auto [cos, sin] = model->rotary_emb(positions);
  for (size_t i = 0; i < model->layers->size(); ++i) {
    h = model->layers->at<DecoderLayerImpl>(i).forward(h, cos, sin, masks, cache, /*packed=*/nullptr);
  }
  if (cache != nullptr && !per_row) cache->length += input_ids.size(1);
  return model->norm(h);
}

torch::Tensor LlamaForCausalLMImpl::HiddenPacked(const torch::Tensor& input_ids, const torch::Tensor& positions,
                                                 const PackedLayout& layout) {
  TORCH_CHECK(input_ids.size(0) == 1 && input_ids.size(1) == layout.Tokens(), "a packed sequence is one row of its layout's tokens");
  const PackedAttentionPlan plan(layout, positions[0], config_.sliding_window);
  torch::Tensor h = Embed(input_ids);
  auto [cos, sin] = model->rotary_emb(positions);
  for (size_t i = 0; i < model->layers->size(); ++i) {
    h = model->layers->at<DecoderLayerImpl>(i).forward(h, cos, sin, /*masks=*/{}, /*cache=*/nullptr, &plan);
  }
  return model->norm(h);
}

torch::Tensor LlamaForCausalLMImpl::Embed(const torch::Tensor& input_ids) {
  torch::Tensor h = model->embed_tokens(input_ids);
  if (!config_.scale_embeddings) return h;
  // modeling_gemma2: `normalizer = torch.tensor(hidden_size**0.5, dtype=hidden_states.dtype)`, rounded to
  // the embeddings' dtype (bf16 holds sqrt(2304) as 48.0).
  return h * torch::scalar_tensor(std::sqrt(static_cast<double>(config_.hidden_size)), h.options());
}

torch::Tensor LlamaForCausalLMImpl::OutputWeight() const {
  return lm_head ? lm_head->weight : model->embed_tokens->weight;
}

torch::Tensor LlamaForCausalLMImpl::Logits(const torch::Tensor& hidden) {
  torch::Tensor logits = torch::nn::functional::linear(hidden, OutputWeight()).to(torch::kFloat);
  if (!config_.final_logit_softcapping) return logits;
  const double cap = *config_.final_logit_softcapping;
  return torch::tanh(logits / cap) * cap;
}

torch::Tensor LlamaForCausalLMImpl::forward(const torch::Tensor& input_ids) {
  torch::Tensor positions =
      torch::arange(input_ids.size(1), input_ids.options().dtype(torch::kLong)).unsqueeze(0).expand_as(input_ids);
  return Logits(Hidden(input_ids, positions, /*allowed=*/{}));
}

void InitializeWeights(LlamaForCausalLMImpl& model, uint64_t seed) {
  torch::NoGradGuard no_grad;
  at::Generator generator = at::detail::createCPUGenerator(seed);
  const double std = model.config().initializer_range;
  const double norm_identity = model.config().norm_style == NormStyle::Gemma ? 0.0 : 1.0;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& parameter = item.value();
    torch::Tensor values = torch::empty(parameter.sizes(), torch::kFloat);
    if (name.ends_with("self_attn.q_norm.weight") || name.ends_with("self_attn.k_norm.weight")) {
      values.fill_(1.0);  // Qwen3's, Llama-style
    } else if (name.ends_with("norm.weight")) {
      values.fill_(norm_identity);
    } else if (name.ends_with(".bias")) {
      values.zero_();
    } else {
      values.normal_(0.0, std, generator);
    }
    parameter.copy_(values);
  }
}

}  // namespace fusec::rt
