#!/usr/bin/env bash
# `fusec-bench --config small` and `--config small-bf16`: the benchmark of `make bench` at miniature size,
# baseline and all, in float32 and the way the gpu configuration runs (bf16 autocast, a warm-up step), on the
# CPU. Each must finish, find equal first-step losses on both sides (fusec-bench fails otherwise), print both
# tables, and end with a well-formed RESULT line. Then a failing baseline, and `--config gpu --shape`, which
# needs no GPU.
set -euo pipefail
bench="$1"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
fail=0
for config in small small-bf16; do
  "$bench" --config "$config" --dir "$work/$config" >"$work/out" 2>"$work/err" || { cat "$work/err" "$work/out"; exit 1; }
  check() { grep -qF -- "$1" "$work/out" || { echo "FAIL ($config): the output lacks: $1"; fail=1; }; }
  check "| time per step (s) |"
  check "| first-step loss |"
  check "| model FLOP/s, % of the matmul peak |"
  check "Loss head alone"
  [[ $config == small-bf16 ]] && check "the first a warm-up left out of the timings" && check "(at most 2.00e-02, bf16)"
  last=$(tail -n 1 "$work/out")
  if ! [[ $last =~ ^RESULT\ speedup=[0-9]+\.[0-9]+\ head_memory_ratio=[0-9]+\.[0-9]+\ loss_rel_diff=[0-9.]+e[-+][0-9]+$ ]]; then
    echo "FAIL ($config): the last line is not a RESULT line: $last"
    fail=1
  fi
  [[ $fail == 0 ]] && echo "ok ($config): $last"
done
# A baseline that fails (here a stand-in for running out of memory, raised from inside the real script) leaves
# fusec's figures printed, its own column saying "failed" with the reason, and exit status 1.
cat >"$work/failing-python" <<'SH'
#!/usr/bin/env bash
exec /usr/bin/python3 - "$@" <<'PY'
import runpy, sys, torch
def out_of_memory(*args, **kwargs):
    raise RuntimeError("CUDA out of memory. Tried to allocate 20.00 GiB")
torch.optim.AdamW = out_of_memory
sys.argv = sys.argv[1:]
runpy.run_path(sys.argv[0], run_name="__main__")
PY
SH
chmod +x "$work/failing-python"
status=0
"$bench" --config small --dir "$work/failing" --skip-head --python "$work/failing-python" >"$work/out" 2>"$work/err" ||
  status=$?
config=failing-baseline
[[ $status == 1 ]] || { echo "FAIL ($config): exit status $status, not 1"; cat "$work/err"; fail=1; }
check "| time per step (s) | failed | "
check "the baseline failed, so there is no speedup: the baseline failed: RuntimeError: CUDA out of memory. Tried to allocate 20.00 GiB"
check "RESULT speedup=nan"

# --shape sizes the gpu configuration without a GPU: its four steps, the first a warm-up.
shape=$("$bench" --config gpu --shape)
for row in "| 1 (warm-up) |" "| 4 |" "baseline float32 logits"; do
  grep -qF -- "$row" <<<"$shape" || { echo "FAIL (--shape): the output lacks: $row"; fail=1; }
done
exit $fail
