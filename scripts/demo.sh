#!/usr/bin/env bash
# `make demo`: what fusec can do today. The training runtime is not built yet (see README.md, "Status"), so the
# demo checks every shipped experiment, explains the paper's FuseRL-DPO configuration (its two stages with
# every default filled in and every loss spelled out), shows how a tau sweep plans to one graph that shares
# its FuseSFT stage, and shows how a mistake is reported.
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
echo "== fusec plan experiments/sweeps/tau.fuse: six tau points, one shared FuseSFT stage"
"$fusec" plan --emit=json experiments/sweeps/tau.fuse --cache build/demo-cache |
  /usr/bin/python3 -c 'import json, sys, collections
nodes = json.load(sys.stdin)["nodes"]
print("  ", dict(collections.Counter(n["kind"] for n in nodes)))
for n in nodes:
    if n["kind"] in ("train", "ref_logprobs"):
        print("   %-12s %s  computes %d stage(s), e.g. %s" % (n["kind"], n["hash"][:12], len(n["stages"]), n["stages"][0]))'
echo
echo "== a mistake, and how fusec reports it"
mistake=$(mktemp --suffix=.fuse)
trap 'rm -f "$mistake"' EXIT
sed -e 's/objective = dpo(beta: 10, length_norm: true)/objective = dpo(beta: 10)/' \
    -e 's/epochs = 3;/epochs = 3.5;/' experiments/paper/fuserl_dpo.fuse > "$mistake"
"$fusec" check "$mistake" || true
