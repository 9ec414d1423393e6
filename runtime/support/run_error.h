// The runtime's one error currency: a failure that comes from the experiment, rendered as the checker's
// diagnostics are.
//
// A RunError has a kind from run_error_kind.def, a plain message, the span of the `.fuse` graph node that
// failed (when the thrower knows it; the executor adds it on the way up), the place outside the sources where
// the problem lies (`data.jsonl:2`, a cache entry, an output path), notes and a fix. It derives from
// std::runtime_error with what() the plain message, so code that only logs keeps working. Render() goes through
// compiler/diag's RenderReport(), the checker's own renderer, so the format is the one users already read:
//
//   x.fuse:12:15: error: response `chosen` is empty [DataLine]
//     data po = jsonl("po.jsonl")
//               ^~~~~~~~~~~~~~~~~
//   note: at po.jsonl:2
//   note: prompt `p7` has no text in `responses[0]`
//   help: fix the line, or pass --skip-bad-lines
//
// With a span the place is the first note (`note: at PLACE`), so the location line stays the `.fuse` one that
// editors jump to; without a span (or without the sources, as at the top of main()) the place prefixes the
// message line instead (`po.jsonl:2: error: ... [DataLine]`), and with neither the line is `error: ... [Kind]`.
// Notes follow in the order they were added, then the help line. Messages follow conventions.md: lower case,
// no trailing period, code in backticks.
//
// The builders return RunError&, so `throw RunError(kind, message).At(span).Help(fix);` throws a copy of the
// complete error (the static type is RunError, nothing is sliced).
#pragma once

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

#include "compiler/diag/diagnostics.h"
#include "compiler/source/source.h"

namespace fusec::rt {

enum class RunErrorKind : uint8_t {
#define FUSEC_RUN_ERROR(Name) Name,
#include "runtime/support/run_error_kind.def"
#undef FUSEC_RUN_ERROR
};

/// The kind's name as printed in brackets: "DataLine".
std::string_view RunErrorKindName(RunErrorKind kind);
/// All kinds, in declaration order (for tests that check every kind).
const std::vector<RunErrorKind>& AllRunErrorKinds();

class RunError : public std::runtime_error {  // what() is the plain message
 public:
  RunError(RunErrorKind kind, std::string message);

  /// The `.fuse` span of the graph node that failed; replaces an earlier one. An invalid span is no location.
  RunError& At(SourceSpan span);
  /// The place outside the sources, e.g. "data.jsonl:2"; replaces an earlier one.
  RunError& Place(std::string place);
  /// A note without a snippet, printed after the place.
  RunError& Note(std::string note);
  /// A note with its own snippet (another part of the `.fuse` file, e.g. the rule that was evaluated).
  RunError& Note(SourceSpan span, std::string note);
  /// The fix, printed last as `help:`; replaces an earlier one.
  RunError& Help(std::string help);

  RunErrorKind kind() const { return kind_; }
  const std::string& message() const { return message_; }
  SourceSpan span() const { return span_; }
  const std::string& place() const { return place_; }                  // empty: none
  const std::vector<DiagnosticNote>& notes() const { return notes_; }  // level Note, in order
  const std::string& help() const { return help_; }                    // empty: none

 private:
  RunErrorKind kind_;
  std::string message_;
  SourceSpan span_;
  std::string place_;
  std::vector<DiagnosticNote> notes_;
  std::string help_;
};

/// Renders like the checker's diagnostics (the same code path), `[Kind]` from RunErrorKindName; ends with a
/// newline. Spans whose file `sources` does not hold are treated as no location, so rendering never throws
/// for a bad span.
std::string Render(const RunError& error, const SourceManager& sources);
/// The plain form, for when the sources are gone (the top of main()): spans are left out, the place leads.
std::string Render(const RunError& error);

/// The runtime's exit statuses, fusec's own (compiler/driver/driver.h; repeated here because the runtime builds
/// without the compiler): 0 done, 1 bad input or a failed stage, 2 usage errors, 3 a bug in fusec.
inline constexpr int kExitOk = 0;
inline constexpr int kExitErrors = 1;
inline constexpr int kExitUsage = 2;
inline constexpr int kExitInternal = 3;  // an [Internal] error, or an exception that escaped
inline constexpr int kExitInterrupted = 130;  // stopped by SIGINT or SIGTERM after writing a checkpoint (128 + 2)

/// The exit status a run that stopped with `error` ends with: 3 for an [Internal] error, 130 when SIGINT or
/// SIGTERM stopped it, else 1.
inline int ExitStatusOf(const RunError& error) {
  if (error.kind() == RunErrorKind::Interrupted) return kExitInterrupted;
  return error.kind() == RunErrorKind::Internal ? kExitInternal : kExitErrors;
}

}  // namespace fusec::rt
