// The runtime's commands: init-model, score, generate, tokenize (compiler/driver/main.cpp hands them over).
//
// They live in the `fusec-rt` binary, which links LibTorch; `fusec` (which never does) hands these
// subcommands to it, so users type `fusec score ...`. RuntimeMain() is the whole program behind main(), with
// streams instead of std::cin/std::cout so tests run it in-process. Exit status as `fusec`: 0 done, 1 bad
// input (a model directory, a data line, a tokenizer) or a failed stage, 2 usage errors, 3 internal errors.
// The values are fusec's (compiler/driver/driver.h), repeated here because the runtime builds without the
// compiler (FUSEC_BUILD_COMPILER=OFF).
#pragma once

#include <iosfwd>
#include <string>
#include <vector>

namespace fusec::rt {

inline constexpr int kExitOk = 0;
inline constexpr int kExitErrors = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInternal = 3;  // a bug in fusec: an [Internal] error, or an exception that escaped

int RuntimeMain(const std::vector<std::string>& args, std::istream& in, std::ostream& out, std::ostream& err);

}  // namespace fusec::rt
