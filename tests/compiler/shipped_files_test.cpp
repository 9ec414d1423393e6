// Every .fuse file the project ships checks clean: the stdlib, experiments/paper and experiments/sweeps,
// the demo (torchtune validates every shipped config the same way). Paper and sweep files also say, in a
// header comment, what they reproduce and how to run them.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/sema/check.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

std::vector<std::string> ShippedFiles() {
  std::vector<std::string> files;
  for (const char* root : {FUSEC_REPO_DIR "/stdlib", FUSEC_REPO_DIR "/experiments"}) {
    for (const auto& entry : fs::recursive_directory_iterator(root)) {
      if (entry.is_regular_file() && entry.path().extension() == ".fuse") files.push_back(entry.path().string());
    }
  }
  std::sort(files.begin(), files.end());
  return files;
}

std::vector<std::string> ShippedExperiments() {
  std::vector<std::string> files = ShippedFiles();
  std::erase_if(files, [](const std::string& f) { return f.find("/experiments/") == std::string::npos; });
  return files;
}

class ShippedFile : public testing::TestWithParam<std::string> {};
class ShippedExperiment : public testing::TestWithParam<std::string> {};

TEST_P(ShippedFile, ChecksWithoutErrorsOrWarnings) {
  SourceManager sources;
  Diagnostics diagnostics;
  CheckOptions options;
  options.files = {GetParam()};
  options.stdlib_dir = FUSEC_SOURCE_STDLIB;
  Check(options, sources, diagnostics);
  EXPECT_TRUE(diagnostics.all().empty()) << RenderAll(diagnostics, sources);
}

TEST_P(ShippedExperiment, SaysWhatItReproducesAndHowToRunIt) {
  std::string path = GetParam();
  std::ifstream in(path);
  std::string header;
  for (std::string line; std::getline(in, line) && line.rfind("#", 0) == 0;) header += line + "\n";
  EXPECT_GE(std::count(header.begin(), header.end(), '\n'), 3) << path << " has no header comment";
  EXPECT_NE(header.find("fusec "), std::string::npos) << path << "'s header does not say how to run it";
}

std::string TestName(const testing::TestParamInfo<std::string>& info) {
  std::string name = fs::relative(info.param, FUSEC_REPO_DIR).string();
  for (char& c : name) {
    if (!std::isalnum(static_cast<unsigned char>(c))) c = '_';
  }
  return name;
}

INSTANTIATE_TEST_SUITE_P(Repo, ShippedFile, testing::ValuesIn(ShippedFiles()), TestName);
INSTANTIATE_TEST_SUITE_P(Repo, ShippedExperiment, testing::ValuesIn(ShippedExperiments()), TestName);

TEST(ShippedFiles, TheRepositoryShipsTheExpectedFiles) {
  std::vector<std::string> files = ShippedFiles();
  auto has = [&](const std::string& suffix) {
    return std::any_of(files.begin(), files.end(), [&](const std::string& f) { return f.ends_with(suffix); });
  };
  for (const char* file : {"stdlib/stages.fuse", "stdlib/objectives.fuse", "stdlib/weighting.fuse",
                           "stdlib/pairing.fuse", "experiments/paper/fuserl_dpo.fuse",
                           "experiments/paper/fuserl_simpo.fuse", "experiments/paper/fuserl_rloo.fuse",
                           "experiments/paper/sft_dpo.fuse", "experiments/paper/sft_simpo.fuse",
                           "experiments/paper/sft_rloo.fuse", "experiments/paper/wrpo.fuse",
                           "experiments/paper/fusechat3_pipeline.fuse",
                           "experiments/sweeps/tau.fuse", "experiments/sweeps/num_sources.fuse",
                           "experiments/sweeps/weight_placement.fuse"}) {
    EXPECT_TRUE(has(file)) << "missing " << file;
  }
}

}  // namespace
}  // namespace fusec
