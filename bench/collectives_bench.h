// fusec-bench's communication benchmark: `fusec-bench --config collectives` (or `collectives-tiny`, the
// test suite's). For a data-parallel step at 2 and 3 local ranks over Gloo, it reports the time each rank spent
// waiting for the gradient sums (what backward did not hide), the step's time, and the bytes each rank sent
// (its socket writes, from /proc/self/io) against the ring all-reduce's 2·(N−1)/N·(gradient bytes); and the same
// for sums to owners (`shard = gradients`) against a reduce-scatter's (N−1)/N·(gradient bytes).
//
// Why its own entry point: it shares fusec-bench's binary, but starts itself as N ranks (`--nproc`'s
// launcher, local_ranks.h), each running the internal `collectives-rank` command.
#pragma once

namespace fusec::bench {

/// Whether `argv` asks for the communication benchmark: `--config collectives...` or `collectives-rank`.
bool IsCollectivesBench(int argc, char** argv);

/// The communication benchmark's own main: the orchestrator, or one rank of it.
int CollectivesBenchMain(int argc, char** argv);

}  // namespace fusec::bench
