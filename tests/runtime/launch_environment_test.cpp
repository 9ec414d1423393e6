// runtime/support/launch_environment.h on fake environments: torchrun's and srun's variables as those launchers
// set them, torchrun inside srun, a batch script of a multi-task Slurm job (one process), and malformed values.
#include "runtime/support/launch_environment.h"

#include <gtest/gtest.h>

#include <map>
#include <string>

namespace fusec::rt {
namespace {

using Variables = std::map<std::string, std::string>;

std::optional<LaunchEnvironment> Read(const Variables& variables, std::string* error) {
  return ReadLaunchEnvironment(
      [&](const char* name) -> const char* {
        auto it = variables.find(name);
        return it == variables.end() ? nullptr : it->second.c_str();
      },
      error);
}

TEST(LaunchEnvironment, NoLauncherIsOneProcess) {
  std::string error;
  auto launch = Read({{"HOME", "/root"}}, &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->launcher, Launcher::None);
  EXPECT_EQ(launch->world_size, 1);
  EXPECT_EQ(launch->Describe(), "one process");
}

TEST(LaunchEnvironment, ReadsTorchrunsVariables) {
  std::string error;
  auto launch = Read({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"LOCAL_WORLD_SIZE", "2"},
                      {"MASTER_ADDR", "node01"}, {"MASTER_PORT", "29500"}},
                     &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->launcher, Launcher::Torchrun);
  EXPECT_EQ(launch->rank, 3);
  EXPECT_EQ(launch->world_size, 4);
  EXPECT_EQ(launch->local_rank, 1);
  EXPECT_EQ(launch->local_world_size, 2);
  EXPECT_EQ(launch->master_addr, "node01");
  EXPECT_EQ(launch->master_port, 29500);
  EXPECT_EQ(launch->Describe(), "rank 3 of 4 (torchrun: RANK=3, WORLD_SIZE=4)");
  // torchrun with one process needs no rendezvous address.
  launch = Read({{"RANK", "0"}, {"WORLD_SIZE", "1"}}, &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->world_size, 1);
}

TEST(LaunchEnvironment, ReadsAnSrunTaskAndPrefersTorchrunInsideIt) {
  std::string error;
  const Variables srun = {{"SLURM_PROCID", "5"},          {"SLURM_NTASKS", "8"},      {"SLURM_STEP_NUM_TASKS", "8"},
                          {"SLURM_LOCALID", "1"},         {"SLURM_NTASKS_PER_NODE", "4"},
                          {"SLURM_JOB_NODELIST", "gpu[07-08]"}, {"SLURM_JOB_ID", "4321987"}};
  auto launch = Read(srun, &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->launcher, Launcher::Slurm);
  EXPECT_EQ(launch->rank, 5);
  EXPECT_EQ(launch->world_size, 8);
  EXPECT_EQ(launch->local_rank, 1);
  EXPECT_EQ(launch->local_world_size, 4);
  EXPECT_EQ(launch->master_addr, "gpu07");
  EXPECT_EQ(launch->master_port, 15000 + 1987);  // drawn from the job id: two jobs on a node do not collide
  EXPECT_EQ(launch->Describe(), "rank 5 of 8 (Slurm: SLURM_PROCID=5, SLURM_STEP_NUM_TASKS=8)");
  Variables with_port = srun;
  with_port.insert({"MASTER_PORT", "29777"});
  launch = Read(with_port, &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->master_port, 29777);
  Variables inside = srun;
  inside.insert({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "gpu07"}, {"MASTER_PORT", "1234"}});
  launch = Read(inside, &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->launcher, Launcher::Torchrun);
  EXPECT_EQ(launch->world_size, 2);
  // The batch script of an `sbatch --ntasks 4` job: SLURM_NTASKS=4, SLURM_PROCID=0, no step: one process.
  launch = Read({{"SLURM_NTASKS", "4"}, {"SLURM_PROCID", "0"}, {"SLURM_JOB_NODELIST", "gpu07"}}, &error);
  ASSERT_TRUE(launch) << error;
  EXPECT_EQ(launch->launcher, Launcher::None);
}

TEST(LaunchEnvironment, MalformedOrInconsistentVariablesAreErrorsNamingThem) {
  std::string error;
  EXPECT_FALSE(Read({{"RANK", "x"}, {"WORLD_SIZE", "2"}}, &error));
  EXPECT_EQ(error, "torchrun's `RANK` is `x`, not a whole number");
  EXPECT_FALSE(Read({{"RANK", "0"}, {"WORLD_SIZE", "0"}}, &error));
  EXPECT_EQ(error, "torchrun's `WORLD_SIZE` is 0, less than 1");
  EXPECT_FALSE(Read({{"RANK", "1"}}, &error));
  EXPECT_EQ(error, "torchrun's `WORLD_SIZE` is ``, not a whole number");
  EXPECT_FALSE(Read({{"RANK", "2"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "1"}}, &error));
  EXPECT_EQ(error, "torchrun's `RANK` is 2, outside `WORLD_SIZE` 2");
  EXPECT_FALSE(Read({{"RANK", "0"}, {"WORLD_SIZE", "2"}}, &error));
  EXPECT_EQ(error, "torchrun's `WORLD_SIZE` is 2 but `MASTER_ADDR` or `MASTER_PORT` is not set");
  EXPECT_FALSE(Read({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "a"}, {"MASTER_PORT", "80a"}}, &error));
  EXPECT_EQ(error, "torchrun's `MASTER_PORT` is `80a`, not a whole number");
  EXPECT_FALSE(Read({{"SLURM_PROCID", "4"}, {"SLURM_STEP_NUM_TASKS", "4"}}, &error));
  EXPECT_EQ(error, "Slurm's `SLURM_PROCID` is 4, outside `SLURM_STEP_NUM_TASKS` 4");
}

TEST(LaunchEnvironment, FirstSlurmHostOfANodeList) {
  EXPECT_EQ(FirstSlurmHost("node[03-05,9],login1"), "node03");
  EXPECT_EQ(FirstSlurmHost("gnode[10,20,25,37]"), "gnode10");
  EXPECT_EQ(FirstSlurmHost("a1,b2"), "a1");
  EXPECT_EQ(FirstSlurmHost("single"), "single");
  EXPECT_EQ(FirstSlurmHost("rack[2-3]-gpu,other"), "rack2-gpu");
  EXPECT_EQ(FirstSlurmHost(""), "");
}

}  // namespace
}  // namespace fusec::rt
