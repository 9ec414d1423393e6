// Lowering and each pass of the pipeline: what it changes, that the meaning of losses is kept, and that the
// verifier holds after it.
#include <gtest/gtest.h>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>

#include "compiler/cache/cache.h"
#include "compiler/lower/lower.h"
#include "compiler/passes/passes.h"
#include "compiler/sema/check.h"

namespace fusec {
namespace {

struct Compiled {
  SourceManager sources;
  Diagnostics diagnostics;
  sema::CheckedProgram program;
  ir::Graph graph;
};

std::unique_ptr<Compiled> Compile(const std::string& text) {
  auto compiled = std::make_unique<Compiled>();
  CheckOptions options;
  options.texts.emplace_back("test/passes.fuse", text);
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  compiled->program = Check(options, compiled->sources, compiled->diagnostics);
  EXPECT_FALSE(compiled->diagnostics.has_errors()) << RenderAll(compiled->diagnostics, compiled->sources);
  compiled->graph = Lower(compiled->program);
  return compiled;
}

const char* kImports = "import std.objectives.{nll, dpo, simpo, ipo, cdpo, rloo, dpo_weight_inside}\n";

std::string Experiment(const std::string& name, const std::string& stages) {
  return "experiment " + name + " {\n  target = hf_model(\"m\")\n  data = jsonl(\"d.jsonl\")\n" + stages + "\n}\n";
}

size_t Count(const ir::Graph& graph, ir::NodeKind kind) {
  return std::count_if(graph.nodes.begin(), graph.nodes.end(), [&](const ir::Node& n) { return n.kind() == kind; });
}

const ir::Node& OnlyTrain(const ir::Graph& graph, const std::string& stage_suffix) {
  for (const ir::Node& node : graph.nodes) {
    if (node.kind() != ir::NodeKind::Train) continue;
    for (const std::string& stage : node.stages) {
      if (stage.ends_with(stage_suffix)) return node;
    }
  }
  throw std::runtime_error("no train node for " + stage_suffix);
}

void ExpectVerified(const ir::Graph& graph) {
  std::vector<std::string> problems = ir::Verify(graph);
  std::string all;
  for (const std::string& problem : problems) all += problem + "\n";
  EXPECT_TRUE(problems.empty()) << all;
}

/// Evaluates a per-item loss graph on scalar inputs, for checking that passes keep its value.
double Evaluate(const ir::LossGraph& loss, const std::map<std::string, double>& inputs) {
  std::vector<double> v(loss.ops.size());
  for (size_t i = 0; i < loss.ops.size(); ++i) {
    const ir::LossOp& op = loss.ops[i];
    auto a = [&](size_t k) { return v[static_cast<size_t>(op.args[k])]; };
    switch (op.kind) {
      case ir::LossOpKind::Const:
        v[i] = op.value;
        break;
      case ir::LossOpKind::Logp:
      case ir::LossOpKind::RefLogp:
      case ir::LossOpKind::Length:
      case ir::LossOpKind::Reward:
        v[i] = inputs.at(std::string(ir::Spelling(op.kind)) + "(" + op.role + ")");
        break;
      case ir::LossOpKind::Weight:
        v[i] = inputs.at("weight");
        break;
      case ir::LossOpKind::Progress:
        v[i] = inputs.at("progress");
        break;
      case ir::LossOpKind::Op: {
        using ir::OpKind;
        const std::string_view name = ir::Spelling(op.op);  // the test's own meaning of each operator
        if (op.op == OpKind::Neg) v[i] = -a(0);
        if (op.op == OpKind::Not) v[i] = a(0) == 0 ? 1.0 : 0.0;
        if (op.args.size() == 2 && name == "+") v[i] = a(0) + a(1);
        if (op.op == OpKind::Sub) v[i] = a(0) - a(1);
        if (name == "*") v[i] = a(0) * a(1);
        if (name == "/") v[i] = a(0) / a(1);
        if (name == "^") v[i] = std::pow(a(0), a(1));
        if (name == ">") v[i] = a(0) > a(1);
        if (name == "log_sigmoid") v[i] = -std::log1p(std::exp(-a(0)));
        if (name == "relu") v[i] = std::max(0.0, a(0));
        if (name == "log") v[i] = std::log(a(0));
        break;
      }
      case ir::LossOpKind::Select:
        v[i] = a(0) != 0 ? a(1) : a(2);
        break;
      case ir::LossOpKind::Reduce:  // one member per group in these tests
      case ir::LossOpKind::LooMean:
        v[i] = a(0);
        break;
    }
  }
  return v[static_cast<size_t>(loss.result)];
}

const std::map<std::string, double> kPairInputs = {
    {"logp(chosen)", -12.5}, {"ref_logp(chosen)", -13.0}, {"len(chosen)", 7},  {"reward(chosen)", 0.9},
    {"logp(rejected)", -9.0}, {"ref_logp(rejected)", -8.25}, {"len(rejected)", 4}, {"reward(rejected)", 0.2},
    {"weight", 0.25},       {"progress", 0.4},
};

TEST(Lower, MakesTheNodesOfEachStage) {
  auto c = Compile(std::string(kImports) +
                   Experiment("e", "  stage sft = fuse_sft { init = target }\n"
                                   "  stage po = fuse_po { init = sft; objective = dpo(beta: 0.1) }"));
  const ir::Graph& g = c->graph;
  ExpectVerified(g);
  // The target is lowered once per use; merging removes the repeats later.
  EXPECT_EQ(Count(g, ir::NodeKind::LoadModel), 2u);
  EXPECT_EQ(Count(g, ir::NodeKind::LoadData), 1u);
  EXPECT_EQ(Count(g, ir::NodeKind::Select), 1u);
  EXPECT_EQ(Count(g, ir::NodeKind::Pairs), 1u);
  EXPECT_EQ(Count(g, ir::NodeKind::Weight), 2u);
  EXPECT_EQ(Count(g, ir::NodeKind::Train), 2u);
  EXPECT_EQ(Count(g, ir::NodeKind::Export), 2u);
  EXPECT_EQ(Count(g, ir::NodeKind::RefLogprobs), 0u);  // hoisting comes later
  const ir::Node& po = OnlyTrain(g, "/po");
  ASSERT_NE(po.FindInput("reference"), nullptr);
  EXPECT_EQ(g.at(po.FindInput("init")->node).kind(), ir::NodeKind::Train);
  EXPECT_EQ(g.at(po.FindInput("items")->node).kind(), ir::NodeKind::Weight);
  EXPECT_TRUE(po.hash.empty());
  ASSERT_EQ(g.experiments.size(), 1u);
  EXPECT_EQ(g.experiments[0].stages.size(), 2u);
  EXPECT_EQ(g.experiments[0].exports[1].first, "po");
  EXPECT_EQ(g.at(g.experiments[0].exports[1].second).as<ir::Export>().path, "runs/e/export/po");
}

// A rule or weighting that reads `len` takes the stage's init model as its `tokenizer` input (token counts
// are the init model's tokenizer's); one that does not has no such input, so its hash is unchanged.
TEST(Lower, ARuleReadingLenTakesTheStagesModelAsItsTokenizer) {
  auto c = Compile(std::string(kImports) +
                   Experiment("e", "  stage sft = fuse_sft { init = target; select = all where len <= 512 }\n"
                                   "  stage po = fuse_po {\n    init = sft\n    objective = dpo(beta: 0.1)\n"
                                   "    weight = 1 / len(chosen)\n  }\n"
                                   "  stage again = sft { init = po }"));
  const ir::Graph& g = c->graph;
  ExpectVerified(g);
  std::map<std::string, const ir::Node*> rule_of;
  for (const ir::Node& node : g.nodes) {
    if (node.kind() == ir::NodeKind::Select || node.kind() == ir::NodeKind::Pairs) rule_of[node.stages.at(0)] = &node;
  }
  ASSERT_EQ(rule_of.size(), 3u);
  const ir::Input* sft_tokenizer = rule_of.at("e/sft")->FindInput("tokenizer");
  ASSERT_NE(sft_tokenizer, nullptr);
  EXPECT_EQ(g.at(sft_tokenizer->node).kind(), ir::NodeKind::LoadModel);
  const ir::Input* po_tokenizer = rule_of.at("e/po")->FindInput("tokenizer");  // read by the weighting only
  ASSERT_NE(po_tokenizer, nullptr);
  EXPECT_EQ(po_tokenizer->node, OnlyTrain(g, "/po").FindInput("init")->node);
  EXPECT_EQ(rule_of.at("e/again")->FindInput("tokenizer"), nullptr);

  ir::Graph no_tokenizer = g;
  for (ir::Node& node : no_tokenizer.nodes) {
    std::erase_if(node.inputs, [](const ir::Input& input) { return input.slot == "tokenizer"; });
  }
  std::vector<std::string> problems = ir::Verify(no_tokenizer);
  ASSERT_EQ(problems.size(), 2u);
  EXPECT_NE(problems[0].find("reads `len` but has no tokenizer input"), std::string::npos) << problems[0];
  EXPECT_NE(problems[1].find("reads `len` but its items come from a rule node without a tokenizer input"),
            std::string::npos)
      << problems[1];
}

TEST(FoldConstants, RemovesDeadBranchesAndIdentitiesAndKeepsTheValue) {
  auto c = Compile(std::string(kImports) + Experiment("e", "  stage po = po { init = target; objective = dpo(beta: 0.5) }"));
  const ir::LossGraph& before = OnlyTrain(c->graph, "/po").as<ir::Train>().loss;
  ir::LossGraph after = FoldConstants(before);
  // `/ (if length_norm then len(r) else 1)` with length_norm false: the select, the `1`, the division and
  // the unread `len` operations disappear.
  auto has = [](const ir::LossGraph& loss, ir::LossOpKind kind) {
    return std::any_of(loss.ops.begin(), loss.ops.end(), [&](const ir::LossOp& op) { return op.kind == kind; });
  };
  EXPECT_TRUE(has(before, ir::LossOpKind::Select));
  EXPECT_TRUE(has(before, ir::LossOpKind::Length));
  EXPECT_FALSE(has(after, ir::LossOpKind::Select));
  EXPECT_FALSE(has(after, ir::LossOpKind::Length));
  EXPECT_LT(after.ops.size(), before.ops.size());
  EXPECT_NEAR(Evaluate(after, kPairInputs), Evaluate(before, kPairInputs), 1e-12);
  // Constants fold through arithmetic.
  ir::LossGraph arithmetic;
  arithmetic.roles = {"y"};
  auto constant = [](double value) {
    ir::LossOp op;
    op.value = value;
    return op;
  };
  auto times = [](int a, int b) {
    ir::LossOp op;
    op.kind = ir::LossOpKind::Op;
    op.op = ir::OpKind::Mul;
    op.args = {a, b};
    return op;
  };
  ir::LossOp logp;
  logp.kind = ir::LossOpKind::Logp;
  logp.role = "y";
  arithmetic.ops = {constant(2.0), constant(3.0), times(0, 1), logp, times(2, 3)};
  arithmetic.result = 4;
  ir::LossGraph folded = FoldConstants(arithmetic);
  EXPECT_EQ(folded.ToString(), "%0 = 6.0\n%1 = logp(y)\n%2 = * %0, %1\nresult %2\n");
}

TEST(EliminateCommonSubexpressions, SharesRepeatedOperationsAndKeepsTheValue) {
  auto c = Compile(std::string(kImports) +
                   Experiment("e", "  stage po = po { init = target; objective = cdpo(beta: 0.5, eps: 0.2) }"));
  const ir::LossGraph& before = OnlyTrain(c->graph, "/po").as<ir::Train>().loss;
  ir::LossGraph folded = FoldConstants(before);
  ir::LossGraph shared = EliminateCommonSubexpressions(folded);
  // cdpo reads `margin` twice: lowering copies it, elimination shares it again.
  EXPECT_LT(shared.ops.size(), folded.ops.size());
  size_t logp_chosen = std::count_if(shared.ops.begin(), shared.ops.end(), [](const ir::LossOp& op) {
    return op.kind == ir::LossOpKind::Logp && op.role == "chosen";
  });
  EXPECT_EQ(logp_chosen, 1u);
  EXPECT_NEAR(Evaluate(shared, kPairInputs), Evaluate(before, kPairInputs), 1e-12);
  EXPECT_EQ(EliminateCommonSubexpressions(shared).ToString(), shared.ToString());  // idempotent
}

TEST(InferRequirements, ReadsWhatTheOptimisedLossUses) {
  auto c = Compile(std::string(kImports) +
                   Experiment("e", "  stage a = fuse_po { init = target; groups = by source; objective = rloo() }\n"
                                   "  stage b = fuse_po { init = a; groups = by source; objective = rloo(kl: 0.1) }\n"
                                   "  stage s = po { init = b; objective = simpo() }"));
  ir::Graph g = InferRequirements(EliminateCommonSubexpressions(FoldConstants(std::move(c->graph))));
  ExpectVerified(g);
  const ir::Requirements& a = *OnlyTrain(g, "/a").as<ir::Train>().requirements;
  EXPECT_TRUE(a.reference_logp.empty());
  EXPECT_TRUE(a.groups);
  EXPECT_TRUE(a.rewards);
  EXPECT_EQ(a.policy_logp, std::vector<std::string>{"y"});
  EXPECT_EQ(OnlyTrain(g, "/b").as<ir::Train>().requirements->reference_logp, std::vector<std::string>{"y"});
  const ir::Requirements& s = *OnlyTrain(g, "/s").as<ir::Train>().requirements;
  EXPECT_EQ(s.policy_logp, (std::vector<std::string>{"chosen", "rejected"}));
  EXPECT_TRUE(s.lengths);
  EXPECT_FALSE(s.weight_in_loss);
}

TEST(HoistReferences, ReplacesTheReferenceModelWithPrecomputedLogprobs) {
  auto c = Compile(std::string(kImports) +
                   Experiment("e", "  stage sft = fuse_sft { init = target }\n"
                                   "  stage po = fuse_po { init = sft; objective = dpo(beta: 0.1) }"));
  ir::Graph g = HoistReferences(InferRequirements(FoldConstants(std::move(c->graph))));
  ExpectVerified(g);
  const ir::Node& po = OnlyTrain(g, "/po");
  EXPECT_EQ(po.FindInput("reference"), nullptr);
  ASSERT_NE(po.FindInput("ref_logprobs"), nullptr);
  const ir::Node& ref = g.at(po.FindInput("ref_logprobs")->node);
  EXPECT_EQ(ref.kind(), ir::NodeKind::RefLogprobs);
  EXPECT_EQ(g.at(ref.FindInput("model")->node).kind(), ir::NodeKind::Train);  // the frozen sft model
  EXPECT_EQ(g.at(ref.FindInput("items")->node).kind(), ir::NodeKind::Pairs);  // items, not weights
  EXPECT_EQ(ref.as<ir::RefLogprobs>().roles, (std::vector<std::string>{"chosen", "rejected"}));
  // The SFT stage reads no reference and gets no node.
  EXPECT_EQ(Count(g, ir::NodeKind::RefLogprobs), 1u);
}

TEST(HashNodes, HashesDependOnContentNotNames) {
  auto make = [](const std::string& name, const std::string& lr) {
    auto c = Compile(std::string(kImports) +
                     Experiment(name, "  stage sft = fuse_sft { init = target; optim = adamw(lr: " + lr + ") }"));
    return HashNodes(std::move(c->graph));
  };
  ir::Graph a = make("first", "1e-5");
  ir::Graph b = make("second", "1e-5");
  ir::Graph c = make("first", "2e-5");
  ExpectVerified(a);
  for (const ir::Node& node : a.nodes) EXPECT_EQ(node.hash.size(), 64u);
  EXPECT_EQ(OnlyTrain(a, "/sft").hash, OnlyTrain(b, "/sft").hash);
  EXPECT_NE(OnlyTrain(a, "/sft").hash, OnlyTrain(c, "/sft").hash);
  // A change of content breaks verification of the stale hash.
  ir::Graph tampered = a;
  for (ir::Node& node : tampered.nodes) {
    if (auto* train = node.get_if<ir::Train>()) train->spec.epochs = 9;
  }
  EXPECT_FALSE(ir::Verify(tampered).empty());
}

TEST(MergeEqualNodes, ATauSweepSharesItsSftStageAndReferenceLogprobs) {
  auto c = Compile(std::string(kImports) + R"(
experiment fuserl(tau: float > 0 = 1.0) {
  target = hf_model("m")
  data = jsonl("d.jsonl")
  stage sft = fuse_sft { init = target }
  stage po = fuse_po(tau: tau) { init = sft; objective = dpo(beta: 10, length_norm: true) }
}
sweep taus = fuserl over {tau: [0.1, 0.5, 1.0, 2.0]}
)");
  PipelineOptions options;
  options.verify_each = true;
  ir::Graph g = RunPipeline(std::move(c->graph), options);
  EXPECT_EQ(Count(g, ir::NodeKind::Train), 5u);  // one FuseSFT, four FusePO
  EXPECT_EQ(Count(g, ir::NodeKind::RefLogprobs), 1u);
  EXPECT_EQ(Count(g, ir::NodeKind::LoadModel), 1u);
  EXPECT_EQ(Count(g, ir::NodeKind::Weight), 5u);
  EXPECT_EQ(Count(g, ir::NodeKind::Export), 8u);  // every point exports into its own run directory
  const ir::Node& sft = OnlyTrain(g, "[tau=0.1]/sft");
  EXPECT_EQ(sft.stages.size(), 4u);
  std::set<std::string> hashes;
  for (const ir::Node& node : g.nodes) EXPECT_TRUE(hashes.insert(node.hash).second) << "two nodes share a hash";
  ASSERT_EQ(g.experiments.size(), 4u);
  EXPECT_EQ(g.experiments[0].stages[0].second, g.experiments[3].stages[0].second);
  EXPECT_NE(g.experiments[0].stages[1].second, g.experiments[3].stages[1].second);
}

TEST(MarkCached, MarksNodesWithCompleteEntriesAndWarnsOfCorruptOnes) {
  auto c = Compile(std::string(kImports) + Experiment("e", "  stage sft = fuse_sft { init = target }"));
  PipelineOptions options;
  ir::Graph g = RunPipeline(std::move(c->graph), options);
  auto dir = std::filesystem::temp_directory_path() / "fusec_mark_cached";
  std::filesystem::remove_all(dir);
  StageCache cache(dir.string());
  const ir::Node& sft = OnlyTrain(g, "/sft");
  std::string staging = cache.BeginEntry(sft.hash);
  std::ofstream(std::filesystem::path(staging) / "model.bin") << "weights";
  std::string error;
  CacheManifest manifest;
  manifest.hash = sft.hash;
  manifest.kind = "train";
  manifest.params = ir::ParamsJson(sft).dump();
  manifest.fusec_version = "test";
  ASSERT_TRUE(cache.CommitEntry(staging, manifest, &error)) << error;

  Diagnostics diagnostics;
  ir::Graph marked = MarkCached(g, cache, diagnostics);
  ExpectVerified(marked);
  for (const ir::Node& node : marked.nodes) EXPECT_EQ(node.cached, node.hash == sft.hash);
  EXPECT_TRUE(diagnostics.all().empty());

  std::ofstream(std::filesystem::path(cache.EntryPath(sft.hash)) / "model.bin") << "truncated";
  Diagnostics after_corruption;
  ir::Graph remarked = MarkCached(g, cache, after_corruption);
  for (const ir::Node& node : remarked.nodes) EXPECT_FALSE(node.cached);
  ASSERT_EQ(after_corruption.all().size(), 1u);
  EXPECT_EQ(after_corruption.all().front().kind, DiagnosticKind::CacheEntryCorrupt);
  EXPECT_NE(after_corruption.all().front().message.find("model.bin"), std::string::npos);
}

TEST(Verify, FindsMalformedGraphs) {
  auto c = Compile(std::string(kImports) + Experiment("e", "  stage po = po { init = target; objective = dpo(beta: 0.1) }"));
  ir::Graph ok = c->graph;
  ExpectVerified(ok);

  ir::Graph forward = ok;
  forward.nodes[0].inputs.push_back({"data", ir::NodeId{3}});
  EXPECT_FALSE(ir::Verify(forward).empty());

  ir::Graph wrong_type = ok;
  for (ir::Node& node : wrong_type.nodes) {
    if (node.kind() == ir::NodeKind::Train) node.inputs[1].node = node.inputs[0].node;  // a model as items
  }
  auto problems = ir::Verify(wrong_type);
  ASSERT_FALSE(problems.empty());
  EXPECT_NE(problems[0].find("input `items` is model, expected weighted items"), std::string::npos) << problems[0];

  ir::Graph no_reference = InferRequirements(ok);
  for (ir::Node& node : no_reference.nodes) {
    if (node.kind() != ir::NodeKind::Train) continue;
    std::erase_if(node.inputs, [](const ir::Input& input) { return input.slot == "reference"; });
  }
  problems = ir::Verify(no_reference);
  ASSERT_EQ(problems.size(), 1u);
  EXPECT_NE(problems[0].find("reads ref_logp but has no reference"), std::string::npos) << problems[0];

  ir::Graph bad_loss = ok;
  for (ir::Node& node : bad_loss.nodes) {
    if (auto* train = node.get_if<ir::Train>()) train->loss.ops[0].args = {5};
  }
  EXPECT_FALSE(ir::Verify(bad_loss).empty());
}

TEST(Pipeline, PrintsTheGraphAfterEveryPass) {
  auto c = Compile(std::string(kImports) + Experiment("e", "  stage sft = fuse_sft { init = target }"));
  std::ostringstream dump;
  PipelineOptions options;
  options.print_after_all = true;
  options.dump = &dump;
  options.sources = &c->sources;
  RunPipeline(std::move(c->graph), options);
  for (const char* pass : {"lower", "fold-constants", "eliminate-common-subexpressions", "infer-requirements",
                           "hoist-references", "hash", "merge-equal-nodes"}) {
    EXPECT_NE(dump.str().find(std::string("; *** IR after ") + pass + " ***"), std::string::npos) << pass;
  }
}

}  // namespace
}  // namespace fusec
