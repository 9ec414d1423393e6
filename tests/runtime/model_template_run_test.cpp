// `fusec run` with a model's own chat template (`hf_model(dir)`, chat = auto): the Jinja in the model's
// tokenizer_config.json renders the training text, the export keeps it, and a conversation the template
// refuses is an error naming the data line and the model.
#include <gtest/gtest.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/cli/run_experiments.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt {
namespace {

using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

using testing::Outcome;

Outcome RunExperiment(const ScratchDir& dir, const std::string& fuse_text) {
  WriteFile(dir / "exp.fuse", fuse_text);
  RunOptions options;
  options.file = dir / "exp.fuse";
  options.cache = dir / "cache";
  options.out = dir / "run";
  return testing::RunFuse(options);
}

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

std::string TemplateFile(const std::string& name) {
  return ReadFile(std::string(FUSEC_TESTS_RUNTIME_DIR) + "/testdata/chat_templates/" + name);
}

/// A tiny model directory at DIR/model whose tokenizer_config.json carries `jinja` as a model from the Hub
/// would (no name recorded by fusec).
void MakeModelWithTemplate(const ScratchDir& dir, const std::string& jinja, const std::string& bos,
                           const std::string& eos) {
  Outcome made = RunExperiment(
      dir, "experiment e {\n"
           "  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4, chat: chatml)\n"
           "  data = jsonl(\"data.jsonl\")\n"
           "  stage sft = sft { init = target; batch = 2; max_steps = 1 }\n"
           "}\n");
  ASSERT_EQ(made.status, 0) << made.err;
  std::filesystem::rename(dir / "run/export/sft", dir / "model");
  std::filesystem::remove_all(dir / "run");
  std::filesystem::remove_all(dir / "cache");
  nlohmann::json config = nlohmann::json::parse(ReadFile(dir / "model/tokenizer_config.json"));
  config.erase("fusec_chat_template");
  config["chat_template"] = jinja;
  config["bos_token"] = bos;
  config["eos_token"] = eos;
  WriteFile(dir / "model/tokenizer_config.json", config.dump(2));
}

const char* kData =
    "{\"id\": \"p1\", \"messages\": [{\"role\": \"user\", \"content\": \"2+2?\"}], \"responses\": [{\"source\": \"a\", "
    "\"text\": \"4\", \"reward\": 1.0}, {\"source\": \"b\", \"text\": \"5\", \"reward\": 0.0}]}\n"
    "{\"id\": \"p2\", \"messages\": [{\"role\": \"system\", \"content\": \"Be brief.\"}, {\"role\": \"user\", "
    "\"content\": \"3+3?\"}], \"responses\": [{\"source\": \"a\", \"text\": \"6\", \"reward\": 1.0}, {\"source\": "
    "\"b\", \"text\": \"7\", \"reward\": 0.0}]}\n";

const char* kTrainOwnTemplate =
    "experiment e {\n"
    "  target = hf_model(\"model\")\n"
    "  data = jsonl(\"data.jsonl\")\n"
    "  stage sft = sft { init = target; batch = 2; max_steps = 1 }\n"
    "}\n";

TEST(ModelTemplateRun, TrainsWithTheModelsOwnTemplateAndTheExportKeepsIt) {
  ScratchDir dir("model_template_run_qwen");
  WriteFile(dir / "data.jsonl", kData);
  const std::string qwen = TemplateFile("qwen2.5-instruct.jinja");
  MakeModelWithTemplate(dir, qwen, "<s>", "<|im_end|>");
  Outcome run = RunExperiment(dir, kTrainOwnTemplate);
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_TRUE(Contains(run.err, "training on 2 items")) << run.err;  // sft: the best response of each prompt
  auto exported = nlohmann::json::parse(ReadFile(dir / "run/export/sft/tokenizer_config.json"));
  EXPECT_EQ(exported["fusec_chat_template"], "jinja");
  EXPECT_EQ(exported["chat_template"], qwen) << "readers of the export render as it was trained";
}

TEST(ModelTemplateRun, AConversationTheTemplateRefusesNamesTheLineAndTheModel) {
  ScratchDir dir("model_template_run_gemma");
  WriteFile(dir / "data.jsonl", kData);
  MakeModelWithTemplate(dir, TemplateFile("gemma-2-it.jinja"), "<s>", "<|im_end|>");
  Outcome run = RunExperiment(dir, kTrainOwnTemplate);
  EXPECT_EQ(run.status, 1) << run.err;
  EXPECT_TRUE(Contains(run.err, "System role not supported")) << run.err;
  EXPECT_TRUE(Contains(run.err, "line 2")) << run.err;
  EXPECT_TRUE(Contains(run.err, "p2")) << run.err;
  EXPECT_TRUE(Contains(run.err, dir / "model")) << run.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "run/export/sft")) << "nothing trained on a half-rendered dataset";
}

}  // namespace
}  // namespace fusec::rt
