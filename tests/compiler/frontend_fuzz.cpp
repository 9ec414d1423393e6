#include "frontend_fuzz.h"

#include "compiler/diag/diagnostics.h"
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
  if (!diagnostics.has_errors()) out += sema::PrintProgram(program, sources);
  return out;
}

}  // namespace fusec
