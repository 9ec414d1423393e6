// Issue 14, numerics and command-line values: a model that computes NaN or Inf is an error naming its
// directory (and the tensor, when the weights are the cause), never `"logp": null` with exit 0; config.json's
// float fields are range-checked; `init-model` refuses an initializer that overflows; the runtime commands
// refuse numeric flags outside their ranges with the flag's name (exit 2).
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
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

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

constexpr const char* kConfig = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 260, "max_position_embeddings": 64})";

constexpr const char* kScoreData =
    R"({"id": "q1", "prompt": "2+2=", "responses": [{"source": "a", "text": "4"}]})"
    "\n";

class Numerics : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "config.json", kConfig);
    Result init = RunCli({"init-model", "--config", dir_ / "config.json", "--seed", "3", "--out", model_});
    ASSERT_EQ(init.status, 0) << init.err;
    WriteFile(dir_ / "data.jsonl", kScoreData);
    WriteFile(dir_ / "prompts.jsonl", R"({"id": "p1", "prompt": "Once"})" "\n");
  }

  /// A copy of the model with `tensor`'s first value (or all its values) set to `value` (written as fp32).
  std::string WithValue(const std::string& name, const std::string& tensor, float value, bool all = false) {
    std::string error;
    auto model = LoadModel(model_, torch::kFloat, torch::kCPU, &error);
    EXPECT_TRUE(model) << error;
    {
      torch::NoGradGuard no_grad;
      for (auto& item : (*model)->named_parameters()) {
        if (item.key() != tensor) continue;
        if (all) {
          item.value().fill_(value);
        } else {
          item.value().view({-1})[0] = value;
        }
      }
    }
    SaveOptions save;
    save.tokenizer_dir = model_;
    std::string out = dir_ / name;
    EXPECT_TRUE(SaveModel(**model, out, save, &error)) << error;
    return out;
  }

  /// A copy of the model with config.json's `key` replaced by the JSON `value`.
  std::string WithConfig(const std::string& name, const std::string& key, const std::string& value) {
    return testing::CopyWithConfigField(model_, dir_ / name, key, value);
  }

  ScratchDir dir_{"reliability_numerics"};
  std::string model_ = dir_ / "model";
};

TEST_F(Numerics, NanWeightsAreAnErrorNamingTheDirectoryAndTheTensor) {
  std::string nan_model = WithValue("nan", "model.layers.1.mlp.down_proj.weight", std::nanf(""));
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"score", "--model", nan_model, "--data", dir_ / "data.jsonl"},
        std::vector<std::string>{"generate", "--model", nan_model, "--prompts", dir_ / "prompts.jsonl",
                                 "--max-new-tokens", "3"}}) {
    Result result = RunCli(args);
    EXPECT_EQ(result.status, 1) << args[0] << ": " << result.out;
    EXPECT_TRUE(Contains(result.err, nan_model)) << result.err;
    EXPECT_TRUE(Contains(result.err, "`model.layers.1.mlp.down_proj.weight` has non-finite values")) << result.err;
    EXPECT_FALSE(Contains(result.out, "null")) << result.out;
  }
  std::string inf_model = WithValue("inf", "model.embed_tokens.weight", std::numeric_limits<float>::infinity());
  Result inf = RunCli({"score", "--model", inf_model, "--data", dir_ / "data.jsonl"});
  EXPECT_EQ(inf.status, 1);
  EXPECT_TRUE(Contains(inf.err, "`model.embed_tokens.weight` has non-finite values")) << inf.err;
}

// Finite weights whose products overflow: the outputs are checked where they are consumed.
TEST_F(Numerics, NonFiniteOutputsOfFiniteWeightsAreAnErrorNamingTheDirectory) {
  std::string huge = WithValue("huge", "lm_head.weight", 3e38F, /*all=*/true);
  Result score = RunCli({"score", "--model", huge, "--data", dir_ / "data.jsonl"});
  EXPECT_EQ(score.status, 1) << score.out;
  EXPECT_TRUE(Contains(score.err, huge)) << score.err;
  EXPECT_TRUE(Contains(score.err, "log-probabilities are not finite")) << score.err;
  EXPECT_TRUE(Contains(score.err, "[NonFiniteModel]")) << score.err;
  EXPECT_FALSE(Contains(score.out, "null")) << score.out;
  Result generate = RunCli({"generate", "--model", huge, "--prompts", dir_ / "prompts.jsonl", "--max-new-tokens", "3"});
  EXPECT_EQ(generate.status, 1) << generate.out;
  EXPECT_TRUE(Contains(generate.err, huge)) << generate.err;
  EXPECT_TRUE(Contains(generate.err, "logits are not finite")) << generate.err;
}

TEST_F(Numerics, ConfigFloatFieldsAreRangeChecked) {
  struct Case {
    const char* key;
    const char* value;
    const char* expected;
  };
  for (const Case& c : {Case{"rope_theta", "1e-300", "`rope_theta` must be"},
                        Case{"rope_theta", "1e300", "`rope_theta` must be"},
                        Case{"rms_norm_eps", "1e-300", "`rms_norm_eps` must be"},
                        Case{"rms_norm_eps", "5", "`rms_norm_eps` must be"}}) {
    std::string name = std::string(c.key) + "_" + c.value;
    std::string dir = WithConfig(name, c.key, c.value);
    Result result = RunCli({"score", "--model", dir, "--data", dir_ / "data.jsonl"});
    EXPECT_EQ(result.status, 1) << name << ": " << result.out;
    EXPECT_TRUE(Contains(result.err, dir + "/config.json: " + c.expected)) << name << ": " << result.err;
  }
  // rope_scaling's factor too.
  std::string scaled = WithConfig("scaled", "rope_scaling", R"({"rope_type": "linear", "factor": 1e300})");
  Result result = RunCli({"score", "--model", scaled, "--data", dir_ / "data.jsonl"});
  EXPECT_EQ(result.status, 1);
  EXPECT_TRUE(Contains(result.err, "`rope_scaling.factor` must be")) << result.err;
}

TEST_F(Numerics, InitModelRefusesAnInitializerThatOverflows) {
  // 1e6 is a legal standard deviation in fp32, but its values overflow fp16 (max 65504).
  auto config = nlohmann::json::parse(kConfig);
  config["initializer_range"] = 1e6;
  WriteFile(dir_ / "wide.json", config.dump());
  Result fp16 = RunCli({"init-model", "--config", dir_ / "wide.json", "--out", dir_ / "wide", "--dtype", "fp16"});
  EXPECT_EQ(fp16.status, 1) << fp16.out;
  EXPECT_TRUE(Contains(fp16.err, "non-finite")) << fp16.err;
  EXPECT_TRUE(Contains(fp16.err, "initializer_range")) << fp16.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "wide"));
  Result fp32 = RunCli({"init-model", "--config", dir_ / "wide.json", "--out", dir_ / "wide32", "--dtype", "fp32"});
  EXPECT_EQ(fp32.status, 0) << fp32.err;
  // 1e300 is beyond fp32 itself.
  config["initializer_range"] = 1e300;
  WriteFile(dir_ / "huge.json", config.dump());
  Result huge = RunCli({"init-model", "--config", dir_ / "huge.json", "--out", dir_ / "huge", "--dtype", "fp32"});
  EXPECT_EQ(huge.status, 1) << huge.out;
  EXPECT_TRUE(Contains(huge.err, "initializer_range")) << huge.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "huge"));
}

// Issue 14: a model is scored and sampled with the template it was written with, and an `auto` choice made
// without a usable tokenizer_config.json is a warning naming the choice, not a silent switch.
TEST_F(Numerics, InitModelRecordsItsTemplateAndReadersDefaultToIt) {
  Result init = RunCli({"init-model", "--config", dir_ / "config.json", "--out", dir_ / "plain", "--template", "plain"});
  ASSERT_EQ(init.status, 0) << init.err;
  auto config = nlohmann::json::parse(ReadFile(dir_ / "plain/tokenizer_config.json"));
  EXPECT_EQ(config["fusec_chat_template"], "plain");
  EXPECT_FALSE(config.contains("chat_template")) << "plain has no Jinja; Hugging Face must not render chatml";
  Result score = RunCli({"score", "--model", dir_ / "plain", "--data", dir_ / "data.jsonl"});
  ASSERT_EQ(score.status, 0) << score.err;
  EXPECT_TRUE(Contains(score.err, "template plain")) << score.err;
  // plain: "4" then EOS, 2 tokens (chatml would add <|im_end|> and "\n": 3).
  EXPECT_EQ(nlohmann::json::parse(score.out)["tokens"], 2) << score.out;
  EXPECT_FALSE(Contains(score.err, "warning")) << score.err;
  // The default stays the tokenizer's own Jinja (the byte tokenizer's is chatml's), recorded as such.
  auto own = nlohmann::json::parse(ReadFile(model_ + "/tokenizer_config.json"));
  EXPECT_EQ(own["fusec_chat_template"], "jinja");
  EXPECT_EQ(own["chat_template"], ChatTemplateJinja(ChatTemplateKind::ChatMl));
}

TEST_F(Numerics, AMissingOrUnusableTokenizerConfigIsAWarningNamingTheChoice) {
  std::string bare = dir_ / "bare";
  std::filesystem::copy(model_, bare, std::filesystem::copy_options::recursive);
  std::filesystem::remove(bare + "/tokenizer_config.json");
  Result score = RunCli({"score", "--model", bare, "--data", dir_ / "data.jsonl"});
  ASSERT_EQ(score.status, 0) << score.err;
  EXPECT_TRUE(Contains(score.err, "warning: " + bare + ": there is no tokenizer_config.json")) << score.err;
  EXPECT_TRUE(Contains(score.err, "using the `plain` template")) << score.err;

  std::string listed = dir_ / "listed";
  std::filesystem::copy(model_, listed, std::filesystem::copy_options::recursive);
  auto config = nlohmann::json::parse(ReadFile(listed + "/tokenizer_config.json"));
  config.erase("fusec_chat_template");
  config["chat_template"] = nlohmann::json::array({{{"name", "default"}, {"template", "{{ messages }}"}}});
  WriteFile(listed + "/tokenizer_config.json", config.dump());
  Result list = RunCli({"score", "--model", listed, "--data", dir_ / "data.jsonl"});
  ASSERT_EQ(list.status, 0) << list.err;
  EXPECT_TRUE(Contains(list.err, "warning: " + listed + ": tokenizer_config.json's `chat_template` is not a string"))
      << list.err;
  // Naming the template is no guess: no warning.
  Result named = RunCli({"score", "--model", bare, "--data", dir_ / "data.jsonl", "--template", "chatml"});
  ASSERT_EQ(named.status, 0) << named.err;
  EXPECT_FALSE(Contains(named.err, "warning")) << named.err;
}

// Every numeric flag of the runtime commands is range-checked: NaN, negatives and absurd sizes are usage
// errors (exit 2) naming the flag and its range.
TEST_F(Numerics, NumericFlagsOutsideTheirRangesAreUsageErrorsNamingTheFlag) {
  const std::string prompts = dir_ / "prompts.jsonl";
  const std::string data = dir_ / "data.jsonl";
  struct Case {
    std::vector<std::string> args;
    std::string flag;
  };
  std::vector<std::string> generate = {"generate", "--model", model_, "--prompts", prompts};
  auto with = [](std::vector<std::string> base, std::vector<std::string> more) {
    base.insert(base.end(), more.begin(), more.end());
    return base;
  };
  const std::vector<Case> cases = {
      {with(generate, {"--top-p", "nan"}), "--top-p"},
      {with(generate, {"--top-p", "1.5"}), "--top-p"},
      {with(generate, {"--temperature", "nan"}), "--temperature"},
      {with(generate, {"--temperature", "-1"}), "--temperature"},
      {with(generate, {"--temperature", "inf"}), "--temperature"},
      {with(generate, {"--seed", "-1"}), "--seed"},
      {with(generate, {"--max-new-tokens", "0"}), "--max-new-tokens"},
      {with(generate, {"--max-new-tokens", "9223372036854775807"}), "--max-new-tokens"},
      {with(generate, {"--samples", "0"}), "--samples"},
      {with(generate, {"--samples", "100000000000"}), "--samples"},
      {with(generate, {"--batch", "-3"}), "--batch"},
      {{"score", "--model", model_, "--data", data, "--batch-tokens", "0"}, "--batch-tokens"},
      {{"init-model", "--config", dir_ / "config.json", "--out", dir_ / "x", "--seed", "-1"}, "--seed"},
      {{"synth", "fusion-mini", "--out", dir_ / "s", "--noise", "nan"}, "--noise"},
      {{"synth", "fusion-mini", "--out", dir_ / "s", "--noise", "-1"}, "--noise"},
      {{"synth", "fusion-mini", "--out", dir_ / "s", "--seed", "-1"}, "--seed"},
      {{"synth", "fusion-mini", "--out", dir_ / "s", "--prompts", "nan"}, "--prompts"},
  };
  for (const Case& c : cases) {
    std::string line;
    for (const std::string& arg : c.args) line += arg + " ";
    Result result = RunCli(c.args);
    EXPECT_EQ(result.status, 2) << line << "\n" << result.err << result.out;
    EXPECT_TRUE(Contains(result.err, c.flag)) << line << "\n" << result.err;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "x")) << line;
    EXPECT_FALSE(std::filesystem::exists(dir_ / "s")) << line;
  }
  // The limits themselves are fine.
  Result edge = RunCli(with(generate, {"--top-p", "1", "--temperature", "0", "--max-new-tokens", "2", "--seed", "0"}));
  EXPECT_EQ(edge.status, 0) << edge.err;
}

}  // namespace
}  // namespace fusec::rt
