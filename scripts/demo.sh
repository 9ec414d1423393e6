#!/usr/bin/env bash
# `make demo`: the main job on fusion-mini, fusec's synthetic fusion benchmark (docs/results.md).
# Generates the benchmark (deterministic from its seed; kept once written), then runs experiments/demo.fuse:
# three source models trained by fusec (specialists of different shapes), their samples scored by the
# benchmark's noisy scorer, a tiny target warmed up on the task format, FuseSFT, FusePO with DPO, and greedy
# completions of held-out prompts scored against their gold answers. A second `make demo` takes every step
# from the stage cache. The last line is machine-readable:
# RESULT alpha=<score> beta=<score> gamma=<score> initial=<score> fusesft=<score> fusepo=<score>. It exits 1
# when the score after FusePO is not above the initial target's.
set -euo pipefail
cd "$(dirname "$0")/.."
fusec=build/release/bin/fusec
run_dir=build/demo
cache=build/demo-cache

./scripts/fusion-mini-data.sh
"$fusec" check experiments/demo.fuse  # after the data exists: check reports missing inputs
echo "running experiments/demo.fuse into $run_dir (stage cache: $cache); under 2 minutes on 2 cores the first time"
start=$SECONDS
mkdir -p build
"$fusec" run experiments/demo.fuse --out "$run_dir" --cache "$cache" | tee "$run_dir.out" | grep -v '^RESULT'
echo "took $((SECONDS - start)) s; run directory: $run_dir (metrics.jsonl, manifest.toml, summary.json, eval/, export/)"
# The demo's claim, checked on every run: the fused target scores above the initial one on held-out prompts.
result=$(grep '^RESULT' "$run_dir.out")
initial=$(sed -E 's/.* initial=([0-9.]+).*/\1/' <<<"$result")
fusepo=$(sed -E 's/.* fusepo=([0-9.]+).*/\1/' <<<"$result")
status=0
if awk -v a="$fusepo" -v b="$initial" 'BEGIN { exit !(a > b) }'; then
  echo "check: the score after FusePO ($fusepo) is above the initial target's ($initial)"
else
  echo "check FAILED: the score after FusePO ($fusepo) is not above the initial target's ($initial)" >&2
  status=1
fi
echo "$result"
exit $status
