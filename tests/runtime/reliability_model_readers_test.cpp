// Issue 14, model loading under bad files, end to end through the runtime's commands (RuntimeMain, as
// `fusec init-model` and `fusec score` run them): absurd sizes in config.json, a symlink loop and a header that
// does not describe its data in the weights, fp16 on the CPU. Each is one clear error naming the file and the
// field (or the size), never a crash or LibTorch's text.
#include <gtest/gtest.h>

#include <filesystem>
#include <sstream>

#include "runtime/cli/commands.h"
#include "runtime/model/checkpoint.h"
#include "tests/runtime/cli_support.h"

namespace fusec::rt {
namespace {

using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

using Result = testing::CliResult;
using testing::RunCli;

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

constexpr const char* kConfig = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 260, "max_position_embeddings": 256})";

class ModelReaders : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "config.json", kConfig);
    Result init = RunCli({"init-model", "--config", dir_ / "config.json", "--out", model_});
    ASSERT_EQ(init.status, 0) << init.err;
    WriteFile(dir_ / "data.jsonl", R"({"id": "a", "prompt": "hi", "responses": [{"source": "s", "text": "yo"}]})"
                                   "\n");
  }
  Result Score(const std::string& model, std::vector<std::string> more = {}) {
    std::vector<std::string> args = {"score", "--model", model, "--data", dir_ / "data.jsonl"};
    args.insert(args.end(), more.begin(), more.end());
    return RunCli(args);
  }
  /// A copy of the model with its config.json's `key` set to `value` (JSON text).
  std::string WithConfig(const std::string& name, const std::string& key, const std::string& value) {
    return testing::CopyWithConfigField(model_, dir_ / name, key, value);
  }
  ScratchDir dir_{"model_readers"};
  std::string model_ = dir_ / "model";
};

TEST_F(ModelReaders, ConfigsAskingForMoreMemoryThanThereIsAreTheOutOfMemoryErrorWithTheirSize) {
  // 2^31 - 1 layers: SIGSEGV (or `an allocation of 0.0 MiB failed`) after allocating for minutes before.
  auto config = nlohmann::ordered_json::parse(kConfig);
  config["num_hidden_layers"] = 2147483647;
  WriteFile(dir_ / "layers.json", config.dump());
  Result init = RunCli({"init-model", "--config", dir_ / "layers.json", "--out", dir_ / "layers"});
  EXPECT_EQ(init.status, 1);
  EXPECT_HAS(init.err, dir_ / "layers.json: error: out of memory: the model needs 72.5 TiB for its 19928648260832 "
                              "weights in float32");
  EXPECT_HAS(init.err, "[OutOfMemory]");
  EXPECT_HAS(init.err, "note: `num_hidden_layers` 2147483647, `hidden_size` 32");
  EXPECT_FALSE(std::filesystem::exists(dir_ / "layers"));
  EXPECT_FALSE(std::filesystem::exists(dir_ / "layers.tokenizer"));

  // Loading a model directory whose config asks for 64 TiB of embeddings: `Storage size calculation overflowed`
  // or a bare allocation failure before; now the size and the config.json.
  std::string huge = WithConfig("huge", "vocab_size", "2147483647");
  auto config_json = nlohmann::ordered_json::parse(ReadFile(huge + "/config.json"));
  config_json["hidden_size"] = 4096;
  WriteFile(huge + "/config.json", config_json.dump());
  Result score = Score(huge);
  EXPECT_EQ(score.status, 1);
  EXPECT_HAS(score.err, huge + "/config.json: error: out of memory: the model needs 64.0 TiB");
  EXPECT_EQ(score.err.find("Storage size"), std::string::npos) << score.err;
}

TEST_F(ModelReaders, MistypedConfigFieldsNameTheFileAndTheField) {
  std::string bad = WithConfig("mistyped", "rope_scaling", R"({"rope_type": "linear", "factor": "2"})");
  Result score = Score(bad);
  EXPECT_EQ(score.status, 1);
  EXPECT_HAS(score.err, bad + "/config.json: `rope_scaling.factor` must be a positive number, not \"2\"");
  EXPECT_EQ(score.err.find("json.exception"), std::string::npos) << score.err;  // type_error.302 before
}

TEST_F(ModelReaders, ASymlinkLoopInTheWeightsIsAnErrorNamingTheFile) {
  std::filesystem::remove(model_ + "/model.safetensors");
  std::filesystem::create_symlink("model.safetensors", model_ + "/model.safetensors");
  Result score = Score(model_);
  EXPECT_EQ(score.status, 1);  // an uncaught filesystem_error (exit 3) before
  EXPECT_HAS(score.err, model_ + "/model.safetensors: cannot read: Too many levels of symbolic links");
}

TEST_F(ModelReaders, WeightsWithBytesNoTensorOwnsAreRefused) {
  std::string weights = ReadFile(model_ + "/model.safetensors");
  WriteFile(model_ + "/model.safetensors", weights + std::string(64, '\x7F'));  // scored happily before
  Result score = Score(model_);
  EXPECT_EQ(score.status, 1);
  EXPECT_HAS(score.err, model_ + "/model.safetensors: has ");
  EXPECT_HAS(score.err, "data bytes but its tensors cover only");
  EXPECT_HAS(score.err, "the header does not describe this file");
}

TEST_F(ModelReaders, Fp16OnTheCpuIsRefusedClearly) {
  Result score = Score(model_, {"--dtype", "fp16", "--device", "cpu"});
  EXPECT_EQ(score.status, 1);  // `internal: "addmm_impl_cpu_" not implemented for 'Half'` before
  EXPECT_HAS(score.err, "dtype fp16 is not supported on the CPU");
  EXPECT_EQ(score.err.find("addmm"), std::string::npos) << score.err;
  // fp16 weights on disk are converted on load, and score.
  ASSERT_EQ(RunCli({"init-model", "--config", dir_ / "config.json", "--out", dir_ / "half", "--dtype", "fp16"}).status, 0);
  Result half = Score(dir_ / "half");
  EXPECT_EQ(half.status, 0) << half.err;
}

TEST_F(ModelReaders, WeightCountMatchesTheParametersBuilt) {
  std::string error;
  for (const char* extra : {R"({})", R"({"tie_word_embeddings": true})", R"({"architectures": ["Qwen2ForCausalLM"]})"}) {
    auto json = nlohmann::ordered_json::parse(kConfig);
    json.update(nlohmann::ordered_json::parse(extra));
    auto config = ParseModelConfig(json.dump(), &error);
    ASSERT_TRUE(config) << error;
    LlamaForCausalLM model(*config);
    uint64_t parameters = 0;
    for (const auto& parameter : model->parameters()) parameters += static_cast<uint64_t>(parameter.numel());
    EXPECT_EQ(ModelWeightCount(*config), parameters) << extra;
  }
}

}  // namespace
}  // namespace fusec::rt
