#!/usr/bin/env bash
# scripts/results_report.py on a hand-made run tree: two seeds of the `methods` sweep (DPO) and one of the
# WRPO baseline, known scores. The comparison table must show their mean and standard deviation, the section
# must replace the old one and keep what precedes it, and both SVG files must be well-formed XML.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
for seed in 1 2; do
  point="$work/results/runs/methods/objective=dpo_beta_0.1,length_norm_false_,seed=$seed"
  mkdir -p "$point/eval"
  score=$([[ $seed == 1 ]] && echo 0.30 || echo 0.40)
  family='{"reverse": {"prompts": 1, "score": 0.5, "exact_match": 0.0}}'
  cat >"$point/eval/results.json" <<JSON
[{"model": "initial", "prompts": 2, "score": 0.1, "exact_match": 0.0, "families": $family},
 {"model": "fusesft", "prompts": 2, "score": 0.2, "exact_match": 0.5, "families": $family},
 {"model": "fusepo", "prompts": 2, "score": $score, "exact_match": 0.5, "families": $family}]
JSON
  printf '%s\n' '{"stage": "methods[x]/fusesft", "step": 1, "loss": 2.0}' '{"stage": "methods[x]/fusesft", "step": 2, "loss": 1.0}' \
    '{"stage": "methods[x]/fusepo", "step": 1, "loss": 0.7}' >"$point/metrics.jsonl"
  echo "manifest" >"$point/manifest.toml"
done
# One point of the WRPO baseline: its evaluation scores the `po` model alone.
wrpo="$work/results/runs/wrpo_baseline/seed=1"
mkdir -p "$wrpo/eval"
echo '[{"model": "po", "prompts": 2, "score": 0.25, "exact_match": 0.5, "families": {}}]' >"$wrpo/eval/results.json"
: >"$wrpo/metrics.jsonl"
echo "manifest" >"$wrpo/manifest.toml"
# One point of the SFT baselines, whose evaluation also scores the source models.
base="$work/results/runs/baselines/objective=dpo_beta_0.1,length_norm_false_,seed=1"
mkdir -p "$base/eval"
echo '[{"model": "alpha", "prompts": 2, "score": 0.6, "exact_match": 0.5, "families": {}},
  {"model": "initial", "prompts": 2, "score": 0.1, "exact_match": 0.0, "families": {}},
  {"model": "sft", "prompts": 2, "score": 0.2, "exact_match": 0.0, "families": {}},
  {"model": "po", "prompts": 2, "score": 0.3, "exact_match": 0.0, "families": {}}]' >"$base/eval/results.json"
: >"$base/metrics.jsonl"
echo "manifest" >"$base/manifest.toml"
mkdir -p "$work/docs"
printf '# Results\n\nThe demo.\n\n## The comparison\n\nold text\n' >"$work/docs/results.md"
/usr/bin/python3 "$root/scripts/results_report.py" "$work/results" "$work/docs" >/dev/null
doc="$work/docs/results.md"
fail=0
check() { grep -qF -- "$1" "$doc" || { echo "FAIL: results.md lacks: $1"; fail=1; }; }
check "The demo."
check "| FuseRL (FuseSFT + FusePO-DPO) | 2 | 0.350 ± 0.071 | 0.500 ± 0.000 |"
check "| FuseSFT | 2 | 0.200 ± 0.000 | 0.500 ± 0.000 |"
check "| source alpha (Llama-shaped: reverse, upper) | 1 | 0.600 ± 0.000 | 0.500 ± 0.000 |"
check "| WRPO (SFT + WRPO on the target's own samples) | 1 | 0.250 ± 0.000 | 0.500 ± 0.000 |"
if grep -q "old text" "$doc"; then echo "FAIL: the old comparison section is still there"; fail=1; fi
for svg in results_methods.svg results_training_curves.svg; do
  /usr/bin/python3 -c 'import sys, xml.etree.ElementTree as et; et.parse(sys.argv[1])' "$work/docs/$svg" ||
    { echo "FAIL: $svg is not well-formed"; fail=1; }
done
[[ $fail -eq 0 ]] && echo "results_report: table, section and plots as expected"
exit $fail
