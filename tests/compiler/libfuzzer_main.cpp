// libFuzzer entry point: `cmake -DFUSEC_FUZZER=ON -DCMAKE_CXX_COMPILER=clang++`, then
// `frontend_fuzzer tests/compiler/fuzz_corpus tests/compiler/testdata`.
#include <cstddef>
#include <cstdint>

#include "frontend_fuzz.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  fusec::RunFrontEnd(std::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
