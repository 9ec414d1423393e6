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

/// An experiment training `sft` (or `po`, with DPO) on DIR/data.jsonl read with `jsonl_arguments`.
std::string TrainOn(const std::string& jsonl_arguments, const std::string& stage_kind = "sft") {
  const bool pairs = stage_kind == "po";
  return std::string(pairs ? "import std.objectives.{dpo}\n" : "") +
         "experiment e {\n"
         "  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4)\n"
         "  data = jsonl(\"data.jsonl\"" + jsonl_arguments + ")\n"
         "  stage s = " + stage_kind + " { init = target; batch = 2; max_steps = 1" +
         (pairs ? "; objective = dpo(beta: 0.1)" : "") + " }\n"
         "}\n";
}

/// A JSONL line with the id `id_json` (JSON: `1` or `"q1"`) and the responses' JSON objects.
std::string Line(const std::string& id_json, const std::string& responses) {
  std::string prompt = id_json;
  std::erase(prompt, '"');
  return "{\"id\": " + id_json + ", \"prompt\": \"p" + prompt + "\", \"responses\": [" + responses + "]}\n";
}

const char* kTwoResponses = R"({"source": "a", "text": "yes", "reward": 1.0}, {"source": "b", "text": "no", "reward": 0.0})";

TEST(NumericsRun, AMappedKeyNoRecordHasIsAnError) {
  ScratchDir dir("numerics_run_mapped");
  WriteFile(dir / "data.jsonl", Line("1", kTwoResponses) + Line("2", kTwoResponses));
  Outcome reward = RunExperiment(dir, TrainOn(", reward: \"score\""));
  EXPECT_EQ(reward.status, 1) << reward.err;
  EXPECT_TRUE(Contains(reward.err, "`reward: \"score\"` maps a key that no response of the 2 records has"))
      << reward.err;
  EXPECT_TRUE(Contains(reward.err, "[DataFile]")) << reward.err;
  Outcome gold = RunExperiment(dir, TrainOn(", gold: \"answer\""));
  EXPECT_EQ(gold.status, 1) << gold.err;
  EXPECT_TRUE(Contains(gold.err, "`gold: \"answer\"` maps a key that no record of the 2 records has")) << gold.err;
  // The default names may be absent: they are optional.
  Outcome plain = RunExperiment(dir, TrainOn(""));
  EXPECT_EQ(plain.status, 0) << plain.err;
  EXPECT_FALSE(Contains(plain.err, "warning")) << plain.err;
}

TEST(NumericsRun, DuplicateIdsAndPromptsWithoutResponsesAreWarnedWithCounts) {
  ScratchDir dir("numerics_run_duplicates");
  std::string twice;
  for (int copy = 0; copy < 2; ++copy) {
    for (int id = 1; id <= 3; ++id) twice += Line("\"q" + std::to_string(id) + "\"", kTwoResponses);
  }
  WriteFile(dir / "data.jsonl", twice);
  Outcome doubled = RunExperiment(dir, TrainOn(""));
  EXPECT_EQ(doubled.status, 0) << doubled.err;
  EXPECT_TRUE(Contains(doubled.err, "3 of 6 records repeat an earlier record's id (e.g. `q1` on lines 1 and 4"))
      << doubled.err;
  // An integer id 1 and a string id "1" are one id.
  WriteFile(dir / "data.jsonl", Line("1", kTwoResponses) + Line("\"1\"", kTwoResponses) + Line("2", ""));
  Outcome mixed = RunExperiment(dir, TrainOn(""));
  EXPECT_EQ(mixed.status, 0) << mixed.err;
  EXPECT_TRUE(Contains(mixed.err, "1 of 3 records repeat an earlier record's id (e.g. `1` on lines 1 and 2")) << mixed.err;
  EXPECT_TRUE(Contains(mixed.err, "1 of 3 prompts have no responses")) << mixed.err;
}

TEST(NumericsRun, NothingLeftToUseIsAnError) {
  ScratchDir dir("numerics_run_nothing");
  WriteFile(dir / "data.jsonl", "{\"id\": 1}\n{\"id\": 2, \"prompt\": 3}\n");
  Outcome outcome = RunExperiment(dir, TrainOn(", bad_lines: skip"));
  EXPECT_EQ(outcome.status, 1) << outcome.err;
  EXPECT_TRUE(Contains(outcome.err, "every line was bad: 2 skipped, no records left")) << outcome.err;
  EXPECT_TRUE(Contains(outcome.err, "[DataFile]")) << outcome.err;
}

TEST(NumericsRun, PairsWithIdenticalTextsAreReported) {
  ScratchDir dir("numerics_run_pairs");
  const char* same = R"({"source": "a", "text": "same", "reward": 1.0}, {"source": "b", "text": "same", "reward": 0.0})";
  WriteFile(dir / "data.jsonl", Line("1", same) + Line("2", same));
  Outcome all_same = RunExperiment(dir, TrainOn("", "po"));
  EXPECT_EQ(all_same.status, 1) << all_same.err;
  EXPECT_TRUE(Contains(all_same.err, "2 of 2 pairs have identical `chosen` and `rejected` texts")) << all_same.err;
  EXPECT_TRUE(Contains(all_same.err, "[DataRule]")) << all_same.err;
  WriteFile(dir / "data.jsonl", Line("1", same) + Line("2", kTwoResponses));
  Outcome some = RunExperiment(dir, TrainOn("", "po"));
  EXPECT_EQ(some.status, 0) << some.err;
  EXPECT_TRUE(Contains(some.err, "warning: e/s")) << some.err;
  EXPECT_TRUE(Contains(some.err, "1 of 2 pairs have identical `chosen` and `rejected` texts (e.g. prompt `1`")) << some.err;
}

}  // namespace
}  // namespace fusec::rt
