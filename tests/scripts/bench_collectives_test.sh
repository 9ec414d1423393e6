#!/usr/bin/env bash
# `fusec-bench --config collectives-tiny`: the communication benchmark at miniature size, 2 and then 3 local
# ranks over Gloo, each with its sums to every rank and to owners. It must finish, print its table, and end with
# a well-formed RESULT line; the benchmark itself fails when a rank sent less than the ring all-reduce's
# 2(N-1)/N, or (to owners) a reduce-scatter's (N-1)/N, of the gradient bytes (no timing is asserted). An
# unknown collectives configuration is refused by name.
set -euo pipefail
bench="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
check() { grep -qF -- "$1" "$work/out" || { echo "FAIL ($case): the output lacks: $1"; fail=1; }; }

case=collectives-tiny
"$bench" --config collectives-tiny --dir "$work/tiny" >"$work/out" 2>"$work/err" || { cat "$work/err" "$work/out"; exit 1; }
check "| ranks | sums | gradient MB | buckets | step ms |"
check "| 2 | to every rank |"
check "| 2 | to owners |"
check "| 3 | to every rank |"
check "| 3 | to owners |"
last=$(tail -n 1 "$work/out")
number='[0-9]+\.[0-9]'
ratio='[0-9]+\.[0-9]{3}'
world() { echo "ranks$1_step_ms=$number ranks$1_wait_ms=$number ranks$1_sent_over_ring=$ratio ranks$1_owner_step_ms=$number ranks$1_owner_wait_ms=$number ranks$1_owner_sent_over_reduce_scatter=$ratio"; }
pattern="^RESULT collectives $(world 2) $(world 3)\$"
if ! [[ $last =~ $pattern ]]; then
  echo "FAIL ($case): the last line is not a RESULT line: $last"
  fail=1
fi
[[ $fail == 0 ]] && echo "ok ($case): $last"

case=unknown-config
status=0
"$bench" --config collectives-huge >"$work/out" 2>&1 || status=$?
[[ $status == 2 ]] || { echo "FAIL ($case): exit status $status, not 2"; fail=1; }
check "unknown --config \`collectives-huge\` (collectives or collectives-tiny)"
exit $fail
