// `fusec run` end to end on experiments/smoke.fuse: FuseSFT then FusePO, cached reruns, bit-identical reruns,
// a stage stopped (and a process killed with SIGKILL) then resumed to the same weights, NaN and data errors.
#include "runtime/cli/run_experiments.h"

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <thread>

#include "runtime/data/examples.h"
#include "runtime/data/synth.h"
#include "runtime/model/checkpoint.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt {
namespace {

using testing::Metrics;
using testing::Outcome;
using testing::ReadFile;
using testing::RunFuse;
using testing::ScratchDir;
using testing::Smoke;
using testing::WriteFile;
using testing::kSmoke;

/// The lines of `text`.
std::vector<std::string> Lines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

/// Checks that `err` holds a runtime error rendered as the checker's diagnostics are: `FILE:L:C: error: ...
/// [KIND]` (FILE the .fuse file's name, `where` the `L:C` expected), the message containing `message`, the
/// source line containing `source`, a caret line under it, and a `help:` line when `help` is set.
void ExpectRendered(const std::string& err, const std::string& file, const std::string& where,
                    const std::string& kind, const std::string& message, const std::string& source, bool help) {
  const std::vector<std::string> lines = Lines(err);
  auto at = std::find_if(lines.begin(), lines.end(), [&](const std::string& line) {
    return line.find(": error: ") != std::string::npos && line.ends_with("[" + kind + "]");
  });
  ASSERT_NE(at, lines.end()) << "no `... [" << kind << "]` line in:\n" << err;
  const std::string& head = *at;
  EXPECT_NE(head.find(file + ":" + where + ": error: "), std::string::npos) << head;
  EXPECT_NE(head.find(message), std::string::npos) << head;
  ASSERT_LT(std::distance(lines.begin(), at) + 2, static_cast<std::ptrdiff_t>(lines.size())) << err;
  EXPECT_NE(at[1].find(source), std::string::npos) << "the source line: " << at[1];
  EXPECT_NE(at[2].find('^'), std::string::npos) << "the caret line: " << at[2];
  const bool has_help = std::any_of(at, lines.end(), [](const std::string& line) { return line.rfind("help: ", 0) == 0; });
  if (help) {
    EXPECT_TRUE(has_help) << err;
  }
}

/// Runs `fuse_text` as dir/exp.fuse, with experiments/data/smoke.jsonl beside it as smoke.jsonl.
Outcome RunWithSmokeData(const ScratchDir& dir, const std::string& fuse_text) {
  std::filesystem::copy_file(std::string(FUSEC_REPO_DIR) + "/experiments/data/smoke.jsonl", dir / "smoke.jsonl",
                             std::filesystem::copy_options::overwrite_existing);
  WriteFile(dir / "exp.fuse", fuse_text);
  RunOptions options = Smoke(dir);
  options.file = dir / "exp.fuse";
  return RunFuse(options);
}

TEST(Run, SmokeTrainsFuseSftThenFusePoAndReusesTheCache) {
  ScratchDir dir("run_smoke");
  Outcome first = RunFuse(Smoke(dir));
  ASSERT_EQ(first.status, 0) << first.err;
  // Every step logged; FuseSFT's loss falls; FusePO reports preference metrics.
  auto sft = Metrics(dir / "run/metrics.jsonl", "smoke/sft");
  auto po = Metrics(dir / "run/metrics.jsonl", "smoke/po");
  ASSERT_EQ(sft.size(), 20U);
  ASSERT_FALSE(po.empty());
  EXPECT_LT(sft.back()["loss"].get<double>(), 0.7 * sft.front()["loss"].get<double>());
  for (const char* key : {"loss", "lr", "grad_norm", "tokens", "tokens_per_s", "chosen_reward", "rejected_reward",
                          "margin", "accuracy", "weight_mean"}) {
    EXPECT_TRUE(po.back().contains(key)) << key;
  }
  // The run directory: manifest, summary, exports that load, evaluation.
  for (const char* file : {"manifest.toml", "summary.json", "export/sft/config.json", "export/po/model.safetensors",
                           "export/po/tokenizer.json", "eval/results.json", "eval/po.jsonl"}) {
    EXPECT_TRUE(std::filesystem::exists(dir / ("run/" + std::string(file)))) << file;
  }
  std::string error;
  EXPECT_TRUE(LoadModel(dir / "run/export/po", torch::kFloat, torch::kCPU, &error)) << error;
  auto results = nlohmann::json::parse(ReadFile(dir / "run/eval/results.json"));
  ASSERT_EQ(results.size(), 3U);
  EXPECT_LT(results[1]["best_response_nll"].get<double>(), results[0]["best_response_nll"].get<double>())
      << "FuseSFT lowers the held-out NLL of the best responses";
  EXPECT_NE(first.out.find("stage po: trained"), std::string::npos) << first.out;

  // Again: every stage from the cache, the same exports and the same metrics.
  std::string weights = ReadFile(dir / "run/export/po/model.safetensors");
  Outcome second = RunFuse(Smoke(dir));
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_NE(second.out.find("stage sft: cached"), std::string::npos) << second.out;
  EXPECT_NE(second.out.find("stage po: cached"), std::string::npos) << second.out;
  EXPECT_EQ(second.err.find("training on"), std::string::npos) << second.err;
  EXPECT_EQ(ReadFile(dir / "run/export/po/model.safetensors"), weights);
  EXPECT_EQ(Metrics(dir / "run/metrics.jsonl", "smoke/sft").size(), 20U);
}

/// experiments/demo.fuse beside a small fusion-mini (200 prompts: 80 SFT, 80 PO, 40 held out; 300 training
/// examples per source model).
RunOptions SmallDemo(const ScratchDir& dir, uint64_t seed) {
  std::filesystem::create_directories(dir / "data");
  std::filesystem::copy_file(std::string(FUSEC_REPO_DIR) + "/experiments/demo.fuse", dir / "demo.fuse",
                             std::filesystem::copy_options::overwrite_existing);
  SynthOptions synth;
  synth.seed = seed;
  synth.prompts = 200;
  synth.source_examples = 300;
  std::string error;
  EXPECT_TRUE(WriteFusionMini(synth, dir / "data/fusion-mini", &error)) << error;
  RunOptions options;
  options.file = dir / "demo.fuse";
  options.cache = dir / "cache";
  options.out = dir / "run";
  return options;
}

TEST(Run, DemoAtReducedSizeScoresAgainstTheGoldAnswers) {
  ScratchDir dir("run_demo");
  Outcome first = RunFuse(SmallDemo(dir, 1));
  ASSERT_EQ(first.status, 0) << first.err;
  // The summary table and the machine-readable last line: the held-out true score of each model.
  EXPECT_NE(first.out.find("score per family"), std::string::npos) << first.out;
  std::string last = first.out.substr(first.out.rfind("RESULT"));
  EXPECT_EQ(last.rfind("RESULT alpha=", 0), 0U) << first.out;
  EXPECT_NE(last.find(" initial="), std::string::npos);
  EXPECT_NE(last.find(" fusesft="), std::string::npos);
  EXPECT_NE(last.find(" fusepo="), std::string::npos);
  EXPECT_EQ(last.back(), '\n');
  EXPECT_EQ(last.find('\n'), last.size() - 1) << "RESULT is the last line";

  auto results = nlohmann::json::parse(ReadFile(dir / "run/eval/results.json"));
  ASSERT_EQ(results.size(), 6U);
  std::vector<std::string> models;
  for (const auto& r : results) {
    models.push_back(r["model"]);
    EXPECT_EQ(r["gold_prompts"], 40);
    EXPECT_GE(r["score"].get<double>(), 0.0);
    EXPECT_LE(r["score"].get<double>(), 1.0);
    EXPECT_EQ(r["families"].size(), 6U) << r.dump();
    EXPECT_TRUE(r["best_response_nll"].is_null()) << "the held-out split has no responses";
  }
  EXPECT_EQ(models, (std::vector<std::string>{"alpha", "beta", "gamma", "initial", "fusesft", "fusepo"}));
  // Each completion is scored: the mean of the lines is the model's score.
  std::istringstream lines(ReadFile(dir / "run/eval/fusepo.jsonl"));
  double sum = 0;
  int count = 0;
  for (std::string line; std::getline(lines, line); ++count) {
    auto json = nlohmann::json::parse(line);
    ASSERT_TRUE(json.contains("gold") && json.contains("family") && json.contains("score")) << line;
    EXPECT_EQ(json["exact"].get<bool>(), json["score"].get<double>() == 1.0) << line;
    sum += json["score"].get<double>();
  }
  ASSERT_EQ(count, 40);
  EXPECT_NEAR(sum / count, results[5]["score"].get<double>(), 1e-12);

  // Again: all cached, the same line. Then other data at the same path: nothing stale is reused.
  Outcome second = RunFuse(SmallDemo(dir, 1));
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(second.err.find("training on"), std::string::npos) << second.err;
  EXPECT_EQ(second.err.find("sampling `"), std::string::npos) << "the samples come from the cache\n" << second.err;
  EXPECT_EQ(second.out.substr(second.out.rfind("RESULT")), last);
  Outcome regenerated = RunFuse(SmallDemo(dir, 2));
  ASSERT_EQ(regenerated.status, 0) << regenerated.err;
  EXPECT_NE(regenerated.out.find("stage initial: trained"), std::string::npos) << regenerated.out;
  EXPECT_NE(regenerated.out.find("stage fusepo: trained"), std::string::npos) << regenerated.out;
}

TEST(Run, RerunsWithoutTheCacheAreBitIdentical) {
  ScratchDir a("run_determinism_a");
  ScratchDir b("run_determinism_b");
  ASSERT_EQ(RunFuse(Smoke(a)).status, 0);
  ASSERT_EQ(RunFuse(Smoke(b)).status, 0);
  EXPECT_EQ(ReadFile(a / "run/export/po/model.safetensors"), ReadFile(b / "run/export/po/model.safetensors"));
  // An override changes the plan, so nothing is reused and the weights differ.
  RunOptions other = Smoke(a, "other");
  other.overrides = {"po.optim.lr=1e-3"};
  Outcome changed = RunFuse(other);
  ASSERT_EQ(changed.status, 0) << changed.err;
  EXPECT_NE(changed.out.find("stage sft: cached"), std::string::npos);
  EXPECT_NE(changed.out.find("stage po: trained"), std::string::npos);
  EXPECT_NE(ReadFile(a / "other/export/po/model.safetensors"), ReadFile(a / "run/export/po/model.safetensors"));
}

TEST(Run, AStoppedStageResumesToTheSameWeights) {
  ScratchDir dir("run_resume");
  RunOptions whole = Smoke(dir, "whole");
  whole.cache = dir / "cache_whole";
  whole.overrides = {"sft.save_every=3"};
  ASSERT_EQ(RunFuse(whole).status, 0);

  RunOptions stopped = Smoke(dir, "parts");
  stopped.overrides = {"sft.save_every=3"};
  stopped.stop_after_steps = 7;
  Outcome first = RunFuse(stopped);
  EXPECT_EQ(first.status, 1);
  EXPECT_NE(first.err.find("smoke/sft: stopped after step 7 of 20"), std::string::npos) << first.err;
  RunOptions resumed = Smoke(dir, "parts");
  resumed.overrides = {"sft.save_every=3"};
  resumed.resume = true;
  Outcome second = RunFuse(resumed);
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_NE(second.err.find("resuming from its last checkpoint"), std::string::npos) << second.err;
  EXPECT_EQ(ReadFile(dir / "parts/export/po/model.safetensors"), ReadFile(dir / "whole/export/po/model.safetensors"));
  // The resumed stage's metrics are whole: steps 1..20 once each.
  auto sft = Metrics(dir / "parts/metrics.jsonl", "smoke/sft");
  ASSERT_EQ(sft.size(), 20U);
  for (size_t i = 0; i < sft.size(); ++i) EXPECT_EQ(sft[i]["step"], static_cast<int>(i + 1));
}

TEST(Run, AProcessKilledMidStageResumesToTheSameWeights) {
  ScratchDir dir("run_kill");
  const std::vector<std::string> longer = {"--set", "sft.epochs=30", "--set", "sft.save_every=5"};
  auto command = [&](const std::string& cache, const std::string& out, bool resume) {
    std::vector<std::string> extra = longer;
    if (resume) extra.push_back("--resume");
    return testing::SmokeCommand(cache, out, extra);
  };
  auto spawn = [](const std::vector<std::string>& args, const std::string& log) { return testing::Spawn(args, log); };
  auto wait = [](pid_t pid) { return testing::WaitFor(pid); };
  // Uninterrupted.
  ASSERT_EQ(wait(spawn(command(dir / "cache_a", dir / "a", false), dir / "a.log")), 0) << ReadFile(dir / "a.log");
  // Killed with SIGKILL once FuseSFT is well under way (past a checkpoint, between two), then resumed.
  pid_t pid = spawn(command(dir / "cache_b", dir / "b", false), dir / "b.log");
  auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::string log = ReadFile(dir / "b.log");
    if (log.find("[smoke/sft] step 6/") != std::string::npos || log.find("step 12/") != std::string::npos) break;
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  kill(pid, SIGKILL);
  int killed = wait(pid);
  ASSERT_TRUE(WIFSIGNALED(killed)) << "the run finished before it could be killed: " << ReadFile(dir / "b.log");
  ASSERT_EQ(wait(spawn(command(dir / "cache_b", dir / "b", true), dir / "b2.log")), 0) << ReadFile(dir / "b2.log");
  EXPECT_NE(ReadFile(dir / "b2.log").find("resuming from its last checkpoint"), std::string::npos) << ReadFile(dir / "b2.log");
  EXPECT_EQ(ReadFile(dir / "b/export/po/model.safetensors"), ReadFile(dir / "a/export/po/model.safetensors"));
}

TEST(Run, ANanLossStopsWithTheStageAndStepAndKeepsFinishedStages) {
  ScratchDir dir("run_nan");
  std::string text = ReadFile(kSmoke);
  text.replace(text.find("import std.objectives.{dpo}"), std::string("import std.objectives.{dpo}").size(),
               "objective broken() {\n  loss = log(logp(rejected) - logp(chosen) - 1e9)\n}");
  text.replace(text.find("objective = dpo(beta: 0.1)"), std::string("objective = dpo(beta: 0.1)").size(),
               "objective = broken()");
  std::filesystem::create_directories(dir / "experiments/data");
  std::filesystem::copy_file(std::string(FUSEC_REPO_DIR) + "/experiments/data/smoke.jsonl", dir / "experiments/data/smoke.jsonl");
  WriteFile(dir / "experiments/nan.fuse", text);
  RunOptions options = Smoke(dir);
  options.file = dir / "experiments/nan.fuse";
  Outcome outcome = RunFuse(options);
  EXPECT_EQ(outcome.status, 1);
  ExpectRendered(outcome.err, "nan.fuse", "25:9", "NonFiniteLoss",
                 "train `smoke/po`: stage `smoke/po`, step 1: the loss is NaN (objective `broken()`)",
                 "stage po = fuse_po", /*help=*/true);
  // FuseSFT finished and is cached: a fixed objective reruns FusePO only.
  options.overrides = {};
  Outcome again = RunFuse(options);
  EXPECT_NE(again.err.find("[smoke/sft] cached"), std::string::npos) << again.err;
}

TEST(Run, ABadDataLineNamesTheFileAndLine) {
  ScratchDir dir("run_bad_data");
  std::string text = ReadFile(kSmoke);
  std::filesystem::create_directories(dir / "data");
  std::string data = ReadFile(std::string(FUSEC_REPO_DIR) + "/experiments/data/smoke.jsonl");
  data.insert(data.find('\n') + 1, "{\"id\": \"broken\", \"prompt\": 3}\n");
  WriteFile(dir / "data/smoke.jsonl", data);
  WriteFile(dir / "smoke.fuse", text);
  RunOptions options = Smoke(dir);
  options.file = dir / "smoke.fuse";
  Outcome outcome = RunFuse(options);
  EXPECT_EQ(outcome.status, 1);
  ExpectRendered(outcome.err, "smoke.fuse", "14:21", "DataLine", "load_data: `prompt` is a number, not a string",
                 "jsonl(\"data/smoke.jsonl\")", /*help=*/false);
  EXPECT_NE(outcome.err.find("note: at " + (dir / "data/smoke.jsonl") + ":2"), std::string::npos)
      << "the data line is named: " << outcome.err;
  // The experiment decides: bad_lines = skip goes on and says how many were skipped.
  text.replace(text.find("jsonl(\"data/smoke.jsonl\")"), std::string("jsonl(\"data/smoke.jsonl\")").size(),
               "jsonl(\"data/smoke.jsonl\", bad_lines: skip)");
  WriteFile(dir / "smoke.fuse", text);
  Outcome skipped = RunFuse(options);
  EXPECT_EQ(skipped.status, 0) << skipped.err;
  EXPECT_NE(skipped.err.find("1 bad lines skipped"), std::string::npos) << skipped.err;
}

TEST(Run, AModelThatDoesNotFitItsTokenizerIsRefusedWithTheStageAndSpan) {
  ScratchDir dir("run_vocab");
  std::string error;
  auto config = ParseModelConfig(R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 260})",
                                 &error);
  ASSERT_TRUE(config) << error;
  LlamaForCausalLM model(*config);
  // The byte tokenizer with one more special token than the model has embeddings for.
  auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
  auto json = nlohmann::json::parse(tokenizer_json);
  json["added_tokens"].push_back({{"id", 260}, {"content", "<extra>"}, {"special", true}});
  std::filesystem::create_directories(dir / "tokenizer");
  WriteFile(dir / "tokenizer/tokenizer.json", json.dump());
  WriteFile(dir / "tokenizer/tokenizer_config.json", tokenizer_config);
  SaveOptions save;
  save.tokenizer_dir = dir / "tokenizer";
  ASSERT_TRUE(SaveModel(*model, dir / "model", save, &error)) << error;
  Outcome outcome =
      RunWithSmokeData(dir, "experiment e {\n  target = hf_model(\"model\")\n  data = jsonl(\"smoke.jsonl\")\n"
                            "  stage sft = fuse_sft { init = target; batch = 4 }\n}\n");
  EXPECT_EQ(outcome.status, 1);
  ExpectRendered(outcome.err, "exp.fuse", "4:9", "ModelDirectory",
                 "train `e/sft`: the tokenizer of " + (dir / "model") +
                     " has 261 tokens, more than the model's vocab_size 260",
                 "stage sft = fuse_sft", /*help=*/false);
}

TEST(Run, AMissingModelDirectoryIsADiagnosticAtTheModel) {
  ScratchDir dir("run_missing_model");
  Outcome outcome =
      RunWithSmokeData(dir, "experiment e {\n  target = hf_model(\"no/such/model\")\n  data = jsonl(\"smoke.jsonl\")\n"
                            "  stage sft = fuse_sft { init = target; batch = 4 }\n}\n");
  EXPECT_EQ(outcome.status, 1);
  ExpectRendered(outcome.err, "exp.fuse", "2:12", "ModelDirectory", "load_model: ", "hf_model(\"no/such/model\")",
                 /*help=*/true);
  EXPECT_NE(outcome.err.find("note: at " + (dir / "no/such/model")), std::string::npos) << outcome.err;
  // Nothing already produced is lost: the attempt's record (its manifest) is beside the run directory.
  EXPECT_TRUE(std::filesystem::exists(dir / "run.partial/manifest.toml")) << outcome.err;
  EXPECT_NE(outcome.err.find("note: this run's record is in " + (dir / "run.partial")), std::string::npos);
}

// A target too large for memory stops the run with "out of memory", the node and its span, not an internal
// error (its embedding alone is 1 PiB, beyond any address space).
TEST(Run, AModelLargerThanMemoryIsOutOfMemoryWithTheNodeAndSpan) {
  ScratchDir dir("run_oom");
  Outcome outcome = RunWithSmokeData(
      dir, "experiment e {\n"
           "  target = new_model(hidden_size: 4194304, intermediate_size: 64, num_layers: 1, num_heads: 4,\n"
           "                     vocab_size: 67108864)\n"
           "  data = jsonl(\"smoke.jsonl\")\n  stage sft = sft { init = target; batch = 4 }\n}\n");
  EXPECT_EQ(outcome.status, 1);
  ExpectRendered(outcome.err, "exp.fuse", "2:12", "OutOfMemory",
                 "load_model: out of memory: the model needs 1.3 PiB for its 351844538777600 weights in float32", "target = new_model(", /*help=*/true);
  EXPECT_EQ(outcome.err.find("internal"), std::string::npos) << outcome.err;
}

// `len` in a data rule counts the response's tokens under the stage's tokenizer and chat template, as the
// objective's `len` does: here the byte tokenizer of a new model with the plain template (text, then EOS).
TEST(Run, LenInADataRuleCountsTheStagesTokens) {
  ScratchDir dir("run_len_rule");
  Outcome outcome = RunWithSmokeData(
      dir, "experiment e {\n"
           "  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 4)\n"
           "  data = jsonl(\"smoke.jsonl\")\n"
           "  stage sft = sft { init = target; select = all where len <= 5; batch = 4; max_steps = 1 }\n}\n");
  ASSERT_EQ(outcome.status, 0) << outcome.err;

  auto [tokenizer_json, tokenizer_config] = ByteTokenizerFiles();
  std::string error;
  auto tokenizer = Tokenizer::FromJson(tokenizer_json, tokenizer_config, &error);
  ASSERT_TRUE(tokenizer) << error;
  const ChatTemplate chat = MakeChatTemplate(ChatTemplateKind::Plain, *tokenizer);
  auto reader = JsonlReader::Open(dir / "smoke.jsonl", {}, &error);
  ASSERT_TRUE(reader) << error;
  int64_t prompts = 0, short_responses = 0, responses = 0;
  for (PromptRecord record; reader->Next(&record);) {
    ++prompts;
    for (const ResponseRecord& response : record.responses) {
      auto ids = TokenizeResponse(record, response.text, *tokenizer, chat, &error);
      ASSERT_TRUE(ids) << error;
      short_responses += ids->size() <= 5;
      ++responses;
    }
  }
  ASSERT_GT(short_responses, 0);
  ASSERT_LT(short_responses, responses);  // the rule keeps some and drops some
  const std::string expected =
      ": " + std::to_string(short_responses) + " items from " + std::to_string(prompts) + " prompts";
  EXPECT_NE(outcome.err.find(expected), std::string::npos) << expected << "\n" << outcome.err;
}

}  // namespace
}  // namespace fusec::rt
