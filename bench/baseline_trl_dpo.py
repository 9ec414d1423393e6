#!/usr/bin/python3
"""The baseline of `make bench`: a FusePO-DPO optimizer step computed the way TRL's DPOTrainer computes one.

Run with Debian's /usr/bin/python3 and its torch (the same kernels as fusec's LibTorch), or on the device
machine with its PyTorch. fusec-bench writes the workload into a directory and runs this script on it:

    baseline_trl_dpo.py WORKLOAD_DIR [--device cpu|cuda] [--bf16]

WORKLOAD_DIR holds policy/ and reference/ (config.json and model.safetensors, Hugging Face names),
workload.json (the steps: prompts, each with K pairs of chosen and rejected token ids and a weight) and the
optimizer settings. It prints one JSON line: the wall time and loss of every optimizer step, the tokens a step
holds, and the peak memory (resident set on the CPU, allocated memory on CUDA).

What each part reproduces (TRL v0.11's DPOTrainer with its defaults, on a transformers LlamaForCausalLM with
eager attention; transformers and TRL themselves are not installed here, so their computation is written out):
- Rows: each pair side is one row, prompt + response (`tokenize_row`: the prompt is repeated in the chosen
  and in the rejected row); labels are -100 over the prompt (`label_pad_token_id`).
- `concatenated_inputs`: chosen and rejected rows are right-padded (pad id 0, label -100) to the longest row
  of the batch and concatenated into one batch of 2B rows; `concatenated_forward` runs the model once on it.
- The model: transformers' LlamaForCausalLM with its default attention: "sdpa" (torch's
  scaled_dot_product_attention with the additive 4-D mask) where torch has it (PyTorch 2, the device
  machine), "eager" otherwise (Debian's torch 1.13): the additive 4-D mask from the causal mask and the padding
  mask, scores in the activation dtype, softmax in float32. Logits cast to float32 (`logits = logits.float()`).
- `get_batch_logps`: logits[:, :-1] against labels[:, 1:], full-vocabulary `log_softmax` then `gather`,
  summed over the label mask.
- The reference model runs on every step under no_grad (`precompute_ref_log_probs=False`, the default).
- `dpo_loss` with loss_type "sigmoid" and label_smoothing 0: -logsigmoid(beta * ((pi_c - pi_r) - (ref_c - ref_r))),
  plus the implicit rewards it reports (beta * (pi - ref), detached).
- The HF Trainer step: backward, clip_grad_norm_ (max_grad_norm 1.0), AdamW, zero_grad; bf16 as autocast.
The one deviation: FusePO weights each pair (the source weight w_i of fuserl-method.md) and sums the weighted
pair losses per prompt, averaged over prompts, where TRL takes the plain mean. It is one multiply on B values,
and it makes the loss the same function fusec trains.
"""
import argparse
import json
import math
import os
import resource
import struct
import sys
import time
import traceback

import torch
import torch.nn.functional as F
from torch import nn

HAS_SDPA = hasattr(F, "scaled_dot_product_attention")


def load_safetensors(path):
    """{name: float32 tensor} from a safetensors file (no safetensors module on Debian)."""
    with open(path, "rb") as f:
        blob = f.read()
    header_size = struct.unpack("<Q", blob[:8])[0]
    header = json.loads(blob[8 : 8 + header_size])
    start = 8 + header_size
    dtypes = {"F32": torch.float32, "BF16": torch.bfloat16, "F16": torch.float16}
    out = {}
    for name, info in header.items():
        if name == "__metadata__":
            continue
        lo, hi = info["data_offsets"]
        data = torch.frombuffer(bytearray(blob[start + lo : start + hi]), dtype=dtypes[info["dtype"]])
        out[name] = data.reshape(info["shape"]).float()
    return out


class RMSNorm(nn.Module):
    def __init__(self, size, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(size))
        self.eps = eps

    def forward(self, x):
        x32 = x.float()
        x32 = x32 * torch.rsqrt(x32.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x32.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.heads, self.kv_heads = c["num_attention_heads"], c["num_key_value_heads"]
        self.head_dim = c.get("head_dim", c["hidden_size"] // self.heads)
        self.q_proj = nn.Linear(c["hidden_size"], self.heads * self.head_dim, bias=False)
        self.k_proj = nn.Linear(c["hidden_size"], self.kv_heads * self.head_dim, bias=False)
        self.v_proj = nn.Linear(c["hidden_size"], self.kv_heads * self.head_dim, bias=False)
        self.o_proj = nn.Linear(self.heads * self.head_dim, c["hidden_size"], bias=False)

    def forward(self, x, cos, sin, mask):
        b, t, _ = x.shape
        q = self.q_proj(x).view(b, t, self.heads, self.head_dim).transpose(1, 2)
        k = self.k_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        v = self.v_proj(x).view(b, t, self.kv_heads, self.head_dim).transpose(1, 2)
        q, k = q * cos + rotate_half(q) * sin, k * cos + rotate_half(k) * sin
        groups = self.heads // self.kv_heads
        k = k.repeat_interleave(groups, dim=1)  # transformers' repeat_kv
        v = v.repeat_interleave(groups, dim=1)
        if HAS_SDPA:  # LlamaSdpaAttention: the mask given, so is_causal is False
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=0.0, is_causal=False)
        else:  # LlamaAttention (eager)
            scores = q @ k.transpose(2, 3) / math.sqrt(self.head_dim) + mask
            weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype)
            out = weights @ v
        return self.o_proj(out.transpose(1, 2).reshape(b, t, -1))


def rotate_half(x):
    half = x.shape[-1] // 2
    return torch.cat((-x[..., half:], x[..., :half]), dim=-1)


class DecoderLayer(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.self_attn = Attention(c)
        self.mlp = nn.Module()
        self.mlp.gate_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.mlp.up_proj = nn.Linear(c["hidden_size"], c["intermediate_size"], bias=False)
        self.mlp.down_proj = nn.Linear(c["intermediate_size"], c["hidden_size"], bias=False)
        self.input_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.post_attention_layernorm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])

    def forward(self, x, cos, sin, mask):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, mask)
        h = self.post_attention_layernorm(x)
        return x + self.mlp.down_proj(F.silu(self.mlp.gate_proj(h)) * self.mlp.up_proj(h))


class LlamaForCausalLM(nn.Module):
    """transformers' LlamaForCausalLM (default rope, no biases), parameter names as in its checkpoints."""

    def __init__(self, c):
        super().__init__()
        self.config = c
        self.model = nn.Module()
        self.model.embed_tokens = nn.Embedding(c["vocab_size"], c["hidden_size"])
        self.model.layers = nn.ModuleList(DecoderLayer(c) for _ in range(c["num_hidden_layers"]))
        self.model.norm = RMSNorm(c["hidden_size"], c["rms_norm_eps"])
        self.tied = c.get("tie_word_embeddings", False)
        if not self.tied:
            self.lm_head = nn.Linear(c["hidden_size"], c["vocab_size"], bias=False)
        head_dim = c.get("head_dim", c["hidden_size"] // c["num_attention_heads"])
        exponents = torch.arange(0, head_dim, 2, dtype=torch.int64).float() / head_dim
        self.register_buffer("inv_freq", 1.0 / (c.get("rope_theta", 10000.0) ** exponents), persistent=False)

    def forward(self, input_ids, attention_mask):
        b, t = input_ids.shape
        x = self.model.embed_tokens(input_ids)
        positions = torch.arange(t, device=input_ids.device).float()  # transformers: cache_position
        angles = torch.outer(positions, self.inv_freq)
        emb = torch.cat((angles, angles), dim=-1)
        cos, sin = emb.cos()[None, None].to(x.dtype), emb.sin()[None, None].to(x.dtype)
        # _update_causal_mask: the causal mask and the padding mask as one additive [B, 1, T, T] mask.
        dtype = x.dtype
        minimum = torch.finfo(dtype).min
        causal = torch.full((t, t), minimum, device=x.device, dtype=dtype).triu(1)
        mask = causal[None, None].expand(b, 1, t, t).clone()
        mask = mask.masked_fill(attention_mask[:, None, None, :] == 0, minimum)
        for layer in self.model.layers:
            x = layer(x, cos, sin, mask)
        x = self.model.norm(x)
        head = self.model.embed_tokens.weight if self.tied else self.lm_head.weight
        return F.linear(x, head).float()


def load_model(directory, device):
    with open(os.path.join(directory, "config.json")) as f:
        config = json.load(f)
    model = LlamaForCausalLM(config)
    missing, unexpected = model.load_state_dict(load_safetensors(os.path.join(directory, "model.safetensors")), strict=False)
    if missing or unexpected:
        sys.exit(f"{directory}: weights do not match the model: missing {missing}, unexpected {unexpected}")
    return model.to(device)


def concatenated_inputs(pairs, device):
    """chosen rows then rejected rows, right-padded to the longest: input_ids, attention_mask, labels [2B, T]."""
    rows = [p["prompt"] + p["chosen"] for p in pairs] + [p["prompt"] + p["rejected"] for p in pairs]
    prompts = [len(p["prompt"]) for p in pairs] * 2
    width = max(len(r) for r in rows)
    input_ids = torch.zeros(len(rows), width, dtype=torch.long)
    attention_mask = torch.zeros(len(rows), width, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (row, prompt) in enumerate(zip(rows, prompts)):
        input_ids[i, : len(row)] = torch.tensor(row)
        attention_mask[i, : len(row)] = 1
        labels[i, prompt : len(row)] = torch.tensor(row[prompt:])
    return input_ids.to(device), attention_mask.to(device), labels.to(device)


def get_batch_logps(logits, labels):
    """TRL's get_batch_logps: summed log-probabilities of the labels, full-vocabulary log_softmax and gather."""
    labels = labels[:, 1:].clone()
    logits = logits[:, :-1, :]
    loss_mask = labels != -100
    labels[labels == -100] = 0
    per_token_logps = torch.gather(logits.log_softmax(-1), dim=2, index=labels.unsqueeze(2)).squeeze(2)
    return (per_token_logps * loss_mask).sum(-1)


def concatenated_forward(model, batch):
    input_ids, attention_mask, labels = batch
    logps = get_batch_logps(model(input_ids, attention_mask), labels)
    half = logps.shape[0] // 2
    return logps[:half], logps[half:]


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("workload")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--bf16", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(int(os.environ.get("OMP_NUM_THREADS", os.cpu_count())))
    device = torch.device(args.device)
    with open(os.path.join(args.workload, "workload.json")) as f:
        workload = json.load(f)
    settings = workload["settings"]
    policy = load_model(os.path.join(args.workload, "policy"), device)
    reference = load_model(os.path.join(args.workload, "reference"), device).eval()
    policy.train()
    optimizer = torch.optim.AdamW(policy.parameters(), lr=settings["lr"], betas=tuple(settings["betas"]),
                                  eps=settings["eps"], weight_decay=settings["weight_decay"])
    beta = settings["beta"]
    autocast = torch.autocast(device_type=device.type, dtype=torch.bfloat16, enabled=args.bf16)
    if device.type == "cuda":  # CUDA's one-time costs (context, cuBLAS handle) before anything is timed
        square = torch.ones(256, 256, device=device, dtype=torch.bfloat16 if args.bf16 else torch.float32)
        _ = square @ square
        torch.cuda.synchronize()

    step_seconds, losses = [], []
    for step in workload["steps"]:
        pairs = [dict(prompt=p["prompt"], **pair) for p in step for pair in p["pairs"]]
        weights = torch.tensor([pair["weight"] for pair in pairs], device=device)
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        batch = concatenated_inputs(pairs, device)
        with torch.no_grad(), autocast:
            ref_chosen, ref_rejected = concatenated_forward(reference, batch)
        with autocast:
            chosen, rejected = concatenated_forward(policy, batch)
            logits = (chosen - rejected) - (ref_chosen - ref_rejected)
            pair_losses = -F.logsigmoid(beta * logits)
            chosen_rewards = beta * (chosen - ref_chosen).detach()  # TRL's reported metrics
            rejected_rewards = beta * (rejected - ref_rejected).detach()
            loss = (pair_losses * weights).sum() / len(step)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), settings["grad_clip"])
        optimizer.step()
        optimizer.zero_grad()
        _ = (chosen_rewards > rejected_rewards).float().mean().item()
        losses.append(loss.item())
        if device.type == "cuda":
            torch.cuda.synchronize()
        step_seconds.append(time.perf_counter() - start)
        print(f"  baseline step {len(losses)}/{len(workload['steps'])}: {step_seconds[-1]:.2f} s, loss {losses[-1]:.6f}",
              file=sys.stderr, flush=True)

    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device)
    print(json.dumps({"step_seconds": step_seconds, "losses": losses, "peak_bytes": peak,
                      "torch": torch.__version__, "attention": "sdpa" if HAS_SDPA else "eager"}))


if __name__ == "__main__":
    try:
        main()
    except Exception as error:  # the traceback on stderr; its gist on stdout, for fusec-bench's table
        traceback.print_exc()
        gist = str(error).strip().splitlines()
        print(json.dumps({"error": type(error).__name__ + (": " + gist[0] if gist else "")}), flush=True)
        sys.exit(1)
