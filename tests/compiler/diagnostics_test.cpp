// Diagnostic rendering, in the exact format of conventions.md, and de-duplication.
#include <gtest/gtest.h>

#include "compiler/diag/diagnostics.h"

namespace fusec {
namespace {

TEST(Render, PrintsLocationSnippetCaretNotesAndHelp) {
  SourceManager sources;
  FileId file = sources.Add("experiments/x.fuse", "", "stage po = fuse_po {\n  objective = simpo2(beta: 2.0)\n}\n");
  Diagnostics diagnostics;
  uint32_t begin = static_cast<uint32_t>(sources.file(file).text().find("simpo2"));
  diagnostics.Report(DiagnosticKind::UnknownObjective, SourceSpan{file, begin, begin + 6}, "unknown objective `simpo2`")
      .Note(SourceSpan{file, 6, 8}, "in stage `po`")
      .Help("did you mean `simpo`?");
  EXPECT_EQ(RenderAll(diagnostics, sources),
            "experiments/x.fuse:2:15: error: unknown objective `simpo2` [UnknownObjective]\n"
            "  objective = simpo2(beta: 2.0)\n"
            "              ^~~~~~\n"
            "experiments/x.fuse:1:7: note: in stage `po`\n"
            "stage po = fuse_po {\n"
            "      ^~\n"
            "help: did you mean `simpo`?\n");
  EXPECT_EQ(Summary(diagnostics), "1 error");
}

TEST(Render, AlignsCaretsAfterTabsAndMultibyteCharacters) {
  SourceManager sources;
  FileId file = sources.Add("t.fuse", "", "\tτ = bad\n");
  Diagnostics diagnostics;
  uint32_t begin = static_cast<uint32_t>(sources.file(file).text().find("bad"));
  diagnostics.Report(DiagnosticKind::UnknownName, SourceSpan{file, begin, begin + 3}, "unknown name `bad`");
  EXPECT_EQ(RenderAll(diagnostics, sources),
            "t.fuse:1:6: error: unknown name `bad` [UnknownName]\n"
            "\tτ = bad\n"
            "\t    ^~~\n");
}

TEST(Render, DiagnosticsWithoutLocationAndWarnings) {
  SourceManager sources;
  Diagnostics diagnostics;
  diagnostics.Report(DiagnosticKind::FileNotFound, SourceSpan{}, "cannot read `x.fuse`: no such file");
  FileId file = sources.Add("t.fuse", "", "let unused = 1\n");
  diagnostics.Report(DiagnosticKind::UnusedBinding, SourceSpan{file, 4, 10}, "`unused` is never used");
  EXPECT_EQ(RenderAll(diagnostics, sources),
            "error: cannot read `x.fuse`: no such file [FileNotFound]\n"
            "t.fuse:1:5: warning: `unused` is never used [UnusedBinding]\n"
            "let unused = 1\n"
            "    ^~~~~~\n");
  EXPECT_EQ(diagnostics.error_count(), 1u);
  EXPECT_EQ(diagnostics.warning_count(), 1u);
  EXPECT_EQ(Summary(diagnostics), "1 error, 1 warning");
}

// The renderer the runtime's errors share: a place outside the sources leads an unlocated report, and is
// ignored when the span is valid.
TEST(RenderReport, PrefixesThePlaceOnlyWithoutASpan) {
  SourceManager sources;
  FileId file = sources.Add("t.fuse", "", "x = 1\n");
  std::vector<DiagnosticNote> notes = {{DiagnosticNote::Level::Help, SourceSpan{}, "fix the line"}};
  EXPECT_EQ(RenderReport(Severity::Error, "DataLine", SourceSpan{}, "po.jsonl:2", "expected a JSON object", notes,
                         sources),
            "po.jsonl:2: error: expected a JSON object [DataLine]\n"
            "help: fix the line\n");
  EXPECT_EQ(RenderReport(Severity::Error, "DataLine", SourceSpan{file, 0, 1}, "po.jsonl:2", "bad", {}, sources),
            "t.fuse:1:1: error: bad [DataLine]\n"
            "x = 1\n"
            "^\n");
}

TEST(Diagnostics, DropsExactRepeatsWithTheirNotes) {
  SourceManager sources;
  FileId file = sources.Add("t.fuse", "", "x\n");
  Diagnostics diagnostics;
  diagnostics.Report(DiagnosticKind::UnknownName, SourceSpan{file, 0, 1}, "unknown name `x`");
  diagnostics.Report(DiagnosticKind::UnknownName, SourceSpan{file, 0, 1}, "unknown name `x`").Note("a note");
  diagnostics.Report(DiagnosticKind::UnknownName, SourceSpan{file, 0, 1}, "another message");
  EXPECT_EQ(diagnostics.all().size(), 2u);
  EXPECT_TRUE(diagnostics.all().front().notes.empty());
}

TEST(DiagnosticKinds, AreDeclaredOnceWithNamesAndSeverities) {
  EXPECT_EQ(DiagnosticKindName(DiagnosticKind::SyntaxError), "SyntaxError");
  EXPECT_EQ(DefaultSeverity(DiagnosticKind::UnusedStage), Severity::Warning);
  EXPECT_EQ(DefaultSeverity(DiagnosticKind::StageCycle), Severity::Error);
  EXPECT_GT(AllDiagnosticKinds().size(), 40u);
}

}  // namespace
}  // namespace fusec
