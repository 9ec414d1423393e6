#!/usr/bin/env bash
# Installs the Debian 12 packages fusec needs, and only those that are missing.
#
# Idempotent: a machine that already has everything does no apt work at all (a dpkg query, well under a
# second), so `make test` and `make demo` can call it every time. It needs root (or passwordless sudo) only
# when something is missing, and fails with a message that says what is missing and how to install it.
set -euo pipefail

# The tested install line (DEVELOPERS.md, ../shared/docs/dependencies.md). `libopenblas0-openmp` is listed
# explicitly: without it LibTorch falls back to the reference BLAS, 20-40x slower.
packages=(
  antlr4 libantlr4-runtime-dev
  libtorch-dev libgloo-dev libopenblas0-openmp python3-torch
  libtomlplusplus-dev libfmt-dev libspdlog-dev libcli11-dev nlohmann-json3-dev
  libsimdjson-dev libpcre2-dev libicu-dev
  libgtest-dev libgmock-dev googletest pkgconf
  cmake g++ make
)
# Tests add a package that does not exist to check the missing-package path without installing anything.
if [[ -n "${FUSEC_EXTRA_PACKAGES:-}" ]]; then
  read -r -a extra <<<"$FUSEC_EXTRA_PACKAGES"
  packages+=("${extra[@]}")
fi

# `--check` only reports: it lists what is missing and exits 1 if anything is, installing nothing.
check_only=false
case "${1:-}" in
  --check) check_only=true ;;
  "") ;;
  *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

if ! command -v dpkg-query >/dev/null 2>&1; then
  echo "install-deps: error: dpkg-query not found; fusec's build expects Debian 12 (bookworm)." >&2
  echo "install-deps: help: install by hand: ${packages[*]}" >&2
  exit 1
fi

missing=()
for package in "${packages[@]}"; do
  status=$(dpkg-query -W -f='${db:Status-Status}' "$package" 2>/dev/null || true)
  [[ "$status" == "installed" ]] || missing+=("$package")
done

if [[ ${#missing[@]} -eq 0 ]]; then
  $check_only && echo "install-deps: all ${#packages[@]} packages are installed"
  exit 0
fi
if $check_only; then
  echo "install-deps: missing: ${missing[*]}"
  exit 1
fi

echo "install-deps: missing Debian packages: ${missing[*]}"

if ! command -v apt-get >/dev/null 2>&1; then
  echo "install-deps: error: apt-get not found; fusec's build expects Debian 12 (bookworm)." >&2
  echo "install-deps: help: install these packages by hand: ${missing[*]}" >&2
  exit 1
fi

as_root=()
if [[ $(id -u) -ne 0 ]]; then
  if command -v sudo >/dev/null 2>&1 && sudo -n true 2>/dev/null; then
    as_root=(sudo -n)
  else
    echo "install-deps: error: installing packages needs root, and passwordless sudo is not available." >&2
    echo "install-deps: help: run as root: apt-get install -y --no-install-recommends ${missing[*]}" >&2
    exit 1
  fi
fi

export DEBIAN_FRONTEND=noninteractive
if ! "${as_root[@]}" apt-get update -qq; then
  echo "install-deps: error: \`apt-get update\` failed (is the Debian mirror reachable?)" >&2
  exit 1
fi
if ! "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}"; then
  echo "install-deps: error: \`apt-get install\` failed for: ${missing[*]}" >&2
  echo "install-deps: help: fusec needs Debian 12's main component; check /etc/apt/sources.list" >&2
  exit 1
fi
echo "install-deps: installed ${#missing[@]} package(s)"
