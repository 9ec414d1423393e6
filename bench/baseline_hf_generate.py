#!/usr/bin/python3
"""The sampling baseline of `fusec-bench --config generate`: Hugging Face's `generate` loop, by hand.

Run by Debian's /usr/bin/python3 and torch (no transformers there), on the workload directory fusec-bench
writes: model/ (config.json, model.safetensors) and generate.json (the prompts and the settings).

What it reproduces of transformers' `GenerationMixin._sample` with a `LlamaForCausalLM` (4.4x):
- a static batch: `batch` prompts at a time, left-padded with the pad id, the attention mask 0 on the pads,
  position ids `attention_mask.cumsum(-1) - 1` (pads at 1), as `prepare_inputs_for_generation` computes them;
- the KV cache as `DynamicCache`: each layer's keys and values grow by `torch.cat` every step;
- eager attention (the attention implementation transformers picks under torch 1.13, which has no
  `scaled_dot_product_attention`): an additive mask of the dtype's minimum for the causal and padding masks,
  the softmax in float32, `repeat_kv` by expand/reshape; the prefill's logits at the last position only
  (`logits_to_keep=1`), each step's next-token logits copied to float32;
- the warpers in transformers' order, batched over the rows: `TemperatureLogitsWarper` (divides by the
  temperature), `TopKLogitsWarper` (when top_k > 0), `TopPLogitsWarper` (sorts ascending, removes the tokens
  whose cumulative probability is at most 1 - top_p, keeps at least one), then softmax and
  `torch.multinomial(probs, 1)`; temperature 0 is greedy (argmax);
- stopping: a row ends after it samples any stop id (`eos_token_id` may be a list) or at max_new_tokens; a
  finished row keeps being computed, fed the pad token (`next * unfinished + pad * (1 - unfinished)`), until
  every row of its batch has ended, as `_sample` does.

It prints one JSON line: the seconds generation took (model loading excluded), the generated tokens of each
prompt (up to and including the stop), and the greedy check's tokens.
"""
import json
import math
import os
import resource
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "runtime"))
from reference_llama import inverse_frequencies, read_weights, rms_norm, rotate_half  # noqa: E402


class Llama:
    """LlamaForCausalLM's forward with a DynamicCache-like cache (one list of [keys, values] a layer)."""

    def __init__(self, config, weights):
        self.config = config
        self.w = weights
        self.hidden = config["hidden_size"]
        self.n_heads = config["num_attention_heads"]
        self.n_kv = config.get("num_key_value_heads", self.n_heads)
        self.head_dim = config.get("head_dim", self.hidden // self.n_heads)
        self.eps = config.get("rms_norm_eps", 1e-6)
        self.inv_freq = inverse_frequencies(config, self.head_dim)
        self.head = weights["model.embed_tokens.weight"] if config.get("tie_word_embeddings") else weights["lm_head.weight"]

    def rotary(self, position_ids):  # LlamaRotaryEmbedding: [B, T] -> cos, sin [B, 1, T, head_dim]
        freqs = (self.inv_freq[None, :, None] @ position_ids[:, None, :].float()).transpose(1, 2)
        emb = torch.cat((freqs, freqs), dim=-1)
        return emb.cos()[:, None], emb.sin()[:, None]

    def forward(self, ids, position_ids, mask, cache):
        """ids, position_ids [B, T]; mask: additive [B, 1, T, S]; cache: a list of [k, v] or None a layer.
        Returns the last position's logits [B, vocab] in float32."""
        w, batch, length = self.w, ids.shape[0], ids.shape[1]
        cos, sin = self.rotary(position_ids)
        x = F.embedding(ids, w["model.embed_tokens.weight"])
        groups = self.n_heads // self.n_kv
        for layer in range(self.config["num_hidden_layers"]):
            p = f"model.layers.{layer}."
            h = rms_norm(x, w[p + "input_layernorm.weight"], self.eps)

            def proj(name, heads):
                out = F.linear(h, w[p + f"self_attn.{name}.weight"], w.get(p + f"self_attn.{name}.bias"))
                return out.view(batch, length, heads, self.head_dim).transpose(1, 2)

            q, k, v = proj("q_proj", self.n_heads), proj("k_proj", self.n_kv), proj("v_proj", self.n_kv)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            if cache[layer] is not None:  # DynamicCache.update
                k = torch.cat([cache[layer][0], k], dim=-2)
                v = torch.cat([cache[layer][1], v], dim=-2)
            cache[layer] = [k, v]
            keys = k.shape[-2]
            k = k[:, :, None].expand(batch, self.n_kv, groups, keys, self.head_dim).reshape(batch, self.n_heads, keys, self.head_dim)
            v = v[:, :, None].expand(batch, self.n_kv, groups, keys, self.head_dim).reshape(batch, self.n_heads, keys, self.head_dim)
            scores = torch.matmul(q, k.transpose(2, 3)) / math.sqrt(self.head_dim) + mask
            attn = torch.matmul(torch.softmax(scores, dim=-1, dtype=torch.float32).to(q.dtype), v)
            attn = attn.transpose(1, 2).reshape(batch, length, self.n_heads * self.head_dim)
            x = x + F.linear(attn, w[p + "self_attn.o_proj.weight"])
            h = rms_norm(x, w[p + "post_attention_layernorm.weight"], self.eps)
            gate = F.linear(h, w[p + "mlp.gate_proj.weight"])
            up = F.linear(h, w[p + "mlp.up_proj.weight"])
            x = x + F.linear(F.silu(gate) * up, w[p + "mlp.down_proj.weight"])
        x = rms_norm(x[:, -1:], w["model.norm.weight"], self.eps)  # logits_to_keep=1
        return F.linear(x, self.head)[:, -1].to(torch.float32)


def additive_mask(attention_mask, queries, dtype):
    """The causal and padding mask of the last `queries` positions: [B, 1, queries, S], 0 or the minimum."""
    keys = attention_mask.shape[1]
    key_pos = torch.arange(keys)
    query_pos = torch.arange(keys - queries, keys)
    allowed = (key_pos[None, :] <= query_pos[:, None])[None, None] & attention_mask[:, None, None, :].bool()
    return torch.zeros(allowed.shape, dtype=dtype).masked_fill(~allowed, torch.finfo(dtype).min)


def warp(scores, temperature, top_k, top_p):
    """TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper as transformers applies them."""
    scores = scores / temperature
    if top_k > 0:
        kth = torch.topk(scores, min(top_k, scores.shape[-1]))[0][..., -1, None]
        scores = scores.masked_fill(scores < kth, -float("inf"))
    if top_p < 1.0:
        sorted_logits, sorted_indices = torch.sort(scores, descending=False)
        cumulative = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        remove = cumulative <= (1 - top_p)
        remove[..., -1:] = 0  # min_tokens_to_keep = 1
        scores = scores.masked_fill(remove.scatter(1, sorted_indices, remove), -float("inf"))
    return scores


def generate_batch(model, prompts, settings, pad_id, stop_ids):
    """One static batch: left-padded prompts, generated until every row has stopped or max_new_tokens."""
    batch, longest = len(prompts), max(len(p) for p in prompts)
    ids = torch.full((batch, longest), pad_id, dtype=torch.long)
    attention_mask = torch.zeros((batch, longest), dtype=torch.long)
    for b, prompt in enumerate(prompts):
        ids[b, longest - len(prompt) :] = torch.tensor(prompt, dtype=torch.long)
        attention_mask[b, longest - len(prompt) :] = 1
    position_ids = (attention_mask.cumsum(-1) - 1).masked_fill(attention_mask == 0, 1)
    cache = [None] * model.config["num_hidden_layers"]
    logits = model.forward(ids, position_ids, additive_mask(attention_mask, longest, torch.float32), cache)
    unfinished = torch.ones(batch, dtype=torch.long)
    generated = [[] for _ in range(batch)]
    temperature, max_new = settings["temperature"], settings["max_new_tokens"]
    for step in range(max_new):
        if temperature <= 0:
            next_tokens = torch.argmax(logits, dim=-1)
        else:
            scores = warp(logits, temperature, settings.get("top_k", 0), settings["top_p"])
            next_tokens = torch.multinomial(torch.softmax(scores, dim=-1), num_samples=1).squeeze(1)
        next_tokens = next_tokens * unfinished + pad_id * (1 - unfinished)
        for row, token, running in zip(generated, next_tokens.tolist(), unfinished.tolist()):
            if running:
                row.append(token)
        unfinished = unfinished & ~torch.isin(next_tokens, stop_ids)
        if unfinished.max() == 0 or step + 1 == max_new:
            break
        attention_mask = torch.cat([attention_mask, attention_mask.new_ones((batch, 1))], dim=-1)
        position_ids = (attention_mask.sum(-1, keepdim=True) - 1)
        logits = model.forward(next_tokens[:, None], position_ids, additive_mask(attention_mask, 1, torch.float32), cache)
    return generated


def generate(model, prompts, settings, batch):
    pad_id = settings["pad_id"]
    stop_ids = torch.tensor(settings["stop_ids"], dtype=torch.long)
    out = []
    for begin in range(0, len(prompts), batch):
        out.extend(generate_batch(model, prompts[begin : begin + batch], settings, pad_id, stop_ids))
    return out


def main():
    workload_dir = sys.argv[1]
    with open(os.path.join(workload_dir, "generate.json")) as f:
        workload = json.load(f)
    settings = workload["settings"]
    torch.set_num_threads(settings["threads"])
    torch.manual_seed(settings["seed"])
    with open(os.path.join(workload_dir, "model", "config.json")) as f:
        config = json.load(f)
    with torch.no_grad():
        model = Llama(config, read_weights(os.path.join(workload_dir, "model")))
        greedy = workload["greedy"]
        greedy_out = generate(model, greedy["prompts"], dict(settings, temperature=0.0,
                                                             max_new_tokens=greedy["max_new_tokens"]), settings["batch"])
        start = time.perf_counter()
        generated = generate(model, workload["prompts"], settings, settings["batch"])
        seconds = time.perf_counter() - start
    peak_bytes = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "generated": generated, "greedy": greedy_out, "peak_bytes": peak_bytes}))


if __name__ == "__main__":
    main()
