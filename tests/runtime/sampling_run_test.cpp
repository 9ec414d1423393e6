// `sample` and `score` run end to end by `fusec run` (runtime/exec/sample_node.cpp, score_node.cpp): every
// source's samples land in the records with their names, gold_reward's rewards equal the true score computed
// here independently, a killed sampling run resumes from its shards and ends with the records an uninterrupted
// run writes, batch composition does not change a sample, a sweep samples once, a stage's own model is sampled
// (WRPO's on-policy data), and bad inputs are errors at the `.fuse` span.

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "runtime/data/jsonl.h"
#include "runtime/model/reward_model.h"
#include "tests/runtime/reward_model_support.h"
#include "tests/runtime/run_support.h"

namespace fusec::rt::testing {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::json;

/// Twenty prompts (three shards of eight), each with a gold answer: reverse a short word.
std::string Prompts(int count = 20) {
  std::string lines;
  const std::vector<std::string> words = {"cat", "dog", "sun", "tree", "fish", "milk", "rain", "bird", "star", "moon"};
  for (int i = 0; i < count; ++i) {
    std::string word = words[static_cast<size_t>(i) % words.size()] + std::to_string(i);
    std::string gold(word.rbegin(), word.rend());
    lines += Json{{"id", "p" + std::to_string(i)}, {"prompt", "reverse " + word}, {"gold", gold}}.dump() + "\n";
  }
  return lines;
}

const char* kSources =
    "  let a = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, num_heads: 2, max_position: 64, seed: 1)\n"
    "  let b = new_model(hidden_size: 48, intermediate_size: 96, num_layers: 2, num_heads: 4, num_kv_heads: 2,\n"
    "                    architecture: \"qwen2\", max_position: 64, seed: 2)\n";

/// An experiment that samples `SAMPLE_ARGS` from sources a and b, scores with gold_reward, and trains FuseSFT.
std::string Pipeline(const std::string& sample_args, const std::string& score_args = "noise: 0.0") {
  return std::string("experiment e {\n  target = new_model(hidden_size: 32, intermediate_size: 64, num_layers: 1, "
                     "num_heads: 2, max_position: 64, seed: 3)\n  seed = 5\n") +
         kSources + "  let sampled = sample(prompts: jsonl(\"prompts.jsonl\"), models: {a: a, b: b}" + sample_args +
         ")\n  let scored = score(sampled, by: gold_reward(" + score_args +
         "))\n"
         "  stage sft = fuse_sft(k: 2) {\n    init = target\n    data = scored\n"
         "    optim = adamw(lr: 1e-3)\n    epochs = 1;  batch = 8;  max_len = 64\n  }\n}\n";
}

RunOptions Options(const ScratchDir& dir, const std::string& fuse, const std::string& cache = "cache") {
  WriteFile(dir / "e.fuse", fuse);
  if (!fs::exists(dir / "prompts.jsonl")) WriteFile(dir / "prompts.jsonl", Prompts());
  RunOptions options;
  options.file = dir / "e.fuse";
  options.cache = dir / cache;
  options.out = dir / "run";
  return options;
}

/// The records of every committed cache entry of `kind` (`sample` or `score`), by entry.
std::vector<std::vector<Json>> EntryRecords(const std::string& cache, const std::string& kind) {
  std::vector<std::vector<Json>> entries;
  for (const auto& file : fs::recursive_directory_iterator(cache)) {
    if (file.path().filename() != "records.jsonl") continue;
    if (fs::relative(file.path(), cache).string().rfind("tmp/", 0) == 0) continue;  // staging, not committed
    const std::string manifest = ReadFile((file.path().parent_path() / "manifest.toml").string());
    if (manifest.find("kind = '" + kind + "'") == std::string::npos) continue;
    std::vector<Json> records;
    std::istringstream in(ReadFile(file.path().string()));
    for (std::string line; std::getline(in, line);) records.push_back(Json::parse(line));
    entries.push_back(std::move(records));
  }
  return entries;
}

/// What `command` prints on stdout.
std::string Output(const std::string& command) {
  std::string out;
  if (FILE* pipe = popen(command.c_str(), "r")) {
    char buffer[4096];
    for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) out.append(buffer, n);
    pclose(pipe);
  }
  return out;
}

size_t Count(const std::string& text, const std::string& what) {
  size_t count = 0;
  for (size_t at = text.find(what); at != std::string::npos; at = text.find(what, at + 1)) ++count;
  return count;
}

/// The code points of valid UTF-8 (what the records hold), decoded here rather than by fusec.
std::u32string CodePoints(const std::string& text) {
  std::u32string out;
  for (size_t i = 0; i < text.size();) {
    const auto lead = static_cast<unsigned char>(text[i]);
    const size_t width = lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
    char32_t cp = width == 1 ? lead : width == 2 ? (lead & 0x1F) : width == 3 ? (lead & 0x0F) : (lead & 0x07);
    for (size_t k = 1; k < width; ++k) cp = (cp << 6) | (static_cast<unsigned char>(text[i + k]) & 0x3F);
    out.push_back(cp);
    i += width;
  }
  return out;
}

/// 1 - Levenshtein / longest, over code points, written here rather than taken from fusec.
double Similarity(const std::string& a_text, const std::string& b_text) {
  const std::u32string a = CodePoints(a_text);
  const std::u32string b = CodePoints(b_text);
  std::vector<size_t> row(b.size() + 1);
  for (size_t j = 0; j <= b.size(); ++j) row[j] = j;
  for (size_t i = 1; i <= a.size(); ++i) {
    size_t diagonal = row[0];
    row[0] = i;
    for (size_t j = 1; j <= b.size(); ++j) {
      size_t up = row[j];
      row[j] = std::min({row[j] + 1, row[j - 1] + 1, diagonal + (a[i - 1] == b[j - 1] ? 0 : 1)});
      diagonal = up;
    }
  }
  const size_t longest = std::max({a.size(), b.size(), size_t{1}});
  return 1.0 - static_cast<double>(row[b.size()]) / static_cast<double>(longest);
}

/// Python's str.strip() for the ASCII white space it knows (the sampled texts hold no other white space:
/// U+FFFD, the replacement for bytes that are not UTF-8, is none).
std::string Trim(const std::string& text) {
  const char* space = " \t\n\r\x0b\x0c\x1c\x1d\x1e\x1f";
  const size_t begin = text.find_first_not_of(space);
  if (begin == std::string::npos) return "";
  return text.substr(begin, text.find_last_not_of(space) - begin + 1);
}

TEST(SamplingRun, SamplesEverySourceAndScoresWithTheGoldReward) {
  ScratchDir dir("sampling_run_basic");
  Outcome run = RunFuse(Options(dir, Pipeline(", n: 3, temperature: 0.8, top_p: 0.95, max_new_tokens: 6")));
  ASSERT_EQ(run.status, 0) << run.err;
  EXPECT_NE(run.err.find("sampling `a`"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("sampling `b`"), std::string::npos) << run.err;
  auto scored = EntryRecords(dir / "cache", "score");
  ASSERT_EQ(scored.size(), 1u);
  ASSERT_EQ(scored[0].size(), 20u);
  for (const Json& record : scored[0]) {
    ASSERT_EQ(record["responses"].size(), 6u) << record.dump();
    std::map<std::string, int> per_source;
    for (const Json& response : record["responses"]) {
      ++per_source[response["source"].get<std::string>()];
      EXPECT_LE(response["text"].get<std::string>().size(), 6u * 4) << "at most 6 tokens of at most 4 bytes";
      EXPECT_NEAR(response["reward"].get<double>(),
                  Similarity(Trim(response["text"]), Trim(record["gold"])), 1e-12) << record.dump();
    }
    EXPECT_EQ(per_source, (std::map<std::string, int>{{"a", 3}, {"b", 3}}));
  }
  EXPECT_EQ(scored[0][0]["id"], "p0");
  EXPECT_EQ(scored[0][19]["id"], "p19");
}

TEST(SamplingRun, NoiseIsSeededPerResponseAndKeepExistingKeepsRewards) {
  ScratchDir dir("sampling_run_noise");
  RunOptions options = Options(dir, Pipeline(", n: 2, max_new_tokens: 4", "noise: 0.5, seed: 9"));
  ASSERT_EQ(RunFuse(options).status, 0);
  auto noisy = EntryRecords(dir / "cache", "score");
  ASSERT_EQ(noisy.size(), 1u);
  double sum = 0, sum_sq = 0;
  int count = 0;
  for (const Json& record : noisy[0]) {
    for (const Json& response : record["responses"]) {
      double noise = response["reward"].get<double>() - Similarity(Trim(response["text"]), Trim(record["gold"]));
      sum += noise;
      sum_sq += noise * noise;
      ++count;
    }
  }
  ASSERT_EQ(count, 80);
  const double sd = std::sqrt(sum_sq / count - (sum / count) * (sum / count));
  EXPECT_GT(sd, 0.3) << "noise of sd 0.5";
  EXPECT_LT(sd, 0.7);

  // keep_existing: a prompts file whose first response carries a reward keeps it, the sampled ones are scored.
  ScratchDir kept("sampling_run_keep");
  WriteFile(kept / "prompts.jsonl",
            Json{{"id", "q"}, {"prompt", "reverse ab"}, {"gold", "ba"},
                 {"responses", {{{"source", "old"}, {"text", "zz"}, {"reward", 7.5}}}}}
                    .dump() + "\n");
  std::string fuse = Pipeline(", n: 2, max_new_tokens: 4", "noise: 0.0), keep_existing: true, batch_tokens: 4096");
  // Pipeline() closes gold_reward's parenthesis itself: drop the one after `batch_tokens`.
  fuse.replace(fuse.find("4096))"), 6, "4096)");
  Outcome run = RunFuse(Options(kept, fuse));
  ASSERT_EQ(run.status, 0) << run.err << fuse;
  auto scored = EntryRecords(kept / "cache", "score");
  ASSERT_EQ(scored.size(), 1u);
  ASSERT_EQ(scored[0][0]["responses"].size(), 5u);
  EXPECT_EQ(scored[0][0]["responses"][0]["reward"].get<double>(), 7.5);
  EXPECT_EQ(scored[0][0]["responses"][1]["source"], "a");
}

TEST(SamplingRun, ARunStoppedAfterTwoShardsResumesFromThem) {
  const std::string fuse = Pipeline(", n: 2, temperature: 1.0, max_new_tokens: 6");
  ScratchDir whole("sampling_run_whole");
  ASSERT_EQ(RunFuse(Options(whole, fuse)).status, 0);

  ScratchDir dir("sampling_run_resume");
  RunOptions options = Options(dir, fuse);
  options.stop_after_steps = 2;  // two shards of the six (3 blocks x 2 sources), then stop as if killed
  Outcome stopped = RunFuse(options);
  ASSERT_NE(stopped.status, 0);
  EXPECT_NE(stopped.err.find("stopped after 2 of 6 shards (--stop-after)"), std::string::npos) << stopped.err;
  EXPECT_NE(stopped.err.find("e.fuse:"), std::string::npos) << "the error names the sample's span\n" << stopped.err;
  EXPECT_TRUE(EntryRecords(dir / "cache", "sample").empty());
  // `fusec cache ls` says what is in flight: a sampling step with its shards, not a training checkpoint.
  const std::string ls = Output(std::string(FUSEC_BINARY_DIR) + "/fusec cache ls --cache " + (dir / "cache"));
  EXPECT_NE(ls.find("resumable: a sampling step with 2 shards done (it samples only the rest)"), std::string::npos)
      << ls;

  options.stop_after_steps.reset();
  Outcome resumed = RunFuse(options);
  ASSERT_EQ(resumed.status, 0) << resumed.err;
  EXPECT_NE(resumed.err.find("resuming: 2 of 6 shards were sampled by an earlier run"), std::string::npos)
      << resumed.err;
  EXPECT_NE(resumed.err.find("sampling `a`") , std::string::npos);
  auto a = EntryRecords(whole / "cache", "sample");
  auto b = EntryRecords(dir / "cache", "sample");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0], b[0]) << "a resumed run samples what an uninterrupted one does";
  EXPECT_FALSE(fs::exists(dir / "cache/checkpoints") && !fs::is_empty(dir / "cache/checkpoints"))
      << "the shards are discarded once the step is committed";

  // --restart discards the shards of an interrupted step and samples it whole.
  ScratchDir again("sampling_run_restart");
  RunOptions restart = Options(again, fuse);
  restart.stop_after_steps = 1;
  ASSERT_NE(RunFuse(restart).status, 0);
  restart.stop_after_steps.reset();
  restart.restart = true;
  Outcome restarted = RunFuse(restart);
  ASSERT_EQ(restarted.status, 0) << restarted.err;
  EXPECT_NE(restarted.err.find("--restart: discarding its shards"), std::string::npos) << restarted.err;
  EXPECT_EQ(restarted.err.find("resuming:"), std::string::npos) << restarted.err;
  EXPECT_EQ(EntryRecords(again / "cache", "sample")[0], a[0]);
}

/// The first shard file under `cache`/checkpoints, waiting up to a minute; empty if none appeared.
std::string WaitForShard(const std::string& cache) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  while (std::chrono::steady_clock::now() < deadline) {
    std::error_code ec;
    for (fs::recursive_directory_iterator it(cache + "/checkpoints", ec), end; !ec && it != end; it.increment(ec)) {
      if (it->path().extension() == ".jsonl") return it->path().string();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  }
  return "";
}

TEST(SamplingRun, KilledOrInterruptedSamplingKeepsItsShardsAndEndsAsAnUninterruptedRun) {
  // Long enough to be stopped mid-way: 1200 prompts x 2 samples of up to 24 tokens from each source.
  const std::string fuse = Pipeline(", n: 2, temperature: 1.0, max_new_tokens: 24");
  ScratchDir whole("sampling_run_kill_whole");
  WriteFile(whole / "prompts.jsonl", Prompts(1200));
  ASSERT_EQ(RunFuse(Options(whole, fuse)).status, 0);
  const auto uninterrupted = EntryRecords(whole / "cache", "sample");
  ASSERT_EQ(uninterrupted.size(), 1u);

  for (int signal : {SIGKILL, SIGINT}) {
    ScratchDir dir(signal == SIGKILL ? "sampling_run_kill9" : "sampling_run_sigint");
    WriteFile(dir / "prompts.jsonl", Prompts(1200));
    RunOptions options = Options(dir, fuse);
    pid_t pid = Spawn({std::string(FUSEC_BINARY_DIR) + "/fusec", "run", options.file, "--cache", options.cache, "--out",
                       options.out, "--stdlib", FUSEC_SOURCE_STDLIB},
                      dir / "killed.log");
    ASSERT_FALSE(WaitForShard(options.cache).empty()) << ReadFile(dir / "killed.log");
    kill(pid, signal);
    const int status = WaitFor(pid);
    if (signal == SIGKILL) {
      ASSERT_TRUE(WIFSIGNALED(status));
    } else {
      ASSERT_TRUE(WIFEXITED(status)) << ReadFile(dir / "killed.log");
      EXPECT_EQ(WEXITSTATUS(status), 130);
      EXPECT_NE(ReadFile(dir / "killed.log").find("shards; they are saved"), std::string::npos)
          << ReadFile(dir / "killed.log");
    }
    Outcome resumed = RunFuse(options);
    ASSERT_EQ(resumed.status, 0) << resumed.err;
    EXPECT_NE(resumed.err.find("shards were sampled by an earlier run"), std::string::npos) << resumed.err;
    EXPECT_EQ(EntryRecords(dir / "cache", "sample"), uninterrupted) << "after signal " << signal;
  }
}

TEST(SamplingRun, BatchCompositionDoesNotChangeTheSamples) {
  ScratchDir small("sampling_run_small_batch");
  ScratchDir large("sampling_run_large_batch");
  // 70 positions: one row at a time (a prompt of ~20 tokens + 8 new ones); 8192: every request in one batch.
  ASSERT_EQ(RunFuse(Options(small, Pipeline(", n: 3, max_new_tokens: 8, top_k: 20, batch_tokens: 40"))).status, 0);
  ASSERT_EQ(RunFuse(Options(large, Pipeline(", n: 3, max_new_tokens: 8, top_k: 20, batch_tokens: 8192"))).status, 0);
  auto a = EntryRecords(small / "cache", "sample");
  auto b = EntryRecords(large / "cache", "sample");
  ASSERT_EQ(a.size(), 1u);
  ASSERT_EQ(b.size(), 1u);
  EXPECT_EQ(a[0], b[0]);
}

TEST(SamplingRun, ASweepSamplesOnceAndASecondRunComesFromTheCache) {
  ScratchDir dir("sampling_run_sweep");
  std::string fuse = Pipeline(", n: 2, max_new_tokens: 4");
  fuse.replace(fuse.find("experiment e {"), 14, "experiment e(lr: float > 0 = 1e-3) {");
  fuse.replace(fuse.find("adamw(lr: 1e-3)"), 15, "adamw(lr: lr)");
  fuse += "sweep lrs = e over {lr: [1e-3, 2e-3]}\n";
  RunOptions options = Options(dir, fuse);
  options.out.clear();
  const fs::path cwd = fs::current_path();
  fs::current_path(dir.path());
  Outcome first = RunFuse(options);
  Outcome second = RunFuse(options);
  fs::current_path(cwd);
  ASSERT_EQ(first.status, 0) << first.err;
  EXPECT_EQ(Count(first.err, "sampling `a`"), 1u) << first.err;
  EXPECT_EQ(EntryRecords(dir / "cache", "sample").size(), 1u);
  ASSERT_EQ(second.status, 0) << second.err;
  EXPECT_EQ(Count(second.err, "sampling `"), 0u) << second.err;
  EXPECT_EQ(Count(second.err, "scored "), 0u) << second.err;
}

TEST(SamplingRun, SamplesAStagesOwnModelForOnPolicyData) {
  ScratchDir dir("sampling_run_on_policy");
  std::string fuse = Pipeline(", n: 2, max_new_tokens: 4");
  fuse.insert(fuse.rfind("}"),
              "  let own = score(sample(prompts: jsonl(\"prompts.jsonl\"), models: {target: sft}, n: 2,\n"
              "                         max_new_tokens: 4, keep_responses: false), by: gold_reward(noise: 0.0))\n"
              "  stage po = sft {\n    init = sft\n    data = own\n    select = best\n"
              "    optim = adamw(lr: 1e-3)\n    epochs = 1;  batch = 8;  max_len = 64\n  }\n");
  Outcome run = RunFuse(Options(dir, fuse));
  ASSERT_EQ(run.status, 0) << run.err << fuse;
  EXPECT_NE(run.err.find("sampling `target`"), std::string::npos) << run.err;
  bool found = false;
  for (const auto& records : EntryRecords(dir / "cache", "score")) {
    if (records[0]["responses"][0]["source"] != "target") continue;
    found = true;
    for (const Json& record : records) EXPECT_EQ(record["responses"].size(), 2u);
  }
  EXPECT_TRUE(found);
}

TEST(SamplingRun, ARewardModelScoresEachResponseAsTheReferenceDoes) {
  ScratchDir dir("sampling_run_reward_model");
  Random random(4);
  WriteRewardModel(dir / "rm", TinyConfig("LlamaForSequenceClassification", TokenizerFiles::Bytes), ScoreHead(random),
                   TokenizerFiles::Bytes, 6);
  std::string fuse = Pipeline(", n: 2, temperature: 1.0, max_new_tokens: 6");
  fuse.replace(fuse.find("gold_reward(noise: 0.0)"), 23, "reward_model(\"rm\"), batch_tokens: 200");
  Outcome run = RunFuse(Options(dir, fuse));
  ASSERT_EQ(run.status, 0) << run.err << fuse;
  EXPECT_NE(run.err.find("scoring 80 responses with"), std::string::npos) << run.err;
  auto scored = EntryRecords(dir / "cache", "score");
  ASSERT_EQ(scored.size(), 1u);
  // The reference scores the same conversations, each rendered and tokenized for the reward model.
  RewardModel model = RewardModel::Load(dir / "rm", ir::ChatTemplateName::Auto, torch::kCPU);
  std::vector<RewardInput> inputs;
  std::vector<double> rewards;
  for (const Json& line : scored[0]) {
    std::string error;
    auto record = JsonlReader::ParseLine(line.dump(), JsonlOptions{}, 1, &error);
    ASSERT_TRUE(record) << error;
    for (const Json& response : line["responses"]) {
      auto input = model.Input(*record, response["text"].get<std::string>(), &error);
      ASSERT_TRUE(input) << error;
      inputs.push_back(*input);
      rewards.push_back(response["reward"].get<double>());
    }
  }
  ASSERT_EQ(inputs.size(), 80u);
  const ReferenceScores reference = RunReference(dir / "rm", inputs);
  ASSERT_EQ(reference.scores.size(), rewards.size());
  double lowest = rewards[0], highest = rewards[0];
  for (size_t i = 0; i < rewards.size(); ++i) {
    EXPECT_NEAR(rewards[i], reference.scores[i], 1e-4) << "response " << i;
    lowest = std::min(lowest, rewards[i]);
    highest = std::max(highest, rewards[i]);
  }
  EXPECT_GT(highest - lowest, 1e-2) << "the responses' rewards should differ";
}

TEST(SamplingRun, APromptLongerThanTheBudgetIsAnErrorAtTheSample) {
  ScratchDir dir("sampling_run_budget");
  Outcome run = RunFuse(Options(dir, Pipeline(", n: 1, max_new_tokens: 8, batch_tokens: 12")));
  ASSERT_NE(run.status, 0);
  EXPECT_NE(run.err.find("e.fuse:7:"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("cache positions of one batch (`batch_tokens`)"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("[PositionLimit]"), std::string::npos) << run.err;
  EXPECT_NE(run.err.find("help: raise `batch_tokens` to at least"), std::string::npos) << run.err;

  ScratchDir positions("sampling_run_positions");
  Outcome past = RunFuse(Options(positions, Pipeline(", n: 1, max_new_tokens: 60")));
  ASSERT_NE(past.status, 0);
  EXPECT_NE(past.err.find("positions (`max_position_embeddings`) of its model"), std::string::npos) << past.err;
  EXPECT_NE(past.err.find("prompt `p0`"), std::string::npos) << past.err;
}

TEST(SamplingRun, AMissingSourceAndAnUnknownRewardArchitectureAreErrorsAtTheirSpans) {
  ScratchDir dir("sampling_run_bad_models");
  std::string fuse = Pipeline(", n: 1, max_new_tokens: 4");
  fuse.replace(fuse.find("models: {a: a, b: b}"), 20, "models: {a: a, b: hf_model(\"missing\")}");
  Outcome missing = RunFuse(Options(dir, fuse));
  ASSERT_NE(missing.status, 0);
  EXPECT_NE(missing.err.find("e.fuse:7:"), std::string::npos) << missing.err;
  EXPECT_NE(missing.err.find("missing"), std::string::npos) << missing.err;

  // A reward model whose config names an architecture fusec has no head for.
  fs::create_directories(dir / "rm");
  WriteFile(dir / "rm/config.json",
            R"({"architectures": ["GPT2ForSequenceClassification"], "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 1, "num_attention_heads": 2, "vocab_size": 300, "num_labels": 1})");
  std::string rm = Pipeline(", n: 1, max_new_tokens: 4");
  rm.replace(rm.find("gold_reward(noise: 0.0)"), 23, "reward_model(\"rm\")");
  Outcome unknown = RunFuse(Options(dir, rm, "cache2"));
  ASSERT_NE(unknown.status, 0);
  EXPECT_NE(unknown.err.find("e.fuse:8:"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("GPT2ForSequenceClassification"), std::string::npos) << unknown.err;
  EXPECT_NE(unknown.err.find("LlamaForSequenceClassification"), std::string::npos)
      << "the error names the architectures that are supported\n" << unknown.err;

  // gold_reward on prompts without a gold answer names the prompt.
  ScratchDir no_gold("sampling_run_no_gold");
  WriteFile(no_gold / "prompts.jsonl", Json{{"id", "x1"}, {"prompt", "hello"}}.dump() + "\n");
  Outcome gold = RunFuse(Options(no_gold, Pipeline(", n: 1, max_new_tokens: 4")));
  ASSERT_NE(gold.status, 0);
  EXPECT_NE(gold.err.find("prompt `x1`"), std::string::npos) << gold.err;
  EXPECT_NE(gold.err.find("has none"), std::string::npos) << gold.err;
}

}  // namespace
}  // namespace fusec::rt::testing
