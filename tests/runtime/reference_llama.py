#!/usr/bin/python3
"""An independent reference for fusec's Llama-family forward pass.

Written from Hugging Face's modeling_llama / modeling_qwen2 equations, not from fusec's C++: its own
safetensors reader, rotary frequencies (Llama-3 scaling as in Meta's `apply_scaling`, frequency by
frequency), repeat_kv by expand/reshape, eager attention with the softmax in float32. Runs on Debian's torch
(/usr/bin/python3), which has no transformers or safetensors module.

usage: reference_llama.py MODEL_DIR INPUT.json OUTPUT.bin [fp32|bf16]
INPUT.json: {"ids": [[...], ...]} (equal lengths). OUTPUT.bin: the logits [B, T, vocab] as little-endian
float32, row-major. With bf16, weights and activations are bfloat16 as transformers runs them: RMSNorm in
float32 cast back before the weight, cos/sin cast to bfloat16, the softmax in float32 cast back.
"""
import json
import math
import os
import struct
import sys

import torch

DTYPES = {"F32": torch.float32, "F16": torch.float16, "BF16": torch.bfloat16}


def read_safetensors(path):
    with open(path, "rb") as f:
        data = f.read()
    (header_len,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8 : 8 + header_len])
    base = 8 + header_len
    tensors = {}
    for name, entry in header.items():
        if name == "__metadata__":
            continue
        begin, end = entry["data_offsets"]
        raw = bytearray(data[base + begin : base + end])
        flat = torch.frombuffer(raw, dtype=DTYPES[entry["dtype"]]) if raw else torch.empty(0, dtype=DTYPES[entry["dtype"]])
        tensors[name] = flat.reshape(entry["shape"]).to(torch.float32)
    return tensors


def read_weights(model_dir):
    index = os.path.join(model_dir, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    else:
        files = ["model.safetensors"]
    weights = {}
    for name in files:
        weights.update(read_safetensors(os.path.join(model_dir, name)))
    return weights


def inverse_frequencies(config, head_dim):
    base = config.get("rope_theta", 10000.0)
    freqs = [1.0 / (base ** (i / head_dim)) for i in range(0, head_dim, 2)]
    scaling = config.get("rope_scaling") or {}
    kind = scaling.get("rope_type", scaling.get("type", "default"))
    if kind == "linear":
        freqs = [f / scaling["factor"] for f in freqs]
    elif kind == "llama3":
        factor = scaling["factor"]
        low, high = scaling["low_freq_factor"], scaling["high_freq_factor"]
        old = scaling["original_max_position_embeddings"]
        low_wavelen, high_wavelen = old / low, old / high
        scaled = []
        for f in freqs:
            wavelen = 2 * math.pi / f
            if wavelen < high_wavelen:
                scaled.append(f)
            elif wavelen > low_wavelen:
                scaled.append(f / factor)
            else:
                smooth = (old / wavelen - low) / (high - low)
                scaled.append((1 - smooth) * f / factor + smooth * f)
        freqs = scaled
    return torch.tensor(freqs, dtype=torch.float32)


def rms_norm(x, weight, eps):
    x32 = x.to(torch.float32)
    variance = x32.pow(2).mean(-1, keepdim=True)
    return weight * (x32 * torch.rsqrt(variance + eps)).to(x.dtype)


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


def forward(config, w, ids, dtype=torch.float32):
    hidden = config["hidden_size"]
    n_heads = config["num_attention_heads"]
    n_kv = config.get("num_key_value_heads", n_heads)
    head_dim = config.get("head_dim", hidden // n_heads)
    eps = config.get("rms_norm_eps", 1e-6)
    batch, length = ids.shape

    inv_freq = inverse_frequencies(config, head_dim)
    positions = torch.arange(length, dtype=torch.float32)
    angles = torch.outer(positions, inv_freq)
    emb = torch.cat((angles, angles), dim=-1)
    cos, sin = emb.cos()[None, None].to(dtype), emb.sin()[None, None].to(dtype)
    causal = torch.full((length, length), float("-inf")).triu(1).to(dtype)

    x = w["model.embed_tokens.weight"][ids]
    for layer in range(config["num_hidden_layers"]):
        p = f"model.layers.{layer}."
        h = rms_norm(x, w[p + "input_layernorm.weight"], eps)

        def proj(name, heads):
            out = h @ w[p + f"self_attn.{name}.weight"].T
            if p + f"self_attn.{name}.bias" in w:
                out = out + w[p + f"self_attn.{name}.bias"]
            return out.view(batch, length, heads, head_dim).transpose(1, 2)

        q, k, v = proj("q_proj", n_heads), proj("k_proj", n_kv), proj("v_proj", n_kv)
        q = q * cos + rotate_half(q) * sin
        k = k * cos + rotate_half(k) * sin
        groups = n_heads // n_kv
        k = k[:, :, None].expand(batch, n_kv, groups, length, head_dim).reshape(batch, n_heads, length, head_dim)
        v = v[:, :, None].expand(batch, n_kv, groups, length, head_dim).reshape(batch, n_heads, length, head_dim)
        scores = q @ k.transpose(2, 3) / math.sqrt(head_dim) + causal
        attn = torch.softmax(scores, dim=-1, dtype=torch.float32).to(dtype) @ v
        attn = attn.transpose(1, 2).reshape(batch, length, n_heads * head_dim)
        x = x + attn @ w[p + "self_attn.o_proj.weight"].T

        h = rms_norm(x, w[p + "post_attention_layernorm.weight"], eps)
        gate = h @ w[p + "mlp.gate_proj.weight"].T
        up = h @ w[p + "mlp.up_proj.weight"].T
        x = x + (torch.nn.functional.silu(gate) * up) @ w[p + "mlp.down_proj.weight"].T

    x = rms_norm(x, w["model.norm.weight"], eps)
    head = w["model.embed_tokens.weight"] if config.get("tie_word_embeddings", False) else w["lm_head.weight"]
    return (x @ head.T).to(torch.float32)


def main(forward=forward):
    """MODEL_DIR INPUT.json OUTPUT.bin [fp32|bf16]: the logits of `forward` (this file's, or another
    reference's with the same signature) on the input ids, as little-endian float32."""
    model_dir, input_path, output_path = sys.argv[1:4]
    dtype = {"fp32": torch.float32, "bf16": torch.bfloat16}[sys.argv[4] if len(sys.argv) > 4 else "fp32"]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    with open(input_path) as f:
        ids = torch.tensor(json.load(f)["ids"], dtype=torch.long)
    torch.set_num_threads(1)
    with torch.no_grad():
        weights = {name: tensor.to(dtype) for name, tensor in read_weights(model_dir).items()}
        logits = forward(config, weights, ids, dtype)
    values = logits.contiguous().view(-1).tolist()  # no numpy: the device machine's Python may lack it
    with open(output_path, "wb") as f:
        f.write(struct.pack("<%df" % len(values), *values))


if __name__ == "__main__":
    main()
