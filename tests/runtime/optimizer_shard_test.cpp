// The sharded optimizer's parts that need no second process: how parameters are partitioned among ranks, and
// checkpoints whose moments several ranks wrote, each its own parameters', resuming at another world size
// (the same moments, so the same next step as an unsharded AdamW's). The ranks themselves, end to end, are in
// distributed_run_test.cpp.
#include "runtime/train/optimizer_shard.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>
#include <numeric>

#include "runtime/model/training_checkpoint.h"
#include "tests/runtime/checkpoint_support.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ScratchDir;
using testing::TinyModel;

const std::string kStage = std::string(64, 's');

TEST(PartitionParameters, GivesEachRankOneContiguousRunOfBackwardsOrderOfAboutEqualSize) {
  std::vector<torch::Tensor> parameters;
  for (int64_t size : {100, 10, 10, 10, 10, 10, 10, 10, 10, 10, 10, 100}) parameters.push_back(torch::zeros({size}));
  const std::vector<int64_t> owners = PartitionParameters(parameters, 3);
  ASSERT_EQ(owners.size(), parameters.size());
  // Backward's order is the reverse: rank 0 takes the last parameters, and owners never go back.
  EXPECT_EQ(owners.back(), 0);
  EXPECT_EQ(owners.front(), 2);
  for (size_t k = 0; k + 1 < owners.size(); ++k) EXPECT_GE(owners[k], owners[k + 1]) << k;
  std::vector<int64_t> elements(3, 0);
  for (size_t k = 0; k < owners.size(); ++k) elements[static_cast<size_t>(owners[k])] += parameters[k].numel();
  for (int64_t share : elements) {  // 300 elements: about 100 each, within one of the 100-element tensors' halves
    EXPECT_GE(share, 50);
    EXPECT_LE(share, 150);
  }
  EXPECT_EQ(PartitionParameters(parameters, 1), std::vector<int64_t>(parameters.size(), 0));
}

/// AdamW over the parameters of `model` that `owners` gives `rank`.
torch::optim::AdamW OptimizerOfRank(LlamaForCausalLMImpl& model, const std::vector<int64_t>& owners, int64_t rank) {
  std::vector<torch::Tensor> owned;
  const std::vector<torch::Tensor> parameters = model.parameters();
  for (size_t k = 0; k < parameters.size(); ++k) {
    if (owners[k] == rank) owned.push_back(parameters[k]);
  }
  return torch::optim::AdamW(owned, torch::optim::AdamWOptions(1e-2));
}

/// Sets every gradient to a fixed function of its shape, `scale` times (a gradient that changes from step to
/// step, so that AdamW's step depends on its moments), and steps each optimizer.
void StepAll(LlamaForCausalLMImpl& model, std::vector<torch::optim::AdamW>& optimizers, double scale) {
  for (auto& parameter : model.parameters()) {
    parameter.mutable_grad() =
        (torch::linspace(-1.0, 1.0, parameter.numel()).reshape(parameter.sizes()) * scale).clone();
  }
  for (auto& optimizer : optimizers) optimizer.step();
}

std::vector<torch::optim::AdamW> OptimizersOfRanks(LlamaForCausalLMImpl& model, int64_t ranks) {
  const std::vector<int64_t> owners = PartitionParameters(model.parameters(), ranks);
  std::vector<torch::optim::AdamW> optimizers;
  for (int64_t rank = 0; rank < ranks; ++rank) optimizers.push_back(OptimizerOfRank(model, owners, rank));
  return optimizers;
}

double LargestDifference(LlamaForCausalLMImpl& a, LlamaForCausalLMImpl& b) {
  auto pb = b.named_parameters();
  double largest = 0;
  for (const auto& item : a.named_parameters()) {
    largest = std::max(largest, (item.value() - pb[item.key()]).abs().max().item<double>());
  }
  return largest;
}

/// A checkpoint of two steps whose moments `writers` ranks wrote, one file each.
std::string SaveShardedCheckpoint(const ScratchDir& dir, LlamaForCausalLMImpl& model, int64_t writers) {
  std::vector<torch::optim::AdamW> optimizers = OptimizersOfRanks(model, writers);
  StepAll(model, optimizers, 1);
  StepAll(model, optimizers, 2);
  std::string error;
  EXPECT_TRUE(BeginTrainingCheckpoint(dir.path().string(), 2, &error)) << error;
  for (int64_t rank = 0; rank < writers; ++rank) {
    EXPECT_TRUE(WriteOptimizerShard(model, optimizers[static_cast<size_t>(rank)],
                                    CheckpointStagingDirectory(dir.path().string(), 2), rank, writers, &error))
        << error;
  }
  EXPECT_TRUE(CommitTrainingCheckpoint(model, {2, 10, kStage, ""}, writers, dir.path().string(), &error)) << error;
  return (dir / "step-00000002");
}

TEST(ShardedCheckpoint, MomentsWrittenByTwoRanksResumeOnOneAndOnThree) {
  ScratchDir dir("sharded_checkpoint");
  // The reference: one AdamW over the whole model, three steps.
  LlamaForCausalLM whole = TinyModel(1);
  std::vector<torch::optim::AdamW> whole_optimizer = OptimizersOfRanks(*whole, 1);
  for (int k = 0; k < 3; ++k) StepAll(*whole, whole_optimizer, k + 1);

  LlamaForCausalLM written = TinyModel(1);
  const std::string checkpoint = SaveShardedCheckpoint(dir, *written, 2);
  for (const char* file : {"optimizer-00000-of-00002.safetensors", "optimizer-00001-of-00002.safetensors"}) {
    EXPECT_TRUE(std::filesystem::exists(checkpoint + "/" + file)) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(checkpoint + "/optimizer-00000-of-00001.safetensors"));
  for (int64_t ranks : {1, 3}) {
    SCOPED_TRACE(ranks);
    LlamaForCausalLM resumed = TinyModel(5);
    std::vector<torch::optim::AdamW> optimizers = OptimizersOfRanks(*resumed, ranks);
    std::string error;
    for (auto& optimizer : optimizers) {
      ASSERT_TRUE(LoadTrainingCheckpoint(*resumed, optimizer, checkpoint, kStage, &error)) << error;
    }
    StepAll(*resumed, optimizers, 3);
    // Each parameter's AdamW step does not depend on the others': bit for bit the unsharded run's.
    EXPECT_EQ(LargestDifference(*whole, *resumed), 0.0);
  }
  // Without its moments (a fresh AdamW), the third step is another: the check above can fail.
  LlamaForCausalLM fresh = TinyModel(5);
  std::vector<torch::optim::AdamW> discarded = OptimizersOfRanks(*fresh, 1);
  std::string error;
  ASSERT_TRUE(LoadTrainingCheckpoint(*fresh, discarded[0], checkpoint, kStage, &error)) << error;
  std::vector<torch::optim::AdamW> fresh_optimizer = OptimizersOfRanks(*fresh, 1);
  StepAll(*fresh, fresh_optimizer, 3);
  EXPECT_GT(LargestDifference(*whole, *fresh), 1e-4);
}

TEST(ShardedCheckpoint, AParametersMomentsInTwoFilesOrAFileMissingIsRefused) {
  ScratchDir dir("sharded_checkpoint_twice");
  LlamaForCausalLM model = TinyModel(1);
  std::vector<torch::optim::AdamW> optimizer = OptimizersOfRanks(*model, 1);
  StepAll(*model, optimizer, 1);
  std::string error;
  ASSERT_TRUE(BeginTrainingCheckpoint(dir.path().string(), 1, &error)) << error;
  const std::string staging = CheckpointStagingDirectory(dir.path().string(), 1);
  for (int64_t rank : {0, 1}) ASSERT_TRUE(WriteOptimizerShard(*model, optimizer[0], staging, rank, 2, &error)) << error;
  ASSERT_TRUE(CommitTrainingCheckpoint(*model, {1, 10, kStage, ""}, 2, dir.path().string(), &error)) << error;
  EXPECT_FALSE(LoadTrainingCheckpoint(*model, optimizer[0], dir / "step-00000001", kStage, &error));
  EXPECT_NE(error.find("are in two optimizer files"), std::string::npos) << error;

  // A rank that did not write its file: the leader cannot commit, and the previous checkpoint stays LATEST.
  ASSERT_TRUE(BeginTrainingCheckpoint(dir.path().string(), 2, &error)) << error;
  ASSERT_TRUE(WriteOptimizerShard(*model, optimizer[0], CheckpointStagingDirectory(dir.path().string(), 2), 0, 2,
                                  &error));
  EXPECT_FALSE(CommitTrainingCheckpoint(*model, {2, 10, kStage, ""}, 2, dir.path().string(), &error));
  EXPECT_NE(error.find("optimizer-00001-of-00002.safetensors"), std::string::npos) << error;
  EXPECT_EQ(testing::ReadFile(dir / "LATEST"), "step-00000001\n");
  EXPECT_FALSE(std::filesystem::exists(CheckpointStagingDirectory(dir.path().string(), 2)));
}

}  // namespace
}  // namespace fusec::rt
