#!/usr/bin/env bash
# Builds the runtime against the device machine's CUDA LibTorch 2.x and runs the model tests on its GPU, in
# fp32 and bf16 (tests/runtime/model_test.cpp with FUSEC_TEST_DEVICE=cuda).
#
# The device machine reaches no package registry, so the check has two halves:
#
#   scripts/device-check.sh prepare   here, on Debian 12: `apt-get download`s the header-only and small
#                                      libraries the runtime builds with (JSON, simdjson, PCRE2, CLI11,
#                                      GoogleTest) into .device/debs.
#   scripts/device-check.sh run       there, through the device tool with carry [".device"]: unpacks them into
#                                      .device/prefix, configures the runtime alone (FUSEC_BUILD_COMPILER=OFF)
#                                      against `torch.utils.cmake_prefix_path` of the machine's PyTorch, builds
#                                      runtime_model_tests and runs it on CUDA. Prints the parity figures.
#
# The run half takes about 4 minutes on 16 cores; give the device tool a timeout of 480 s. Environment
# overrides, for trying the run half elsewhere: DEVICE_CHECK_TORCH_PREFIX (a CMake prefix holding
# TorchConfig.cmake), DEVICE_CHECK_TEST_DEVICE (cuda), DEVICE_CHECK_PYTHON (the Python with torch for the
# reference model), DEVICE_CHECK_BUILD (the build directory).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
device_dir="$root/.device"
debs=(nlohmann-json3-dev libsimdjson-dev libsimdjson14 libpcre2-dev libpcre2-8-0 libcli11-dev libgtest-dev googletest)

prepare() {
  mkdir -p "$device_dir/debs"
  cd "$device_dir/debs"
  rm -f ./*.deb
  if ! apt-get download "${debs[@]}" >/dev/null; then
    echo "device-check: error: apt-get download failed (run \`apt-get update\` first?)" >&2
    exit 1
  fi
  echo "device-check: $(ls ./*.deb | wc -l) packages in .device/debs ($(du -sh . | cut -f1)); now run" \
       "\`scripts/device-check.sh run\` on the device machine with carry [\".device\"]"
}

run() {
  local start=$SECONDS
  if ! compgen -G "$device_dir/debs/*.deb" >/dev/null; then
    echo "device-check: error: no packages in .device/debs; run \`scripts/device-check.sh prepare\` here first" >&2
    exit 1
  fi
  local prefix="$device_dir/prefix"
  rm -rf "$prefix"
  mkdir -p "$prefix"
  for deb in "$device_dir"/debs/*.deb; do dpkg-deb -x "$deb" "$prefix" 2>/dev/null || dpkg -x "$deb" "$prefix"; done

  local python="${DEVICE_CHECK_PYTHON:-$(command -v python3)}"
  local torch_prefix="${DEVICE_CHECK_TORCH_PREFIX:-$("$python" -c 'import torch; print(torch.utils.cmake_prefix_path)')}"
  local test_device="${DEVICE_CHECK_TEST_DEVICE:-cuda}"
  local build="${DEVICE_CHECK_BUILD:-$root/build/device}"
  echo "device-check: LibTorch from $torch_prefix; Python $python; tests on $test_device"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

  local generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFUSEC_BUILD_COMPILER=OFF -DFUSEC_BUILD_RUNTIME=ON \
    -DCMAKE_PREFIX_PATH="$prefix/usr;$torch_prefix" >"$build.configure.log" 2>&1 || {
    tail -40 "$build.configure.log"
    echo "device-check: error: configuring failed (log: $build.configure.log)" >&2
    exit 1
  }
  echo "device-check: configured in $((SECONDS - start)) s"
  cmake --build "$build" --target runtime_model_tests fusec-rt -j "$(nproc)" 2>&1 | grep -E "error|warning: |FAILED" || true
  [[ -x "$build/tests/runtime/runtime_model_tests" ]] || { echo "device-check: error: the build failed" >&2; exit 1; }
  echo "device-check: built in $((SECONDS - start)) s"

  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export FUSEC_TEST_DEVICE="$test_device" FUSEC_REFERENCE_PYTHON="$python"
  local status=0
  "$build/tests/runtime/runtime_model_tests" --gtest_brief=1 || status=$?
  echo "device-check: tests exited $status after $((SECONDS - start)) s"
  exit $status
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run   (prepare here, run on the device machine; see the header)" >&2; exit 2 ;;
esac
