// `fusec run --nproc N`: N local ranks of one command, started without Python, as
// `torchrun --standalone --nproc-per-node N` would start them.
//
// Why a launcher of our own: torchrun needs a Python with torch, and a researcher with only the fusec binary
// should still train on every core or GPU of one machine. The ranks see torchrun's variables (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR=127.0.0.1, a free MASTER_PORT, ...), so
// launch_environment.h reads them exactly as it reads torchrun's, plus FUSEC_LOCAL_RANKS=1.
//
// Why the output goes through the parent: N ranks writing to one terminal interleave mid-line. Rank 0's stdout
// (the run's summary) reaches `out` unchanged; the other ranks' stdout repeats it and is dropped; every rank's
// stderr reaches `err` a whole line at a time, each line prefixed with `[rank K] `.
//
// Why each rank is its own process group: a terminal's Ctrl-C then reaches the launcher alone, which forwards it
// once to every rank (and to what a rank started). A rank that got the terminal's SIGINT and the forwarded
// one would take the second as "stop at once" (interrupt.h) and lose its checkpoint.
//
// Failure: the first rank to fail (nonzero status, or a signal) stops the others, SIGTERM and SIGKILL after a
// grace period, because the survivors would otherwise wait in a collective for a rank that is gone.
#pragma once

#include <chrono>
#include <ostream>
#include <string>
#include <vector>

namespace fusec::rt {

struct LocalRanksOptions {
  int nproc = 1;                   // ranks to start, >= 1
  std::vector<std::string> argv;   // the command each rank runs; argv[0] a path (or a name found on PATH)
  std::chrono::seconds grace{10};  // after one rank fails, how long the others get after SIGTERM before SIGKILL
};

/// Starts the ranks, relays their output, waits for them. Returns the exit status to exit with: 0 when every
/// rank exited 0; otherwise the first failing rank's (128 + the signal for a rank killed by one), 127 when a
/// rank could not be started. SIGINT and SIGTERM sent to this process meanwhile are forwarded to every rank;
/// the previous handlers are back when it returns. Throws std::invalid_argument for `nproc` < 1 or an empty
/// `argv`, std::system_error when no pipe, port or signal handler can be had.
int RunLocalRanks(const LocalRanksOptions& options, std::ostream& out, std::ostream& err);

}  // namespace fusec::rt
