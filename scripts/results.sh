#!/usr/bin/env bash
# `make results`: the paper's comparison in miniature. Runs experiments/bench/fusion_mini.fuse (every method
# and ablation, 3 seeds; equal stages run once, and a rerun takes what the stage cache holds) in build/results/,
# then writes docs/results.md's comparison section and its SVG plots (scripts/results_report.py). About 15
# minutes on 2 cores the first time.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
./scripts/fusion-mini-data.sh
"$root/build/release/bin/fusec" check experiments/bench/fusion_mini.fuse
mkdir -p build/results
echo "running experiments/bench/fusion_mini.fuse in build/results/ (progress: build/results/run.err)"
start=$SECONDS
(cd build/results && "$root/build/release/bin/fusec" run "$root/experiments/bench/fusion_mini.fuse" --cache cache \
   >run.out 2>run.err) || { tail -20 build/results/run.err; exit 1; }
echo "took $((SECONDS - start)) s"
/usr/bin/python3 scripts/results_report.py build/results docs
