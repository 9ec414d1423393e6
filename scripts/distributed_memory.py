#!/usr/bin/python3
"""Per-rank training memory of Llama-3.1-8B and Llama-3.1-70B under fusec's sharding modes (and stage 3).

Prints two Markdown tables, the ones docs/distributed.md shows:
  1. the model state (weights, gradients, AdamW moments) per rank, in GiB, for each model, mode and rank count;
  2. an estimate of the activations one 2048-token sequence needs, with and without activation checkpointing.
With --json, prints the same figures as JSON instead. Only the Python standard library.

Usage: distributed_memory.py [--json] [--ranks 1,8,64] [--seq 2048]

Assumptions (docs/distributed.md repeats them):
  - fusec's training state: fp32 weights (forward under bf16 autocast, so no separate bf16 copy is kept),
    fp32 gradients, AdamW's two fp32 moments: 4 + 4 + 8 = 16 bytes per parameter without sharding. Every
    parameter is trained (no frozen embeddings, no LoRA).
  - `none` (data parallel): all 16 B/param on every rank.
  - `optimizer` (ZeRO stage 1): weights and gradients replicated (4 + 4), moments 8/N.
  - `gradients` (ZeRO stage 2): weights replicated (4), gradients 4/N, moments 8/N, plus one gradient bucket
    of full (unsharded) fp32 gradients held while backward fills it: a constant 25 MiB, the bucket size
    runtime/dist/gradient_buckets.h uses. Counted only when N > 1 (one rank has nothing to shard).
    This assumes each rank keeps only its shard of the gradients between micro-batches.
  - stage 3 (not implemented in fusec; for comparison): (4 + 4 + 8)/N per param, plus the gathered fp32
    parameters of the largest unit held while it runs. The units are the decoder layers, the input embedding
    and the lm_head (with the final norm); for Llama-3.1-8B the largest is the embedding or lm_head (525 M
    params), not a decoder layer (218 M). "+ prefetch" holds two of the largest units (the next one is
    gathered while the current one runs); that is also about the backward peak without prefetch, when a unit's
    gathered parameters and its unsharded gradient (before the reduce-scatter) are both alive.
  - Not counted anywhere: activations (second table), the logits, temporary buffers of the collectives,
    the CUDA context and the caching allocator's fragmentation (together often 1-3 GiB on a GPU).
  - GiB = 2**30 bytes. An "80 GB" A100/A800/H100 has about 79-80 GiB, of which a few go to the context.
"""
import argparse
import json
import sys

GIB = 2 ** 30
BUCKET_BYTES = 25 * 1024 * 1024  # runtime/dist/gradient_buckets.h: kDefaultBucketBytes

# Transcribed from the models' config.json on the Hugging Face Hub:
#   meta-llama/Llama-3.1-8B   (and -Instruct): hidden_size 4096, intermediate_size 14336, num_hidden_layers 32,
#     num_attention_heads 32, num_key_value_heads 8, head_dim 128, vocab_size 128256, tie_word_embeddings false.
#   meta-llama/Llama-3.1-70B  (and -Instruct): hidden_size 8192, intermediate_size 28672, num_hidden_layers 80,
#     num_attention_heads 64, num_key_value_heads 8, head_dim 128, vocab_size 128256, tie_word_embeddings false.
# Llama has no biases in its projections; its norms are RMSNorm with a weight and no bias.
MODELS = [
    {"name": "Llama-3.1-8B", "hidden": 4096, "intermediate": 14336, "layers": 32, "heads": 32, "kv_heads": 8,
     "head_dim": 128, "vocab": 128256, "tied": False, "expected": 8.03e9},
    {"name": "Llama-3.1-70B", "hidden": 8192, "intermediate": 28672, "layers": 80, "heads": 64, "kv_heads": 8,
     "head_dim": 128, "vocab": 128256, "tied": False, "expected": 70.55e9},
]

MODES = [
    ("none", "none (data parallel)"),
    ("optimizer", "optimizer (ZeRO-1)"),
    ("gradients", "gradients (ZeRO-2)"),
    ("stage3", "stage 3 (not in fusec)"),
    ("stage3_prefetch", "stage 3 + prefetch"),
]


def parameter_counts(m):
    """Exact parameter counts: the total and the sizes of the units stage 3 would gather one at a time."""
    h, d = m["hidden"], m["head_dim"]
    q = h * m["heads"] * d
    k = v = h * m["kv_heads"] * d
    o = m["heads"] * d * h
    mlp = 3 * h * m["intermediate"]  # gate, up: h -> intermediate; down: intermediate -> h
    norms = 2 * h  # input_layernorm, post_attention_layernorm
    layer = q + k + v + o + mlp + norms
    embed = m["vocab"] * h
    head = 0 if m["tied"] else m["vocab"] * h
    final_norm = h
    total = embed + m["layers"] * layer + final_norm + head
    return {"total": total, "embedding": embed, "decoder_layer": layer, "lm_head_and_final_norm": head + final_norm}


def state_bytes(mode, params, largest_unit, n):
    """Model state per rank in bytes: weights, gradients, AdamW moments (plus the transient buffers above)."""
    if mode == "none":
        return 16 * params
    if mode == "optimizer":
        return (4 + 4) * params + 8 * params / n
    if mode == "gradients":
        return 4 * params + (4 + 8) * params / n + (BUCKET_BYTES if n > 1 else 0)
    if mode == "stage3":
        return 16 * params / n + (4 * largest_unit if n > 1 else 0)
    if mode == "stage3_prefetch":
        return 16 * params / n + (2 * 4 * largest_unit if n > 1 else 0)
    raise ValueError(mode)


def activation_bytes(m, seq):
    """Korthikanti et al. 2022 ("Reducing Activation Recomputation in Large Transformer Models"), section 4.1:
    one transformer layer's activations are s*b*h*(34 + 5*a*s/h) bytes in 16-bit, i.e. 34*h + 5*a*s bytes per
    token. Their derivation is for a GPT layer (4h MLP, full multi-head attention, dropout, no tensor or
    sequence parallelism), so for Llama (SwiGLU of 3.5h, grouped-query attention, no dropout) it is an estimate.
    The 5*a*s term is the attention scores, softmax and dropout mask; a fused attention kernel (flash or
    memory-efficient scaled_dot_product_attention) does not store them, hence the "34h only" column.
    With full checkpointing: every layer's input (2*h bytes per token, bf16) plus one layer's full activations,
    recomputed during that layer's backward."""
    h, a, layers = m["hidden"], m["heads"], m["layers"]
    per_token_layer = 34 * h + 5 * a * seq
    full = seq * layers * per_token_layer
    fused = seq * layers * 34 * h
    checkpointed = seq * layers * 2 * h + seq * per_token_layer
    return {"per_token_per_layer": per_token_layer, "no_checkpointing": full,
            "no_checkpointing_fused_attention": fused, "full_checkpointing": checkpointed}


def compute(ranks, seq):
    out = []
    for m in MODELS:
        counts = parameter_counts(m)
        total = counts["total"]
        assert abs(total - m["expected"]) / m["expected"] < 0.01, (m["name"], total)
        acts = activation_bytes(m, seq)
        largest = max(counts["embedding"], counts["decoder_layer"], counts["lm_head_and_final_norm"])
        state = {str(n): {mode: state_bytes(mode, total, largest, n) / GIB for mode, _ in MODES} for n in ranks}
        out.append({"model": m["name"], "parameters": counts, "largest_stage3_unit": largest,
                    "state_gib_per_rank": state,
                    "activation_bytes_per_token_per_layer": acts["per_token_per_layer"],
                    "activations_gib_per_sequence": {k: v / GIB for k, v in acts.items() if k != "per_token_per_layer"},
                    "sequence_tokens": seq})
    return out


def markdown(results, seq):
    lines = ["Parameters (exact, from the configs):", ""]
    for r in results:
        c = r["parameters"]
        lines.append(f"- {r['model']}: {c['total']:,} ({c['total'] / 1e9:.2f} B); embedding {c['embedding']:,}, "
                     f"decoder layer {c['decoder_layer']:,}, lm_head + final norm {c['lm_head_and_final_norm']:,}")
    lines += ["", "Model state per rank, GiB: fp32 weights + fp32 gradients + fp32 AdamW moments. "
              "Activations are extra (next table).", ""]
    header = ["model", "ranks"] + [title for _, title in MODES]
    lines.append("| " + " | ".join(header) + " |")
    lines.append("|" + "|".join(["---"] * 2 + ["---:"] * len(MODES)) + "|")
    for r in results:
        for n, row in r["state_gib_per_rank"].items():
            cells = [r["model"], n] + [f"{row[mode]:.1f}" for mode, _ in MODES]
            lines.append("| " + " | ".join(cells) + " |")
    lines += ["", f"Activations per {seq}-token sequence (bf16, micro-batch of one sequence), GiB; "
              "the logits are extra.", ""]
    lines.append("| model | bytes/token/layer (34h + 5as) | no checkpointing | no checkpointing, fused attention (34h) "
                 "| full checkpointing |")
    lines.append("|---|---:|---:|---:|---:|")
    for r in results:
        a = r["activations_gib_per_sequence"]
        lines.append(f"| {r['model']} | {r['activation_bytes_per_token_per_layer']:,} | {a['no_checkpointing']:.1f} | "
                     f"{a['no_checkpointing_fused_attention']:.1f} | {a['full_checkpointing']:.1f} |")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--json", action="store_true", help="print JSON instead of Markdown")
    parser.add_argument("--ranks", default="1,8,64", help="comma-separated rank counts (default 1,8,64)")
    parser.add_argument("--seq", type=int, default=2048, help="tokens per sequence for the activations table")
    args = parser.parse_args()
    ranks = [int(n) for n in args.ranks.split(",") if n]
    if not ranks or any(n < 1 for n in ranks) or args.seq < 1:
        parser.error("rank counts and --seq must be positive")
    results = compute(ranks, args.seq)
    if args.json:
        json.dump(results, sys.stdout, indent=2)
        print()
    else:
        print(markdown(results, args.seq))


if __name__ == "__main__":
    main()
