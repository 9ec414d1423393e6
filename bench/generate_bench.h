// fusec-bench's sampling benchmark: `fusec-bench --config generate` (or `generate-tiny`, the test suite's).
//
// Why its own entry point: it shares fusec-bench's binary and its way of working (write one workload
// directory, run each side in a process of its own, print a table and a RESULT line) but none of the DPO
// workload's options or tables, so fusepo_bench.cpp's main hands it the whole command line when it asks for a
// generate configuration, or for the internal `generate-side` command (fusec's side, run as a child).
#pragma once

namespace fusec::bench {

/// Whether `argv` asks for the sampling benchmark: `--config generate...` or the `generate-side` command.
bool IsGenerateBench(int argc, char** argv);

/// The sampling benchmark's own main: parses `argv` and runs the orchestrator or fusec's side.
int GenerateBenchMain(int argc, char** argv);

}  // namespace fusec::bench
