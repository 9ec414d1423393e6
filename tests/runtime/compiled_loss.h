// Graphs and loss graphs for tests, compiled from .fuse by the real compiler (and its whole pass pipeline,
// as the runtime receives them).
#pragma once

#include <gtest/gtest.h>

#include <string>

#include "compiler/lower/lower.h"
#include "compiler/passes/passes.h"
#include "compiler/sema/check.h"

namespace fusec::rt {

/// The graph of a .fuse text, as the compiler lowers it (and optimises it, with `optimise`).
inline ir::Graph CompileFuse(const std::string& text, bool optimise) {
  SourceManager sources;
  Diagnostics diagnostics;
  CheckOptions options;
  options.texts.emplace_back("test.fuse", text);
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  sema::CheckedProgram program = Check(options, sources, diagnostics);
  EXPECT_FALSE(diagnostics.has_errors()) << RenderAll(diagnostics, sources);
  if (!optimise) return Lower(program);
  PipelineOptions pipeline;
  pipeline.verify_each = true;
  return RunPipeline(Lower(program), pipeline);
}

/// The loss graph of the `po` stage (or `sft`) of an experiment, after the whole pass pipeline, as the
/// runtime receives it.
inline ir::LossGraph CompiledLoss(const std::string& declarations, const std::string& stage_body,
                           const std::string& stage_kind = "fuse_po", const std::string& stage = "po") {
  std::string text =
      "import std.objectives.{nll, dpo, simpo, ipo, cdpo, dpo_nll, rloo, wrpo, dpo_weight_inside}\n"
      "import std.pairing.{wrpo_triples}\n" +
      declarations + "\nexperiment e {\n  target = hf_model(\"m\")\n  data = jsonl(\"d.jsonl\")\n" +
      "  stage sft = fuse_sft { init = target }\n" + "  stage po = " + stage_kind + " {\n    init = sft\n" + stage_body +
      "\n  }\n  stage nll_sum = sft {\n    init = target\n    objective = nll(token_mean: false)\n  }\n}\n";
  ir::Graph graph = CompileFuse(text, /*optimise=*/true);
  for (const ir::Node& node : graph.nodes) {
    if (node.kind() == ir::NodeKind::Train && node.stages.front() == "e/" + stage) return node.as<ir::Train>().loss;
  }
  ADD_FAILURE() << "no train node for " << stage;
  return {};
}

/// The requirements the compiler inferred for the same stage.
inline ir::Requirements CompiledNeeds(const ir::LossGraph& loss) { return RequirementsOf(loss); }

}  // namespace fusec::rt
