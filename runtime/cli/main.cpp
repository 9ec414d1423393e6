// fusec-rt: the LibTorch half of the `fusec` command line (see commands.h).
#include <unistd.h>

#include <cstdlib>
#include <exception>
#include <iostream>
#include <string>
#include <thread>

#include "runtime/cli/commands.h"
#include "runtime/support/run_error.h"

int main(int argc, char** argv) {
  // LibTorch uses one thread by default on these machines (dependencies.md), and OpenMP reads
  // OMP_NUM_THREADS when it starts, before main could call set_num_threads: so when it is unset, set it to
  // every core and start again. `fusec` sets it before handing a command over, so this costs nothing there.
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {
    std::string threads = std::to_string(std::max(1U, std::thread::hardware_concurrency()));
    setenv("OMP_NUM_THREADS", threads.c_str(), 1);
    execv("/proc/self/exe", argv);  // returns only on failure; then run with the default thread count
  }
  // No exception reaches std::terminate: bad input is a RunError (or reported inside RuntimeMain), so
  // anything else that escapes is a bug in fusec.
  try {
    std::vector<std::string> args(argv + 1, argv + argc);
    return fusec::rt::RuntimeMain(args, std::cin, std::cout, std::cerr);
  } catch (const fusec::rt::RunError& error) {
    std::cerr << fusec::rt::Render(error);
    return fusec::rt::ExitStatusOf(error);
  } catch (const std::exception& error) {
    std::cerr << "internal error: " << error.what() << "\nthis is a bug in fusec; please report it with the input\n";
  } catch (...) {
    std::cerr << "internal error: unknown exception\nthis is a bug in fusec; please report it with the input\n";
  }
  return fusec::rt::kExitInternal;
}
