#!/usr/bin/python3
"""An independent reference for fusec's sampler (runtime/model/generation.h).

The next-token distribution of a prompt under Hugging Face's sampling rules, transcribed from transformers'
generation/logits_process.py (RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
TopPLogitsWarper) and applied in the order `generate` applies them, on the logits of reference_llama.py's
forward (its own safetensors reader, not fusec's). Also greedy decoding with the repetition penalty, each step
a full forward of everything so far (no cache). Runs on Debian's torch (/usr/bin/python3).

Beside each exact distribution it writes the distributions of plausible mistakes (a rule left out, applied
in another order or with another boundary), so that the C++ test can show that its statistic would reject
them: a test that cannot fail is no test.

usage: reference_sampling.py MODEL_DIR INPUT.json OUTPUT.json
INPUT.json: {"prompt": [ids], "settings": [{"temperature", "top_p", "top_k", "repetition_penalty"}],
             "greedy_steps": N, "greedy_penalty": P}
OUTPUT.json: {"distributions": [{"exact": [V probabilities], "wrong": {name: [V probabilities]}}],
              "greedy": [N ids]}
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import reference_llama  # noqa: E402

NEG_INF = -float("inf")


# transformers' RepetitionPenaltyLogitsProcessor.__call__
def repetition_penalty(input_ids, scores, penalty):
    score = torch.gather(scores, 1, input_ids)
    # if score < 0 then repetition penalty has to be multiplied to reduce the token probabilities
    score = torch.where(score < 0, score * penalty, score / penalty)
    return scores.scatter(1, input_ids, score)


# transformers' TemperatureLogitsWarper.__call__
def temperature(scores, t):
    return scores / t


# transformers' TopKLogitsWarper.__call__ (filter_value -inf)
def top_k(scores, k):
    k = min(k, scores.size(-1))
    indices_to_remove = scores < torch.topk(scores, k)[0][..., -1, None]
    return scores.masked_fill(indices_to_remove, NEG_INF)


# transformers' TopPLogitsWarper.__call__ (min_tokens_to_keep 1)
def top_p(scores, p):
    sorted_logits, sorted_indices = torch.sort(scores, descending=False)
    cumulative_probs = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
    # Remove tokens with cumulative top_p above the threshold (token with 0 are kept)
    sorted_indices_to_remove = cumulative_probs <= (1 - p)
    # Keep at least min_tokens_to_keep
    sorted_indices_to_remove[..., -1:] = 0
    indices_to_remove = sorted_indices_to_remove.scatter(1, sorted_indices, sorted_indices_to_remove)
    return scores.masked_fill(indices_to_remove, NEG_INF)


def top_p_exclusive(scores, p):
    """A mistake: only the tokens whose cumulative mass (themselves included) stays within top_p."""
    probs = scores.softmax(-1)
    sorted_probs, order = probs.sort(descending=True)
    keep_sorted = sorted_probs.cumsum(-1) <= p
    keep_sorted[..., 0] = True
    keep = keep_sorted.scatter(1, order, keep_sorted)
    return scores.masked_fill(~keep, NEG_INF)


def distribution(scores, input_ids, s, order=("penalty", "temperature", "top_k", "top_p"), top_p_rule=top_p):
    for step in order:
        if step == "penalty" and s["repetition_penalty"] != 1.0:
            scores = repetition_penalty(input_ids, scores, s["repetition_penalty"])
        elif step == "temperature" and s["temperature"] != 1.0:
            scores = temperature(scores, s["temperature"])
        elif step == "top_k" and s["top_k"] > 0:
            scores = top_k(scores, s["top_k"])
        elif step == "top_p" and s["top_p"] < 1.0:
            scores = top_p_rule(scores, s["top_p"])
    return scores.softmax(-1)[0]


def wrong_distributions(scores, input_ids, s):
    wrong = {}
    if s["temperature"] != 1.0:
        wrong["no temperature"] = distribution(scores, input_ids, s, ("penalty", "top_k", "top_p"))
        if s["top_p"] < 1.0:
            wrong["temperature after top-p"] = distribution(scores, input_ids, s, ("penalty", "top_k", "top_p", "temperature"))
    if s["repetition_penalty"] != 1.0:
        wrong["no repetition penalty"] = distribution(scores, input_ids, s, ("temperature", "top_k", "top_p"))
    if s["top_k"] > 0:
        wrong["no top-k"] = distribution(scores, input_ids, s, ("penalty", "temperature", "top_p"))
    if s["top_p"] < 1.0:
        wrong["no top-p"] = distribution(scores, input_ids, s, ("penalty", "temperature", "top_k"))
        wrong["top-p without the token that crosses it"] = distribution(scores, input_ids, s, top_p_rule=top_p_exclusive)
    return {name: probs.tolist() for name, probs in wrong.items()}


def main():
    model_dir, input_path, output_path = sys.argv[1:4]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    with open(input_path) as f:
        request = json.load(f)
    torch.set_num_threads(1)
    out = {"distributions": [], "greedy": []}
    with torch.no_grad():
        weights = reference_llama.read_weights(model_dir)
        prompt = torch.tensor([request["prompt"]], dtype=torch.long)
        # float64 from the float32 logits: the exact probabilities the sampler should draw from
        scores = reference_llama.forward(config, weights, prompt)[:, -1, :].to(torch.float64)
        for s in request["settings"]:
            out["distributions"].append({"exact": distribution(scores, prompt, s).tolist(),
                                         "wrong": wrong_distributions(scores, prompt, s)})
        ids = prompt
        for _ in range(request.get("greedy_steps", 0)):
            last = reference_llama.forward(config, weights, ids)[:, -1, :]
            last = repetition_penalty(ids, last, request["greedy_penalty"])
            token = int(last[0].argmax())
            out["greedy"].append(token)
            ids = torch.cat([ids, torch.tensor([[token]], dtype=torch.long)], dim=1)
    with open(output_path, "w") as f:
        json.dump(out, f)


if __name__ == "__main__":
    main()
