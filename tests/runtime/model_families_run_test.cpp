// `fusec run` with a Gemma-2 and a Qwen3 target: a tiny model of each made by `fusec init-model` from a
// config.json (Gemma-2 with its real soft caps and a sliding window shorter than the sequences), then
// FuseSFT -> FusePO (DPO) -> evaluate on experiments/data/smoke.jsonl, as experiments/smoke.fuse runs the
// Llama family. The run completes, FuseSFT's loss falls, FusePO reports its metrics and the exported models
// load as the architecture they were made.
#include <gtest/gtest.h>

#include <filesystem>
#include <string>

#include "runtime/model/checkpoint.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt {
namespace {

using testing::Metrics;
using testing::ReadFile;
using testing::RunFuse;
using testing::ScratchDir;
using testing::WriteFile;

struct TinyFamily {
  const char* name;
  const char* config_json;
};

constexpr TinyFamily kFamilies[] = {
    {"gemma2", R"({"architectures": ["Gemma2ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
      "query_pre_attn_scalar": 16, "attn_logit_softcapping": 50.0, "final_logit_softcapping": 30.0,
      "sliding_window": 16, "vocab_size": 300, "max_position_embeddings": 256, "hidden_activation": "gelu_pytorch_tanh",
      "tie_word_embeddings": true})"},
    {"qwen3", R"({"architectures": ["Qwen3ForCausalLM"], "hidden_size": 64, "intermediate_size": 128,
      "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "head_dim": 16,
      "vocab_size": 300, "max_position_embeddings": 256, "rope_theta": 1000000.0, "use_sliding_window": false,
      "tie_word_embeddings": true})"},
};

constexpr const char* kExperiment = R"(import std.objectives.{dpo}

experiment tiny {
  target = hf_model("model")
  seed = 7
  let parts = split(jsonl("smoke.jsonl"), sft: 0.5, po: 0.5, seed: 3)

  stage sft = fuse_sft(k: 2) {
    init = target
    data = parts.sft
    optim = adamw(lr: 3e-3, warmup: 0.1, schedule: cosine)
    epochs = 4;  batch = 4;  max_len = 64
  }

  stage po = fuse_po(tau: 1.0) {
    init = sft
    data = parts.po
    objective = dpo(beta: 0.1)
    optim = adamw(lr: 5e-4, warmup: 0.1, schedule: cosine)
    epochs = 2;  batch = 4;  max_len = 64
  }

  eval = evaluate(data: parts.po, max_new_tokens: 8)
}
)";

class FamilyRun : public ::testing::TestWithParam<TinyFamily> {};

TEST_P(FamilyRun, FuseSftThenFusePoTrainsAndExportsAModelThatLoads) {
  const TinyFamily& family = GetParam();
  ScratchDir dir(std::string("family_run_") + family.name);
  WriteFile(dir / "config.json", family.config_json);
  const std::string init = std::string(FUSEC_BINARY_DIR) + "/fusec init-model --config " + (dir / "config.json") +
                           " --seed 1 --template plain --out " + (dir / "model") + " > " + (dir / "init.log") + " 2>&1";
  ASSERT_EQ(testing::RunCommand(init), 0) << ReadFile(dir / "init.log");
  std::filesystem::copy_file(std::string(FUSEC_REPO_DIR) + "/experiments/data/smoke.jsonl", dir / "smoke.jsonl");
  WriteFile(dir / "tiny.fuse", kExperiment);
  RunOptions options;
  options.file = dir / "tiny.fuse";
  options.cache = dir / "cache";
  options.out = dir / "run";
  testing::Outcome outcome = RunFuse(options);
  ASSERT_EQ(outcome.status, 0) << outcome.err;

  auto sft = Metrics(dir / "run/metrics.jsonl", "tiny/sft");
  auto po = Metrics(dir / "run/metrics.jsonl", "tiny/po");
  ASSERT_FALSE(sft.empty());
  ASSERT_FALSE(po.empty());
  const double first = sft.front()["loss"].get<double>(), last = sft.back()["loss"].get<double>();
  std::cout << "  " << family.name << ": FuseSFT loss " << first << " -> " << last << " in " << sft.size()
            << " steps; FusePO loss " << po.front()["loss"].get<double>() << " -> " << po.back()["loss"].get<double>()
            << " in " << po.size() << " steps, accuracy " << po.back()["accuracy"].get<double>() << "\n";
  EXPECT_LT(last, 0.8 * first);
  for (const char* key : {"loss", "chosen_reward", "rejected_reward", "margin", "accuracy"}) {
    EXPECT_TRUE(po.back().contains(key)) << key;
  }
  EXPECT_TRUE(std::filesystem::exists(dir / "run/eval/results.json"));

  std::string error;
  auto made = ReadModelConfig(dir / "model", &error);
  ASSERT_TRUE(made) << error;
  for (const char* stage : {"sft", "po"}) {
    auto exported = LoadModel(dir / ("run/export/" + std::string(stage)), torch::kFloat, torch::kCPU, &error);
    ASSERT_TRUE(exported) << error;
    const ModelConfig& config = (*exported)->config();
    EXPECT_EQ(config.architecture, made->architecture);
    EXPECT_EQ(config.head_dim, 16);
    EXPECT_EQ(config.sliding_window, made->sliding_window);
    EXPECT_EQ(config.final_logit_softcapping, made->final_logit_softcapping);
    EXPECT_EQ(config.qk_norm, made->qk_norm);
  }
}

INSTANTIATE_TEST_SUITE_P(Models, FamilyRun, ::testing::ValuesIn(kFamilies),
                         [](const auto& param_info) { return std::string(param_info.param.name); });

}  // namespace
}  // namespace fusec::rt
