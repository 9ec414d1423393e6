// SIGINT and SIGTERM stop a run cleanly instead of killing it mid-write.
//
// Ctrl-C and SIGTERM (what Slurm sends before it preempts a job, and what `kill` sends) used to end the
// process wherever it was: a checkpoint's steps since the last save were lost, and the run said nothing about
// how to go on. With the handlers installed, the first signal only records itself; the trainer finishes the
// step in flight, writes a checkpoint and stops, and the executor stops before the next node, saying how to
// resume. A second signal of either kind ends the process at once (the default action), for a user who does
// not want to wait for the step.
#pragma once

#include <string>

namespace fusec::rt {

/// Installs the handlers of SIGINT and SIGTERM (once a process; later calls do nothing).
void InstallInterruptHandlers();

/// The signal that asked the run to stop (SIGINT or SIGTERM), 0 when none did.
int InterruptSignal();

/// `SIGINT`, `SIGTERM`.
std::string SignalName(int signal);

/// Records `signal` as if it had arrived (tests), or forgets it with 0.
void SetInterruptForTesting(int signal);

}  // namespace fusec::rt
