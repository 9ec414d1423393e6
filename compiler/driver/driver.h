// The `fusec` command line.
//
// Main() is the whole program behind main(): it parses the command line with CLI11, runs the phases the
// subcommand asks for, prints diagnostics to `err` and results to `out`, and returns the exit status. It takes
// streams instead of using std::cout so golden tests run it in-process.
//
// Exit status: 0 when the input is clean (warnings allowed), 1 when it has errors, 2 for usage errors.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace fusec {

inline constexpr int kExitOk = 0;
inline constexpr int kExitErrors = 1;
inline constexpr int kExitUsage = 2;

int Main(const std::vector<std::string>& args, std::ostream& out, std::ostream& err);

/// "fusec 0.1.0".
std::string VersionString();

}  // namespace fusec
