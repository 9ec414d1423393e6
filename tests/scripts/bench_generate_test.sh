#!/usr/bin/env bash
# `fusec-bench --config generate-tiny`: the sampling benchmark at miniature size, baseline and all (Hugging
# Face's generate loop under /usr/bin/python3 against fusec's engine). It must finish, find the same greedy
# tokens on both sides, print its table, and end with a well-formed RESULT line (no timing is asserted). Then a
# baseline that computes another model (SiLU swapped for ReLU) must fail the greedy check, and an unknown
# generate configuration must be refused by name.
set -euo pipefail
bench="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
check() { grep -qF -- "$1" "$work/out" || { echo "FAIL ($case): the output lacks: $1"; fail=1; }; }

case=generate-tiny
"$bench" --config generate-tiny --dir "$work/tiny" --threads 1 >"$work/out" 2>"$work/err" ||
  { cat "$work/err" "$work/out"; exit 1; }
check "| generated tokens |"
check "| tokens per second |"
check "| rows ended at a stop id |"
check "Greedy check (3 prompts, 8 tokens each): the same tokens on both sides"
last=$(tail -n 1 "$work/out")
if ! [[ $last =~ ^RESULT\ generate\ fusec_tok_s=[0-9]+\.[0-9]\ python_tok_s=[0-9]+\.[0-9]\ speedup=[0-9]+\.[0-9]{3}$ ]]; then
  echo "FAIL ($case): the last line is not a RESULT line: $last"
  fail=1
fi
[[ $fail == 0 ]] && echo "ok ($case): $last"

# The greedy check can fail: a baseline whose MLP uses ReLU instead of SiLU decodes other tokens.
case=wrong-baseline
cat >"$work/relu-python" <<'SH'
#!/usr/bin/env bash
exec /usr/bin/python3 - "$@" <<'PY'
import runpy, sys, torch
torch.nn.functional.silu = torch.relu
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
PY
SH
chmod +x "$work/relu-python"
status=0
"$bench" --config generate-tiny --dir "$work/relu" --threads 1 --python "$work/relu-python" >"$work/out" \
  2>"$work/err" || status=$?
[[ $status == 1 ]] || { echo "FAIL ($case): exit status $status, not 1"; cat "$work/err"; fail=1; }
check "the tokens DIFFER"
grep -qF "the greedy check's tokens differ" "$work/err" || { echo "FAIL ($case): no error on stderr"; fail=1; }

case=unknown-config
status=0
"$bench" --config generate-huge >"$work/out" 2>&1 || status=$?
[[ $status == 2 ]] || { echo "FAIL ($case): exit status $status, not 2"; fail=1; }
check "unknown --config \`generate-huge\` (generate or generate-tiny)"
exit $fail
