// The parse phase: .fuse text to ast::Module.
//
// The only place that sees ANTLR. It runs the generated lexer and parser (grammar/Fuse.g4), turns ANTLR's
// error reports into fusec diagnostics, and transforms the parse tree into the project's AST at once, so no
// ANTLR type leaves this folder. Input of any kind yields a Module and diagnostics, never a crash: invalid
// UTF-8 is reported before ANTLR sees the text, and nesting is bounded in the parser and in the transformer.
#pragma once

#include <optional>

#include "compiler/ast/ast.h"
#include "compiler/diag/diagnostics.h"
#include "compiler/source/source.h"

namespace fusec {

/// Parses one file. The result is complete when no error was reported for the file; otherwise it holds
/// what could be recovered and later phases should not run on it.
ast::Module Parse(const SourceManager& sources, FileId file, Diagnostics& diagnostics);

/// Parses a file holding one command-line override (`po.optim.lr=1e-6`); nullopt after reporting an error.
std::optional<ast::Setting> ParseSetting(const SourceManager& sources, FileId file, Diagnostics& diagnostics);

}  // namespace fusec
