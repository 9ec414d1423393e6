// The `fusec` command line.
//
// Main() is the whole program behind main(): it parses the command line with CLI11, runs the phases the
// subcommand asks for, prints diagnostics to `err` and results to `out`, and returns the exit status. It takes
// streams instead of using std::cout so golden tests run it in-process.
//
// Exit status: 0 when the input is clean (warnings allowed), 1 when it has errors, 2 for usage errors, 3 for
// internal errors (a bug in fusec; main() turns any exception that escapes into one).
#pragma once

#include <iosfwd>
#include <memory>
#include <string>
#include <vector>

#include "compiler/diag/diagnostics.h"
#include "compiler/driver/manifest.h"
#include "compiler/ir/ir.h"
#include "compiler/sema/checked.h"

namespace fusec {

inline constexpr int kExitOk = 0;
inline constexpr int kExitErrors = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInternal = 3;  // fusec-rt's are the same (runtime/support/run_error.h)

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// "fusec 0.1.0".
std::string VersionString();

/// The commands `fusec` hands to `fusec-rt` (main.cpp; runtime/cli/commands.cpp defines them).
const std::vector<std::string>& RuntimeCommandNames();

/// What `fusec run` (in fusec-rt) asks of the compiler: the same options as `fusec plan`.
struct PlanRequest {
  std::string file;
  std::vector<std::string> overrides;  // `--set` values
  std::string stdlib;                  // empty: the default
  std::string config;                  // a fusec.toml; empty: ./fusec.toml if it exists
  std::string cache;                   // the stage cache; empty: $FUSEC_CACHE, fusec.toml's, or ~/.cache/fusec
};

/// A checked, lowered and optimised program, with its cache marks and run manifest.
struct PlannedProgram {
  SourceManager sources;
  Diagnostics diagnostics;
  sema::CheckedProgram program;
  ir::Graph graph;
  std::string cache_dir;
  std::string device = "auto";  // fusec.toml's `[run] device`
  RunManifest manifest;
};

/// Plans `request.file` as `fusec plan` does, printing its diagnostics (warnings too) to `err`. Null when the
/// input has errors.
std::unique_ptr<PlannedProgram> PlanForRun(const PlanRequest& request, std::ostream& err);

}  // namespace fusec
