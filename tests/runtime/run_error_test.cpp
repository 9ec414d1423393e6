// RunError: the runtime's errors in the checker's diagnostic format (runtime/support/run_error.h), exact text.
#include "runtime/support/run_error.h"

#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>

namespace fusec::rt {
namespace {

constexpr std::string_view kSource =
    "stage po = fuse_po {\n"
    "  data = jsonl(\"po.jsonl\")\n"
    "}\n";

/// The span of the first `text` in `file`.
SourceSpan SpanOf(const SourceManager& sources, FileId file, std::string_view text) {
  auto begin = static_cast<uint32_t>(sources.file(file).text().find(text));
  return SourceSpan{file, begin, begin + static_cast<uint32_t>(text.size())};
}

TEST(RunError, RendersTheNodeSpanThenThePlaceNotesAndHelp) {
  SourceManager sources;
  FileId file = sources.Add("experiments/x.fuse", "", std::string(kSource));
  RunError error = RunError(RunErrorKind::DataLine, "response 1 of prompt `p7` has no `text`")
                       .At(SpanOf(sources, file, "jsonl(\"po.jsonl\")"))
                       .Place("po.jsonl:2")
                       .Note("each response needs a `text` string")
                       .Help("fix the line, or pass --skip-bad-lines");
  EXPECT_EQ(Render(error, sources),
            "experiments/x.fuse:2:10: error: response 1 of prompt `p7` has no `text` [DataLine]\n"
            "  data = jsonl(\"po.jsonl\")\n"
            "         ^~~~~~~~~~~~~~~~~\n"
            "note: at po.jsonl:2\n"
            "note: each response needs a `text` string\n"
            "help: fix the line, or pass --skip-bad-lines\n");
}

TEST(RunError, WithoutASpanThePlaceIsTheLocation) {
  SourceManager sources;
  RunError error = RunError(RunErrorKind::DataLine, "expected a JSON object").Place("po.jsonl:2").Help("fix the line");
  EXPECT_EQ(Render(error, sources),
            "po.jsonl:2: error: expected a JSON object [DataLine]\n"
            "help: fix the line\n");
  EXPECT_EQ(Render(error), Render(error, sources));
}

TEST(RunError, WithNeitherSpanNorPlaceTheMessageStandsAlone) {
  EXPECT_EQ(Render(RunError(RunErrorKind::Internal, "the graph is not in dependency order at %3")),
            "error: the graph is not in dependency order at %3 [Internal]\n");
}

TEST(RunError, ANoteWithASpanCarriesItsOwnSnippet) {
  SourceManager sources;
  FileId file = sources.Add("x.fuse", "", std::string(kSource));
  RunError error = RunError(RunErrorKind::NoItems, "no items to train on")
                       .At(SpanOf(sources, file, "fuse_po"))
                       .Note(SpanOf(sources, file, "data"), "every prompt of this data was dropped");
  EXPECT_EQ(Render(error, sources),
            "x.fuse:1:12: error: no items to train on [NoItems]\n"
            "stage po = fuse_po {\n"
            "           ^~~~~~~\n"
            "x.fuse:2:3: note: every prompt of this data was dropped\n"
            "  data = jsonl(\"po.jsonl\")\n"
            "  ^~~~\n");
}

// main() has no sources: the span is left out and the place leads, as if there were no span.
TEST(RunError, WithoutTheSourcesSpansAreLeftOut) {
  SourceManager sources;
  FileId file = sources.Add("x.fuse", "", std::string(kSource));
  RunError error = RunError(RunErrorKind::CacheEntry, "its cache entry is unreadable")
                       .At(SpanOf(sources, file, "fuse_po"))
                       .Note(SpanOf(sources, file, "data"), "the stage's data")
                       .Place("runs/cache/ab12/items.json");
  EXPECT_EQ(Render(error),
            "runs/cache/ab12/items.json: error: its cache entry is unreadable [CacheEntry]\n"
            "note: the stage's data\n");
  // A span into a file these sources do not hold is no location either (rendering must not throw).
  SourceManager other;
  EXPECT_EQ(Render(error, other), Render(error));
}

TEST(RunError, BuildersOnAThrownTemporaryKeepEveryField) {
  SourceSpan span{FileId{0}, 3, 5};
  try {
    throw RunError(RunErrorKind::Device, "no CUDA device is available")
        .At(span)
        .Place("fusec.toml:4")
        .Note("the experiment asks for `device = cuda`")
        .Help("pass --device cpu");
  } catch (const std::runtime_error& caught) {
    EXPECT_STREQ(caught.what(), "no CUDA device is available");
    const auto* error = dynamic_cast<const RunError*>(&caught);
    ASSERT_NE(error, nullptr);
    EXPECT_EQ(error->kind(), RunErrorKind::Device);
    EXPECT_EQ(error->message(), "no CUDA device is available");
    EXPECT_EQ(error->span(), span);
    EXPECT_EQ(error->place(), "fusec.toml:4");
    ASSERT_EQ(error->notes().size(), 1U);
    EXPECT_EQ(error->notes()[0].message, "the experiment asks for `device = cuda`");
    EXPECT_EQ(error->help(), "pass --device cpu");
  }
}

TEST(RunError, LaterBuildersReplaceTheSpanPlaceAndHelp) {
  RunError error(RunErrorKind::FileSystem, "cannot write");
  error.At(SourceSpan{FileId{0}, 1, 2}).Place("a").Help("x");
  error.At(SourceSpan{}).Place("b").Help("y");
  EXPECT_FALSE(error.span().valid());
  EXPECT_EQ(error.place(), "b");
  EXPECT_EQ(error.help(), "y");
  EXPECT_EQ(Render(error), "b: error: cannot write [FileSystem]\nhelp: y\n");
}

TEST(RunErrorKind, EveryKindHasADistinctCamelCaseName) {
  std::set<std::string_view> names;
  for (RunErrorKind kind : AllRunErrorKinds()) {
    std::string_view name = RunErrorKindName(kind);
    ASSERT_FALSE(name.empty());
    EXPECT_TRUE(name[0] >= 'A' && name[0] <= 'Z') << name;
    EXPECT_TRUE(names.insert(name).second) << "duplicate " << name;
  }
  EXPECT_EQ(names.size(), AllRunErrorKinds().size());
  EXPECT_EQ(RunErrorKindName(RunErrorKind::DataLine), "DataLine");
  EXPECT_EQ(AllRunErrorKinds().back(), RunErrorKind::Internal);
}

TEST(RunErrorKind, EveryKindIsDocumentedInRunningMd) {
  std::ifstream file(std::string(FUSEC_TESTS_RUNTIME_DIR) + "/../../docs/running.md");
  ASSERT_TRUE(file) << "docs/running.md";
  std::stringstream text;
  text << file.rdbuf();
  for (RunErrorKind kind : AllRunErrorKinds()) {
    std::string name(RunErrorKindName(kind));
    EXPECT_NE(text.str().find("`" + name + "`"), std::string::npos) << name << " is not in docs/running.md";
  }
}

}  // namespace
}  // namespace fusec::rt
