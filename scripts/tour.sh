#!/usr/bin/env bash
# `make tour`: a walk through what fusec does besides the demo. It checks every shipped experiment, explains
# the paper's FuseRL-DPO configuration (its two stages with every default filled in and every loss spelled
# out), shows how a tau sweep plans to one graph that shares its FuseSFT stage, shows how a mistake is
# reported, runs the smoke experiment (FuseSFT then FusePO on a tiny model) twice, the second time from the
# stage cache, and uses the model stack on a tiny model directly.
set -euo pipefail
cd "$(dirname "$0")/.."
fusec=build/release/bin/fusec

# The paper's model and data are not shipped (they are downloaded separately): check and plan them with
# --allow-missing-inputs, which fusec asks for when an input is not there yet.
echo "== fusec check: every shipped experiment"
for file in experiments/paper/*.fuse experiments/sweeps/*.fuse; do
  printf '%-45s ' "$file"
  "$fusec" check --allow-missing-inputs "$file"
done
echo
echo "== fusec plan --emit=ast experiments/paper/fuserl_dpo.fuse"
"$fusec" plan --allow-missing-inputs --emit=ast experiments/paper/fuserl_dpo.fuse
echo
echo "== fusec plan experiments/sweeps/tau.fuse: six tau points, one shared FuseSFT stage"
"$fusec" plan --allow-missing-inputs --emit=json experiments/sweeps/tau.fuse --cache build/tour-cache |
  /usr/bin/python3 -c 'import json, sys, collections
nodes = json.load(sys.stdin)["nodes"]
print("  ", dict(collections.Counter(n["kind"] for n in nodes)))
for n in nodes:
    if n["kind"] in ("train", "ref_logprobs"):
        print("   %-12s %s  computes %d stage(s), e.g. %s" % (n["kind"], n["hash"][:12], len(n["stages"]), n["stages"][0]))'
echo
echo "== a mistake, and how fusec reports it"
mistake=$(mktemp --suffix=.fuse)
work=$(mktemp -d)
trap 'rm -rf "$mistake" "$work"' EXIT
sed -e 's/objective = dpo(beta: 10, length_norm: true)/objective = dpo(beta: 10)/' \
    -e 's/epochs = 3;/epochs = 3.5;/' experiments/paper/fuserl_dpo.fuse > "$mistake"
"$fusec" check "$mistake" || true
echo
echo "== fusec run experiments/smoke.fuse: FuseSFT then FusePO on a tiny model it creates"
rm -rf build/tour-run build/tour-run-cache
"$fusec" run experiments/smoke.fuse --out build/tour-run --cache build/tour-run-cache
echo
echo "== again: every stage comes from the stage cache"
"$fusec" run experiments/smoke.fuse --out build/tour-run --cache build/tour-run-cache 2>&1 | grep -E "cached|smoke:"
echo "metrics: build/tour-run/metrics.jsonl ($(wc -l < build/tour-run/metrics.jsonl) steps), models: build/tour-run/export/"
echo
echo "== the model stack: a tiny Llama-shaped model (2 layers, byte tokenizer, chatml), scored and sampled"
cat >"$work/config.json" <<'JSON'
{"architectures": ["LlamaForCausalLM"], "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
 "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 260, "max_position_embeddings": 512,
 "rope_theta": 10000.0, "tie_word_embeddings": true}
JSON
"$fusec" init-model --config "$work/config.json" --seed 0 --out "$work/tiny"
echo '[{"role": "user", "content": "2+2?"}, {"role": "assistant", "content": "4"}]' |
  "$fusec" tokenize --tokenizer "$work/tiny" --template chatml
cat >"$work/data.jsonl" <<'JSONL'
{"id": "q1", "prompt": "2+2?", "responses": [{"source": "model_a", "text": "4", "reward": 1.0}, {"source": "model_b", "text": "five", "reward": 0.0}]}
{"id": "q2", "messages": [{"role": "user", "content": "Say hi"}], "responses": [{"source": "model_a", "text": "hi", "reward": 0.8}]}
JSONL
"$fusec" score --model "$work/tiny" --data "$work/data.jsonl"
"$fusec" generate --model "$work/tiny" --prompts "$work/data.jsonl" --max-new-tokens 8 --temperature 0.8 --seed 1
