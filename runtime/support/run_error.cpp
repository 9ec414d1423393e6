#include "runtime/support/run_error.h"

#include <iterator>
#include <utility>

namespace fusec::rt {
namespace {

constexpr std::string_view kKindNames[] = {
#define FUSEC_RUN_ERROR(Name) #Name,
#include "runtime/support/run_error_kind.def"
#undef FUSEC_RUN_ERROR
};

/// `span` when `sources` holds its file, else no location.
SourceSpan Checked(SourceSpan span, const SourceManager& sources) {
  if (!span.valid() || span.file.value >= sources.file_count()) return SourceSpan{};
  return span;
}

}  // namespace

std::string_view RunErrorKindName(RunErrorKind kind) { return kKindNames[static_cast<size_t>(kind)]; }

const std::vector<RunErrorKind>& AllRunErrorKinds() {
  static const std::vector<RunErrorKind> kinds = [] {
    std::vector<RunErrorKind> all;
    for (size_t i = 0; i < std::size(kKindNames); ++i) all.push_back(static_cast<RunErrorKind>(i));
    return all;
  }();
  return kinds;
}

RunError::RunError(RunErrorKind kind, std::string message)
    : std::runtime_error(message), kind_(kind), message_(std::move(message)) {}

RunError& RunError::At(SourceSpan span) {
  span_ = span;
  return *this;
}

RunError& RunError::Place(std::string place) {
  place_ = std::move(place);
  return *this;
}

RunError& RunError::Note(std::string note) { return Note(SourceSpan{}, std::move(note)); }

RunError& RunError::Note(SourceSpan span, std::string note) {
  notes_.push_back({DiagnosticNote::Level::Note, span, std::move(note)});
  return *this;
}

RunError& RunError::Help(std::string help) {
  help_ = std::move(help);
  return *this;
}

std::string Render(const RunError& error, const SourceManager& sources) {
  SourceSpan span = Checked(error.span(), sources);
  // With a span the location line is the .fuse one and the place becomes the first note; without, the place
  // is the location (RenderReport prefixes it).
  std::vector<DiagnosticNote> notes;
  if (span.valid() && !error.place().empty()) {
    notes.push_back({DiagnosticNote::Level::Note, SourceSpan{}, "at " + error.place()});
  }
  for (const DiagnosticNote& note : error.notes()) {
    notes.push_back({note.level, Checked(note.span, sources), note.message});
  }
  if (!error.help().empty()) notes.push_back({DiagnosticNote::Level::Help, SourceSpan{}, error.help()});
  std::string_view place = span.valid() ? std::string_view() : std::string_view(error.place());
  return RenderReport(Severity::Error, RunErrorKindName(error.kind()), span, place, error.message(), notes, sources);
}

std::string Render(const RunError& error) { return Render(error, SourceManager()); }

}  // namespace fusec::rt
