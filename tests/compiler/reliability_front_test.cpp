// Reliability of the front end under hostile input (issue 14): byte-order marks, parse-error recovery in
// linear time, deep nesting, numbers that do not fit where they go, pointers for TRL's field names, and the
// unused-stage warning on sibling stages. Each test fails on the code before its fix.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "compiler/sema/check.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

constexpr std::string_view kBom = "\xEF\xBB\xBF";

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

/// Checks `text` as the file `path` and returns every diagnostic rendered.
std::string CheckText(const std::string& path, const std::string& text) {
  SourceManager sources;
  Diagnostics diagnostics;
  CheckOptions options;
  options.texts = {{path, text}};
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  Check(options, sources, diagnostics);
  return RenderAll(diagnostics, sources);
}

std::vector<fs::path> ShippedFuseFiles() {
  std::vector<fs::path> files;
  for (const char* root : {FUSEC_REPO_DIR "/stdlib", FUSEC_REPO_DIR "/experiments"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (entry.is_regular_file() && entry.path().extension() == ".fuse") files.push_back(entry.path());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

// ---------------------------------------------------------------------------------------------------------
// Byte-order marks

TEST(ByteOrderMark, EveryShippedFileChecksTheSameWithABom) {
  std::vector<fs::path> files = ShippedFuseFiles();
  ASSERT_GE(files.size(), 15u);
  for (const fs::path& path : files) {
    std::string text = ReadFile(path);
    std::string with_bom = CheckText(path.string(), std::string(kBom) + text);
    std::string without = CheckText(path.string(), text);
    EXPECT_EQ(with_bom, without) << path << ":\n" << with_bom.substr(0, 600);
  }
}

TEST(ByteOrderMark, ColumnsOnTheFirstLineAreThoseWithoutIt) {
  const std::string text = "experiment x { bogus = 1 }\nlet y = 2 +\n";
  std::string plain = CheckText("bom.fuse", text);
  ASSERT_NE(plain.find("bom.fuse:"), std::string::npos) << plain;
  EXPECT_EQ(CheckText("bom.fuse", std::string(kBom) + text), plain);
  SourceFile file("bom.fuse", "", std::string(kBom) + "ab\ncd");
  EXPECT_EQ(file.text(), "ab\ncd");
  EXPECT_EQ(file.Locate(1).column, 2u);
  EXPECT_EQ(file.OffsetOf(1, 2), 1u);
}

TEST(ByteOrderMark, SweepFilesAndTheirTomlGridsCheckWithABom) {
  // Grids (and fusec.toml) are loaded through the SourceManager, so their spans see the same text.
  fs::path dir = fs::temp_directory_path() / ("fusec-bom-" + std::to_string(::getpid()));
  fs::create_directories(dir);
  fs::path sweeps = fs::path(FUSEC_REPO_DIR) / "experiments/sweeps";
  for (const auto& entry : fs::directory_iterator(sweeps)) {
    std::ofstream(dir / entry.path().filename(), std::ios::binary) << kBom << ReadFile(entry.path());
  }
  for (const auto& entry : fs::directory_iterator(sweeps)) {
    if (entry.path().extension() != ".fuse") continue;
    fs::path copy = dir / entry.path().filename();
    EXPECT_EQ(CheckText(copy.string(), ReadFile(copy)), "") << copy;
  }
  fs::remove_all(dir);
}

}  // namespace
}  // namespace fusec
