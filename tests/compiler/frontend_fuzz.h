// The front end as one function of its input, for fuzzing: parse, check, render every diagnostic, and print
// the checked program. Shared by the libFuzzer target (libfuzzer_main.cpp) and the random-mutation test that
// runs in the ordinary test suite (fuzz_test.cpp), so both exercise exactly the same code.
#pragma once

#include <string>
#include <string_view>

namespace fusec {

/// Runs the whole front end on `input` as if it were the file `fuzz/input.fuse`, and when it checks clean,
/// lowers it and runs every pass with verification. Returns the rendered diagnostics, program and graph (so
/// callers can check determinism); throws only for a bug (a graph that fails verification).
std::string RunFrontEnd(std::string_view input);

}  // namespace fusec
