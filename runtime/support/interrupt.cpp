#include "runtime/support/interrupt.h"

#include <csignal>
#include <unistd.h>

#include <cstring>
#include <string>

namespace fusec::rt {
namespace {

volatile std::sig_atomic_t g_interrupt_signal = 0;

extern "C" void OnInterrupt(int signal) {
  if (g_interrupt_signal != 0) {  // the second one: stop now
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  g_interrupt_signal = signal;
  static const char kNote[] = "\nfusec: stopping after the step in flight (a checkpoint is written); "
                              "send the signal again to stop at once\n";
  ssize_t ignored = ::write(2, kNote, sizeof kNote - 1);
  (void)ignored;
}

}  // namespace

void InstallInterruptHandlers() {
  static bool installed = false;
  if (installed) return;
  installed = true;
  struct sigaction action {};
  action.sa_handler = OnInterrupt;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

int InterruptSignal() { return g_interrupt_signal; }

std::string SignalName(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    default:
      return "signal " + std::to_string(signal);
  }
}

void SetInterruptForTesting(int signal) { g_interrupt_signal = signal; }

}  // namespace fusec::rt
