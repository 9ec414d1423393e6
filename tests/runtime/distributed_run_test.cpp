// Training across processes, end to end on the CPU over Gloo: experiments/smoke.fuse under torchrun with 2
// ranks and under `fusec run --nproc 3` (an uneven split of each step's 4 prompts) ends with the weights of
// the single-process run to 1e-5 relative and its per-step losses to 1e-6, with every `shard` setting (and
// the state each rank reports holding shrinks as the setting says); a run stopped at step 3 resumes
// bit-identically at the same world size and continues at another (2 -> 3); SIGINT to --nproc's launcher stops
// every rank after one checkpoint and the rerun resumes; a rank whose peer hangs (SIGSTOP) stops after
// --dist-timeout; a rank killed with SIGKILL
// brings the others down within 60 s with an error naming it, its last checkpoint intact, and rerunning
// finishes the run. Reference log-probabilities, evaluation, sampling and reward-model scoring split over 3
// ranks commit the single process's entries byte for byte.
//
// The reference is the single-process run of the same file: the claim under test is that the world size does
// not change what the experiment computes (the single-process trainer is checked against independent
// references elsewhere: trainer_test.cpp, objectives_test.cpp).

#include <netinet/in.h>
#include <sys/socket.h>
#include <torch/torch.h>

#include <cmath>
#include <filesystem>
#include <map>

#include "runtime/model/checkpoint.h"
#include "tests/runtime/reward_model_support.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt::testing {
namespace {

namespace fs = std::filesystem;

const char* const kStages[] = {"smoke/sft", "smoke/po"};

/// A TCP port free on 127.0.0.1 now (for torchrun's --master_port).
int FreePort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  socklen_t length = sizeof(address);
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

/// Runs `args` to the end; its wait status, with stderr in `log` and stdout in `log_out`.
int RunToEnd(const std::vector<std::string>& args, const std::string& log, const std::string& log_out = "/dev/null") {
  return WaitFor(Spawn(args, log, log_out));
}

/// The smoke experiment's command line with its cache and run directory under `dir`/`name`.
std::vector<std::string> SmokeRun(const ScratchDir& dir, const std::string& name, const std::vector<std::string>& extra) {
  return SmokeCommand(dir / (name + "-cache"), dir / (name + "-run"), extra);
}

/// The trained models of a run's cache: entry name -> the model's weights.
std::map<std::string, std::map<std::string, torch::Tensor>> TrainedModels(const std::string& cache) {
  std::map<std::string, std::map<std::string, torch::Tensor>> models;
  for (const auto& entry : fs::recursive_directory_iterator(cache)) {
    if (entry.path().filename() != "metrics.jsonl" || !fs::exists(entry.path().parent_path() / "model")) continue;
    const fs::path model_dir = entry.path().parent_path() / "model";
    std::string error;
    auto model = LoadModel(model_dir.string(), torch::kFloat, torch::kCPU, &error);
    EXPECT_TRUE(model) << error;
    if (!model) continue;
    auto& weights = models[entry.path().parent_path().filename().string()];
    for (const auto& item : (*model)->named_parameters()) weights[item.key()] = item.value().detach().clone();
  }
  return models;
}

/// How far the trained weights of two caches are apart: over the whole model (every weight of a stage as one
/// vector, ||a - b|| / ||a||) and per tensor, the worst stage of each.
///
/// Why the whole model is held to 1e-5 and a tensor only to 1e-4: Adam divides each gradient by its running
/// RMS, so an element whose gradient is rounding noise (summed in another order) moves by up to a step of the
/// learning rate either way. In the smoke experiment one element of a value projection does so: the
/// single-process run itself differs by 2e-5 of that tensor between 1 and 2 threads. A rank whose gradients were
/// not summed, or a prompt trained twice, moves whole tensors by far more than 1e-4.
struct WeightDifference {
  double model = 0;
  double tensor = 0;
};

WeightDifference Difference(const std::string& cache_a, const std::string& cache_b) {
  const auto a = TrainedModels(cache_a);
  const auto b = TrainedModels(cache_b);
  EXPECT_EQ(a.size(), 2U) << "the smoke experiment trains two stages";
  WeightDifference worst;
  for (const auto& [entry, weights] : a) {
    EXPECT_TRUE(b.count(entry)) << "stage entry " << entry << " is missing from " << cache_b;
    if (!b.count(entry)) return {1e9, 1e9};
    double squares = 0, difference_squares = 0;
    for (const auto& [name, tensor] : weights) {
      const torch::Tensor difference = (tensor - b.at(entry).at(name)).to(torch::kDouble);
      const double norm = tensor.to(torch::kDouble).norm().item<double>();
      squares += norm * norm;
      difference_squares += difference.pow(2).sum().item<double>();
      worst.tensor = std::max(worst.tensor, difference.norm().item<double>() / std::max(norm, 1e-12));
    }
    worst.model = std::max(worst.model, std::sqrt(difference_squares / std::max(squares, 1e-24)));
  }
  return worst;
}

/// Expects the weights of `cache` to be the single-process run's, printing how far apart they are.
void ExpectWeightsOfOneProcess(const ScratchDir& dir, const std::string& cache, const std::string& what) {
  const WeightDifference difference = Difference(dir / "one-cache", cache);
  std::cout << what << ": relative weight difference to one process: model " << difference.model
            << ", worst tensor " << difference.tensor << std::endl;
  EXPECT_LE(difference.model, 1e-5) << what;
  EXPECT_LE(difference.tensor, 1e-4) << what;
}

bool BitIdentical(const std::string& cache_a, const std::string& cache_b) {
  const auto a = TrainedModels(cache_a);
  const auto b = TrainedModels(cache_b);
  if (a.size() != 2 || b.size() != 2) return false;
  for (const auto& [entry, weights] : a) {
    if (!b.count(entry)) return false;
    for (const auto& [name, tensor] : weights) {
      if (!torch::equal(tensor, b.at(entry).at(name))) return false;
    }
  }
  return true;
}

/// Each stage's per-step losses in a run directory's metrics.jsonl.
std::map<std::string, std::vector<double>> Losses(const std::string& run_dir) {
  std::map<std::string, std::vector<double>> losses;
  for (const char* stage : kStages) {
    for (const nlohmann::json& line : Metrics(run_dir + "/metrics.jsonl", stage)) {
      losses[stage].push_back(line["loss"].get<double>());
    }
  }
  return losses;
}

void ExpectSameLosses(const std::string& run_a, const std::string& run_b) {
  const auto a = Losses(run_a);
  const auto b = Losses(run_b);
  for (const char* stage : kStages) {
    ASSERT_TRUE(a.count(stage) && b.count(stage)) << stage;
    ASSERT_EQ(a.at(stage).size(), b.at(stage).size()) << stage;
    ASSERT_FALSE(a.at(stage).empty()) << stage;
    for (size_t k = 0; k < a.at(stage).size(); ++k) {
      EXPECT_NEAR(a.at(stage)[k], b.at(stage)[k], 1e-6) << stage << " step " << k + 1;
    }
  }
}

std::vector<std::string> Torchrun(const ScratchDir& dir, const std::string& name, int ranks,
                                  const std::vector<std::string>& extra) {
  std::vector<std::string> args = {"/usr/bin/torchrun",  "--nnodes",      "1", "--nproc_per_node", std::to_string(ranks),
                                   "--master_addr",      "127.0.0.1",     "--master_port", std::to_string(FreePort()),
                                   "--no_python",        "-r",            "2", "-t", "1",
                                   "--log_dir",          dir / (name + "-logs")};
  const std::vector<std::string> run = SmokeRun(dir, name, extra);
  args.insert(args.end(), run.begin(), run.end());
  return args;
}

/// The pid of the child of `launcher` that runs rank `rank` (its environment says RANK=<rank>); -1 if none.
pid_t RankProcess(pid_t launcher, int rank) {
  for (const auto& entry : fs::directory_iterator("/proc")) {
    const std::string name = entry.path().filename().string();
    if (name.find_first_not_of("0123456789") != std::string::npos) continue;
    const std::string stat = ReadFile(entry.path() / "stat");
    const size_t close_paren = stat.rfind(')');
    if (close_paren == std::string::npos) continue;
    std::istringstream fields(stat.substr(close_paren + 2));
    std::string state;
    pid_t parent = 0;
    fields >> state >> parent;
    if (parent != launcher) continue;
    std::istringstream environment(ReadFile(entry.path() / "environ"));
    for (std::string variable; std::getline(environment, variable, '\0');) {
      if (variable == "RANK=" + std::to_string(rank)) return std::stoi(name);
    }
  }
  return -1;
}

class DistributedRun : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    dir_ = new ScratchDir("distributed_run");
    const int status = RunToEnd(SmokeRun(*dir_, "one", {}), *dir_ / "one.log");
    ASSERT_EQ(status, 0) << ReadFile(*dir_ / "one.log");
  }
  static void TearDownTestSuite() {
    delete dir_;
    dir_ = nullptr;
  }
  static ScratchDir* dir_;
};
ScratchDir* DistributedRun::dir_ = nullptr;

TEST_F(DistributedRun, TwoRanksUnderTorchrunTrainAsOneProcessDoes) {
  const ScratchDir& dir = *dir_;
  const int status = RunToEnd(Torchrun(dir, "torchrun2", 2, {}), dir / "torchrun2.log", dir / "torchrun2.out");
  ASSERT_EQ(status, 0) << ReadFile(dir / "torchrun2.log");
  ExpectWeightsOfOneProcess(dir, dir / "torchrun2-cache", "torchrun, 2 ranks");
  ExpectSameLosses(dir / "one-run", dir / "torchrun2-run");
}

TEST_F(DistributedRun, ThreeLocalRanksSplitUnevenlyAndTrainAsOneProcessDoes) {
  const ScratchDir& dir = *dir_;
  const int status = RunToEnd(SmokeRun(dir, "nproc3", {"--nproc", "3"}), dir / "nproc3.log", dir / "nproc3.out");
  ASSERT_EQ(status, 0) << ReadFile(dir / "nproc3.log");
  ExpectWeightsOfOneProcess(dir, dir / "nproc3-cache", "--nproc 3");
  ExpectSameLosses(dir / "one-run", dir / "nproc3-run");
  // One rank writes the console's progress and summary.
  const std::string progress = ReadFile(dir / "nproc3.log");
  EXPECT_NE(progress.find("[rank 0] [smoke/sft] training on"), std::string::npos) << progress;
  EXPECT_NE(progress.find("x 3 ranks"), std::string::npos) << progress;
  EXPECT_EQ(progress.find("[rank 1] [smoke"), std::string::npos) << progress;
  EXPECT_EQ(progress.find("[rank 2] [smoke"), std::string::npos) << progress;
  const std::string summary = ReadFile(dir / "nproc3.out");
  const size_t first = summary.find("evaluation on 14 held-out prompts");
  ASSERT_NE(first, std::string::npos) << summary;
  EXPECT_EQ(summary.find("evaluation on 14 held-out prompts", first + 1), std::string::npos) << summary;
}

/// The largest `state_mb` (a rank's training state after a step) of a stage's metrics lines.
double StateMegabytes(const std::string& run_dir, const std::string& stage) {
  double largest = 0;
  for (const nlohmann::json& line : Metrics(run_dir + "/metrics.jsonl", stage)) {
    largest = std::max(largest, line["state_mb"].get<double>());
  }
  return largest;
}

/// `shard = none` and `optimizer` train as one process does too (the default, `gradients`, is the test above),
/// and the state each rank reports holding shrinks as the shard setting says, in bytes a parameter: one process
/// holds weights, gradients and both moments (4 + 4 + 8), and so does each of 3 ranks with `none` (the summed
/// gradients are views of the buckets, not a copy); `optimizer` keeps a third of the moments (4 + 4 + 8/3);
/// `gradients` a third of the gradients too (4 + 12/3). A third or a little more: tensors are not split.
TEST_F(DistributedRun, EveryShardSettingTrainsAsOneProcessDoesAndPartitionsTheMemory) {
  const ScratchDir& dir = *dir_;
  for (const char* shard : {"none", "optimizer"}) {
    const std::string name = std::string("shard-") + shard;
    const std::vector<std::string> args = {"--nproc", "3", "--set", std::string("sft.shard=") + shard,
                                           "--set", std::string("po.shard=") + shard};
    ASSERT_EQ(RunToEnd(SmokeRun(dir, name, args), dir / (name + ".log")), 0) << ReadFile(dir / (name + ".log"));
    ExpectWeightsOfOneProcess(dir, dir / (name + "-cache"), std::string("--nproc 3, shard = ") + shard);
    ExpectSameLosses(dir / "one-run", dir / (name + "-run"));
  }
  ASSERT_EQ(RunToEnd(SmokeRun(dir, "shard-gradients", {"--nproc", "3"}), dir / "shard-gradients.log"), 0)
      << ReadFile(dir / "shard-gradients.log");
  for (const char* stage : kStages) {
    const double one = StateMegabytes(dir / "one-run", stage);
    const double none = StateMegabytes(dir / "shard-none-run", stage);
    const double optimizer = StateMegabytes(dir / "shard-optimizer-run", stage);
    const double gradients = StateMegabytes(dir / "shard-gradients-run", stage);
    std::cout << stage << ": state per rank, MB: one process " << one << ", 3 ranks: none " << none
              << ", optimizer " << optimizer << ", gradients " << gradients << std::endl;
    const double per_byte = one / 16;  // MB per byte a parameter
    EXPECT_NEAR(none, one, 0.001 * one) << stage;
    EXPECT_GE(optimizer, (8 + 8.0 / 3) * per_byte * 0.999) << stage;
    EXPECT_LE(optimizer, (8 + 8 * 0.4) * per_byte) << stage;
    EXPECT_GE(gradients, (4 + 12.0 / 3) * per_byte * 0.999) << stage;
    EXPECT_LE(gradients, (4 + 12 * 0.4) * per_byte) << stage;
  }
}

TEST_F(DistributedRun, StoppedRunsResumeBitIdenticallyAtTheSameWorldSizeAndContinueAtAnother) {
  const ScratchDir& dir = *dir_;
  // Uninterrupted, 2 ranks.
  ASSERT_EQ(RunToEnd(SmokeRun(dir, "whole2", {"--nproc", "2"}), dir / "whole2.log"), 0) << ReadFile(dir / "whole2.log");
  // Stopped after 3 steps of each stage, then resumed with 2 ranks.
  // A checkpoint after every step (an interval of a millisecond), so the stopped run leaves one at step 3.
  const std::vector<std::string> stop = {"--nproc", "2", "--stop-after", "3", "--checkpoint-minutes", "0.00001"};
  EXPECT_NE(RunToEnd(SmokeRun(dir, "parts2", stop), dir / "parts2-a.log"), 0);
  EXPECT_NE(ReadFile(dir / "parts2-a.log").find("stopped after step 3"), std::string::npos) << ReadFile(dir / "parts2-a.log");
  ASSERT_EQ(RunToEnd(SmokeRun(dir, "parts2", {"--nproc", "2"}), dir / "parts2-b.log"), 0) << ReadFile(dir / "parts2-b.log");
  EXPECT_NE(ReadFile(dir / "parts2-b.log").find("resuming from its last checkpoint"), std::string::npos);
  EXPECT_TRUE(BitIdentical(dir / "whole2-cache", dir / "parts2-cache"));
  // Stopped with 2 ranks, continued with 3: the same steps and data order, so the single process's weights.
  EXPECT_NE(RunToEnd(SmokeRun(dir, "grow", stop), dir / "grow-a.log"), 0);
  ASSERT_EQ(RunToEnd(SmokeRun(dir, "grow", {"--nproc", "3"}), dir / "grow-b.log"), 0) << ReadFile(dir / "grow-b.log");
  EXPECT_NE(ReadFile(dir / "grow-b.log").find("resuming from its last checkpoint"), std::string::npos);
  ExpectWeightsOfOneProcess(dir, dir / "grow-cache", "2 ranks, then 3");
  ExpectSameLosses(dir / "one-run", dir / "grow-run");
}

TEST_F(DistributedRun, AKilledRankStopsTheOthersWithinAMinuteAndRerunningFinishes) {
  const ScratchDir& dir = *dir_;
  // A checkpoint after every step (an interval of a millisecond), so the kill finds one.
  const std::vector<std::string> args = SmokeRun(dir, "killed", {"--nproc", "2", "--checkpoint-minutes", "0.00001"});
  const std::string log = dir / "killed.log";
  const pid_t launcher = Spawn(args, log);
  ASSERT_TRUE(WaitForText(log, "[rank 0] [smoke/sft] step 4/")) << ReadFile(log);
  const pid_t rank1 = RankProcess(launcher, 1);
  ASSERT_GT(rank1, 0);
  const auto killed_at = std::chrono::steady_clock::now();
  kill(rank1, SIGKILL);
  const int status = WaitFor(launcher);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cout << "the launcher stopped " << seconds << " s after rank 1 was killed" << std::endl;
  EXPECT_LT(seconds, 60);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  const std::string said = ReadFile(log);
  EXPECT_NE(said.find("rank 1 was killed by signal 9"), std::string::npos) << said;
  // The last checkpoint is whole: the rerun resumes from it and ends with the single process's weights.
  const std::string checkpoints = dir / "killed-cache";
  ASSERT_EQ(RunToEnd(SmokeRun(dir, "killed", {"--nproc", "2"}), dir / "killed-b.log"), 0) << ReadFile(dir / "killed-b.log");
  EXPECT_NE(ReadFile(dir / "killed-b.log").find("resuming from its last checkpoint"), std::string::npos)
      << ReadFile(dir / "killed-b.log");
  ExpectWeightsOfOneProcess(dir, checkpoints, "killed, then resumed");
}

TEST_F(DistributedRun, SigintToTheLauncherStopsEveryRankAfterACheckpointAndTheRerunResumes) {
  const ScratchDir& dir = *dir_;
  const std::string log = dir / "interrupted.log";
  const pid_t launcher = Spawn(SmokeRun(dir, "interrupted", {"--nproc", "2"}), log);
  ASSERT_TRUE(WaitForText(log, "[rank 0] [smoke/sft] step 3/")) << ReadFile(log);
  kill(launcher, SIGINT);
  const int status = WaitFor(launcher);
  ASSERT_TRUE(WIFEXITED(status)) << ReadFile(log);
  EXPECT_EQ(WEXITSTATUS(status), 130) << ReadFile(log);
  const std::string said = ReadFile(log);
  EXPECT_NE(said.find("[rank 0] "), std::string::npos);
  EXPECT_NE(said.find("its checkpoint is saved"), std::string::npos) << said;
  const size_t first = said.find("[Interrupted]");
  ASSERT_NE(first, std::string::npos) << said;
  EXPECT_EQ(said.find("[Interrupted]", first + 1), std::string::npos) << "said once, by rank 0:\n" << said;
  ASSERT_EQ(RunToEnd(SmokeRun(dir, "interrupted", {"--nproc", "2"}), dir / "interrupted-b.log"), 0)
      << ReadFile(dir / "interrupted-b.log");
  EXPECT_NE(ReadFile(dir / "interrupted-b.log").find("resuming from its last checkpoint"), std::string::npos)
      << ReadFile(dir / "interrupted-b.log");
  ExpectWeightsOfOneProcess(dir, dir / "interrupted-cache", "interrupted, then resumed");
}

/// Two ranks started by hand (as on two nodes, where no launcher sees the other's end), named `name`, with
/// a checkpoint after every step and `timeout` seconds for a collective; their pids.
std::pair<pid_t, pid_t> TwoRanksByHand(const ScratchDir& dir, const std::string& name, int timeout) {
  const std::string port = std::to_string(FreePort());
  auto rank = [&](int k) {
    std::vector<std::string> args = {"/usr/bin/env", "RANK=" + std::to_string(k), "WORLD_SIZE=2",
                                     "LOCAL_RANK=" + std::to_string(k), "LOCAL_WORLD_SIZE=2",
                                     "MASTER_ADDR=127.0.0.1", "MASTER_PORT=" + port};
    const std::vector<std::string> run = SmokeRun(
        dir, name, {"--checkpoint-minutes", "0.00001", "--dist-timeout", std::to_string(timeout)});
    args.insert(args.end(), run.begin(), run.end());
    return Spawn(args, dir / (name + "-" + std::to_string(k) + ".log"));
  };
  const pid_t rank0 = rank(0);
  return {rank0, rank(1)};
}

TEST_F(DistributedRun, ARankWithNoLauncherStopsWithinAMinuteWhenItsPeerIsKilled) {
  const ScratchDir& dir = *dir_;
  const auto [rank0, rank1] = TwoRanksByHand(dir, "peer", 30);
  ASSERT_TRUE(WaitForText(dir / "peer-0.log", "[smoke/sft] step 4/")) << ReadFile(dir / "peer-0.log");
  const auto killed_at = std::chrono::steady_clock::now();
  kill(rank1, SIGKILL);
  WaitFor(rank1);
  const int status = WaitFor(rank0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - killed_at).count();
  std::cout << "rank 0 stopped " << seconds << " s after rank 1 was killed" << std::endl;
  EXPECT_LT(seconds, 60);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  const std::string said = ReadFile(dir / "peer-0.log");
  EXPECT_NE(said.find("rank 0 of 2"), std::string::npos) << said;
  EXPECT_NE(said.find("another rank stopped"), std::string::npos) << said;
  EXPECT_NE(said.find("[Distributed]"), std::string::npos) << said;
}

TEST_F(DistributedRun, ARankWhosePeerHangsStopsAfterTheTimeout) {
  const ScratchDir& dir = *dir_;
  const auto [rank0, rank1] = TwoRanksByHand(dir, "hung", 3);
  ASSERT_TRUE(WaitForText(dir / "hung-0.log", "[smoke/sft] step 4/")) << ReadFile(dir / "hung-0.log");
  const auto stopped_at = std::chrono::steady_clock::now();
  kill(rank1, SIGSTOP);  // alive, its sockets open, answering nothing
  const int status = WaitFor(rank0);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - stopped_at).count();
  kill(rank1, SIGKILL);
  WaitFor(rank1);
  std::cout << "rank 0 stopped " << seconds << " s after rank 1 hung (--dist-timeout 3)" << std::endl;
  EXPECT_LT(seconds, 60);
  ASSERT_TRUE(WIFEXITED(status));
  EXPECT_NE(WEXITSTATUS(status), 0);
  const std::string said = ReadFile(dir / "hung-0.log");
  EXPECT_NE(said.find("rank 0 of 2"), std::string::npos) << said;
  EXPECT_NE(said.find("[Distributed]"), std::string::npos) << said;
}

/// An experiment whose every split node has work for three ranks: 20 prompts (three shards of eight) sampled
/// from two sources, scored by a tiny reward model in batches of 60 tokens, FuseSFT then FusePO with DPO (its reference log-probs in
/// batches of --score-batch-tokens 96, several of them), and an evaluation in batches of 3 prompts. The
/// reference and the evaluated model are the untrained target: trained weights differ between world sizes
/// by rounding (the other tests bound that), so only what an untrained model computes can be equal byte for
/// byte.
const char* const kSplitExperiment = R"(import std.objectives.{dpo}

experiment e {
  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, max_position: 64, seed: 3)
  seed = 5
  let a = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, max_position: 64, seed: 1)
  let b = new_model(hidden_size: 48, intermediate_size: 96, num_layers: 2, num_heads: 4, num_kv_heads: 2,
                    architecture: "qwen2", max_position: 64, seed: 2)
  let sampled = sample(prompts: jsonl("prompts.jsonl"), models: {a: a, b: b}, n: 2, temperature: 1.0,
                       max_new_tokens: 6)
  let scored = score(sampled, by: reward_model("rm"), batch_tokens: 60)
  stage sft = fuse_sft(k: 2) {
    init = target
    data = scored
    optim = adamw(lr: 1e-3)
    epochs = 1;  batch = 8;  max_len = 64
  }
  stage po = fuse_po(tau: 1.0) {
    init = sft
    reference = target
    data = scored
    objective = dpo(beta: 0.1)
    optim = adamw(lr: 5e-4)
    epochs = 1;  batch = 8;  max_len = 64
  }
  eval = evaluate(data: jsonl("prompts.jsonl"), models: [target], max_new_tokens: 5, batch: 3)
}
)";

/// The file `file` of every committed cache entry of `kind` under `cache`, by entry (its hash).
std::map<std::string, std::string> EntryFiles(const fs::path& cache, const std::string& kind, const std::string& file) {
  std::map<std::string, std::string> files;
  for (const auto& path : fs::recursive_directory_iterator(cache)) {
    if (path.path().filename() != "manifest.toml") continue;
    if (fs::relative(path.path(), cache).string().rfind("tmp/", 0) == 0) continue;  // staging, not committed
    if (ReadFile(path.path()).find("kind = '" + kind + "'") == std::string::npos) continue;
    if (!fs::exists(path.path().parent_path() / file)) continue;
    files[path.path().parent_path().filename().string()] = ReadFile(path.path().parent_path() / file);
  }
  return files;
}

/// Reference log-probabilities, evaluation, sampling and reward-model scoring are split over the ranks (each computes its share of
/// the batches one process forms) and gathered once: the entries rank 0 commits are byte for byte the single
/// process's, and the trained weights are its weights. A rank that left its share out would leave zeros (or
/// missing shards) where one process has values. Sampling stopped on one rank stops on all and resumes.
TEST_F(DistributedRun, ReferenceLogprobsEvaluationSamplingAndScoringSplitOverRanksGiveOneProcesssEntries) {
  const ScratchDir& dir = *dir_;
  WriteFile(dir / "split.fuse", kSplitExperiment);
  std::string prompts;
  for (int i = 0; i < 20; ++i) {
    const std::string word = "word" + std::to_string(i * 7);
    prompts += nlohmann::json{{"id", "p" + std::to_string(i)}, {"prompt", "reverse " + word},
                              {"gold", std::string(word.rbegin(), word.rend())}}.dump() + "\n";
  }
  WriteFile(dir / "prompts.jsonl", prompts);
  Random random(4);
  WriteRewardModel(dir / "rm", TinyConfig("LlamaForSequenceClassification", TokenizerFiles::Bytes),
                   ScoreHead(random), TokenizerFiles::Bytes, 6);
  auto command = [&](const std::string& name, std::vector<std::string> extra) {
    std::vector<std::string> args = {std::string(FUSEC_BINARY_DIR) + "/fusec", "run", dir / "split.fuse",
                                     "--cache", dir / (name + "-cache"), "--out", dir / (name + "-run"),
                                     "--stdlib", FUSEC_SOURCE_STDLIB, "--score-batch-tokens", "96"};
    args.insert(args.end(), extra.begin(), extra.end());
    return args;
  };
  ASSERT_EQ(RunToEnd(command("split-one", {}), dir / "split-one.log"), 0) << ReadFile(dir / "split-one.log");
  ASSERT_EQ(RunToEnd(command("split-three", {"--nproc", "3"}), dir / "split-three.log"), 0)
      << ReadFile(dir / "split-three.log");
  const std::string progress = ReadFile(dir / "split-three.log");
  EXPECT_NE(progress.find("split over 3 ranks"), std::string::npos) << progress;
  // Rank 0 samples block 0 of the three (8 of the 20 prompts); the others' shards reach its entry.
  EXPECT_NE(progress.find(": 8 prompts x 2, at most 6 new tokens"), std::string::npos) << progress;
  EXPECT_NE(progress.find("(rank 0's share of the blocks; 3 ranks)"), std::string::npos) << progress;

  const fs::path one = dir / "split-one-cache";
  const fs::path three = dir / "split-three-cache";
  const auto one_refs = EntryFiles(one, "ref_logprobs", "ref_logp.json");
  ASSERT_EQ(one_refs.size(), 1U);
  EXPECT_EQ(EntryFiles(three, "ref_logprobs", "ref_logp.json"), one_refs);
  const auto one_samples = EntryFiles(one, "sample", "records.jsonl");
  ASSERT_EQ(one_samples.size(), 1U);
  EXPECT_EQ(EntryFiles(three, "sample", "records.jsonl"), one_samples);
  const auto one_scores = EntryFiles(one, "score", "records.jsonl");
  ASSERT_EQ(one_scores.size(), 1U);
  EXPECT_EQ(EntryFiles(three, "score", "records.jsonl"), one_scores);
  EXPECT_NE(progress.find("scoring 80 responses with"), std::string::npos) << progress;
  for (const char* file : {"results.json", "target.jsonl"}) {
    const auto one_eval = EntryFiles(one, "evaluate", file);
    ASSERT_EQ(one_eval.size(), 1U) << file;
    EXPECT_EQ(EntryFiles(three, "evaluate", file), one_eval) << file;
  }
  // With the sampling, scoring and FusePO entries gone (the reference log-probs kept), a rerun under 3 ranks
  // samples, scores and trains again around the cached node, with the same records.
  std::vector<fs::path> evicted;
  for (const auto& manifest : fs::recursive_directory_iterator(three)) {
    if (manifest.path().filename() != "manifest.toml") continue;
    const std::string text = ReadFile(manifest.path());
    if (text.find("kind = 'sample'") != std::string::npos || text.find("kind = 'score'") != std::string::npos ||
        (text.find("kind = 'train'") != std::string::npos && text.find("stages = [ 'e/po' ]") != std::string::npos)) {
      evicted.push_back(manifest.path().parent_path());
    }
  }
  ASSERT_EQ(evicted.size(), 3U);
  for (const fs::path& entry : evicted) fs::remove_all(entry);
  ASSERT_EQ(RunToEnd(command("split-three", {"--nproc", "3"}), dir / "split-three-again.log"), 0)
      << ReadFile(dir / "split-three-again.log");
  EXPECT_EQ(EntryFiles(three, "sample", "records.jsonl"), one_samples);
  EXPECT_EQ(EntryFiles(three, "score", "records.jsonl"), one_scores);
  EXPECT_NE(ReadFile(dir / "split-three-again.log").find("[e/po] training on"), std::string::npos)
      << ReadFile(dir / "split-three-again.log");

  // Sampling stopped on every rank once one stops (--stop-after: one shard each), its shards kept; the rerun
  // samples only the rest and commits the same records.
  const std::vector<std::string> stop = {"--nproc", "2", "--stop-after", "1"};
  EXPECT_NE(RunToEnd(command("split-stopped", stop), dir / "split-stopped-a.log"), 0);
  EXPECT_NE(ReadFile(dir / "split-stopped-a.log").find("shards (--stop-after)"), std::string::npos)
      << ReadFile(dir / "split-stopped-a.log");
  EXPECT_TRUE(EntryFiles(dir / "split-stopped-cache", "sample", "records.jsonl").empty());
  ASSERT_EQ(RunToEnd(command("split-stopped", {"--nproc", "2"}), dir / "split-stopped-b.log"), 0)
      << ReadFile(dir / "split-stopped-b.log");
  EXPECT_NE(ReadFile(dir / "split-stopped-b.log").find("resuming: 2 of 6 shards were sampled by an earlier run"),
            std::string::npos)
      << ReadFile(dir / "split-stopped-b.log");
  EXPECT_EQ(EntryFiles(dir / "split-stopped-cache", "sample", "records.jsonl"), one_samples);

  const auto a = TrainedModels(one);
  const auto b = TrainedModels(three);
  ASSERT_EQ(a.size(), 2U);
  ASSERT_EQ(b.size(), 2U);
  for (const auto& [entry, weights] : a) {
    ASSERT_TRUE(b.count(entry)) << entry;
    for (const auto& [name, tensor] : weights) {
      const double norm = tensor.to(torch::kDouble).norm().item<double>();
      const double difference = (tensor - b.at(entry).at(name)).to(torch::kDouble).norm().item<double>();
      EXPECT_LE(difference, 1e-4 * std::max(norm, 1e-12)) << entry << " " << name;
    }
  }
}

TEST_F(DistributedRun, NprocInsideALaunchIsRefused) {
  const ScratchDir& dir = *dir_;
  std::vector<std::string> args = {"/usr/bin/env", "RANK=0", "WORLD_SIZE=2", "MASTER_ADDR=127.0.0.1", "MASTER_PORT=1"};
  const std::vector<std::string> run = SmokeRun(dir, "nested", {"--nproc", "2"});
  args.insert(args.end(), run.begin(), run.end());
  const int status = RunToEnd(args, dir / "nested.log");
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) != 0);
  EXPECT_NE(ReadFile(dir / "nested.log").find("--nproc 2 inside a launch"), std::string::npos) << ReadFile(dir / "nested.log");
}

}  // namespace
}  // namespace fusec::rt::testing
