// The type checker and elaborator, through what they produce: checked experiments, stages, rules, weights,
// objectives (unit, loss term, needs), and the diagnostics for the mistakes the level rules catch.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compiler/sema/check.h"
#include "compiler/sema/checked.h"

namespace fusec::sema {
namespace {

struct Result {
  SourceManager sources;
  Diagnostics diagnostics;
  CheckedProgram program;

  std::string Rendered() const { return RenderAll(diagnostics, sources); }
  bool Has(DiagnosticKind kind) const {
    for (const Diagnostic& d : diagnostics.all()) {
      if (d.kind == kind) return true;
    }
    return false;
  }
  const CheckedStage& Stage(const std::string& name, size_t experiment = 0) const {
    for (const CheckedStage& stage : program.experiments.at(experiment).stages) {
      if (stage.name == name) return stage;
    }
    throw std::runtime_error("no stage " + name);
  }
};

std::unique_ptr<Result> CheckText(const std::string& text, const std::string& path = "test/input.fuse") {
  auto result = std::make_unique<Result>();
  CheckOptions options;
  options.texts.emplace_back(path, text);
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  result->program = Check(options, result->sources, result->diagnostics);
  return result;
}

const char* kPrelude = R"(
import std.objectives.{dpo, simpo, rloo, dpo_weight_inside, wrpo, nll}
import std.pairing.{wrpo_triples}
)";

std::string Experiment(const std::string& stages) {
  return std::string(kPrelude) + R"(
experiment e {
  target = hf_model("m")
  let parts = split(jsonl("d.jsonl"), sft: 0.4, po: 0.6)
)" + stages + "\n}\n";
}

TEST(Sema, FuseSftDefaultsMatchThePaper) {
  auto r = CheckText(Experiment("stage sft = fuse_sft { init = target; data = parts.sft }"));
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  const CheckedStage& sft = r->Stage("sft");
  EXPECT_EQ(sft.kinds, (std::vector<std::string>{"fuse_sft", "train"}));
  const auto& selection = std::get<CheckedSelection>(sft.rule);
  EXPECT_EQ(selection.k, 4);
  EXPECT_EQ(selection.scope, ir::Scope::Prompt);
  EXPECT_EQ(ToString(selection.by), "reward");
  EXPECT_EQ(ToString(sft.weight.weight), "softmax(reward / 1.0) over prompt");
  ASSERT_TRUE(sft.objective);
  EXPECT_EQ(sft.objective->name, "nll");
  EXPECT_EQ(sft.objective->unit, ObjectiveUnit::Response);
  EXPECT_FALSE(sft.objective->needs.reference_logp);
  EXPECT_EQ(sft.reference, nullptr);
  EXPECT_EQ(sft.batch, 128);
  EXPECT_EQ(sft.micro_batch, 128);
  EXPECT_EQ(sft.seed, 42);
}

TEST(Sema, FusePoWithDpoUsesTheSftModelAsFrozenReference) {
  auto r = CheckText(Experiment(R"(
  stage sft = fuse_sft { init = target; data = parts.sft }
  stage po = fuse_po(tau: 0.5) { init = sft; data = parts.po; objective = dpo(beta: 10, length_norm: true) }
)"));
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  const CheckedStage& po = r->Stage("po");
  const auto& pairing = std::get<CheckedPairing>(po.rule);
  EXPECT_EQ(pairing.kind, CheckedPairing::Kind::Within);
  EXPECT_EQ(pairing.scope, ir::Scope::Source);
  EXPECT_EQ(ToString(po.weight.weight), "softmax(max(reward) over source / 0.5) over sources");
  EXPECT_EQ(po.objective->unit, ObjectiveUnit::Pair);
  EXPECT_TRUE(po.objective->needs.reference_logp);
  EXPECT_TRUE(po.objective->needs.lengths);
  EXPECT_FALSE(po.objective->needs.weight);  // weight outside the sigmoid
  ASSERT_TRUE(po.reference);
  EXPECT_EQ(ToString(po.reference), "sft");
  EXPECT_EQ(po.depends_on, std::vector<std::string>{"sft"});
  // Dependencies come first.
  EXPECT_EQ(r->program.experiments[0].stages[0].name, "sft");
}

TEST(Sema, ReferenceFreeObjectivesNeedNoReference) {
  auto r = CheckText(Experiment(R"(
  stage a = fuse_po { init = target; data = parts.po; objective = simpo(beta: 2, gamma: 0.5) }
  stage b = fuse_po { init = a; data = parts.po; groups = by source; objective = rloo() }
  stage c = fuse_po { init = b; data = parts.po; groups = by source; objective = rloo(kl: 0.05) }
)"));
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  EXPECT_EQ(r->Stage("a").reference, nullptr);
  // rloo's KL term is behind `if kl > 0`: with kl = 0 the reference is dead code, with kl > 0 it is needed.
  EXPECT_EQ(r->Stage("b").reference, nullptr);
  EXPECT_NE(r->Stage("c").reference, nullptr);
  EXPECT_EQ(r->Stage("b").objective->unit, ObjectiveUnit::GroupOfResponses);
  EXPECT_TRUE(r->Stage("b").objective->needs.groups);
  EXPECT_TRUE(std::holds_alternative<CheckedGrouping>(r->Stage("b").rule));
}

TEST(Sema, WeightInsideTheSigmoidIsAGroupOfPairsObjective) {
  auto r = CheckText(Experiment(R"(
  stage po = fuse_po { init = target; data = parts.po; objective = dpo_weight_inside(beta: 10, length_norm: true) }
)"));
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  const CheckedObjective& objective = *r->Stage("po").objective;
  EXPECT_EQ(objective.unit, ObjectiveUnit::GroupOfPairs);
  EXPECT_TRUE(objective.needs.weight);
  EXPECT_EQ(ToString(objective.loss).find("-log_sigmoid(sum(weight * "), 0u) << ToString(objective.loss);
}

TEST(Sema, WrpoReadsThreeRolesFromItsTriples) {
  auto r = CheckText(Experiment(R"(
  stage w = po { init = target; data = parts.po; pairs = wrpo_triples("target"); objective = wrpo() }
)"));
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  const CheckedStage& w = r->Stage("w");
  EXPECT_EQ(w.objective->names, (std::vector<std::string>{"source_chosen", "chosen", "rejected"}));
  EXPECT_TRUE(w.objective->needs.progress);
  const auto& pairing = std::get<CheckedPairing>(w.rule);
  ASSERT_EQ(pairing.roles.size(), 3u);
  EXPECT_EQ(ToString(pairing.roles[0].where), "source != \"target\"");
  // The same objective on plain pairs lacks a role.
  auto bad = CheckText(Experiment(R"(
  stage w = po { init = target; data = parts.po; objective = wrpo() }
)"));
  EXPECT_TRUE(bad->Has(DiagnosticKind::MissingRole)) << bad->Rendered();
}

TEST(Sema, ObjectiveUnitsMustFitTheStageItems) {
  auto r = CheckText(Experiment("stage s = sft { init = target; data = parts.sft; objective = dpo(beta: 0.1) }"));
  EXPECT_TRUE(r->Has(DiagnosticKind::ObjectiveUnitMismatch)) << r->Rendered();
  auto g = CheckText(Experiment("stage s = fuse_po { init = target; data = parts.po; objective = rloo() }"));
  EXPECT_TRUE(g->Has(DiagnosticKind::ObjectiveUnitMismatch)) << g->Rendered();
}

TEST(Sema, LevelsRefuseMixingResponsesAndPairs) {
  auto r = CheckText("objective bad() { loss = logp(y) - logp(chosen) }\n");
  EXPECT_TRUE(r->Has(DiagnosticKind::LevelMismatch)) << r->Rendered();
  EXPECT_NE(r->Rendered().find("cannot combine with `-` a per-response value with a per-pair value"), std::string::npos)
      << r->Rendered();
  auto group = CheckText("objective bad() { loss = loo_mean(reward(y)) * logp(y) }\n");
  EXPECT_TRUE(group->Has(DiagnosticKind::LossLevel)) << group->Rendered();
  auto nothing = CheckText("objective bad() { loss = sum(1.0) }\n");
  EXPECT_TRUE(nothing->Has(DiagnosticKind::InvalidReduction)) << nothing->Rendered();
  auto constant = CheckText("objective bad(b: float = 1) { loss = b * 2 }\n");
  EXPECT_TRUE(constant->Has(DiagnosticKind::LossLevel)) << constant->Rendered();
}

TEST(Sema, WeightsOverPairsMustAggregatePoolFields) {
  auto bad = CheckText(Experiment(R"(
  stage po = fuse_po { init = target; data = parts.po; objective = dpo(beta: 0.1); weight = softmax(reward) over prompt }
)"));
  EXPECT_TRUE(bad->Has(DiagnosticKind::LevelMismatch)) << bad->Rendered();
  auto good = CheckText(Experiment(R"(
  stage po = fuse_po { init = target; data = parts.po; objective = dpo(beta: 0.1)
                       weight = softmax(reward(chosen) - reward(rejected)) over prompt }
)"));
  EXPECT_FALSE(good->diagnostics.has_errors()) << good->Rendered();
  auto varying = CheckText(Experiment(R"(
  stage s = fuse_sft { init = target; data = parts.sft; weight = softmax(reward) over sources }
)"));
  EXPECT_TRUE(varying->Has(DiagnosticKind::LevelMismatch)) << varying->Rendered();
}

TEST(Sema, ADataRuleInALayerReplacesTheBaseRule) {
  auto r = CheckText(Experiment(R"(
  stage po = fuse_po { init = target; data = parts.po; groups = by source; objective = rloo() }
)"));
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  EXPECT_TRUE(std::holds_alternative<CheckedGrouping>(r->Stage("po").rule));
  auto both = CheckText(Experiment(R"(
  stage po = fuse_po { init = target; data = parts.po; groups = by source; select = best; objective = rloo() }
)"));
  EXPECT_TRUE(both->Has(DiagnosticKind::ConflictingFields)) << both->Rendered();
}

TEST(Sema, EnumNamesSharedBetweenEnumsConvert) {
  auto r = CheckText(std::string(kPrelude) + R"(
experiment e {
  target = hf_model("m", chat: auto)
  device = auto
  stage s = sft { init = target; data = jsonl("d.jsonl"); precision = auto }
}
)");
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  EXPECT_EQ(ToString(r->program.experiments[0].target), "hf_model(path: \"m\", chat: auto)");
  EXPECT_EQ(r->program.experiments[0].device, ir::DeviceName::Auto);
}

TEST(Sema, SweepsExpandToOneExperimentPerPointWithArgumentsChecked) {
  auto r = CheckText(std::string(kPrelude) + R"(
experiment t(tau: float > 0 = 1.0, seed: int = 1) {
  target = hf_model("m")
  seed = seed
  stage po = fuse_po(tau: tau) { init = target; data = jsonl("d.jsonl"); objective = dpo(beta: 0.1) }
}
sweep grid = t over {tau: [0.1, 1.0], seed: [1, 2, 3]}
experiment one = t(tau: 0.5)
)");
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  ASSERT_EQ(r->program.experiments.size(), 7u);
  EXPECT_EQ(r->program.experiments[0].name, "grid[tau=0.1,seed=1]");
  EXPECT_EQ(r->program.experiments[5].name, "grid[tau=1.0,seed=3]");
  EXPECT_EQ(r->program.experiments[5].seed, 3);
  EXPECT_EQ(r->program.experiments[5].sweep, "grid");
  EXPECT_EQ(r->program.experiments[6].name, "one");
  EXPECT_EQ(ToString(r->program.experiments[6].stages[0].weight.weight),
            "softmax(max(reward) over source / 0.5) over sources");

  auto bad = CheckText(std::string(kPrelude) + R"(
experiment t(tau: float > 0 = 1.0) {
  target = hf_model("m")
  stage po = fuse_po(tau: tau) { init = target; data = jsonl("d.jsonl"); objective = dpo(beta: 0.1) }
}
sweep grid = t over {tau: [0.1, 0]}
)");
  ASSERT_EQ(bad->diagnostics.error_count(), 1u) << bad->Rendered();
  EXPECT_NE(bad->Rendered().find("in sweep `grid` at point `tau=0`"), std::string::npos) << bad->Rendered();
  EXPECT_EQ(bad->program.experiments.size(), 1u);
}

TEST(Sema, GridFilesAreReadWithToml) {
  auto dir = std::filesystem::temp_directory_path() / "fusec_grid_test";
  std::filesystem::create_directories(dir);
  std::ofstream(dir / "grid.toml") << "# taus\ntau = [0.1, 0.3]\nseed = [1, 2]\n";
  std::ofstream(dir / "bad.toml") << "tua = [0.1]\n";
  std::string body = std::string(kPrelude) + R"(
experiment t(tau: float > 0 = 1.0, seed: int = 1) {
  target = hf_model("m")
  seed = seed
  stage po = fuse_po(tau: tau) { init = target; data = jsonl("d.jsonl"); objective = dpo(beta: 0.1) }
}
)";
  auto r = CheckText(body + "sweep s = t over grid(\"grid.toml\")\n", (dir / "a.fuse").string());
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  ASSERT_EQ(r->program.experiments.size(), 4u);
  EXPECT_EQ(r->program.experiments[3].name, "s[tau=0.3,seed=2]");
  auto bad = CheckText(body + "sweep s = t over grid(\"bad.toml\")\n", (dir / "b.fuse").string());
  EXPECT_NE(bad->Rendered().find("bad.toml:1:1: error: `t` has no parameter `tua`"), std::string::npos)
      << bad->Rendered();
  EXPECT_NE(bad->Rendered().find("did you mean `tau`?"), std::string::npos);
}

TEST(Sema, StageCyclesAreReported) {
  auto r = CheckText(Experiment(R"(
  stage a = sft { init = b; data = parts.sft }
  stage b = sft { init = a; data = parts.sft }
)"));
  EXPECT_TRUE(r->Has(DiagnosticKind::StageCycle)) << r->Rendered();
  auto self = CheckText(Experiment("stage a = sft { init = a; data = parts.sft }"));
  EXPECT_NE(self->Rendered().find("stage `a` depends on itself"), std::string::npos) << self->Rendered();
}

TEST(Sema, TemplatesAreCheckedWithoutInstances) {
  auto r = CheckText(std::string(kPrelude) + R"(
experiment t(beta: float > 0 = 0.1) {
  target = hf_model("m")
  stage po = fuse_po { init = target; data = jsonl("d.jsonl"); objective = dpo(beta: beta); epochs = 0 }
}
)");
  EXPECT_TRUE(r->Has(DiagnosticKind::OutOfRange)) << r->Rendered();
  EXPECT_TRUE(r->program.experiments.empty());
}

TEST(Sema, UserObjectivesAndFunctionsWork) {
  auto r = CheckText(std::string(kPrelude) + R"(
let logratio(r) = logp(r) - ref_logp(r)
objective hinge(beta: float > 0 = 0.1) {
  loss = relu(1 - beta * (logratio(chosen) - logratio(rejected)))
}
experiment e {
  target = hf_model("m")
  stage po = po { init = target; data = jsonl("d.jsonl"); objective = hinge }
}
)");
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  const CheckedObjective& objective = *r->Stage("po").objective;
  EXPECT_EQ(ToString(objective.loss),
            "relu(1 - 0.1 * (logp(chosen) - ref_logp(chosen) - (logp(rejected) - ref_logp(rejected))))");
  EXPECT_EQ(objective.needs.logp_of, (std::vector<std::string>{"chosen", "rejected"}));
  auto recursive = CheckText("let f(x) = f(x)\nobjective o() { loss = f(logp(y)) }\n");
  EXPECT_TRUE(recursive->Has(DiagnosticKind::CyclicDefinition)) << recursive->Rendered();
}

TEST(Sema, UserImportsResolveRelativeToTheImportingFile) {
  auto dir = std::filesystem::temp_directory_path() / "fusec_import_test";
  std::filesystem::create_directories(dir / "lib");
  std::ofstream(dir / "lib" / "common.fuse") << "let lr = 3e-6\nexperiment inner { target = hf_model(\"m\"); eval = evaluate(data: jsonl(\"x\")) }\n";
  auto r = CheckText(std::string(kPrelude) + R"(
import "lib/common.fuse" as common
experiment e {
  target = hf_model("m")
  stage s = sft { init = target; data = jsonl("d.jsonl"); optim = adamw(lr: common.lr) }
}
)",
                     (dir / "main.fuse").string());
  ASSERT_FALSE(r->diagnostics.has_errors()) << r->Rendered();
  // Experiments of imported modules are checked but do not run.
  ASSERT_EQ(r->program.experiments.size(), 1u);
  EXPECT_DOUBLE_EQ(r->Stage("s").optim.lr, 3e-6);
}

}  // namespace
}  // namespace fusec::sema
