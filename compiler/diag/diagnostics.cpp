#include "compiler/diag/diagnostics.h"

#include <algorithm>

namespace fusec {
namespace {

struct KindInfo {
  std::string_view name;
  Severity severity;
};

constexpr KindInfo kKindInfo[] = {
#define FUSEC_DIAGNOSTIC(Name, DefaultSeverity) {#Name, Severity::DefaultSeverity},
#include "compiler/diag/diagnostic_kind.def"
#undef FUSEC_DIAGNOSTIC
};

bool IsContinuation(char c) { return (static_cast<unsigned char>(c) & 0xC0) == 0x80; }

/// Appends `line` and a caret line underlining [begin, end) of it (byte offsets within the line).
void AppendSnippet(std::string& out, std::string_view line, size_t begin, size_t end) {
  out.append(line);
  out.push_back('\n');
  begin = std::min(begin, line.size());
  end = std::clamp(end, begin, line.size());
  // Whitespace before the caret copies the line's tabs so the caret lines up in any tab width.
  for (size_t i = 0; i < begin; ++i) {
    if (IsContinuation(line[i])) continue;
    out.push_back(line[i] == '\t' ? '\t' : ' ');
  }
  out.push_back('^');
  bool first = true;
  for (size_t i = begin; i < end; ++i) {
    if (IsContinuation(line[i])) continue;
    if (first) {
      first = false;
      continue;
    }
    out.push_back('~');
  }
  out.push_back('\n');
}

void AppendLocated(std::string& out, const SourceManager& sources, SourceSpan span,
                   std::string_view level, std::string_view message, std::string_view suffix) {
  const SourceFile& file = sources.file(span.file);
  LineColumn start = file.Locate(span.begin);
  out += file.display_name();
  out += ':' + std::to_string(start.line) + ':' + std::to_string(start.column) + ": ";
  out += level;
  out += ": ";
  out += message;
  out += suffix;
  out.push_back('\n');
  std::string_view line = file.Line(start.line);
  uint32_t line_begin = file.OffsetOf(start.line, 1);
  size_t caret_begin = span.begin - line_begin;
  // Spans that run past the end of the line are underlined to its end.
  size_t caret_end = std::max<size_t>(caret_begin + 1, span.end > line_begin ? span.end - line_begin : 0);
  AppendSnippet(out, line, caret_begin, caret_end);
}

}  // namespace

std::string_view DiagnosticKindName(DiagnosticKind kind) {
  return kKindInfo[static_cast<size_t>(kind)].name;
}

Severity DefaultSeverity(DiagnosticKind kind) { return kKindInfo[static_cast<size_t>(kind)].severity; }

const std::vector<DiagnosticKind>& AllDiagnosticKinds() {
  static const std::vector<DiagnosticKind> kinds = [] {
    std::vector<DiagnosticKind> all;
    for (size_t i = 0; i < std::size(kKindInfo); ++i) all.push_back(static_cast<DiagnosticKind>(i));
    return all;
  }();
  return kinds;
}

DiagnosticBuilder& DiagnosticBuilder::Note(SourceSpan span, std::string message) {
  if (target_ != nullptr) {
    target_->notes.push_back({DiagnosticNote::Level::Note, span, std::move(message)});
  }
  return *this;
}

DiagnosticBuilder& DiagnosticBuilder::Help(std::string message) {
  if (target_ != nullptr) {
    target_->notes.push_back({DiagnosticNote::Level::Help, SourceSpan{}, std::move(message)});
  }
  return *this;
}

DiagnosticBuilder Diagnostics::Report(DiagnosticKind kind, SourceSpan span, std::string message) {
  if (!seen_.emplace(kind, span, message).second) return DiagnosticBuilder(nullptr);
  Severity severity = DefaultSeverity(kind);
  if (severity == Severity::Error) ++error_count_;
  diagnostics_.push_back(Diagnostic{kind, severity, span, std::move(message), {}});
  return DiagnosticBuilder(&diagnostics_.back());
}

std::string Render(const Diagnostic& diagnostic, const SourceManager& sources) {
  return RenderReport(diagnostic.severity, DiagnosticKindName(diagnostic.kind), diagnostic.span, /*place=*/"",
                      diagnostic.message, diagnostic.notes, sources);
}

std::string RenderReport(Severity severity, std::string_view kind, SourceSpan span, std::string_view place,
                         std::string_view message, const std::vector<DiagnosticNote>& notes,
                         const SourceManager& sources) {
  std::string out;
  std::string_view level = severity == Severity::Error ? "error" : "warning";
  std::string suffix = " [" + std::string(kind) + "]";
  if (span.valid()) {
    AppendLocated(out, sources, span, level, message, suffix);
  } else {
    if (!place.empty()) out += std::string(place) + ": ";
    out += std::string(level) + ": " + std::string(message) + suffix + "\n";
  }
  for (const DiagnosticNote& note : notes) {
    std::string_view note_level = note.level == DiagnosticNote::Level::Note ? "note" : "help";
    if (note.span.valid()) {
      AppendLocated(out, sources, note.span, note_level, note.message, "");
    } else {
      out += std::string(note_level) + ": " + note.message + "\n";
    }
  }
  return out;
}

std::string RenderAll(const Diagnostics& diagnostics, const SourceManager& sources) {
  std::string out;
  for (const Diagnostic& diagnostic : diagnostics.all()) out += Render(diagnostic, sources);
  return out;
}

std::string Summary(const Diagnostics& diagnostics) {
  auto plural = [](size_t n, std::string_view word) {
    return std::to_string(n) + " " + std::string(word) + (n == 1 ? "" : "s");
  };
  std::string out;
  if (diagnostics.error_count() > 0) out += plural(diagnostics.error_count(), "error");
  if (diagnostics.warning_count() > 0) {
    if (!out.empty()) out += ", ";
    out += plural(diagnostics.warning_count(), "warning");
  }
  return out;
}

std::string Quote(std::string_view code) { return "`" + std::string(code) + "`"; }

}  // namespace fusec
