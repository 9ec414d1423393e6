#include "frontend_fuzz.h"

#include "compiler/diag/diagnostics.h"
#include "compiler/ir/ir.h"
#include "compiler/lower/lower.h"
#include "compiler/passes/passes.h"
#include "compiler/sema/check.h"

namespace fusec {

std::string RunFrontEnd(std::string_view input) {
  SourceManager sources;
  Diagnostics diagnostics;
  CheckOptions options;
  options.texts.emplace_back("fuzz/input.fuse", std::string(input));
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  sema::CheckedProgram program = Check(options, sources, diagnostics);
  std::string out = RenderAll(diagnostics, sources);
  if (diagnostics.has_errors()) return out;
  out += sema::PrintProgram(program, sources);
  // Whatever checks clean must also lower and pass verification after every pass; a malformed graph
  // throws std::logic_error, which fails the fuzz run.
  PipelineOptions pipeline;
  pipeline.verify_each = true;
  out += ir::PrintGraph(RunPipeline(Lower(program), pipeline), sources);
  return out;
}

}  // namespace fusec
