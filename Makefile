# The front door. Every target installs missing Debian packages first (scripts/install-deps.sh does nothing
# when all are present), then configures and builds with CMake presets (CMakePresets.json).
#
#   make demo     build, generate the fusion-mini benchmark, run experiments/demo.fuse (source models, sampling,
#                 scoring, FuseSFT, FusePO, held-out scores); its last line is RESULT alpha=... initial=... fusepo=...
#   make tour     build, then check and explain the shipped experiments and run the smoke experiment
#   make results  build, run experiments/bench/fusion_mini.fuse (about 15 minutes on 2 cores), write docs/results.md
#   make bench    build, run fusec-bench: fusec's FusePO-DPO step against TRL's way (bench/baseline_trl_dpo.py
#                 under /usr/bin/python3), then the loss head alone; last line RESULT speedup=... (BENCH_CONFIG=cpu;
#                 BENCH_FLAGS=--ablate adds fusec with each optimisation off)
#   make test     build, then run every test: release build, and the compiler's and the runtime's LibTorch-free
#                 tests under ASan + UBSan (the parity tests' JavaScript references are installed first)
#   make build    build the release preset only
#   make golden   rewrite the golden tests' expectations from the current output (review the diff!)
#   make fuzz     run libFuzzer on the front end for FUZZ_SECONDS (needs clang)
#   make format   clang-format the sources;  make tidy: clang-tidy them

JOBS ?= $(shell nproc)
FUZZ_SECONDS ?= 60
FUSEC := build/release/bin/fusec
export OMP_NUM_THREADS ?= $(shell nproc)

BENCH_CONFIG ?= cpu
BENCH_FLAGS ?=

.PHONY: demo tour results bench test build deps js-deps configure dev-test golden fuzz format tidy clean

deps:
	@./scripts/install-deps.sh

js-deps:
	@./scripts/install-js-deps.sh

configure: deps
	@cmake --preset release >/dev/null

build: configure
	@cmake --build --preset release -j $(JOBS)

demo: build
	@./scripts/demo.sh

tour: build
	@./scripts/tour.sh

results: build
	@./scripts/results.sh

bench: build
	@./build/release/bin/fusec-bench --config $(BENCH_CONFIG) $(BENCH_FLAGS)

test: build js-deps
	@ctest --preset release -j $(JOBS)
	@$(MAKE) --no-print-directory dev-test

dev-test: deps js-deps
	@cmake --preset dev >/dev/null
	@cmake --build --preset dev -j $(JOBS)
	@ctest --preset dev -j $(JOBS)

golden: build
	@FUSEC_AUTOUPDATE=1 ./build/release/tests/compiler/compiler_tests --gtest_filter='Testdata/*' >/dev/null || true
	@./build/release/tests/compiler/compiler_tests --gtest_filter='Testdata/*:GoldenCoverage.*' --gtest_brief=1
	@git status --short tests/compiler/testdata

fuzz: deps
	@cmake --preset fuzz >/dev/null
	@cmake --build --preset fuzz -j $(JOBS)
	@mkdir -p build/fuzz/corpus
	@./build/fuzz/tests/compiler/frontend_fuzzer -max_total_time=$(FUZZ_SECONDS) -timeout=10 \
	    build/fuzz/corpus tests/compiler/fuzz_corpus tests/compiler/testdata experiments stdlib

format:
	@git ls-files '*.cpp' '*.h' | xargs clang-format -i

# compiler/parse is left out: clang cannot parse Debian's ANTLR umbrella header with GCC's flags (the fuzz
# preset works around it with a shim header, grammar/CMakeLists.txt).
tidy: configure
	@git ls-files 'compiler/*.cpp' 'runtime/*.cpp' | grep -v '^compiler/parse/' | xargs clang-tidy -p build/release --quiet

clean:
	@rm -rf build
