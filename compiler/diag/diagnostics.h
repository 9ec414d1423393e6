// Diagnostics: what every phase reports, and how it is printed.
//
// Phases never print and never throw for bad input: they add a Diagnostic and carry on with a poisoned value,
// so one run reports every independent error of a file. The collection drops exact repeats (same kind, place
// and message), which arise naturally when a template is checked once on its own and once per instance.
//
// The rendering follows Carbon and rustc, with Elm-style suggestions:
//
//   experiments/x.fuse:12:15: error: unknown objective `simpo2` [UnknownObjective]
//     objective = simpo2(beta: 2.0)
//                 ^~~~~~
//   help: did you mean `simpo`?
//
// Messages are lower case without a trailing period, quote code in backticks and describe what was observed;
// the fix goes in a `help:` line, related places in `note:` lines that carry their own snippet. The runtime's
// errors (runtime/support/run_error.h) go through the same renderer, RenderReport(), so a failed stage reads
// like a failed check.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <string>
#include <string_view>
#include <tuple>
#include <vector>

#include "compiler/source/source.h"

namespace fusec {

enum class DiagnosticKind : uint8_t {
#define FUSEC_DIAGNOSTIC(Name, Severity) Name,
#include "compiler/diag/diagnostic_kind.def"
#undef FUSEC_DIAGNOSTIC
};

enum class Severity : uint8_t { Error, Warning };

std::string_view DiagnosticKindName(DiagnosticKind kind);
Severity DefaultSeverity(DiagnosticKind kind);
/// All kinds, in declaration order (for tests that check every kind is covered).
const std::vector<DiagnosticKind>& AllDiagnosticKinds();

struct DiagnosticNote {
  enum class Level : uint8_t { Note, Help };
  Level level = Level::Note;
  SourceSpan span;  // invalid: a note without a snippet
  std::string message;
};

struct Diagnostic {
  DiagnosticKind kind;
  Severity severity;
  SourceSpan span;
  std::string message;
  std::vector<DiagnosticNote> notes;
};

/// Adds notes to the diagnostic just reported. Notes on a dropped duplicate are dropped with it.
class DiagnosticBuilder {
 public:
  explicit DiagnosticBuilder(Diagnostic* target) : target_(target) {}
  DiagnosticBuilder& Note(SourceSpan span, std::string message);
  DiagnosticBuilder& Note(std::string message) { return Note(SourceSpan{}, std::move(message)); }
  DiagnosticBuilder& Help(std::string message);

 private:
  Diagnostic* target_;  // null when the diagnostic was a duplicate
};

class Diagnostics {
 public:
  DiagnosticBuilder Report(DiagnosticKind kind, SourceSpan span, std::string message);

  const std::deque<Diagnostic>& all() const { return diagnostics_; }
  size_t error_count() const { return error_count_; }
  size_t warning_count() const { return diagnostics_.size() - error_count_; }
  bool has_errors() const { return error_count_ > 0; }

 private:
  // A deque: appending never moves earlier diagnostics, so a builder stays valid across later reports.
  std::deque<Diagnostic> diagnostics_;
  std::set<std::tuple<DiagnosticKind, SourceSpan, std::string>> seen_;
  size_t error_count_ = 0;
};

/// Renders one diagnostic with its snippets, notes and help lines; ends with a newline.
std::string Render(const Diagnostic& diagnostic, const SourceManager& sources);
/// The renderer behind Render(const Diagnostic&), shared with the runtime's errors (runtime/support/run_error.h)
/// so both read the same: the `severity: message [kind]` line, located with a snippet when `span` is valid,
/// else prefixed by `place` (a location outside the sources, such as `data.jsonl:2`) unless that is empty;
/// then the notes in order.
std::string RenderReport(Severity severity, std::string_view kind, SourceSpan span, std::string_view place,
                         std::string_view message, const std::vector<DiagnosticNote>& notes,
                         const SourceManager& sources);
/// Renders all diagnostics in the order they were reported.
std::string RenderAll(const Diagnostics& diagnostics, const SourceManager& sources);
/// "2 errors, 1 warning" style summary; empty when there is nothing.
std::string Summary(const Diagnostics& diagnostics);

/// Backtick-quotes a piece of code for a message.
std::string Quote(std::string_view code);

}  // namespace fusec
