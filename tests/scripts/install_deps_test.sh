#!/usr/bin/env bash
# scripts/install-deps.sh is idempotent and installs only what is missing:
#  1. with everything installed it does nothing and prints nothing;
#  2. `--check` reports a missing package (a name that does not exist) and exits 1, installing nothing;
#  3. a bad flag is a usage error (exit 2).
set -u
script="$(dirname "$0")/../../scripts/install-deps.sh"
fail() { echo "FAIL: $*"; exit 1; }

output=$("$script" 2>&1) || fail "a run with everything installed failed: $output"
[[ -z "$output" ]] || fail "a run with everything installed printed: $output"

output=$(FUSEC_EXTRA_PACKAGES=fusec-no-such-package "$script" --check 2>&1)
status=$?
[[ $status -eq 1 ]] || fail "--check with a missing package exited $status"
[[ "$output" == *"missing: fusec-no-such-package"* ]] || fail "--check did not name the missing package: $output"

"$script" --bogus >/dev/null 2>&1
status=$?
[[ $status -eq 2 ]] || fail "a bad flag exited $status"
echo "install-deps: idempotent, reports missing packages, rejects bad flags"
