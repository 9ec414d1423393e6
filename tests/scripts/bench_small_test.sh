#!/usr/bin/env bash
# `fusec-bench --config small`: the benchmark of `make bench` at miniature size, baseline and all. It must
# finish, find equal first-step losses on both sides (fusec-bench fails otherwise), print both tables, and end
# with a well-formed RESULT line.
set -euo pipefail
bench="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
"$bench" --config small --dir "$work/small" >"$work/out" 2>"$work/err" || { cat "$work/err" "$work/out"; exit 1; }
fail=0
check() { grep -qF -- "$1" "$work/out" || { echo "FAIL: the output lacks: $1"; fail=1; }; }
check "| time per step (s) |"
check "| first-step loss |"
check "| model FLOP/s, % of the matmul peak |"
check "Loss head alone"
last=$(tail -n 1 "$work/out")
if ! [[ $last =~ ^RESULT\ speedup=[0-9]+\.[0-9]+\ head_memory_ratio=[0-9]+\.[0-9]+\ loss_rel_diff=[0-9.]+e[-+][0-9]+$ ]]; then
  echo "FAIL: the last line is not a RESULT line: $last"
  fail=1
fi
[[ $fail == 0 ]] && echo "ok: $last"
exit $fail
