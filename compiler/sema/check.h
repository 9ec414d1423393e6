// The sema phase: parsed files to a checked program.
//
// Check() loads the named files and everything they import (the stdlib is found without configuration),
// resolves names, evaluates everything that is known before training, checks types, ranges, required and
// unknown fields, stage dependencies and the levels of data-dependent expressions, and returns every
// experiment that would run. Problems go to `diagnostics`; the program holds what could be checked.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "compiler/diag/diagnostics.h"
#include "compiler/sema/checked.h"
#include "compiler/source/source.h"

namespace fusec {

struct CheckOptions {
  std::vector<std::string> files;
  /// Files given as text (tests, fuzzing): a path, used for display and to resolve relative imports, and
  /// the text. They are checked after `files`.
  std::vector<std::pair<std::string, std::string>> texts;
  /// `--set` overrides (`po.optim.lr=1e-6`), applied to the named files before they are checked.
  std::vector<std::string> overrides;
  /// The stdlib directory; empty means DefaultStdlibDir().
  std::string stdlib_dir;
};

sema::CheckedProgram Check(const CheckOptions& options, SourceManager& sources, Diagnostics& diagnostics);

/// Where the stdlib is when nothing says otherwise: $FUSEC_STDLIB, else `../share/fusec/stdlib` next to the
/// running binary, else the source tree fusec was built from.
std::string DefaultStdlibDir();

}  // namespace fusec
