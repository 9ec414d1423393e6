// `fusec run`: plan the file with the compiler's driver, then hand the graph to the executor.
//
// The only place where the runtime meets the compiler's front end: the executor (runtime/exec) walks a
// planned graph and links no driver, so planning happens here, in the command that asked for it.
#pragma once

#include <iosfwd>

#include "runtime/exec/executor.h"

namespace fusec::rt {

/// Checks, lowers and optimises `options.file` (its diagnostics go to `err`), then runs its graph. Exit
/// status: 0 done, 1 errors in the input or a failed stage, 2 for a bad use of --out.
int RunExperiments(const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace fusec::rt
