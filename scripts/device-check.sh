#!/usr/bin/env bash
# Builds fusec against the device machine's CUDA LibTorch 2.x and runs on its GPU: the model tests in fp32 and
# bf16 (tests/runtime/model_test.cpp with FUSEC_TEST_DEVICE=cuda), then `fusec run` of experiments/smoke.fuse
# on CUDA and on the CPU (their held-out figures side by side) and of experiments/demo.fuse on CUDA, then
# `fusec-bench --config gpu` (bench/README.md) against bench/baseline_trl_dpo.py under the machine's PyTorch.
#
# The device machine reaches no package registry and has no Java for the ANTLR tool, so the check has two
# halves:
#
#   scripts/device-check.sh prepare   here, on Debian 12: `apt-get download`s the libraries fusec builds
#                                      with (JSON, simdjson, PCRE2, CLI11, toml++, the ANTLR runtime,
#                                      GoogleTest) into .device/debs, generates the .fuse parser into
#                                      .device/grammar, and writes a small fusion-mini into .device/fusion-mini.
#   scripts/device-check.sh run       there, through the device tool with carry [".device"]: unpacks them into
#                                      .device/prefix, configures against `torch.utils.cmake_prefix_path` of
#                                      the machine's PyTorch with FUSEC_PREGENERATED_GRAMMAR, builds fusec,
#                                      fusec-rt and runtime_model_tests, and runs the checks above. Writes its
#                                      logs under $OUT (or .device/out).
#
# The run half took 2.5 minutes on an H200 machine (16 cores), build included, before the benchmark was added
# (up to 300 s more); give the device tool a timeout of 560 s and the kind nvidia-h200: the benchmark's
# baseline needs about 110 GB, and on a smaller GPU the check skips the benchmark. Environment overrides, for
# trying the run half elsewhere: DEVICE_CHECK_TORCH_PREFIX (a CMake prefix holding TorchConfig.cmake),
# DEVICE_CHECK_TEST_DEVICE (cuda), DEVICE_CHECK_PYTHON (the Python with torch for the reference model),
# DEVICE_CHECK_BUILD (the build directory), DEVICE_CHECK_DEMO_TIMEOUT (seconds for the demo, 200),
# DEVICE_CHECK_BENCH_TIMEOUT (seconds for the benchmark, 300; 0 skips it).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
device_dir="$root/.device"
debs=(nlohmann-json3-dev libsimdjson-dev libsimdjson14 libpcre2-dev libpcre2-8-0 libicu-dev libicu72 libcli11-dev libgtest-dev googletest
      libtomlplusplus-dev libtomlplusplus3 libantlr4-runtime-dev libantlr4-runtime4.9 uuid-dev libuuid1)

prepare() {
  mkdir -p "$device_dir/debs"
  cd "$device_dir/debs"
  rm -f ./*.deb
  if ! apt-get download "${debs[@]}" >/dev/null; then
    echo "device-check: error: apt-get download failed (run \`apt-get update\` first?)" >&2
    exit 1
  fi
  rm -rf "$device_dir/grammar"
  antlr4 -Dlanguage=Cpp -visitor -no-listener -Werror -package fuse_grammar -o "$device_dir/grammar" \
    -Xexact-output-dir "$root/grammar/Fuse.g4"
  "$root/build/release/bin/fusec" synth fusion-mini --out "$device_dir/fusion-mini" --seed 1 --prompts 20000 >/dev/null || {
    echo "device-check: error: build fusec first (make build)" >&2
    exit 1
  }
  echo "device-check: $(ls ./*.deb | wc -l) packages in .device/debs ($(du -sh . | cut -f1)); now run" \
       "\`scripts/device-check.sh run\` on the device machine with carry [\".device\"]"
}

run() {
  local start=$SECONDS
  if ! compgen -G "$device_dir/debs/*.deb" >/dev/null || [[ ! -f "$device_dir/grammar/FuseParser.cpp" ]]; then
    echo "device-check: error: .device is incomplete; run \`scripts/device-check.sh prepare\` here first" >&2
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
  local logs="${OUT:-$device_dir/out}"
  mkdir -p "$logs"
  echo "device-check: LibTorch from $torch_prefix; Python $python; tests on $test_device"
  nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || true

  # The ANTLR runtime links -luuid; the linker finds the carried libraries through LIBRARY_PATH.
  export LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LIBRARY_PATH:+:$LIBRARY_PATH}"
  local generator=()
  command -v ninja >/dev/null 2>&1 && generator=(-G Ninja)
  cmake -S "$root" -B "$build" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DFUSEC_BUILD_COMPILER=ON -DFUSEC_BUILD_RUNTIME=ON -DFUSEC_PREGENERATED_GRAMMAR="$device_dir/grammar" \
    -DCMAKE_PREFIX_PATH="$prefix/usr;$torch_prefix" >"$logs/configure.log" 2>&1 || {
    tail -40 "$logs/configure.log"
    echo "device-check: error: configuring failed (log: $logs/configure.log)" >&2
    exit 1
  }
  echo "device-check: configured in $((SECONDS - start)) s"
  cmake --build "$build" --target runtime_model_tests fusec fusec-rt fusec-bench -j "$(nproc)" >"$logs/build.log" 2>&1 || true
  grep -E "error|FAILED" "$logs/build.log" | head -40 || true
  [[ -x "$build/tests/runtime/runtime_model_tests" && -x "$build/bin/fusec-rt" ]] || {
    echo "device-check: error: the build failed (log: $logs/build.log)" >&2
    exit 1
  }
  echo "device-check: built in $((SECONDS - start)) s"

  export LD_LIBRARY_PATH="$prefix/usr/lib/x86_64-linux-gnu${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
  export FUSEC_TEST_DEVICE="$test_device" FUSEC_REFERENCE_PYTHON="$python"
  local status=0
  "$build/tests/runtime/runtime_model_tests" --gtest_brief=1 >"$logs/model_tests.log" 2>&1 || status=1
  { grep -v "^\[       OK \]" "$logs/model_tests.log" || true; } | tail -30
  if [[ $status -ne 0 ]] && command -v cuda-gdb >/dev/null; then
    echo "device-check: the model tests failed; a backtrace:"
    "$build/bin/fusec-rt" --help >/dev/null 2>&1 && echo "(fusec-rt starts)" || echo "(fusec-rt does not start either)"
    cuda-gdb -batch -ex run -ex bt --args "$build/tests/runtime/runtime_model_tests" --gtest_brief=1 2>&1 |
      grep -E "^#|signal|Program" | head -30 || true
  fi
  echo "device-check: model tests done after $((SECONDS - start)) s (status $status)"

  # Training end to end: the smoke experiment on the GPU and on the CPU, then the demo on the GPU.
  local fusec="$build/bin/fusec"
  for device in "$test_device" cpu; do
    local t=$SECONDS
    if "$fusec" run experiments/smoke.fuse --device "$device" --out "$build/smoke-$device" --cache "$build/cache-$device" \
        >"$logs/smoke-$device.out" 2>"$logs/smoke-$device.err"; then
      echo "device-check: smoke on $device in $((SECONDS - t)) s:"
      sed -n '/evaluation/,$p' "$logs/smoke-$device.out"
    else
      status=1
      echo "device-check: error: smoke on $device failed:"
      tail -20 "$logs/smoke-$device.err"
    fi
  done
  if [[ -d "$device_dir/fusion-mini" ]]; then
    mkdir -p experiments/data
    rm -rf experiments/data/fusion-mini
    cp -r "$device_dir/fusion-mini" experiments/data/fusion-mini
    local t=$SECONDS
    if timeout "${DEVICE_CHECK_DEMO_TIMEOUT:-200}" "$fusec" run experiments/demo.fuse --device "$test_device" --out "$build/demo" --cache "$build/cache-demo" \
        >"$logs/demo.out" 2>"$logs/demo.err"; then
      echo "device-check: demo on $test_device in $((SECONDS - t)) s:"
      sed -n '/evaluation/,$p' "$logs/demo.out"
      grep -E "training on|tok/s" "$logs/demo.err" | grep -E "training on|step [0-9]+/[0-9]+ .*" | tail -4
    else
      status=1
      echo "device-check: error: demo on $test_device failed:"
      tail -20 "$logs/demo.err"
    fi
  fi
  local bench_timeout="${DEVICE_CHECK_BENCH_TIMEOUT:-300}"
  local gpu_mib
  gpu_mib=$(nvidia-smi --query-gpu=memory.total --format=csv,noheader,nounits 2>/dev/null | head -n 1 | tr -d ' ')
  if [[ "$bench_timeout" != 0 && "$gpu_mib" =~ ^[0-9]+$ && "$gpu_mib" -lt 120000 ]]; then
    echo "device-check: bench (gpu) skipped: its baseline needs about 110 GB by our estimate and this GPU has" \
         "${gpu_mib} MiB; run the check on an H200 (the device tool's kind nvidia-h200)"
    bench_timeout=0
  fi
  if [[ "$bench_timeout" != 0 && -x "$build/bin/fusec-bench" ]]; then
    local t=$SECONDS
    # MFU against the datasheet's dense bf16 peak too, where the GPU is one whose figure we know.
    local nominal=()
    case "$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -n 1)" in
      *H200* | *H100*HBM3* | *H100*SXM*) nominal=(--nominal-peak 989) ;;
    esac
    if timeout "$bench_timeout" "$build/bin/fusec-bench" --config gpu --python "$python" --dir "$build/bench-gpu" \
        "${nominal[@]}" >"$logs/bench.out" 2>"$logs/bench.err"; then
      echo "device-check: bench (gpu) in $((SECONDS - t)) s:"
      cat "$logs/bench.out"
    else
      status=1
      echo "device-check: error: bench (gpu) failed or ran out of time:"
      tail -20 "$logs/bench.err"
    fi
  fi
  echo "device-check: finished with status $status after $((SECONDS - start)) s"
  exit $status
}

case "${1:-}" in
  prepare) prepare ;;
  run) run ;;
  *) echo "usage: $0 prepare|run   (prepare here, run on the device machine; see the header)" >&2; exit 2 ;;
esac
