// Issue 14, in `fusec run`: exports record the chat template they were trained with; evaluate's
// `max_new_tokens` is bounded by the model's positions; data problems (a mapped key no record has, duplicate
// ids, identical responses, prompts without responses) are reported with counts.
#include <gtest/gtest.h>

#include <sstream>

#include "runtime/cli/run_experiments.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

struct Outcome {
  int status;
  std::string out;
  std::string err;
};

/// Runs `fuse_text` as DIR/exp.fuse next to experiments/data/smoke.jsonl (copied as DIR/smoke.jsonl).
Outcome RunExperiment(const ScratchDir& dir, const std::string& fuse_text) {
  std::filesystem::copy_file(std::string(FUSEC_REPO_DIR) + "/experiments/data/smoke.jsonl", dir / "smoke.jsonl",
                             std::filesystem::copy_options::overwrite_existing);
  WriteFile(dir / "exp.fuse", fuse_text);
  RunOptions options;
  options.file = dir / "exp.fuse";
  options.cache = dir / "cache";
  options.out = dir / "run";
  options.stdlib = FUSEC_SOURCE_STDLIB;
  std::ostringstream out;
  std::ostringstream err;
  int status = RunExperiments(options, out, err);
  return {status, out.str(), err.str()};
}

bool Contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

/// The template `auto` resolves to for the model directory `dir`, and the warning it gives.
std::pair<ChatTemplateKind, std::string> DetectedTemplate(const std::string& dir) {
  std::string error;
  auto tokenizer = Tokenizer::Load(dir, &error);
  EXPECT_TRUE(tokenizer) << error;
  std::string warning;
  auto kind = DetectChatTemplate(*tokenizer, &error, &warning);
  EXPECT_TRUE(kind) << error;
  return {kind.value_or(ChatTemplateKind::Llama3), warning};
}

// A model trained with `plain` (new_model's default) was exported with the byte tokenizer's chatml Jinja, so
// `fusec score` and `generate` defaulted to the wrong template.
TEST(NumericsRun, ExportsRecordTheTemplateTheyWereTrainedWith) {
  ScratchDir dir("numerics_run_template");
  Outcome outcome = RunExperiment(
      dir, "experiment e {\n"
           "  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4)\n"
           "  data = jsonl(\"smoke.jsonl\")\n"
           "  stage plain_sft = sft { init = target; batch = 4; max_steps = 1 }\n"
           "  let chat_target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4, chat: chatml)\n"
           "  stage chat_sft = sft { init = chat_target; batch = 4; max_steps = 1 }\n"
           "}\n");
  ASSERT_EQ(outcome.status, 0) << outcome.err;
  auto plain = nlohmann::json::parse(ReadFile(dir / "run/export/plain_sft/tokenizer_config.json"));
  EXPECT_EQ(plain["fusec_chat_template"], "plain");
  EXPECT_FALSE(plain.contains("chat_template")) << "Hugging Face must not render it with chatml either";
  EXPECT_EQ(DetectedTemplate(dir / "run/export/plain_sft"), std::make_pair(ChatTemplateKind::Plain, std::string()));
  auto chatml = nlohmann::json::parse(ReadFile(dir / "run/export/chat_sft/tokenizer_config.json"));
  EXPECT_EQ(chatml["fusec_chat_template"], "chatml");
  EXPECT_EQ(DetectedTemplate(dir / "run/export/chat_sft"), std::make_pair(ChatTemplateKind::ChatMl, std::string()));
  EXPECT_FALSE(Contains(outcome.err, "tokenizer_config")) << "no template warning:\n" << outcome.err;
}

// hf_model() on a directory fusec wrote reads the recorded template back, not the tokenizer's Jinja.
TEST(NumericsRun, HfModelOnAWrittenDirectoryUsesItsRecordedTemplate) {
  ScratchDir dir("numerics_run_hf");
  Outcome first = RunExperiment(
      dir, "experiment e {\n"
           "  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4)\n"
           "  data = jsonl(\"smoke.jsonl\")\n"
           "  stage sft = sft { init = target; batch = 4; max_steps = 1 }\n"
           "}\n");
  ASSERT_EQ(first.status, 0) << first.err;
  std::filesystem::rename(dir / "run/export/sft", dir / "trained");
  // `len` counts the response's tokens under the template: with plain, "text" + EOS.
  Outcome second = RunExperiment(
      dir, "experiment e {\n"
           "  target = hf_model(\"trained\")\n"
           "  data = jsonl(\"smoke.jsonl\")\n"
           "  stage sft = sft { init = target; select = all where len <= 5; batch = 4; max_steps = 1 }\n"
           "}\n");
  ASSERT_EQ(second.status, 0) << second.err;
  Outcome third = RunExperiment(
      dir, "experiment e {\n"
           "  target = hf_model(\"trained\", chat: plain)\n"
           "  data = jsonl(\"smoke.jsonl\")\n"
           "  stage sft = sft { init = target; select = all where len <= 5; batch = 4; max_steps = 1 }\n"
           "}\n");
  ASSERT_EQ(third.status, 0) << third.err;
  auto items = [](const std::string& err) {  // "training on N items"
    size_t at = err.find("training on ");
    return at == std::string::npos ? std::string("none") : err.substr(at, err.find(" items", at) - at);
  };
  EXPECT_EQ(items(second.err), items(third.err)) << second.err << "\n---\n" << third.err;
}

TEST(NumericsRun, EvaluateMaxNewTokensIsBoundedByTheModelsPositions) {
  ScratchDir dir("numerics_run_positions");
  Outcome outcome = RunExperiment(
      dir, "experiment e {\n"
           "  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4,\n"
           "                     max_position: 64)\n"
           "  data = jsonl(\"smoke.jsonl\")\n"
           "  stage sft = sft { init = target; batch = 4; max_steps = 1 }\n"
           "  eval = evaluate(data: data, max_new_tokens: 1000)\n"
           "}\n");
  EXPECT_EQ(outcome.status, 1) << outcome.err;
  EXPECT_TRUE(Contains(outcome.err, "[PositionLimit]")) << outcome.err;
  EXPECT_TRUE(Contains(outcome.err, "with `max_new_tokens` 1000 needs more than the 64 positions")) << outcome.err;
  EXPECT_TRUE(Contains(outcome.err, "evaluate(data: data, max_new_tokens: 1000)")) << "the node's span:\n"
                                                                                   << outcome.err;
  EXPECT_TRUE(Contains(outcome.err, "help: lower `max_new_tokens` to at most")) << outcome.err;
}

}  // namespace
}  // namespace fusec::rt
