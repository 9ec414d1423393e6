// The one place where LibTorch 1.13 (Debian, CPU) and LibTorch 2.x (the device machine's, CUDA) differ for
// fusec. Everything else in the runtime is written against the API both share; when a difference appears,
// it gets a function here rather than an #if at the call site.
#pragma once

#include <ATen/ATen.h>
#include <ATen/autocast_mode.h>
#include <torch/version.h>

#include <cmath>
#include <limits>
#include <optional>

namespace fusec::rt::compat {

inline constexpr bool kHasFusedAttention = TORCH_VERSION_MAJOR >= 2;

/// Attention written out as Hugging Face's "eager" path: scores = q k^T * scale, soft-capped to
/// tanh(scores / softcap) * softcap when softcap > 0 (Gemma-2), masked, softmax in float32 cast back, times v.
/// Shapes and `allowed` as for Attention.
inline at::Tensor EagerAttention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                                 double scale, double softcap) {
  at::Tensor scores = at::matmul(q, k.transpose(-2, -1)) * scale;
  if (softcap > 0) scores = at::tanh(scores / softcap) * softcap;
  at::Tensor mask = allowed;
  if (!mask.defined()) {
    const int64_t t = q.size(-2);
    mask = at::ones({t, t}, q.options().dtype(at::kBool)).tril();
  }
  scores = scores.masked_fill(mask.logical_not(), -std::numeric_limits<float>::infinity());
  at::Tensor weights = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  return at::matmul(weights, v);
}

/// Scaled dot-product attention. q [B, H, T, D], k and v [B, H, S, D] (key/value heads already repeated to
/// H). `allowed` is a bool mask broadcastable to [B, H, T, S] (true: the query may attend to the key), or
/// undefined for causal attention with T == S. `scale` multiplies the scores (0: 1/sqrt(D)); `softcap` > 0
/// soft-caps them before the mask. Returns [B, H, T, D]. LibTorch 2.x has a fused kernel (flash or
/// memory-efficient attention on CUDA), used unless the scores are soft-capped, which it cannot do (a
/// different scale is folded into q); 1.13 has no public one, so the Hugging Face "eager" equations are
/// spelled out, with the softmax in float32 as they do.
inline at::Tensor Attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, const at::Tensor& allowed,
                            double scale = 0, double softcap = 0) {
  const double default_scale = 1.0 / std::sqrt(static_cast<double>(q.size(-1)));
#if TORCH_VERSION_MAJOR >= 2
  if (softcap <= 0) {
    const at::Tensor scaled_q = scale > 0 && scale != default_scale ? q * (scale / default_scale) : q;
    if (allowed.defined()) return at::scaled_dot_product_attention(scaled_q, k, v, allowed);
    return at::scaled_dot_product_attention(scaled_q, k, v, /*attn_mask=*/{}, /*dropout_p=*/0.0, /*is_causal=*/true);
  }
#endif
  return EagerAttention(q, k, v, allowed, scale > 0 ? scale : default_scale, softcap);
}

/// Mixed precision for a scope: matmuls and friends run in `dtype` (bf16) while the weights, and everything
/// autocast keeps in float32 (softmax, log-softmax, norms), stay fp32. Backward runs outside the scope, as
/// PyTorch recommends. LibTorch 2.4 replaced the per-device setters with ones that take the device type.
class AutocastScope {
 public:
  AutocastScope(bool enabled, at::DeviceType device, at::ScalarType dtype) : enabled_(enabled), device_(device) {
    if (!enabled_) return;
    Set(true, dtype);
  }
  ~AutocastScope() {
    if (!enabled_) return;
    Set(false, at::kFloat);
    at::autocast::clear_cache();
  }
  AutocastScope(const AutocastScope&) = delete;
  AutocastScope& operator=(const AutocastScope&) = delete;

 private:
  void Set(bool on, at::ScalarType dtype) const {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
    if (on) at::autocast::set_autocast_dtype(device_, dtype);
    at::autocast::set_autocast_enabled(device_, on);
#else
    if (device_ == at::kCUDA) {
      if (on) at::autocast::set_autocast_gpu_dtype(dtype);
      at::autocast::set_enabled(on);
    } else {
      if (on) at::autocast::set_autocast_cpu_dtype(dtype);
      at::autocast::set_cpu_enabled(on);
    }
#endif
  }

  bool enabled_;
  at::DeviceType device_;
};

/// The dtype autocast runs matmuls in on `device`, or nullopt where autocast is off: for code that does by
/// hand what autocast would do (a custom autograd function's backward runs outside the autocast scope).
inline std::optional<at::ScalarType> AutocastDtype(at::DeviceType device) {
#if TORCH_VERSION_MAJOR > 2 || (TORCH_VERSION_MAJOR == 2 && TORCH_VERSION_MINOR >= 4)
  if (!at::autocast::is_autocast_enabled(device)) return std::nullopt;
  return at::autocast::get_autocast_dtype(device);
#else
  if (device == at::kCUDA) {
    if (!at::autocast::is_enabled()) return std::nullopt;
    return at::autocast::get_autocast_gpu_dtype();
  }
  if (!at::autocast::is_cpu_enabled()) return std::nullopt;
  return at::autocast::get_autocast_cpu_dtype();
#endif
}

}  // namespace fusec::rt::compat
