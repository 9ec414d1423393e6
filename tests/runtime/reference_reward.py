#!/usr/bin/python3
"""An independent reference for fusec's reward models (runtime/model/reward_model.h).

The backbone is reference_llama.py's forward (its own safetensors reader and decoder, written from Hugging Face's
equations), read out before any LM head: an identity "LM head" makes its output the final normed hidden states.
The heads are transcribed from the upstream code, not from fusec's C++:
  - transformers' LlamaForSequenceClassification: score.weight @ h, pooled at the last non-pad token
    (transformers >= 4.48: `(arange(T) * (input_ids != pad)).argmax(-1)`);
  - RLHFlow's ArmoRM-Llama3-8B-v0.1 (modeling_custom.py, LlamaForRewardModelWithGating): the regression layer at
    `(first pad - 1) % T`, the GatingNetwork (Linear + ReLU layers, softmax over x / temperature, times
    logit_scale) at the position `find_token_for_gating` finds: the start of the LAST occurrence of the Llama-3
    token pattern `<|eot_id|><|start_header_id|>assistant<|end_header_id|>\\n\\n`; the score is
    sum(gate * (rewards @ reward_transform_matrix)).
Each conversation is run alone (batch of one, no padding), in float32. Runs on Debian's torch (/usr/bin/python3).

usage: reference_reward.py MODEL_DIR INPUT.json OUTPUT.json
INPUT.json: {"ids": [[...], ...]} (any lengths). OUTPUT.json: {"scores": [...], "gating_positions": [...]}
(gating positions -1 for sequence classifiers).
"""
import json
import os
import sys

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from reference_llama import forward, read_weights  # noqa: E402

# ArmoRM's modeling_custom.py: "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n" in Llama-3's ids.
TOKEN_PATTERN = [128009, 128006, 78191, 128007, 271]


def find_token_for_gating(lst):
    """The LAST occurrence of TOKEN_PATTERN; its start (the <|eot_id|> that ends the user turn)."""
    for j in range(len(lst) - len(TOKEN_PATTERN), -1, -1):
        if lst[j : j + len(TOKEN_PATTERN)] == TOKEN_PATTERN:
            return j
    raise ValueError("Token pattern not found in the list.")


def hidden_states(config, weights, ids):
    """Final normed hidden states [1, T, H] of reference_llama.forward, read through an identity head."""
    hidden = config["hidden_size"]
    config = dict(config, tie_word_embeddings=False)
    weights = dict(weights)
    weights["lm_head.weight"] = torch.eye(hidden, dtype=torch.float32)
    return forward(config, weights, ids, torch.float32)


def sequence_classification(config, weights, ids):
    h = hidden_states(config, weights, ids)  # [1, T, H]
    logits = h @ weights["score.weight"].T  # [1, T, num_labels]
    length = ids.shape[-1]
    pad = config.get("pad_token_id")
    if pad is None:
        last_non_pad = torch.tensor([length - 1])
    else:
        non_pad_mask = (ids != pad).int()
        token_indices = torch.arange(length)
        last_non_pad = (token_indices * non_pad_mask).argmax(-1)
    pooled = logits[torch.arange(ids.shape[0]), last_non_pad]  # [1, num_labels]
    return pooled[0, 0].item(), -1


def gating_network(config, weights, x):
    n_hidden = config.get("gating_n_hidden", 3)
    temperature = config.get("gating_temperature", 10)
    layers = n_hidden + 1
    for i in range(layers):
        p = f"gating.layers.{i}."
        x = x @ weights[p + "weight"].T
        if p + "bias" in weights:
            x = x + weights[p + "bias"]
        if i < layers - 1:
            x = torch.nn.functional.relu(x)
    x = torch.nn.functional.softmax(x / temperature, dim=1)
    return x * weights["gating.logit_scale"][0]


def reward_model_with_gating(config, weights, ids):
    h = hidden_states(config, weights, ids)  # [1, T, H]
    length = ids.shape[-1]
    pad = config["pad_token_id"]
    sequence_lengths = (torch.eq(ids, pad).int().argmax(-1) - 1) % length
    batch = torch.arange(ids.shape[0])
    hidden = h[batch, sequence_lengths]  # [1, H]
    rewards = hidden @ weights["regression_layer.weight"].T  # [1, K]
    gating_positions = [find_token_for_gating(row.tolist()) for row in ids]
    prompt_embedding = h[batch, gating_positions]
    gating_output = gating_network(config, weights, prompt_embedding)  # [1, K]
    rewards_adjusted = rewards @ weights["reward_transform_matrix"]
    score = torch.sum(gating_output * rewards_adjusted, dim=1)  # [1]
    return score[0].item(), gating_positions[0]


def main():
    model_dir, input_path, output_path = sys.argv[1:4]
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    with open(input_path) as f:
        conversations = json.load(f)["ids"]
    architecture = config["architectures"][0]
    head = reward_model_with_gating if architecture == "LlamaForRewardModelWithGating" else sequence_classification
    torch.set_num_threads(1)
    scores, positions = [], []
    with torch.no_grad():
        weights = read_weights(model_dir)
        for conversation in conversations:
            score, position = head(config, weights, torch.tensor([conversation], dtype=torch.long))
            scores.append(score)
            positions.append(position)
    with open(output_path, "w") as f:
        json.dump({"scores": scores, "gating_positions": positions}, f)


if __name__ == "__main__":
    main()
