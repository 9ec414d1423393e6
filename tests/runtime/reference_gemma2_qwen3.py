#!/usr/bin/python3
"""An independent reference for fusec's Gemma-2 and Qwen3 forward passes (and Mistral's sliding window).

Transcribed from Hugging Face's modeling_gemma2.py and modeling_qwen3.py (eager attention), not from fusec's
C++. Only the safetensors reader and the rotary frequencies are shared with reference_llama.py; the
equations that make these families differ are written out here, each where modeling_*.py has it:

Gemma-2 (Gemma2Model.forward, Gemma2DecoderLayer, Gemma2Attention, Gemma2RMSNorm, Gemma2MLP):
  hidden = embed(ids) * torch.tensor(hidden_size ** 0.5, dtype=hidden.dtype)
  RMSNorm: out = x.float() * rsqrt(mean(x.float()^2) + eps); out = out * (1 + weight.float()); out.type_as(x)
  layer: x = x + post_attention_layernorm(attn(input_layernorm(x)))
         x = x + post_feedforward_layernorm(mlp(pre_feedforward_layernorm(x)))
  mlp: down(gelu_pytorch_tanh(gate(x)) * up(x))
  attention: scores = q @ k^T * query_pre_attn_scalar ** -0.5; scores = tanh(scores / cap) * cap
             (attn_logit_softcapping); scores + mask (the dtype's min where masked); softmax in float32
  sliding window on layers with `not bool(layer_idx % 2)` (0, 2, ...): the causal mask where additionally
             torch.tril(ones, diagonal=-sliding_window) is masked (keys sliding_window or more back)
  logits = lm_head(norm(x)); logits = tanh(logits / cap) * cap (final_logit_softcapping); tied embeddings
Qwen3 (Qwen3Attention): q = q_norm(q_proj(x).view(B, T, H, D)), k = k_norm(k_proj(x).view(...)) before the
  rotary embedding, Llama's RMSNorm (weight * normed.to(dtype)) over head_dim; no biases; otherwise Llama.
Mistral: a `sliding_window` masks every layer as above.

usage: reference_gemma2_qwen3.py MODEL_DIR INPUT.json OUTPUT.bin [fp32|bf16]
INPUT.json: {"ids": [[...], ...]} (equal lengths). OUTPUT.bin: the logits [B, T, vocab] as little-endian
float32, row-major.
"""
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_llama import inverse_frequencies, main  # noqa: E402  (the reader and driver, not the equations)


def llama_rms_norm(x, weight, eps):
    x32 = x.to(torch.float32)
    x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + eps)
    return weight * x32.to(x.dtype)


def gemma_rms_norm(x, weight, eps):
    out = x.float()
    out = out * torch.rsqrt(out.pow(2).mean(-1, keepdim=True) + eps)
    out = out * (1.0 + weight.float())
    return out.type_as(x)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def sliding_layers(config, arch):
    window = config.get("sliding_window", 4096 if arch == "Gemma2ForCausalLM" else None)
    n = config["num_hidden_layers"]
    if window is None or arch not in ("Gemma2ForCausalLM", "MistralForCausalLM"):
        return None, [False] * n
    if "layer_types" in config:
        return window, [t == "sliding_attention" for t in config["layer_types"]]
    if arch == "Gemma2ForCausalLM":
        return window, [not bool(i % 2) for i in range(n)]
    return window, [True] * n


def forward(config, w, ids, dtype=torch.float32):
    arch = config["architectures"][0]
    gemma = arch == "Gemma2ForCausalLM"
    qwen3 = arch == "Qwen3ForCausalLM"
    hidden = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_heads)
    head_dim = config.get("head_dim", 256 if gemma else 128 if qwen3 else hidden // n_heads)
    eps = config.get("rms_norm_eps", 1e-6)
    batch, length = ids.shape
    norm = gemma_rms_norm if gemma else llama_rms_norm
    if gemma:
        scaling = config.get("query_pre_attn_scalar", 224) ** -0.5
        attn_cap = config.get("attn_logit_softcapping", 50.0)
        final_cap = config.get("final_logit_softcapping", 30.0)
    else:
        scaling, attn_cap, final_cap = head_dim ** -0.5, None, None
    window, sliding = sliding_layers(config, arch)

    inv_freq = inverse_frequencies(config, head_dim)
    angles = torch.outer(torch.arange(length, dtype=torch.float32), inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos()[None, None].to(dtype), emb.sin()[None, None].to(dtype)
    min_dtype = torch.finfo(dtype).min
    causal = torch.full((length, length), min_dtype, dtype=dtype).triu(1)
    if window is not None:
        too_far = torch.tril(torch.ones(length, length, dtype=torch.bool), diagonal=-window)
        windowed = torch.where(too_far, torch.tensor(min_dtype, dtype=dtype), causal)

    x = w["model.embed_tokens.weight"][ids]
    if gemma:
        x = x * torch.tensor(hidden**0.5, dtype=x.dtype)
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name, heads):
            out = h @ w[p + f"self_attn.{name}.weight"].T
            if p + f"self_attn.{name}.bias" in w:
                out = out + w[p + f"self_attn.{name}.bias"]
            return out.view(batch, length, heads, head_dim)

        q, k, v = proj("q_proj", n_heads), proj("k_proj", n_kv), proj("v_proj", n_kv)
        if qwen3:
            q = llama_rms_norm(q, w[p + "self_attn.q_norm.weight"], eps)
            k = llama_rms_norm(k, w[p + "self_attn.k_norm.weight"], eps)
        q, k, v = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = n_heads // n_kv
        k = k[:, :, None].expand(batch, n_kv, groups, length, head_dim).reshape(batch, n_heads, length, head_dim)
        v = v[:, :, None].expand(batch, n_kv, groups, length, head_dim).reshape(batch, n_heads, length, head_dim)
        scores = (q @ k.transpose(2, 3)) * scaling
        if attn_cap is not None:
            scores = torch.tanh(scores / attn_cap) * attn_cap
        scores = scores + (windowed if sliding[layer] else causal)
        attn = torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype) @ v
        attn = attn.transpose(1, 2).reshape(batch, length, n_heads * head_dim) @ w[p + "self_attn.o_proj.weight"].T
        if gemma:
            attn = norm(attn, w[p + "post_attention_layernorm.weight"], eps)
            x = x + attn
            h = norm(x, w[p + "pre_feedforward_layernorm.weight"], eps)
        else:
            x = x + attn
            h = norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        act = torch.nn.functional.gelu(gate, approximate="tanh") if gemma else torch.nn.functional.silu(gate)
        out = (act * up) @ w[p + "mlp.down_proj.weight"].T
        if gemma:
            out = norm(out, w[p + "post_feedforward_layernorm.weight"], eps)
        x = x + out

    x = norm(x, w["model.norm.weight"], eps)
    tied = config.get("tie_word_embeddings", gemma)
    head = w["model.embed_tokens.weight"] if tied else w["lm_head.weight"]
    logits = (x @ head.T).to(torch.float32)
    if final_cap is not None:
        logits = torch.tanh(logits / final_cap) * final_cap
    return logits


if __name__ == "__main__":
    main(forward)
