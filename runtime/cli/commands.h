// The runtime's commands: init-model, score, generate, tokenize (compiler/driver/main.cpp hands them over).
//
// They live in the `fusec-rt` binary, which links LibTorch; `fusec` (which never does) hands these
// subcommands to it, so users type `fusec score ...`. RuntimeMain() is the whole program behind main(), with
// streams instead of std::cin/std::cout so tests run it in-process. Exit status as `fusec`: 0 done, 1 bad
// input (a model directory, a data line, a tokenizer) or a failed stage, 2 usage errors, 3 internal errors.
// The values are in runtime/support/run_error.h.
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

#include "runtime/support/run_error.h"

namespace fusec::rt {

int RuntimeMain(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace fusec::rt
