#!/usr/bin/env bash
# Writes the fusion-mini benchmark that experiments/demo.fuse and experiments/bench/fusion_mini.fuse read
# (experiments/data/fusion-mini, seed 1, 20000 prompts, reward noise 0.1), unless it is there already.
# Used by `make demo` and `make results`.
set -euo pipefail
cd "$(dirname "$0")/.."
data=experiments/data/fusion-mini
options=(--seed 1 --prompts 20000 --noise 0.1)
if [[ -f "$data/README.md" && -f "$data/sources/alpha.jsonl" ]] && grep -q -- "${options[*]}" "$data/README.md"; then
  echo "fusion-mini: $data (${options[*]}) is already there"
else
  build/release/bin/fusec synth fusion-mini --out "$data" "${options[@]}"
fi
