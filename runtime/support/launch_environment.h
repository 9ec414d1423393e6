// Where a `fusec run` process stands among the ranks of a distributed launch: torchrun's variables (RANK,
// WORLD_SIZE, LOCAL_RANK, LOCAL_WORLD_SIZE, MASTER_ADDR, MASTER_PORT) or, for a task of `srun`, Slurm's
// (SLURM_PROCID, SLURM_STEP_NUM_TASKS, SLURM_LOCALID, SLURM_NTASKS_PER_NODE and the first host of
// SLURM_JOB_NODELIST), torchrun's first (torchrun inside srun).
//
// Why now, before training across processes exists (issue 17): started by `torchrun --nproc-per-node 2` or
// `srun -n 4`, every rank would otherwise run the whole experiment by itself, racing the others for the stage
// cache and the run directory, and the researcher would not be told. `fusec run` reads this first and refuses
// a world larger than one with an error that names the launcher's variables; the distributed runtime will
// start from the same reading. Malformed or inconsistent variables are errors that name them.
//
// Torch-free: a pure function of the environment, tested with a fake one.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>

namespace fusec::rt {

enum class Launcher { None, Torchrun, Slurm };

struct LaunchEnvironment {
  Launcher launcher = Launcher::None;
  int64_t rank = 0;
  int64_t world_size = 1;
  int64_t local_rank = 0;
  int64_t local_world_size = 1;
  std::string master_addr;  // torchrun's MASTER_ADDR, or Slurm's first host; empty for one process
  int64_t master_port = 0;  // MASTER_PORT; under Slurm without one, 15000 + SLURM_JOB_ID % 10000

  /// "rank 1 of 2 (torchrun: RANK=1, WORLD_SIZE=2)", or "one process" without a launcher.
  std::string Describe() const;
};

/// Reads a variable: nullptr when it is not set (std::getenv in fusec, a map in the tests).
using EnvironmentReader = std::function<const char*(const char*)>;

/// The launch this process is part of; nullopt with `error` ("torchrun's `RANK` is `x`, not a whole number")
/// when the variables are malformed or disagree (a rank outside the world, a missing MASTER_ADDR for a world of
/// more than one).
std::optional<LaunchEnvironment> ReadLaunchEnvironment(const EnvironmentReader& read, std::string* error);

/// The first host of a Slurm node list: `node[03-05,9],login1` -> `node03`; empty for an empty list.
std::string FirstSlurmHost(const std::string& node_list);

}  // namespace fusec::rt
