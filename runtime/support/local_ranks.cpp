// Starting N local ranks, relaying their output and stopping them together (local_ranks.h).
//
// One thread, one poll loop: the ranks' pipes and a self-pipe that the signal handlers write to (SIGCHLD says a
// rank ended; SIGINT and SIGTERM are to be forwarded), so nothing waits on a timer to notice either.

#include "runtime/support/local_ranks.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include <algorithm>
#include <array>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <stdexcept>
#include <string_view>
#include <system_error>
#include <thread>
#include <utility>
#include <vector>

extern char** environ;

namespace fusec::rt {
namespace {

using Clock = std::chrono::steady_clock;

/// How long output may still come once every rank has ended, from something a rank left running in its process
/// group; after that, what is left of the group is killed.
constexpr std::chrono::milliseconds kOutputDrain{1000};
/// The longest one poll waits: a safety net, as SIGCHLD already wakes it when a rank ends.
constexpr int kPollCapMilliseconds = 250;

/// The self-pipe's write end while RunLocalRanks runs (-1 otherwise): each caught signal is written there.
volatile std::sig_atomic_t g_signal_pipe = -1;

extern "C" void OnLauncherSignal(int signal) {
  const int saved_errno = errno;
  const unsigned char byte = static_cast<unsigned char>(signal);
  if (g_signal_pipe >= 0) (void)!::write(g_signal_pipe, &byte, 1);  // a full pipe already says "look"
  errno = saved_errno;
}

[[noreturn]] void ThrowErrno(const std::string& what) { throw std::system_error(errno, std::generic_category(), what); }

/// A file descriptor closed when it goes.
class OwnedFd {
 public:
  OwnedFd() = default;
  explicit OwnedFd(int fd) : fd_(fd) {}
  OwnedFd(OwnedFd&& other) noexcept : fd_(std::exchange(other.fd_, -1)) {}
  OwnedFd& operator=(OwnedFd&& other) noexcept {
    if (this != &other) {
      Close();
      fd_ = std::exchange(other.fd_, -1);
    }
    return *this;
  }
  OwnedFd(const OwnedFd&) = delete;
  OwnedFd& operator=(const OwnedFd&) = delete;
  ~OwnedFd() { Close(); }

  int get() const { return fd_; }
  bool is_open() const { return fd_ >= 0; }
  void Close() {
    if (fd_ >= 0) ::close(fd_);
    fd_ = -1;
  }

 private:
  int fd_ = -1;
};

struct Pipe {
  OwnedFd read_end, write_end;
};

/// A close-on-exec pipe (plus `flags` on both ends); nullopt with errno set when there is none.
std::optional<Pipe> MakePipe(int flags = 0) {
  int fds[2];
  if (::pipe2(fds, O_CLOEXEC | flags) != 0) return std::nullopt;
  return Pipe{OwnedFd(fds[0]), OwnedFd(fds[1])};
}

/// SIGINT, SIGTERM and SIGCHLD written to a self-pipe while this lives; the previous handlers back afterwards.
/// One at a time in a process (the pipe is a global the handler reads).
class SignalPipe {
 public:
  SignalPipe() {
    auto pipe = MakePipe(O_NONBLOCK);
    if (!pipe) ThrowErrno("fusec: cannot make the launcher's signal pipe");
    pipe_ = std::move(*pipe);
    g_signal_pipe = pipe_.write_end.get();
    struct sigaction action {};
    action.sa_handler = OnLauncherSignal;
    sigemptyset(&action.sa_mask);
    action.sa_flags = SA_RESTART | SA_NOCLDSTOP;  // poll still returns EINTR; reads and writes go on
    for (size_t k = 0; k < kSignals.size(); ++k) {
      if (::sigaction(kSignals[k], &action, &previous_[k]) != 0) {
        const int error = errno;
        Restore(k);
        errno = error;
        ThrowErrno("fusec: cannot install the launcher's signal handlers");
      }
    }
  }
  SignalPipe(const SignalPipe&) = delete;
  SignalPipe& operator=(const SignalPipe&) = delete;
  ~SignalPipe() { Restore(kSignals.size()); }

  int fd() const { return pipe_.read_end.get(); }

  /// The signals caught since the last call, in order.
  std::vector<int> Take() {
    std::vector<int> signals;
    unsigned char bytes[64];
    ssize_t got;
    while ((got = ::read(fd(), bytes, sizeof bytes)) > 0 || (got < 0 && errno == EINTR)) {
      for (ssize_t k = 0; k < got; ++k) signals.push_back(bytes[k]);
    }
    return signals;
  }

  static constexpr std::array<int, 3> kSignals = {SIGINT, SIGTERM, SIGCHLD};

 private:
  void Restore(size_t installed) {
    for (size_t k = 0; k < installed; ++k) ::sigaction(kSignals[k], &previous_[k], nullptr);
    g_signal_pipe = -1;
  }

  Pipe pipe_;
  std::array<struct sigaction, kSignals.size()> previous_{};
};

/// A TCP port free on 127.0.0.1 now, for MASTER_PORT (rank 0 hosts the store there).
int FreePort() {
  const OwnedFd probe(::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0));
  if (!probe.is_open()) ThrowErrno("fusec: cannot open a socket to find a free port");
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  if (::bind(probe.get(), reinterpret_cast<sockaddr*>(&address), sizeof address) != 0 ||
      ::getsockname(probe.get(), reinterpret_cast<sockaddr*>(&address), &length) != 0) {
    ThrowErrno("fusec: cannot find a free port on 127.0.0.1");
  }
  return ntohs(address.sin_port);
}

/// `signal 9 (SIGKILL)`.
std::string DescribeSignal(int signal) {
  static constexpr std::pair<int, const char*> kNames[] = {
      {SIGHUP, "SIGHUP"},   {SIGINT, "SIGINT"},   {SIGQUIT, "SIGQUIT"}, {SIGILL, "SIGILL"},   {SIGTRAP, "SIGTRAP"},
      {SIGABRT, "SIGABRT"}, {SIGBUS, "SIGBUS"},   {SIGFPE, "SIGFPE"},   {SIGKILL, "SIGKILL"}, {SIGUSR1, "SIGUSR1"},
      {SIGSEGV, "SIGSEGV"}, {SIGUSR2, "SIGUSR2"}, {SIGPIPE, "SIGPIPE"}, {SIGALRM, "SIGALRM"}, {SIGTERM, "SIGTERM"},
      {SIGXCPU, "SIGXCPU"}, {SIGXFSZ, "SIGXFSZ"}, {SIGSYS, "SIGSYS"}};
  std::string text = "signal " + std::to_string(signal);
  for (const auto& [number, name] : kNames) {
    if (number == signal) return text + " (" + name + ")";
  }
  return text;
}

/// `rank 2 exited with status 3`, `rank 1 was killed by signal 9 (SIGKILL)`.
std::string DescribeEnd(int rank, int wait_status) {
  if (WIFSIGNALED(wait_status)) {
    return "rank " + std::to_string(rank) + " was killed by " + DescribeSignal(WTERMSIG(wait_status));
  }
  return "rank " + std::to_string(rank) + " exited with status " + std::to_string(WEXITSTATUS(wait_status));
}

bool Failed(int wait_status) { return !WIFEXITED(wait_status) || WEXITSTATUS(wait_status) != 0; }

int ExitStatusOf(int wait_status) {
  return WIFSIGNALED(wait_status) ? 128 + WTERMSIG(wait_status) : WEXITSTATUS(wait_status);
}

/// Rank `rank`'s environment: this process's, with the launch's variables (torchrun's, and ours) set.
std::vector<std::string> RankEnvironment(int rank, int nproc, int port) {
  std::vector<std::pair<std::string, std::string>> launch = {{"RANK", std::to_string(rank)},
                                                             {"LOCAL_RANK", std::to_string(rank)},
                                                             {"WORLD_SIZE", std::to_string(nproc)},
                                                             {"LOCAL_WORLD_SIZE", std::to_string(nproc)},
                                                             {"GROUP_RANK", "0"},
                                                             {"MASTER_ADDR", "127.0.0.1"},
                                                             {"MASTER_PORT", std::to_string(port)},
                                                             {"TORCHELASTIC_USE_AGENT_STORE", "False"},
                                                             {"FUSEC_LOCAL_RANKS", "1"}};
  if (std::getenv("OMP_NUM_THREADS") == nullptr) {  // each rank its share of the cores, as torchrun does
    const int cores = static_cast<int>(std::thread::hardware_concurrency());
    launch.emplace_back("OMP_NUM_THREADS", std::to_string(std::max(1, cores / nproc)));
  }
  std::vector<std::string> environment;
  for (char** variable = environ; *variable != nullptr; ++variable) {
    const std::string_view entry = *variable;
    const std::string_view name = entry.substr(0, entry.find('='));
    const bool replaced = std::any_of(launch.begin(), launch.end(), [&](const auto& set) { return set.first == name; });
    if (!replaced) environment.emplace_back(entry);
  }
  for (const auto& [name, value] : launch) environment.push_back(name + "=" + value);
  return environment;
}

/// `fd` as the child's `target` (1 or 2), no longer closed on exec. Async-signal-safe.
bool MoveOnto(int fd, int target) {
  if (fd != target) return ::dup2(fd, target) == target;
  const int flags = ::fcntl(fd, F_GETFD);
  return flags >= 0 && ::fcntl(fd, F_SETFD, flags & ~FD_CLOEXEC) == 0;
}

enum class Stream { Stdout, Stderr };

/// One rank: its process (the leader of its own process group) and its pipes' read ends.
struct Rank {
  int index = 0;
  pid_t pid = -1;
  OwnedFd stdout_pipe, stderr_pipe;      // closed at their end
  std::string stdout_line, stderr_line;  // what came after the last newline
  bool ended = false;

  OwnedFd& PipeOf(Stream stream) { return stream == Stream::Stdout ? stdout_pipe : stderr_pipe; }
  std::string& LineOf(Stream stream) { return stream == Stream::Stdout ? stdout_line : stderr_line; }
  bool HasOpenPipe() const { return stdout_pipe.is_open() || stderr_pipe.is_open(); }
};

class LocalRanks {
 public:
  LocalRanks(const LocalRanksOptions& options, std::ostream& out, std::ostream& err)
      : options_(options), out_(out), err_(err) {}
  LocalRanks(const LocalRanks&) = delete;
  LocalRanks& operator=(const LocalRanks&) = delete;

  /// Should anything throw while ranks run: none outlives the launcher, none is left a zombie.
  ~LocalRanks() {
    for (Rank& rank : ranks_) {
      if (rank.ended) continue;
      ::kill(-rank.pid, SIGKILL);
      while (::waitpid(rank.pid, nullptr, 0) < 0 && errno == EINTR) {
      }
    }
  }

  int Run() {
    StartAll();
    std::optional<Clock::time_point> drain_deadline;
    while (true) {
      const bool running = std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& rank) { return !rank.ended; });
      const bool output_open = std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& r) { return r.HasOpenPipe(); });
      if (!running && !output_open) break;
      const auto now = Clock::now();
      if (!running && !drain_deadline) drain_deadline = now + kOutputDrain;
      if (drain_deadline && now >= *drain_deadline) {
        SignalAll(SIGKILL);  // what a rank left running still holds its pipes: it goes with the launch
        break;
      }
      if (kill_deadline_ && now >= *kill_deadline_) {
        SignalAll(SIGKILL);
        kill_deadline_.reset();
      }
      PollOnce(std::min({Until(kill_deadline_, now), Until(drain_deadline, now), kPollCapMilliseconds}));
      ReapEnded();
    }
    for (Rank& rank : ranks_) {
      CloseOutput(rank, Stream::Stdout);
      CloseOutput(rank, Stream::Stderr);
    }
    return first_failure_.value_or(0);
  }

 private:
  /// Starts the ranks in order; at the first that cannot start, says so and stops those already started.
  void StartAll() {
    const int port = FreePort();
    std::vector<char*> argv;
    for (const std::string& arg : options_.argv) argv.push_back(const_cast<char*>(arg.c_str()));
    argv.push_back(nullptr);
    for (int k = 0; k < options_.nproc; ++k) {
      const int error = Start(k, argv, RankEnvironment(k, options_.nproc, port));
      if (error == 0) continue;
      err_ << "fusec: cannot start rank " << k << ": " << std::strerror(error) << "\n" << std::flush;
      first_failure_ = 127;
      Stop();
      return;
    }
  }

  /// Forks and execs rank `index` in a process group of its own; 0, or the errno of what failed.
  int Start(int index, const std::vector<char*>& argv, const std::vector<std::string>& environment) {
    std::vector<char*> envp;  // built before fork: the child calls only async-signal-safe functions
    for (const std::string& entry : environment) envp.push_back(const_cast<char*>(entry.c_str()));
    envp.push_back(nullptr);
    auto stdout_pipe = MakePipe();
    auto stderr_pipe = stdout_pipe ? MakePipe() : std::nullopt;
    auto exec_error = stderr_pipe ? MakePipe() : std::nullopt;  // the child's errno when exec fails
    if (!exec_error) return errno;
    const pid_t parent = ::getpid();
    const pid_t pid = ::fork();
    if (pid < 0) return errno;
    if (pid == 0) {
      ::setpgid(0, 0);
      struct sigaction default_action {};
      default_action.sa_handler = SIG_DFL;
      sigemptyset(&default_action.sa_mask);
      for (int signal : SignalPipe::kSignals) ::sigaction(signal, &default_action, nullptr);
      sigset_t none;
      sigemptyset(&none);
      ::sigprocmask(SIG_SETMASK, &none, nullptr);
#ifdef __linux__
      // A launcher killed outright (SIGKILL, OOM) leaves no rank behind; SIGTERM lets it save its checkpoint.
      // (Sent when the thread that forked ends: RunLocalRanks runs on the main thread.)
      ::prctl(PR_SET_PDEATHSIG, SIGTERM);
      if (::getppid() != parent) _exit(128 + SIGTERM);
#endif
      if (MoveOnto(stdout_pipe->write_end.get(), STDOUT_FILENO) &&
          MoveOnto(stderr_pipe->write_end.get(), STDERR_FILENO)) {
        environ = envp.data();
        ::execvp(argv[0], argv.data());  // a path as it is; a bare name looked up on PATH
      }
      const int error = errno;
      (void)!::write(exec_error->write_end.get(), &error, sizeof error);
      _exit(127);
    }
    exec_error->write_end.Close();
    int child_error = 0;
    ssize_t got;
    while ((got = ::read(exec_error->read_end.get(), &child_error, sizeof child_error)) < 0 && errno == EINTR) {
    }
    if (got == sizeof child_error) {  // it has _exit-ed or is about to
      while (::waitpid(pid, nullptr, 0) < 0 && errno == EINTR) {
      }
      return child_error;
    }
    Rank& rank = ranks_.emplace_back();
    rank.index = index;
    rank.pid = pid;
    rank.stdout_pipe = std::move(stdout_pipe->read_end);
    rank.stderr_pipe = std::move(stderr_pipe->read_end);
    for (const OwnedFd* fd : {&rank.stdout_pipe, &rank.stderr_pipe}) {  // the child's ends stay blocking
      ::fcntl(fd->get(), F_SETFL, ::fcntl(fd->get(), F_GETFL) | O_NONBLOCK);
    }
    return 0;
  }

  static int Until(const std::optional<Clock::time_point>& deadline, Clock::time_point now) {
    if (!deadline) return kPollCapMilliseconds;
    const auto left = std::chrono::ceil<std::chrono::milliseconds>(*deadline - now).count();
    return static_cast<int>(std::clamp<int64_t>(left, 0, kPollCapMilliseconds));
  }

  /// Waits up to `timeout_ms` for output or a signal and handles what came.
  void PollOnce(int timeout_ms) {
    std::vector<pollfd> fds = {{signals_.fd(), POLLIN, 0}};
    std::vector<std::pair<Rank*, Stream>> owners = {{nullptr, Stream::Stdout}};
    for (Rank& rank : ranks_) {
      for (Stream stream : {Stream::Stdout, Stream::Stderr}) {
        if (!rank.PipeOf(stream).is_open()) continue;
        fds.push_back({rank.PipeOf(stream).get(), POLLIN, 0});
        owners.emplace_back(&rank, stream);
      }
    }
    if (::poll(fds.data(), fds.size(), timeout_ms) < 0) {
      if (errno == EINTR) return;  // the signal is in the self-pipe for the next poll
      ThrowErrno("fusec: cannot wait for the ranks' output");
    }
    if (fds[0].revents != 0) {
      for (int signal : signals_.Take()) {
        if (signal == SIGINT || signal == SIGTERM) Forward(signal);  // SIGCHLD: ReapEnded looks
      }
    }
    for (size_t k = 1; k < fds.size(); ++k) {
      if ((fds[k].revents & (POLLIN | POLLHUP | POLLERR)) != 0) ReadOnce(*owners[k].first, owners[k].second);
    }
  }

  /// A SIGINT or SIGTERM sent to the launcher, for every rank: they save their checkpoints and stop (exit 130).
  /// No SIGTERM of our own after that, even when one fails: a second signal would stop the others at once.
  void Forward(int signal) {
    interrupted_ = true;
    SignalAll(signal);
  }

  /// `signal` to each rank's process group (what it started too), while it or its output lives.
  void SignalAll(int signal) {
    for (const Rank& rank : ranks_) {
      if (!rank.ended || rank.HasOpenPipe()) ::kill(-rank.pid, signal);
    }
  }

  /// After a failure: SIGTERM now, SIGKILL after the grace period.
  void Stop() {
    SignalAll(SIGTERM);
    kill_deadline_ = Clock::now() + options_.grace;
  }

  /// Reads what one pipe has now; false when it had nothing (or ended).
  bool ReadOnce(Rank& rank, Stream stream) {
    OwnedFd& pipe = rank.PipeOf(stream);
    if (!pipe.is_open()) return false;
    char buffer[65536];
    const ssize_t got = ::read(pipe.get(), buffer, sizeof buffer);
    if (got < 0 && (errno == EINTR || errno == EAGAIN || errno == EWOULDBLOCK)) return errno == EINTR;
    if (got <= 0) {
      CloseOutput(rank, stream);
      return false;
    }
    if (stream == Stream::Stdout && rank.index != 0) return true;  // it repeats rank 0's summary
    std::string& line = rank.LineOf(stream);
    line.append(buffer, static_cast<size_t>(got));
    size_t start = 0;
    for (size_t end; (end = line.find('\n', start)) != std::string::npos; start = end + 1) {
      Emit(rank, stream, std::string_view(line).substr(start, end + 1 - start));
    }
    line.erase(0, start);
    return true;
  }

  /// One line of a rank's output where it belongs: rank 0's stdout as it is, every stderr line prefixed.
  void Emit(const Rank& rank, Stream stream, std::string_view line) {
    if (stream == Stream::Stdout) {
      out_ << line << std::flush;
    } else {
      err_ << "[rank " << rank.index << "] " << line << std::flush;
    }
  }

  /// The pipe's end: its partial last line (a newline added on stderr, to keep the prefixes at line starts).
  void CloseOutput(Rank& rank, Stream stream) {
    std::string& line = rank.LineOf(stream);
    if (!line.empty()) Emit(rank, stream, stream == Stream::Stderr ? line + "\n" : line);
    line.clear();
    rank.PipeOf(stream).Close();
  }

  /// Reaps the ranks that ended; the first failure stops the others unless an interrupt is already stopping
  /// them.
  void ReapEnded() {
    for (Rank& rank : ranks_) {
      if (rank.ended) continue;
      int wait_status = 0;
      const pid_t reaped = ::waitpid(rank.pid, &wait_status, WNOHANG);
      if (reaped == 0 || (reaped < 0 && errno == EINTR)) continue;
      rank.ended = true;
      if (reaped < 0) continue;  // ECHILD: someone else reaped it; its status is lost
      // Its last words before the launcher's line about it (all it wrote is in the pipes by now).
      while (ReadOnce(rank, Stream::Stderr)) {
      }
      while (ReadOnce(rank, Stream::Stdout)) {
      }
      if (!Failed(wait_status) || first_failure_) continue;
      first_failure_ = ExitStatusOf(wait_status);
      if (interrupted_) continue;
      const bool others_run = std::any_of(ranks_.begin(), ranks_.end(), [](const Rank& r) { return !r.ended; });
      err_ << "fusec: " << DescribeEnd(rank.index, wait_status) << (others_run ? "; stopping the other ranks" : "")
           << "\n"
           << std::flush;
      if (others_run) Stop();
    }
  }

  const LocalRanksOptions& options_;
  std::ostream& out_;
  std::ostream& err_;
  SignalPipe signals_;  // before any fork, so no rank's end goes unnoticed
  std::vector<Rank> ranks_;
  std::optional<int> first_failure_;  // the exit status to return
  bool interrupted_ = false;          // a SIGINT or SIGTERM was forwarded
  std::optional<Clock::time_point> kill_deadline_;
};

}  // namespace

int RunLocalRanks(const LocalRanksOptions& options, std::ostream& out, std::ostream& err) {
  if (options.nproc < 1) {
    throw std::invalid_argument("fusec: the number of local ranks must be at least 1, not " +
                                std::to_string(options.nproc));
  }
  if (options.argv.empty() || options.argv[0].empty()) {
    throw std::invalid_argument("fusec: local ranks need a command to run (argv is empty)");
  }
  return LocalRanks(options, out, err).Run();
}

}  // namespace fusec::rt
