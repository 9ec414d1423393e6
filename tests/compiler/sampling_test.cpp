// Source models in the language: `sample` and `score` lowered into sample and score nodes with every setting
// resolved per source, the checks that use a dataset's known sources, the stage a sample reads its model from,
// and a sweep that shares one sample node (issue 16).
#include <gtest/gtest.h>

#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <map>
#include <nlohmann/json.hpp>

#include "compiler/lower/lower.h"
#include "compiler/passes/passes.h"
#include "compiler/sema/check.h"
#include "run_fusec.h"

namespace fusec {
namespace {

struct Compiled {
  SourceManager sources;
  Diagnostics diagnostics;
  sema::CheckedProgram program;
  ir::Graph graph;
};

std::unique_ptr<Compiled> Compile(const std::string& text, bool expect_clean = true) {
  auto compiled = std::make_unique<Compiled>();
  CheckOptions options;
  options.texts.emplace_back("test/sampling.fuse", text);
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  compiled->program = Check(options, compiled->sources, compiled->diagnostics);
  if (expect_clean) {
    EXPECT_FALSE(compiled->diagnostics.has_errors()) << RenderAll(compiled->diagnostics, compiled->sources);
    if (!compiled->diagnostics.has_errors()) compiled->graph = Lower(compiled->program);
  }
  return compiled;
}

std::string Diagnosed(const std::string& text) {
  auto compiled = Compile(text, /*expect_clean=*/false);
  return RenderAll(compiled->diagnostics, compiled->sources);
}

std::vector<const ir::Node*> OfKind(const ir::Graph& graph, ir::NodeKind kind) {
  std::vector<const ir::Node*> nodes;
  for (const ir::Node& node : graph.nodes) {
    if (node.kind() == kind) nodes.push_back(&node);
  }
  return nodes;
}

const char* kImports = "import std.objectives.{dpo}\n";

/// One experiment whose first stage trains on `data` (a dataset expression).
std::string WithData(const std::string& lets, const std::string& data, int64_t seed = 42) {
  return std::string(kImports) + "experiment e {\n  target = hf_model(\"m\")\n  seed = " + std::to_string(seed) +
         "\n" + lets + "\n  stage sft = fuse_sft { init = target; data = " + data + " }\n}\n";
}

TEST(SampleLowering, SourcesInOrderWithOverridesAndSeedsResolvedPerSource) {
  auto c = Compile(WithData(R"(
  let sampled = sample(prompts: jsonl("p.jsonl"),
                       models: {gemma: hf_model("g"),
                                qwen: {model: hf_model("q"), temperature: 0.7, top_p: 0.8, repetition_penalty: 1.05},
                                code: {model: hf_model("c"), n: 8, seed: 3, top_k: 20, max_new_tokens: 512}},
                       temperature: 0.8, top_p: 0.95, max_new_tokens: 4k, seeds: [13, 21, 42, 79, 100]))",
                            "sampled"));
  std::vector<const ir::Node*> samples = OfKind(c->graph, ir::NodeKind::Sample);
  ASSERT_EQ(samples.size(), 1u);
  const ir::Node& node = *samples[0];
  const auto& sample = node.as<ir::Sample>();
  ASSERT_EQ(sample.sources.size(), 3u);
  EXPECT_EQ(sample.sources[0].name, "gemma");
  EXPECT_EQ(sample.sources[1].name, "qwen");
  EXPECT_EQ(sample.sources[2].name, "code");
  const ir::SamplingSettings& gemma = sample.sources[0].settings;
  EXPECT_EQ(gemma.n, 5);  // the length of the call's seeds
  EXPECT_DOUBLE_EQ(gemma.temperature, 0.8);
  EXPECT_DOUBLE_EQ(gemma.top_p, 0.95);
  EXPECT_FALSE(gemma.top_k.has_value());
  EXPECT_DOUBLE_EQ(gemma.repetition_penalty, 1.0);
  EXPECT_EQ(gemma.max_new_tokens, 4096);
  EXPECT_EQ(gemma.seeds, (std::vector<int64_t>{13, 21, 42, 79, 100}));
  const ir::SamplingSettings& qwen = sample.sources[1].settings;
  EXPECT_DOUBLE_EQ(qwen.temperature, 0.7);
  EXPECT_DOUBLE_EQ(qwen.top_p, 0.8);
  EXPECT_DOUBLE_EQ(qwen.repetition_penalty, 1.05);
  EXPECT_EQ(qwen.seeds, gemma.seeds);
  const ir::SamplingSettings& code = sample.sources[2].settings;
  EXPECT_EQ(code.n, 8);
  EXPECT_EQ(code.seeds, std::vector<int64_t>(8, 3));  // its own seed, once per sample
  EXPECT_EQ(code.top_k, 20);
  EXPECT_EQ(code.max_new_tokens, 512);
  EXPECT_DOUBLE_EQ(code.temperature, 0.8);
  EXPECT_TRUE(sample.keep_responses);
  EXPECT_FALSE(sample.drop_identical);
  EXPECT_EQ(sample.batch_tokens, 16384);

  // Inputs: the prompts, then each source's model in order.
  ASSERT_EQ(node.inputs.size(), 4u);
  EXPECT_EQ(node.inputs[0].slot, "prompts");
  EXPECT_EQ(c->graph.at(node.inputs[0].node).kind(), ir::NodeKind::LoadData);
  std::vector<std::string> paths;
  for (size_t i = 1; i < node.inputs.size(); ++i) {
    EXPECT_EQ(node.inputs[i].slot, "model");
    const auto& model = std::get<ir::HfModelSpec>(c->graph.at(node.inputs[i].node).as<ir::LoadModel>().model);
    paths.push_back(model.path);
  }
  EXPECT_EQ(paths, (std::vector<std::string>{"g", "q", "c"}));
  EXPECT_TRUE(ir::Verify(c->graph).empty());
  // The node's span is the call's (line 6), not the later use of the name `sampled`.
  EXPECT_EQ(ir::SpanText(c->sources, node.span), "test/sampling.fuse:6:17");
}

TEST(SampleLowering, TheDefaultSeedIsTheExperimentsAndNIsFive) {
  auto c = Compile(WithData("", "sample(prompts: jsonl(\"p.jsonl\"), models: {a: hf_model(\"a\")})", /*seed=*/7));
  std::vector<const ir::Node*> samples = OfKind(c->graph, ir::NodeKind::Sample);
  ASSERT_EQ(samples.size(), 1u);
  const ir::SamplingSettings& a = samples[0]->as<ir::Sample>().sources[0].settings;
  EXPECT_EQ(a.n, 5);
  EXPECT_EQ(a.seeds, std::vector<int64_t>(5, 7));
  EXPECT_DOUBLE_EQ(a.temperature, 1.0);
  EXPECT_EQ(a.max_new_tokens, 256);
}

TEST(SampleLowering, ASourceModelSharesTheLoadNodeOfTheTarget) {
  auto c = Compile(WithData("", "sample(prompts: jsonl(\"p.jsonl\"), models: {own: target, other: hf_model(\"m\")})"));
  ir::Graph g = RunPipeline(std::move(c->graph), PipelineOptions{});
  EXPECT_EQ(OfKind(g, ir::NodeKind::LoadModel).size(), 1u);
  const ir::Node& sample = *OfKind(g, ir::NodeKind::Sample)[0];
  ASSERT_EQ(sample.inputs.size(), 3u);
  EXPECT_EQ(sample.inputs[1].node, sample.inputs[2].node);
  EXPECT_EQ(g.at(sample.inputs[1].node).kind(), ir::NodeKind::LoadModel);
}

TEST(ScoreLowering, RewardModelAndGoldScorers) {
  auto c = Compile(WithData(R"(
  let rm = score(jsonl("d.jsonl"), by: reward_model("models/armo", chat: llama3), batch_tokens: 8k)
  let gold = score(rm, by: gold_reward(noise: 0.2, seed: 3), keep_existing: true))",
                            "gold"));
  std::vector<const ir::Node*> scores = OfKind(c->graph, ir::NodeKind::Score);
  ASSERT_EQ(scores.size(), 2u);
  const auto& first = scores[0]->as<ir::Score>();
  const auto& reward_model = std::get<ir::RewardModelSpec>(first.scorer);
  EXPECT_EQ(reward_model.path, "models/armo");
  EXPECT_EQ(reward_model.chat, ir::ChatTemplateName::Llama3);
  EXPECT_FALSE(first.keep_existing);
  EXPECT_EQ(first.batch_tokens, 8192);
  EXPECT_TRUE(ir::NeedsDevice(*scores[0]));
  const auto& second = scores[1]->as<ir::Score>();
  const auto& gold = std::get<ir::GoldRewardSpec>(second.scorer);
  EXPECT_DOUBLE_EQ(gold.noise, 0.2);
  EXPECT_EQ(gold.seed, 3);
  EXPECT_TRUE(second.keep_existing);
  EXPECT_FALSE(ir::NeedsDevice(*scores[1]));
  EXPECT_EQ(scores[1]->inputs[0].node.value,
            static_cast<uint32_t>(std::find_if(c->graph.nodes.begin(), c->graph.nodes.end(),
                                               [&](const ir::Node& n) { return &n == scores[0]; }) -
                                  c->graph.nodes.begin()));
}

TEST(SampleFromStage, WrpoSamplesTheSftStagesModelAndWaitsForIt) {
  // The po stage is declared first: its data reads sft's model, so sft is ordered (and lowered) before it.
  auto c = Compile(std::string(kImports) + R"(
experiment wrpo {
  target = hf_model("m")
  let parts = split(jsonl("d.jsonl"), sft: 0.4, po: 0.6, seed: 1)
  stage po = po {
    init = sft
    data = score(sample(prompts: parts.po, models: {target: sft}, n: 2), by: gold_reward(), keep_existing: true)
    objective = dpo(beta: 0.1)
  }
  stage sft = sft { init = target; data = parts.sft }
}
)");
  ASSERT_EQ(c->program.experiments.size(), 1u);
  const auto& stages = c->program.experiments[0].stages;
  ASSERT_EQ(stages.size(), 2u);
  EXPECT_EQ(stages[0].name, "sft");
  EXPECT_EQ(stages[1].depends_on, (std::vector<std::string>{"sft"}));
  const ir::Node& sample = *OfKind(c->graph, ir::NodeKind::Sample)[0];
  EXPECT_EQ(sample.inputs[1].node, c->graph.experiments[0].stages[0].second);  // sft's train node
  EXPECT_EQ(c->graph.at(sample.inputs[1].node).kind(), ir::NodeKind::Train);
  EXPECT_TRUE(ir::Verify(c->graph).empty());
}

TEST(SampleFromStage, ASampleOfALaterStageIsACycle) {
  std::string out = Diagnosed(std::string(kImports) + R"(
experiment e {
  target = hf_model("m")
  stage a = sft { init = target; data = sample(prompts: jsonl("p.jsonl"), models: {b: b}) }
  stage b = sft { init = a; data = jsonl("d.jsonl") }
}
)");
  EXPECT_NE(out.find("[StageCycle]"), std::string::npos) << out;
  EXPECT_NE(out.find("reads its `data` from here"), std::string::npos) << out;
}

TEST(KnownSources, FollowSamplesScoresSplitsAndFilters) {
  auto sources_of = [&](const std::string& lets, const std::string& name) {
    auto compiled = Compile(WithData(lets, name));
    const sema::Value& data = *compiled->program.experiments.at(0).stages.at(0).data;
    return sema::KnownSources(data);
  };
  const std::string lets = R"(
  let sampled = sample(prompts: jsonl("p.jsonl"), models: {a: hf_model("a"), b: hf_model("b")}, keep_responses: false)
  let parts = split(score(sampled, by: gold_reward()), x: 0.5, y: 0.5)
  let kept = keep_sources(parts.x, ["b"])
  let with_own = sample(prompts: jsonl("p.jsonl"), models: {a: hf_model("a")})
  let resampled = sample(prompts: kept, models: {c: hf_model("c")}))";
  EXPECT_EQ(sources_of(lets, "sampled"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sources_of(lets, "parts.y"), (std::vector<std::string>{"a", "b"}));
  EXPECT_EQ(sources_of(lets, "kept"), (std::vector<std::string>{"b"}));
  EXPECT_EQ(sources_of(lets, "resampled"), (std::vector<std::string>{"b", "c"}));  // the prompts' own kept
  EXPECT_EQ(sources_of(lets, "with_own"), std::nullopt);  // keeps the file's responses, whose sources it says
  EXPECT_EQ(sources_of(lets, "jsonl(\"d.jsonl\")"), std::nullopt);
}

TEST(KnownSources, KeepSourcesOfASourceTheSampleDoesNotHaveIsAnError) {
  std::string out = Diagnosed(WithData(
      "  let s = sample(prompts: jsonl(\"p.jsonl\"), models: {gemma: hf_model(\"g\")}, keep_responses: false)",
      "keep_sources(s, [\"gema\"])"));
  EXPECT_NE(out.find("[UnknownSource]"), std::string::npos) << out;
  EXPECT_NE(out.find("did you mean `gemma`?"), std::string::npos) << out;
  // A file's sources are not known: nothing to check.
  EXPECT_EQ(Diagnosed(WithData("", "keep_sources(jsonl(\"d.jsonl\"), [\"gema\"])")).find("[UnknownSource]"),
            std::string::npos);
}

TEST(KnownSources, WhereSourceEqualsAnUnknownNameInARuleIsAnError) {
  std::string lets =
      "  let s = sample(prompts: jsonl(\"p.jsonl\"), models: {gemma: hf_model(\"g\"), qwen: hf_model(\"q\")}, "
      "keep_responses: false)";
  std::string program = std::string(kImports) + "experiment e {\n  target = hf_model(\"m\")\n" + lets +
                        "\n  stage sft = fuse_sft { init = target; data = s; select = top_k(1) where source == \"qwn\" }\n"
                        "  stage po = fuse_po { init = sft; data = s; objective = dpo(beta: 0.1)\n"
                        "    pairs = within prompt { chosen: argmax(reward) where source != \"gemma\", rejected: "
                        "argmin(reward) where source == \"lama\" } }\n}\n";
  std::string out = Diagnosed(program);
  EXPECT_NE(out.find("stage `sft` compares `source` with \"qwn\""), std::string::npos) << out;
  EXPECT_NE(out.find("did you mean `qwen`?"), std::string::npos) << out;
  EXPECT_NE(out.find("stage `po` compares `source` with \"lama\""), std::string::npos) << out;
  EXPECT_EQ(out.find("\"gemma\", which"), std::string::npos) << out;  // a source it has
}

TEST(KnownSources, ATemplatesUnknownSourceNameIsCheckedInEachInstanceOnly) {
  std::string out = Diagnosed(std::string(kImports) + R"(
experiment t(src: string) {
  target = hf_model("m")
  let s = sample(prompts: jsonl("p.jsonl"), models: {a: target, b: target}, keep_responses: false)
  stage sft = fuse_sft { init = target; data = s; select = top_k(1) where source == src }
}
experiment good = t(src: "a")
experiment bad = t(src: "c")
)");
  EXPECT_EQ(out.find("<string>"), std::string::npos) << out;
  EXPECT_NE(out.find("compares `source` with \"c\""), std::string::npos) << out;
  EXPECT_NE(out.find("in experiment `bad`"), std::string::npos) << out;
  EXPECT_EQ(out.find("with \"a\""), std::string::npos) << out;
}

TEST(SampleErrors, EachNamesItsSpan) {
  auto diagnosed = [](const std::string& data) {
    return Diagnosed(WithData("", data));
  };
  std::string unknown = diagnosed("sample(prompts: jsonl(\"p\"), models: {q: {model: hf_model(\"q\"), temprature: 0.7}})");
  EXPECT_NE(unknown.find("source `q` of `sample` has no setting `temprature` [UnknownField]"), std::string::npos)
      << unknown;
  EXPECT_NE(unknown.find("did you mean `temperature`?"), std::string::npos) << unknown;
  EXPECT_NE(unknown.find("sampling.fuse:6:111:"), std::string::npos) << unknown;  // at the field's name

  std::string mismatch = diagnosed("sample(prompts: jsonl(\"p\"), models: {a: hf_model(\"a\")}, n: 4, seeds: [1, 2, 3])");
  EXPECT_NE(mismatch.find("`n: 4` samples per prompt, but `seeds` lists 3 [InconsistentSettings]"), std::string::npos)
      << mismatch;
  std::string source_mismatch =
      diagnosed("sample(prompts: jsonl(\"p\"), models: {a: {model: hf_model(\"a\"), n: 8}}, seeds: [1, 2, 3])");
  EXPECT_NE(source_mismatch.find("source `a` takes `n: 8` samples per prompt, but the call's `seeds` lists 3"),
            std::string::npos)
      << source_mismatch;

  std::string empty = diagnosed("sample(prompts: jsonl(\"p\"), models: {})");
  EXPECT_NE(empty.find("`sample` needs at least one source model [OutOfRange]"), std::string::npos) << empty;

  std::string twice = diagnosed("sample(prompts: jsonl(\"p\"), models: {a: hf_model(\"a\"), a: hf_model(\"b\")})");
  EXPECT_NE(twice.find("field `a` is given twice [DuplicateField]"), std::string::npos) << twice;

  std::string not_model = diagnosed("sample(prompts: jsonl(\"p\"), models: {a: \"models/a\"})");
  EXPECT_NE(not_model.find("source `a` of `sample` expects a model"), std::string::npos) << not_model;

  std::string no_model = diagnosed("sample(prompts: jsonl(\"p\"), models: {a: {temperature: 0.5}})");
  EXPECT_NE(no_model.find("source `a` has settings but no `model` [MissingField]"), std::string::npos) << no_model;

  std::string range = diagnosed("sample(prompts: jsonl(\"p\"), models: {a: {model: hf_model(\"a\"), top_p: 0}})");
  EXPECT_NE(range.find("`top_p` of source `a`"), std::string::npos) << range;
  EXPECT_NE(range.find("[OutOfRange]"), std::string::npos) << range;

  std::string not_record = diagnosed("sample(prompts: jsonl(\"p\"), models: hf_model(\"a\"))");
  EXPECT_NE(not_record.find("expects a record"), std::string::npos) << not_record;

  std::string scorer = diagnosed("score(jsonl(\"p\"), by: hf_model(\"a\"))");
  EXPECT_NE(scorer.find("expects `reward_model`"), std::string::npos) << scorer;

  std::string noise = diagnosed("score(jsonl(\"p\"), by: gold_reward(noise: -1))");
  EXPECT_NE(noise.find("[OutOfRange]"), std::string::npos) << noise;
}

TEST(SampleSweep, ATauSweepOverFusePoOnSampledDataHasOneSampleNode) {
  auto c = Compile(std::string(kImports) + R"(
experiment fuserl(tau: float > 0 = 1.0) {
  target = hf_model("m")
  let sampled = score(sample(prompts: jsonl("p.jsonl"), models: {a: hf_model("a"), b: hf_model("b")}, n: 2),
                      by: reward_model("rm"))
  data = sampled
  stage sft = fuse_sft { init = target }
  stage po = fuse_po(tau: tau) { init = sft; objective = dpo(beta: 10, length_norm: true) }
}
sweep taus = fuserl over {tau: [0.1, 0.5, 1.0]}
)");
  EXPECT_EQ(OfKind(c->graph, ir::NodeKind::Sample).size(), 3u);  // one per point before merging
  PipelineOptions options;
  options.verify_each = true;
  ir::Graph g = RunPipeline(std::move(c->graph), options);
  EXPECT_EQ(OfKind(g, ir::NodeKind::Sample).size(), 1u);
  EXPECT_EQ(OfKind(g, ir::NodeKind::Score).size(), 1u);
  EXPECT_EQ(OfKind(g, ir::NodeKind::Train).size(), 4u);  // one FuseSFT, three FusePO
}

TEST(SampleSweep, ASeedSweepSamplesOncePerSeed) {
  auto c = Compile(std::string(kImports) + R"(
experiment e(s: int = 1) {
  target = hf_model("m")
  seed = s
  stage sft = fuse_sft { init = target; data = sample(prompts: jsonl("p.jsonl"), models: {a: hf_model("a")}) }
}
sweep seeds = e over {s: [1, 2]}
)");
  ir::Graph g = RunPipeline(std::move(c->graph), PipelineOptions{});
  EXPECT_EQ(OfKind(g, ir::NodeKind::Sample).size(), 2u);
}

TEST(NeedsDevice, ModelForwardsOnly) {
  auto c = Compile(WithData("", "sample(prompts: jsonl(\"p.jsonl\"), models: {a: hf_model(\"a\")})"));
  for (const ir::Node& node : c->graph.nodes) {
    bool expected = node.kind() == ir::NodeKind::Sample || node.kind() == ir::NodeKind::Train;
    EXPECT_EQ(ir::NeedsDevice(node), expected) << ir::Spelling(node.kind());
  }
}

TEST(ScoreFingerprint, AChangedRewardModelDirectoryChangesTheScoreNodesHashOnly) {
  namespace fs = std::filesystem;
  fs::path dir = fs::temp_directory_path() / ("fusec_sampling_test_" + std::to_string(::getpid()));
  fs::remove_all(dir);
  fs::create_directories(dir / "m");
  fs::create_directories(dir / "rm");
  std::ofstream(dir / "d.jsonl") << "";
  std::ofstream(dir / "m" / "config.json") << "{}";
  std::ofstream(dir / "rm" / "config.json") << "{}";
  std::ofstream(dir / "e.fuse") << "experiment e {\n  target = hf_model(\"m\")\n"
                                   "  stage s = sft { init = target; data = score(jsonl(\"d.jsonl\"), by: "
                                   "reward_model(\"rm\")) }\n}\n";
  auto plan = [&] {
    test_support::Outcome outcome =
        test_support::Fusec({"plan", "--emit=json", "--cache", "no-cache", (dir / "e.fuse").string()});
    EXPECT_EQ(outcome.status, 0) << outcome.err;
    std::map<std::string, nlohmann::json> by_kind;
    nlohmann::json graph = nlohmann::json::parse(outcome.out);
    for (const nlohmann::json& node : graph["nodes"]) {
      by_kind[node["kind"].get<std::string>()] = node;
    }
    return by_kind;
  };
  auto before = plan();
  ASSERT_EQ(before.count("score"), 1u);
  std::string fingerprint = before["score"]["params"]["scorer"]["fingerprint"].get<std::string>();
  EXPECT_EQ(fingerprint.rfind("files:", 0), 0u) << fingerprint;
  std::ofstream(dir / "rm" / "model.safetensors") << "weights";
  auto after = plan();
  EXPECT_NE(after["score"]["params"]["scorer"]["fingerprint"], before["score"]["params"]["scorer"]["fingerprint"]);
  EXPECT_NE(after["score"]["hash"], before["score"]["hash"]);
  EXPECT_EQ(after["load_model"]["hash"], before["load_model"]["hash"]);
  EXPECT_EQ(after["load_data"]["hash"], before["load_data"]["hash"]);

  // A missing reward-model directory: `check` fails at the `reward_model(...)` call.
  fs::remove_all(dir / "rm");
  test_support::Outcome check = test_support::Fusec({"check", (dir / "e.fuse").string()});
  EXPECT_NE(check.status, 0);
  EXPECT_NE(check.err.find("e.fuse:3:69: error: the reward-model directory `rm` does not exist"), std::string::npos)
      << check.err;
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fusec
