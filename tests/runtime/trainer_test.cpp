// The trainer on a tiny model: the loss falls, reruns are bit-identical, a stopped and resumed run ends
// with the same weights as an uninterrupted one, a NaN loss stops the stage, and the LR schedule.
#include "runtime/train/trainer.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "runtime/model/config.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/compiled_loss.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

ModelConfig TinyConfig() {
  std::string error;
  auto config = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
    "vocab_size": 260, "max_position_embeddings": 128, "tie_word_embeddings": true})",
                                 &error);
  EXPECT_TRUE(config) << error;
  return *config;
}

LlamaForCausalLM TinyModel(uint64_t seed = 1) {
  LlamaForCausalLM model(TinyConfig());
  InitializeWeights(*model, seed);
  return model;
}

std::vector<int32_t> Bytes(const std::string& text) { return std::vector<int32_t>(text.begin(), text.end()); }

/// Eight prompts "n+1=" with two responses each, the right one first; items as `select` gives them.
TrainData SftData(int responses_per_item = 1) {
  TrainData data;
  data.items.roles = responses_per_item == 1 ? std::vector<std::string>{"y"} : std::vector<std::string>{"chosen", "rejected"};
  for (uint32_t p = 0; p < 8; ++p) {
    data.prompt_ids.push_back(Bytes(std::to_string(p) + "+1="));
    data.response_ids.push_back({Bytes(std::to_string(p + 1) + ";"), Bytes("x;")});
    data.rewards.push_back({1.0, 0.0});
    if (responses_per_item == 1) {
      data.items.items.push_back(Item{p, {0}, -1, 1.0});
    } else {
      data.items.items.push_back(Item{p, {0, 1}, -1, 1.0});
    }
  }
  return data;
}

TrainSettings Settings() {
  TrainSettings settings;
  settings.spec.optim = {"adamw", /*lr=*/1e-2, /*beta1=*/0.9, /*beta2=*/0.999, /*eps=*/1e-8, /*weight_decay=*/0.0,
                         /*warmup=*/0.0, ir::Schedule::Constant, /*min_lr_ratio=*/0.0};
  settings.spec.grad_clip = 1.0;
  settings.spec.optim.lr = 1e-2;
  settings.spec.optim.warmup = 0.0;
  settings.spec.optim.schedule = ir::Schedule::Constant;
  settings.spec.epochs = 10;
  settings.spec.batch = 4;
  settings.spec.micro_batch = 2;
  settings.spec.seed = 3;
  return settings;
}

bool SameWeights(LlamaForCausalLMImpl& a, LlamaForCausalLMImpl& b) {
  auto pb = b.named_parameters();
  for (const auto& item : a.named_parameters()) {
    if (!torch::equal(item.value(), pb[item.key()])) return false;
  }
  return true;
}

TEST(Trainer, SftLossFalls) {
  ir::LossGraph loss = CompiledLoss("", "    objective = dpo(beta: 0.1)", "fuse_po", "sft");
  LlamaForCausalLM model = TinyModel();
  std::vector<double> losses;
  TrainOptions options;
  options.stage = "e/sft";
  options.on_step = [&](const StepMetrics& m) { losses.push_back(m.loss); };
  int64_t steps = Train(*model, SftData(), loss, CompiledNeeds(loss), Settings(), options);
  EXPECT_EQ(steps, 20);  // 10 epochs of 8 prompts in batches of 4
  ASSERT_EQ(losses.size(), 20U);
  EXPECT_LT(losses.back(), 0.5 * losses.front()) << "first " << losses.front() << ", last " << losses.back();
}

TEST(Trainer, Bf16AutocastTrainsWithFp32MasterWeights) {
  ir::LossGraph loss = CompiledLoss("", "    objective = dpo(beta: 0.1)", "fuse_po", "sft");
  TrainSettings settings = Settings();
  settings.bf16_autocast = true;
  LlamaForCausalLM model = TinyModel();
  LlamaForCausalLM fp32 = TinyModel();
  std::vector<double> losses;
  TrainOptions options;
  options.stage = "e/sft";
  options.on_step = [&](const StepMetrics& m) { losses.push_back(m.loss); };
  Train(*model, SftData(), loss, CompiledNeeds(loss), settings, options);
  for (const auto& parameter : model->parameters()) EXPECT_EQ(parameter.scalar_type(), torch::kFloat);
  EXPECT_LT(losses.back(), 0.5 * losses.front());
  // The bf16 forward rounds: the weights differ from an fp32 run's, though both learn.
  settings.bf16_autocast = false;
  Train(*fp32, SftData(), loss, CompiledNeeds(loss), settings, {"e/sft"});
  EXPECT_FALSE(SameWeights(*model, *fp32));
}

TEST(Trainer, DpoTrainsWithReferenceLogProbsAndReportsRewards) {
  ir::LossGraph loss = CompiledLoss("", "    objective = dpo(beta: 0.5)");
  TrainData data = SftData(2);
  data.ref_logp.assign(data.items.items.size(), {-8.0, -8.0});
  LlamaForCausalLM model = TinyModel();
  std::vector<StepMetrics> metrics;
  TrainOptions options;
  options.stage = "e/po";
  options.on_step = [&](const StepMetrics& m) { metrics.push_back(m); };
  TrainSettings settings = Settings();
  settings.spec.epochs = 5;
  Train(*model, data, loss, CompiledNeeds(loss), settings, options);
  ASSERT_FALSE(metrics.empty());
  ASSERT_TRUE(metrics.back().accuracy.has_value());
  EXPECT_GT(*metrics.back().margin, *metrics.front().margin);
  EXPECT_EQ(*metrics.back().accuracy, 1.0);
}

/// Six prompts with four responses of different lengths each, and three weighted pairs per prompt that share
/// responses: the shape of a FusePO batch, where packing and shared prompts matter.
TrainData SharedPairData() {
  TrainData data;
  data.items.roles = {"chosen", "rejected"};
  for (uint32_t p = 0; p < 6; ++p) {
    data.prompt_ids.push_back(Bytes(std::string(p + 1, 'a' + static_cast<char>(p)) + "=?"));
    data.response_ids.push_back({Bytes(std::to_string(p * 37) + ";"), Bytes("x;"), Bytes(std::string(3 + p * 2, 'z') + ";"), Bytes(";")});
    data.rewards.push_back({1.0, 0.0, 0.5, 0.2});
    const std::vector<std::pair<int32_t, int32_t>> pairs = {{0, 1}, {2, 3}, {0, 3}};
    for (size_t k = 0; k < pairs.size(); ++k) {
      data.items.items.push_back(Item{p, {pairs[k].first, pairs[k].second}, -1, 0.2 + 0.3 * static_cast<double>(k)});
      data.ref_logp.push_back({-6.0 - p, -7.0 - static_cast<double>(k)});
    }
  }
  return data;
}

TEST(Trainer, EveryOptimizationOffGivesTheSameLosses) {
  ir::LossGraph loss = CompiledLoss("", "    objective = dpo(beta: 0.5)");
  TrainSettings settings = Settings();
  settings.spec.epochs = 3;
  settings.spec.batch = 3;
  settings.spec.micro_batch = 1;  // several micro-batches a step, so length-aware batching regroups them
  std::vector<double> fast_losses, naive_losses;
  TrainOptions options;
  options.stage = "e/po";
  options.on_step = [&](const StepMetrics& m) { fast_losses.push_back(m.loss); };
  LlamaForCausalLM fast = TinyModel();
  Train(*fast, SharedPairData(), loss, CompiledNeeds(loss), settings, options);
  options.on_step = [&](const StepMetrics& m) { naive_losses.push_back(m.loss); };
  settings.DisableOptimizations();
  LlamaForCausalLM naive = TinyModel();
  Train(*naive, SharedPairData(), loss, CompiledNeeds(loss), settings, options);
  ASSERT_EQ(fast_losses.size(), 6U);
  ASSERT_EQ(naive_losses.size(), fast_losses.size());
  for (size_t k = 0; k < fast_losses.size(); ++k) {
    EXPECT_NEAR(fast_losses[k], naive_losses[k], 1e-5 * std::abs(naive_losses[k])) << "step " << k + 1;
  }
  EXPECT_LT(fast_losses.back(), fast_losses.front());  // it trained, so later steps compare trained weights
}

TEST(Trainer, RerunsAreBitIdentical) {
  ir::LossGraph loss = CompiledLoss("", "    objective = dpo(beta: 0.1)", "fuse_po", "sft");
  TrainSettings settings = Settings();
  settings.spec.epochs = 3;
  LlamaForCausalLM a = TinyModel();
  LlamaForCausalLM b = TinyModel();
  Train(*a, SftData(), loss, CompiledNeeds(loss), settings, {"e/sft"});
  Train(*b, SftData(), loss, CompiledNeeds(loss), settings, {"e/sft"});
  EXPECT_TRUE(SameWeights(*a, *b));
  settings.spec.seed = 4;  // another order of prompts gives other weights
  LlamaForCausalLM c = TinyModel();
  Train(*c, SftData(), loss, CompiledNeeds(loss), settings, {"e/sft"});
  EXPECT_FALSE(SameWeights(*a, *c));
}

TEST(Trainer, AStoppedRunResumesToTheSameWeights) {
  ir::LossGraph loss = CompiledLoss("", "    objective = dpo(beta: 0.1)", "fuse_po", "sft");
  testing::ScratchDir dir("resume");
  TrainSettings settings = Settings();
  settings.spec.epochs = 4;  // 8 steps
  settings.spec.save_every = 2;
  settings.spec.optim.schedule = ir::Schedule::Cosine;
  settings.spec.optim.warmup = 0.25;
  LlamaForCausalLM whole = TinyModel();
  TrainOptions uninterrupted{"e/sft", dir / "whole"};
  EXPECT_EQ(Train(*whole, SftData(), loss, CompiledNeeds(loss), settings, uninterrupted), 8);

  // Stopped after 5 steps (the last checkpoint is at step 4), then resumed from scratch.
  LlamaForCausalLM first = TinyModel();
  TrainOptions stopped{"e/sft", dir / "parts"};
  stopped.stop_after = 5;
  EXPECT_EQ(Train(*first, SftData(), loss, CompiledNeeds(loss), settings, stopped), 5);
  EXPECT_EQ(testing::ReadFile(dir / "parts/LATEST"), "step-00000004\n");
  LlamaForCausalLM resumed = TinyModel();
  TrainOptions resume{"e/sft", dir / "parts"};
  resume.resume = true;
  std::vector<int64_t> steps;
  resume.on_step = [&](const StepMetrics& m) { steps.push_back(m.step); };
  EXPECT_EQ(Train(*resumed, SftData(), loss, CompiledNeeds(loss), settings, resume), 8);
  EXPECT_EQ(steps, (std::vector<int64_t>{5, 6, 7, 8}));
  EXPECT_TRUE(SameWeights(*whole, *resumed));
}

TEST(Trainer, ANanLossStopsTheStageAndKeepsTheLastCheckpoint) {
  ir::LossGraph loss = CompiledLoss("objective broken() {\n  loss = log(-1 - logp(chosen) + logp(chosen))\n}\n",
                                    "    objective = broken()");
  testing::ScratchDir dir("nan");
  TrainOptions options{"e/po", dir.path().string()};
  LlamaForCausalLM model = TinyModel();
  try {
    Train(*model, SftData(2), loss, CompiledNeeds(loss), Settings(), options);
    FAIL() << "expected a TrainError";
  } catch (const TrainError& error) {
    std::string message = error.what();
    EXPECT_NE(message.find("stage `e/po`, step 1: the loss is NaN"), std::string::npos) << message;
    EXPECT_NE(message.find("broken()"), std::string::npos) << message;
  }
  EXPECT_FALSE(std::filesystem::exists(dir / "LATEST"));
}

TEST(Schedule, WarmupThenDecay) {
  TrainSettings s;
  s.spec.optim.lr = 1.0;
  s.spec.optim.warmup = 0.2;
  s.spec.optim.min_lr_ratio = 0.1;
  s.spec.optim.schedule = ir::Schedule::Cosine;
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 0, 10), 0.5);  // warmup: 2 steps
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 1, 10), 1.0);
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 2, 10), 1.0);  // the decay starts at the peak
  EXPECT_NEAR(ScheduledLr(s, 6, 10), 0.1 + 0.9 * 0.5, 1e-12);  // halfway through the decay
  s.spec.optim.schedule = ir::Schedule::Linear;
  EXPECT_NEAR(ScheduledLr(s, 6, 10), 0.1 + 0.9 * 0.5, 1e-12);
  EXPECT_NEAR(ScheduledLr(s, 9, 10), 0.1 + 0.9 * (1 - 7.0 / 8), 1e-12);
  s.spec.optim.schedule = ir::Schedule::Constant;
  EXPECT_DOUBLE_EQ(ScheduledLr(s, 9, 10), 1.0);
}

}  // namespace
}  // namespace fusec::rt
