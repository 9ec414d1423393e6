// Reading a distributed launch's variables (launch_environment.h).

#include "runtime/support/launch_environment.h"

#include <charconv>

namespace fusec::rt {
namespace {

/// `name`'s value as a whole number >= `minimum`; nullopt with `error` naming the launcher and the variable.
std::optional<int64_t> WholeNumber(const EnvironmentReader& read, const char* launcher, const char* name,
                                   int64_t minimum, std::string* error) {
  const char* text = read(name);
  const std::string value = text != nullptr ? text : "";
  int64_t number = 0;
  const auto [end, code] = std::from_chars(value.data(), value.data() + value.size(), number);
  if (value.empty() || code != std::errc() || end != value.data() + value.size()) {
    *error = std::string(launcher) + "'s `" + name + "` is `" + value + "`, not a whole number";
    return std::nullopt;
  }
  if (number < minimum) {
    *error = std::string(launcher) + "'s `" + name + "` is " + value + ", less than " + std::to_string(minimum);
    return std::nullopt;
  }
  return number;
}

bool IsSet(const EnvironmentReader& read, const char* name) {
  const char* value = read(name);
  return value != nullptr && *value != '\0';
}

/// `launch`'s rank and world size from the variables `rank_name` and `world_name`, the rank inside the world.
bool ReadRankAndWorld(const EnvironmentReader& read, const char* launcher, const char* rank_name,
                      const char* world_name, LaunchEnvironment& launch, std::string* error) {
  auto world = WholeNumber(read, launcher, world_name, 1, error);
  auto rank = world ? WholeNumber(read, launcher, rank_name, 0, error) : std::nullopt;
  if (!rank) return false;
  if (*rank >= *world) {
    *error = std::string(launcher) + "'s `" + rank_name + "` is " + std::to_string(*rank) + ", outside `" +
             world_name + "` " + std::to_string(*world);
    return false;
  }
  launch.world_size = *world;
  launch.rank = *rank;
  return true;
}

/// `name` into `value` when it is set (left as it is otherwise); false with `error` when it is malformed.
bool ReadIfSet(const EnvironmentReader& read, const char* launcher, const char* name, int64_t minimum,
               int64_t& value, std::string* error) {
  if (!IsSet(read, name)) return true;
  auto number = WholeNumber(read, launcher, name, minimum, error);
  if (number) value = *number;
  return number.has_value();
}

std::optional<LaunchEnvironment> ReadTorchrun(const EnvironmentReader& read, std::string* error) {
  LaunchEnvironment launch;
  launch.launcher = Launcher::Torchrun;
  if (!ReadRankAndWorld(read, "torchrun", "RANK", "WORLD_SIZE", launch, error) ||
      !ReadIfSet(read, "torchrun", "LOCAL_RANK", 0, launch.local_rank, error) ||
      !ReadIfSet(read, "torchrun", "LOCAL_WORLD_SIZE", 1, launch.local_world_size, error)) {
    return std::nullopt;
  }
  if (launch.local_rank >= launch.local_world_size && IsSet(read, "LOCAL_WORLD_SIZE")) {
    *error = "torchrun's `LOCAL_RANK` is " + std::to_string(launch.local_rank) + ", outside `LOCAL_WORLD_SIZE` " +
             std::to_string(launch.local_world_size);
    return std::nullopt;
  }
  if (launch.world_size > 1) {
    if (!IsSet(read, "MASTER_ADDR") || !IsSet(read, "MASTER_PORT")) {
      *error = "torchrun's `WORLD_SIZE` is " + std::to_string(launch.world_size) +
               " but `MASTER_ADDR` or `MASTER_PORT` is not set";
      return std::nullopt;
    }
    launch.master_addr = read("MASTER_ADDR");
    auto port = WholeNumber(read, "torchrun", "MASTER_PORT", 1, error);
    if (!port) return std::nullopt;
    launch.master_port = *port;
  }
  return launch;
}

std::optional<LaunchEnvironment> ReadSlurm(const EnvironmentReader& read, std::string* error) {
  LaunchEnvironment launch;
  launch.launcher = Launcher::Slurm;
  // SLURM_STEP_NUM_TASKS, not SLURM_NTASKS: a batch script of an `--ntasks 4` job sees SLURM_NTASKS=4 and
  // SLURM_PROCID=0 while it is one process; srun sets the step's own count for each of its tasks.
  if (!ReadRankAndWorld(read, "Slurm", "SLURM_PROCID", "SLURM_STEP_NUM_TASKS", launch, error) ||
      !ReadIfSet(read, "Slurm", "SLURM_LOCALID", 0, launch.local_rank, error)) {
    return std::nullopt;
  }
  // SLURM_NTASKS_PER_NODE is a plain number only when it was asked for; otherwise tasks per node are unknown.
  if (const char* per_node = read("SLURM_NTASKS_PER_NODE"); per_node != nullptr) {
    const std::string text = per_node;
    int64_t number = 0;
    const auto [end, code] = std::from_chars(text.data(), text.data() + text.size(), number);
    if (code == std::errc() && end == text.data() + text.size() && number >= 1) launch.local_world_size = number;
  }
  const char* nodes = read("SLURM_JOB_NODELIST");
  if (nodes == nullptr) nodes = read("SLURM_NODELIST");
  launch.master_addr = FirstSlurmHost(nodes != nullptr ? nodes : "");
  // The store's port: MASTER_PORT when the script sets one, else one drawn from the job id, so that two jobs
  // sharing a node do not meet on the same port.
  if (IsSet(read, "MASTER_PORT")) {
    auto port = WholeNumber(read, "Slurm", "MASTER_PORT", 1, error);
    if (!port) return std::nullopt;
    launch.master_port = *port;
  } else {
    int64_t job = 0;
    if (!ReadIfSet(read, "Slurm", "SLURM_JOB_ID", 0, job, error)) return std::nullopt;
    launch.master_port = 15000 + job % 10000;
  }
  return launch;
}

}  // namespace

std::string FirstSlurmHost(const std::string& node_list) {
  const size_t comma = node_list.find(',');
  const size_t bracket = node_list.find('[');
  if (bracket == std::string::npos || (comma != std::string::npos && comma < bracket)) {
    return node_list.substr(0, comma);
  }
  // prefix[03-05,9]suffix: the prefix, the first range's first number, the suffix up to the next host.
  const std::string prefix = node_list.substr(0, bracket);
  const size_t first_end = node_list.find_first_of("-,]", bracket + 1);
  if (first_end == std::string::npos) return prefix;
  const std::string first = node_list.substr(bracket + 1, first_end - bracket - 1);
  const size_t close = node_list.find(']', bracket);
  std::string suffix;
  if (close != std::string::npos) suffix = node_list.substr(close + 1, node_list.find(',', close) - close - 1);
  return prefix + first + suffix;
}

std::string LaunchEnvironment::Describe() const {
  const std::string where = "rank " + std::to_string(rank) + " of " + std::to_string(world_size);
  switch (launcher) {
    case Launcher::Torchrun:
      return where + " (torchrun: RANK=" + std::to_string(rank) + ", WORLD_SIZE=" + std::to_string(world_size) + ")";
    case Launcher::Slurm:
      return where + " (Slurm: SLURM_PROCID=" + std::to_string(rank) + ", SLURM_STEP_NUM_TASKS=" +
             std::to_string(world_size) + ")";
    case Launcher::None:
      break;
  }
  return "one process";
}

std::optional<LaunchEnvironment> ReadLaunchEnvironment(const EnvironmentReader& read, std::string* error) {
  if (IsSet(read, "WORLD_SIZE") || IsSet(read, "RANK")) return ReadTorchrun(read, error);  // also torchrun in srun
  if (IsSet(read, "SLURM_STEP_NUM_TASKS") && IsSet(read, "SLURM_PROCID")) return ReadSlurm(read, error);
  return LaunchEnvironment{};
}

}  // namespace fusec::rt
