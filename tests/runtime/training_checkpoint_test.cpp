// Training checkpoints: written and read back (the weights bit for bit, the optimizer's moments, the step),
// LATEST publishing the newest and older ones removed, and the errors of a damaged or mismatched checkpoint.
#include "runtime/model/training_checkpoint.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <filesystem>

#include "runtime/model/config.h"
#include "runtime/model/llama.h"
#include "tests/runtime/checkpoint_support.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ScratchDir;

const std::string kStage = std::string(64, 'c');

using testing::Optimizer;
using testing::StepWithFixedGradients;
using testing::TinyConfig;
using testing::TinyModel;

bool SameWeights(LlamaForCausalLMImpl& a, LlamaForCausalLMImpl& b) {
  auto pa = a.named_parameters();
  auto pb = b.named_parameters();
  for (const auto& item : pa) {
    if (!torch::equal(item.value(), pb[item.key()])) return false;
  }
  return true;
}

TEST(TrainingCheckpoint, ResumesTheWeightsTheOptimizerAndTheStep) {
  ScratchDir dir("training_checkpoint");
  LlamaForCausalLM saved = TinyModel(1);
  torch::optim::AdamW saved_optimizer = Optimizer(*saved);
  StepWithFixedGradients(*saved, saved_optimizer);
  StepWithFixedGradients(*saved, saved_optimizer);
  std::string error;
  EXPECT_FALSE(LatestTrainingCheckpoint(dir.path().string(), &error));
  EXPECT_EQ(error, "");
  ASSERT_TRUE(SaveTrainingCheckpoint(*saved, saved_optimizer, {2, 10, kStage, "{\"step\":1}\n{\"step\":2}\n"},
                                     dir.path().string(), &error))
      << error;

  EXPECT_EQ(testing::ReadFile(dir / "LATEST"), "step-00000002\n");
  const nlohmann::json state_json = nlohmann::json::parse(testing::ReadFile(dir / "step-00000002/state.json"));
  EXPECT_EQ(state_json["format_version"], kTrainingCheckpointFormat);
  EXPECT_EQ(state_json["stage"], kStage);
  EXPECT_EQ(state_json["step"], 2);
  EXPECT_EQ(state_json["total_steps"], 10);
  const nlohmann::json manifest = nlohmann::json::parse(testing::ReadFile(dir / "step-00000002/manifest.json"));
  for (const char* file : {"model.safetensors", "optimizer-00000-of-00001.safetensors", "metrics.jsonl", "state.json"}) {
    EXPECT_TRUE(std::filesystem::exists(dir.path() / "step-00000002" / file)) << file;
    EXPECT_EQ(manifest["files"][file]["size"], std::filesystem::file_size(dir.path() / "step-00000002" / file)) << file;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "step-00000002.partial"));

  LlamaForCausalLM resumed = TinyModel(2);
  torch::optim::AdamW resumed_optimizer = Optimizer(*resumed);
  auto latest = LatestTrainingCheckpoint(dir.path().string(), &error);
  ASSERT_TRUE(latest);
  EXPECT_EQ(*latest, dir / "step-00000002");
  auto state = LoadTrainingCheckpoint(*resumed, resumed_optimizer, *latest, kStage, &error);
  ASSERT_TRUE(state) << error;
  EXPECT_EQ(state->step, 2);
  EXPECT_EQ(state->total_steps, 10);
  EXPECT_EQ(state->stage, kStage);
  EXPECT_EQ(state->metrics, "{\"step\":1}\n{\"step\":2}\n");
  EXPECT_TRUE(SameWeights(*saved, *resumed));
  // The moments came back too: the next step is the same, where the checkpoint's weights with a fresh AdamW
  // (whose first step has no history) take another.
  LlamaForCausalLM fresh = TinyModel(3);
  torch::optim::AdamW discarded = Optimizer(*fresh);
  ASSERT_TRUE(LoadTrainingCheckpoint(*fresh, discarded, *latest, kStage, &error)) << error;
  torch::optim::AdamW fresh_optimizer = Optimizer(*fresh);
  StepWithFixedGradients(*saved, saved_optimizer);
  StepWithFixedGradients(*resumed, resumed_optimizer);
  StepWithFixedGradients(*fresh, fresh_optimizer);
  EXPECT_TRUE(SameWeights(*saved, *resumed));
  EXPECT_FALSE(SameWeights(*saved, *fresh));

  // A newer checkpoint replaces the older one and LATEST names it.
  ASSERT_TRUE(SaveTrainingCheckpoint(*saved, saved_optimizer, {3, 10, kStage, ""}, dir.path().string(), &error)) << error;
  EXPECT_EQ(testing::ReadFile(dir / "LATEST"), "step-00000003\n");
  EXPECT_FALSE(std::filesystem::exists(dir / "step-00000002"));
  EXPECT_FALSE(std::filesystem::exists(dir / "LATEST.tmp"));
}

TEST(TrainingCheckpoint, ErrorsNameTheCheckpointAndItsFile) {
  ScratchDir dir("training_checkpoint_errors");
  LlamaForCausalLM model = TinyModel(1);
  torch::optim::AdamW optimizer = Optimizer(*model);
  std::string error;
  ASSERT_TRUE(SaveTrainingCheckpoint(*model, optimizer, {4, 8, kStage, ""}, dir.path().string(), &error)) << error;
  const std::string checkpoint = dir / "step-00000004";

  LlamaForCausalLM wider = TinyModel(1, /*hidden_size=*/48);
  torch::optim::AdamW wider_optimizer = Optimizer(*wider);
  EXPECT_FALSE(LoadTrainingCheckpoint(*wider, wider_optimizer, checkpoint, kStage, &error));
  EXPECT_EQ(error, checkpoint + "/state.json: the checkpoint is of another model (its configuration differs from "
                                "this one's)");

  std::filesystem::remove(checkpoint + "/model.safetensors");
  EXPECT_FALSE(LoadTrainingCheckpoint(*model, optimizer, checkpoint, kStage, &error));
  EXPECT_EQ(error, checkpoint + "/model.safetensors: no such file or directory");

  testing::WriteFile(checkpoint + "/state.json", "{\"ste");
  EXPECT_FALSE(LoadTrainingCheckpoint(*model, optimizer, checkpoint, kStage, &error));
  EXPECT_EQ(error, checkpoint + "/state.json: not a JSON object (damaged)");
}

}  // namespace
}  // namespace fusec::rt
