#!/usr/bin/env bash
# `make demo`: what fusec can do today. The training runtime is not built yet (see README.md, "Status"), so the
# demo checks every shipped experiment and explains the paper's FuseRL-DPO configuration: its two stages
# with every default filled in and every loss spelled out, and what each stage needs from the data.
set -euo pipefail
cd "$(dirname "$0")/.."
fusec=build/release/bin/fusec

echo "== fusec check: every shipped experiment"
for file in experiments/paper/*.fuse experiments/sweeps/*.fuse; do
  printf '%-45s ' "$file"
  "$fusec" check "$file"
done
echo
echo "== fusec plan --emit=ast experiments/paper/fuserl_dpo.fuse"
"$fusec" plan --emit=ast experiments/paper/fuserl_dpo.fuse
echo
echo "== a mistake, and how fusec reports it"
mistake=$(mktemp --suffix=.fuse)
trap 'rm -f "$mistake"' EXIT
sed -e 's/objective = dpo(beta: 10, length_norm: true)/objective = dpo(beta: 10)/' \
    -e 's/epochs = 3;/epochs = 3.5;/' experiments/paper/fuserl_dpo.fuse > "$mistake"
"$fusec" check "$mistake" || true
