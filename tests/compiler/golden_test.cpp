// Golden tests: every tests/compiler/testdata/**/*.fuse runs through the fusec driver in-process, and its
// exit status, stdout and stderr are compared with the `# CHECK:` lines at the end of the file.
//
// File format (conventions.md; after Carbon's `// CHECK:STDERR:` and Wren's `// expect`):
//   - first a comment saying which behaviour the file pins (a regression file starts with the bug);
//   - the .fuse text under test;
//   - optionally `# ARGS: plan --emit=ast %s` anywhere (default `check %s`; `%s` is the file itself);
//   - the expectations, generated: `# CHECK:EXIT: <status>`, `# CHECK:STDOUT: <line>`, `# CHECK:STDERR: <line>`.
// A file whose name starts with `fail_` must exit non-zero, and every other file must exit 0.
//
// Update mode: `FUSEC_AUTOUPDATE=1` rewrites each file's CHECK lines from the actual output (`make golden`);
// review the diff before committing it.

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "compiler/diag/diagnostics.h"
#include "compiler/driver/driver.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

constexpr const char* kCheckPrefix = "# CHECK:";
constexpr const char* kArgsPrefix = "# ARGS:";

std::vector<std::string> GoldenFiles() {
  std::vector<std::string> files;
  for (const auto& entry : fs::recursive_directory_iterator(FUSEC_TESTDATA_DIR)) {
    if (entry.is_regular_file() && entry.path().extension() == ".fuse") {
      files.push_back(fs::relative(entry.path(), FUSEC_TESTDATA_DIR).string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::vector<std::string> SplitLines(const std::string& text) {
  std::vector<std::string> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(line);
  return lines;
}

struct GoldenFile {
  std::string body;  // everything but the trailing CHECK lines
  std::vector<std::string> expected;
  std::vector<std::string> args = {"check", "%s"};
};

GoldenFile ReadGolden(const std::string& relative) {
  GoldenFile golden;
  std::vector<std::string> lines = SplitLines(ReadFile(fs::path(FUSEC_TESTDATA_DIR) / relative));
  size_t end = lines.size();
  while (end > 0 && (lines[end - 1].rfind(kCheckPrefix, 0) == 0 || lines[end - 1].empty())) --end;
  for (size_t i = end; i < lines.size(); ++i) {
    if (!lines[i].empty()) golden.expected.push_back(lines[i]);
  }
  for (size_t i = 0; i < end; ++i) {
    golden.body += lines[i] + "\n";
    if (lines[i].rfind(kArgsPrefix, 0) == 0) {
      golden.args.clear();
      std::istringstream words(lines[i].substr(std::string(kArgsPrefix).size()));
      for (std::string word; words >> word;) golden.args.push_back(word);
    }
  }
  return golden;
}

std::vector<std::string> Actual(const std::string& relative, const GoldenFile& golden) {
  std::vector<std::string> args;
  for (const std::string& arg : golden.args) args.push_back(arg == "%s" ? relative : arg);
  std::ostringstream out;
  std::ostringstream err;
  int status = Main(args, out, err);
  std::vector<std::string> lines = {std::string(kCheckPrefix) + "EXIT: " + std::to_string(status)};
  for (const std::string& line : SplitLines(out.str())) lines.push_back(std::string(kCheckPrefix) + "STDOUT: " + line);
  for (const std::string& line : SplitLines(err.str())) lines.push_back(std::string(kCheckPrefix) + "STDERR: " + line);
  // Trailing spaces would be lost by editors; the caret lines never need them.
  for (std::string& line : lines) {
    while (!line.empty() && line.back() == ' ') line.pop_back();
  }
  return lines;
}

std::string Join(const std::vector<std::string>& lines) {
  std::string out;
  for (const std::string& line : lines) out += line + "\n";
  return out;
}

class GoldenTest : public testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, MatchesExpectations) {
  fs::current_path(FUSEC_TESTDATA_DIR);
  const std::string& relative = GetParam();
  GoldenFile golden = ReadGolden(relative);
  std::vector<std::string> actual = Actual(relative, golden);

  const char* autoupdate = std::getenv("FUSEC_AUTOUPDATE");
  if (autoupdate != nullptr && std::string(autoupdate) == "1") {
    std::string body = golden.body;
    while (body.size() >= 2 && body[body.size() - 1] == '\n' && body[body.size() - 2] == '\n') body.pop_back();
    std::ofstream(fs::path(FUSEC_TESTDATA_DIR) / relative, std::ios::binary) << body << "\n" << Join(actual);
    return;
  }
  EXPECT_EQ(Join(golden.expected), Join(actual))
      << "golden output differs for " << relative << "; run `make golden` to update, then review the diff";
  bool must_fail = fs::path(relative).filename().string().rfind("fail_", 0) == 0;
  bool failed = actual.front() != std::string(kCheckPrefix) + "EXIT: 0";
  EXPECT_EQ(must_fail, failed) << relative << (must_fail ? " is named fail_ but succeeds" : " fails but is not named fail_");
}

std::string TestName(const testing::TestParamInfo<std::string>& info) {
  std::string name = info.param;
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(GoldenTest);
INSTANTIATE_TEST_SUITE_P(Testdata, GoldenTest, testing::ValuesIn(GoldenFiles()), TestName);

// Every diagnostic kind fusec can report is pinned by at least one golden file, except the few that need a
// state on disk a golden file cannot hold; those are pinned by the unit test named here.
TEST(GoldenCoverage, EveryDiagnosticKindHasAGoldenFile) {
  const std::map<DiagnosticKind, std::string> pinned_elsewhere = {
      // A corrupt cache entry for a node's hash: passes_test.cpp, MarkCached.*; driver_test.cpp, Driver.Cache*.
      {DiagnosticKind::CacheEntryCorrupt, "passes_test.cpp"},
      {DiagnosticKind::TooManyErrors, "reliability_front_test.cpp"},  // 26 errors: above the limit below
  };
  std::string all;
  for (const std::string& file : GoldenFiles()) all += Join(ReadGolden(file).expected);
  for (DiagnosticKind kind : AllDiagnosticKinds()) {
    if (pinned_elsewhere.count(kind) > 0) continue;
    std::string tag = "[" + std::string(DiagnosticKindName(kind)) + "]";
    EXPECT_NE(all.find(tag), std::string::npos) << "no golden file reports " << tag;
  }
}

// Golden files pin one behaviour each: a failing file reports its behaviour, not a pile of errors.
TEST(GoldenCoverage, FailingFilesReportFewErrors) {
  for (const std::string& file : GoldenFiles()) {
    if (fs::path(file).filename().string().rfind("fail_", 0) != 0) continue;
    std::string expected = Join(ReadGolden(file).expected);
    size_t errors = 0;
    for (size_t at = expected.find(": error: "); at != std::string::npos; at = expected.find(": error: ", at + 1)) {
      ++errors;
    }
    EXPECT_LE(errors, 6u) << file << " reports " << errors << " errors; split it into files of one behaviour each";
  }
}

}  // namespace
}  // namespace fusec
