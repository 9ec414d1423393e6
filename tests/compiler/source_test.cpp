// Sources and spans: line/column arithmetic (columns count code points) and UTF-8 validation.
#include <gtest/gtest.h>

#include "compiler/source/source.h"

namespace fusec {
namespace {

TEST(SourceFile, LocatesLinesAndCodePointColumns) {
  SourceFile file("x.fuse", "", "ab\nτ = 1\r\nlast");
  EXPECT_EQ(file.line_count(), 3u);
  EXPECT_EQ(file.Locate(0).line, 1u);
  EXPECT_EQ(file.Locate(1).column, 2u);
  // `τ` is two bytes; the `=` after it is the third code point of line 2.
  uint32_t equals = static_cast<uint32_t>(file.text().find('='));
  EXPECT_EQ(file.Locate(equals).line, 2u);
  EXPECT_EQ(file.Locate(equals).column, 3u);
  EXPECT_EQ(file.Line(2), "τ = 1");  // the \r\n is not part of the line
  EXPECT_EQ(file.Line(3), "last");
  EXPECT_EQ(file.Line(4), "");
  EXPECT_EQ(file.OffsetOf(2, 3), equals);
  EXPECT_EQ(file.Locate(static_cast<uint32_t>(file.text().size())).line, 3u);
}

TEST(SourceSpan, CoverJoinsSpansOfOneFile) {
  FileId f{0};
  SourceSpan a{f, 4, 6};
  SourceSpan b{f, 1, 3};
  EXPECT_EQ(SourceSpan::Cover(a, b), (SourceSpan{f, 1, 6}));
  EXPECT_EQ(SourceSpan::Cover(SourceSpan{}, b), b);
}

TEST(Utf8, FindsTheFirstInvalidSequence) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), std::nullopt);
  EXPECT_EQ(FindInvalidUtf8("τ 漢字 🙂"), std::nullopt);
  EXPECT_EQ(FindInvalidUtf8("ab\xff"), 2u);
  EXPECT_EQ(FindInvalidUtf8("\xc3"), 0u);              // truncated
  EXPECT_EQ(FindInvalidUtf8("x\xc0\xaf"), 1u);         // overlong `/`
  EXPECT_EQ(FindInvalidUtf8("\xed\xa0\x80"), 0u);      // a UTF-16 surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
}

TEST(SourceManager, RefusesWhatIsNotARegularFile) {
  SourceManager sources;
  std::string error;
  EXPECT_FALSE(sources.Load("/nonexistent/x.fuse", "x.fuse", &error));
  EXPECT_EQ(error, "no such file");
  EXPECT_FALSE(sources.Load("/tmp", "tmp", &error));
  EXPECT_EQ(error, "is a directory, not a file");
  EXPECT_FALSE(sources.Load("/dev/zero", "zero", &error));
  EXPECT_EQ(error, "is not a regular file");
}

}  // namespace
}  // namespace fusec
