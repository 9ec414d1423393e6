#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <exception>
#include <filesystem>
#include <iostream>
#include <string_view>
#include <thread>

#include "compiler/driver/driver.h"

namespace {

// Commands that need LibTorch (fusec::RuntimeCommandNames()) are run by `fusec-rt`, installed next to `fusec`
// (the compiler links no LibTorch, so checking and planning start in milliseconds).

int RunRuntime(char** argv) {
  std::error_code ec;
  std::filesystem::path self = std::filesystem::read_symlink("/proc/self/exe", ec);
  std::filesystem::path runtime = self.parent_path() / "fusec-rt";
  if (ec || !std::filesystem::exists(runtime)) {
    std::cerr << "error: `fusec " << argv[1] << "` needs the runtime, but " << runtime.string()
              << " is missing (fusec was built with FUSEC_BUILD_RUNTIME=OFF?)\n";
    return fusec::kExitUsage;
  }
  // LibTorch reads the thread count when it starts: every core unless the user says otherwise.
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    setenv("OMP_NUM_THREADS", std::to_string(std::max(1U, std::thread::hardware_concurrency())).c_str(), 1);
  }
  argv[0] = const_cast<char*>("fusec");
  execv(runtime.c_str(), argv);
  std::cerr << "error: cannot start " << runtime.string() << ": " << std::strerror(errno) << "\n";
  return fusec::kExitErrors;
}

}  // namespace

namespace {

int Run(int argc, char** argv) {
  if (argc > 1) {
    for (const std::string& command : fusec::RuntimeCommandNames()) {
      if (command == argv[1]) return RunRuntime(argv);
    }
    // `fusec experiment.fuse` is `fusec run experiment.fuse`.
    if (std::string_view(argv[1]).ends_with(".fuse")) {
      std::vector<char*> with_run = {argv[0], const_cast<char*>("run")};
      with_run.insert(with_run.end(), argv + 1, argv + argc);
      with_run.push_back(nullptr);
      return RunRuntime(with_run.data());
    }
  }
  std::vector<std::string> args(argv + 1, argv + argc);
  return fusec::Main(args, std::cout, std::cerr);
}

}  // namespace

// No exception reaches std::terminate: the phases report bad input as diagnostics, so one that escapes is a bug.
int main(int argc, char** argv) {
  try {
    return Run(argc, argv);
  } catch (const std::exception& error) {
    std::cerr << "internal error: " << error.what() << "\nthis is a bug in fusec; please report it with the input\n";
  } catch (...) {
    std::cerr << "internal error: unknown exception\nthis is a bug in fusec; please report it with the input\n";
  }
  return fusec::kExitInternal;
}
