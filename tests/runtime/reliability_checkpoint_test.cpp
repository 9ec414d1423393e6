// Training checkpoints under faults: a damaged or foreign checkpoint is refused with an error naming its file
// and what does not match (bit flips in the weights or the optimizer's state, another model's weights, an
// edited step, a truncated metrics file, every field of state.json and LATEST edited, missing or of the wrong
// type), and a full disk while writing one is an error naming the file that keeps the previous checkpoint.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <torch/torch.h>

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/model/config.h"
#include "runtime/model/llama.h"
#include "runtime/model/training_checkpoint.h"
#include "tests/runtime/checkpoint_support.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

const std::string kStage = std::string(64, 'a');

using testing::Optimizer;
using testing::StepWithFixedGradients;
using testing::TinyModel;

/// Two metrics lines, as the stage's metrics.jsonl holds them after step 2.
const std::string kMetrics = "{\"stage\":\"e/s\",\"step\":1,\"loss\":2.5}\n{\"stage\":\"e/s\",\"step\":2,\"loss\":2.25}\n";

/// A stage two steps in, its checkpoint saved in `dir`; the path of that checkpoint.
std::string SaveTwoSteps(const std::string& dir, uint64_t seed = 1) {
  LlamaForCausalLM model = TinyModel(seed);
  torch::optim::AdamW optimizer = Optimizer(*model);
  StepWithFixedGradients(*model, optimizer);
  StepWithFixedGradients(*model, optimizer);
  std::string error;
  EXPECT_TRUE(SaveTrainingCheckpoint(*model, optimizer, {2, 10, kStage, kMetrics}, dir, &error)) << error;
  return (fs::path(dir) / "step-00000002").string();
}

/// Loads `checkpoint` of stage `kStage` into a fresh model; the error, empty when it loaded.
std::string LoadError(const std::string& checkpoint, const std::string& stage = kStage) {
  LlamaForCausalLM model = TinyModel(7);
  torch::optim::AdamW optimizer = Optimizer(*model);
  std::string error;
  auto state = LoadTrainingCheckpoint(*model, optimizer, checkpoint, stage, &error);
  EXPECT_EQ(state.has_value(), error.empty()) << error;
  return state ? "" : error;
}

void FlipByte(const std::string& path, size_t position) {
  std::string bytes = ReadFile(path);
  ASSERT_LT(position, bytes.size());
  bytes[position] = static_cast<char>(bytes[position] ^ 0x10);
  WriteFile(path, bytes);
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

TEST(ReliabilityCheckpoint, AnIntactCheckpointLoads) {
  ScratchDir dir("ckpt_intact");
  EXPECT_EQ(LoadError(SaveTwoSteps(dir.path().string())), "");
}

TEST(ReliabilityCheckpoint, ABitFlipInTheWeightsIsRefused) {
  ScratchDir dir("ckpt_flip_weights");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  const std::string weights = checkpoint + "/model.safetensors";
  FlipByte(weights, fs::file_size(weights) - 100);  // in the last tensor's data
  const std::string error = LoadError(checkpoint);
  EXPECT_CONTAINS(error, weights);
  EXPECT_CONTAINS(error, "SHA-256");
}

TEST(ReliabilityCheckpoint, ABitFlipInTheOptimizerStateIsRefused) {
  ScratchDir dir("ckpt_flip_optimizer");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  const std::string optimizer = checkpoint + "/optimizer-00000-of-00001.safetensors";
  for (size_t position : {size_t{2000}, fs::file_size(optimizer) / 2}) {
    FlipByte(optimizer, position);
    const std::string error = LoadError(checkpoint);
    EXPECT_CONTAINS(error, optimizer);
    FlipByte(optimizer, position);  // back
  }
  EXPECT_EQ(LoadError(checkpoint), "");
}

TEST(ReliabilityCheckpoint, AnotherModelsWeightsAreRefused) {
  ScratchDir dir("ckpt_foreign");
  const std::string checkpoint = SaveTwoSteps(dir / "ours");
  const std::string theirs = SaveTwoSteps(dir / "theirs", /*seed=*/2);
  fs::copy_file(theirs + "/model.safetensors", checkpoint + "/model.safetensors", fs::copy_options::overwrite_existing);
  const std::string error = LoadError(checkpoint);
  EXPECT_CONTAINS(error, checkpoint + "/model.safetensors");
}

TEST(ReliabilityCheckpoint, AModelOfAnotherShapeIsRefused) {
  ScratchDir dir("ckpt_shape");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  LlamaForCausalLM wider = TinyModel(1, /*hidden_size=*/48);
  torch::optim::AdamW optimizer = Optimizer(*wider);
  std::string error;
  EXPECT_FALSE(LoadTrainingCheckpoint(*wider, optimizer, checkpoint, kStage, &error));
  EXPECT_CONTAINS(error, checkpoint + "/state.json");
  EXPECT_CONTAINS(error, "another model");
}

TEST(ReliabilityCheckpoint, ACheckpointOfAnotherStageIsRefused) {
  ScratchDir dir("ckpt_other_stage");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  const std::string error = LoadError(checkpoint, std::string(64, 'b'));
  EXPECT_CONTAINS(error, checkpoint + "/state.json");
  EXPECT_CONTAINS(error, "another stage");
}

TEST(ReliabilityCheckpoint, AnEditedStepIsRefused) {
  ScratchDir dir("ckpt_edited_step");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  const std::string state = checkpoint + "/state.json";
  nlohmann::ordered_json json = nlohmann::ordered_json::parse(ReadFile(state));
  json["step"] = 3;
  WriteFile(state, json.dump(2) + "\n");
  const std::string error = LoadError(checkpoint);
  EXPECT_CONTAINS(error, state);
  EXPECT_CONTAINS(error, "`step`");
}

TEST(ReliabilityCheckpoint, ATruncatedMetricsFileIsRefused) {
  ScratchDir dir("ckpt_truncated_metrics");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  const std::string metrics = checkpoint + "/metrics.jsonl";
  EXPECT_EQ(ReadFile(metrics), kMetrics);
  WriteFile(metrics, kMetrics.substr(0, kMetrics.find('\n') + 1));
  const std::string error = LoadError(checkpoint);
  EXPECT_CONTAINS(error, metrics);
  EXPECT_CONTAINS(error, "bytes");
}

TEST(ReliabilityCheckpoint, AMissingFileIsRefused) {
  for (const char* file : {"model.safetensors", "optimizer-00000-of-00001.safetensors", "metrics.jsonl", "state.json", "manifest.json"}) {
    ScratchDir dir("ckpt_missing");
    const std::string checkpoint = SaveTwoSteps(dir.path().string());
    fs::remove(checkpoint + "/" + file);
    const std::string error = LoadError(checkpoint);
    EXPECT_CONTAINS(error, checkpoint + "/" + file);
  }
}

/// Every field of state.json edited to a value of the wrong type or range, or removed: an error naming the file
/// and the field, never a crash (`"step": -5` was a SIGSEGV, `"step": "39"` an uncaught type_error).
TEST(ReliabilityCheckpoint, EveryStateFieldOfTheWrongTypeOrMissingIsNamed) {
  ScratchDir dir("ckpt_state_fields");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  const std::string state = checkpoint + "/state.json";
  const nlohmann::ordered_json saved = nlohmann::ordered_json::parse(ReadFile(state));
  ASSERT_TRUE(saved.is_object());
  const std::vector<nlohmann::json> bad_values = {-5, "39", nullptr, 1e30, 2.5, true, nlohmann::json::array(),
                                                  nlohmann::json::object(), -1, 0};
  for (const auto& [field, value] : saved.items()) {
    SCOPED_TRACE(field);
    nlohmann::ordered_json without = saved;
    without.erase(field);
    WriteFile(state, without.dump(2));
    std::string error = LoadError(checkpoint);
    EXPECT_CONTAINS(error, state);
    EXPECT_CONTAINS(error, "`" + field + "`");
    for (const nlohmann::json& bad : bad_values) {
      SCOPED_TRACE(bad.dump());
      nlohmann::ordered_json edited = saved;
      edited[field] = bad;
      WriteFile(state, edited.dump(2));
      error = LoadError(checkpoint);
      EXPECT_CONTAINS(error, state);
    }
  }
  for (const char* text : {"", "{", "[]", "\"step\"", "{\"step\": 2}"}) {
    WriteFile(state, text);
    EXPECT_CONTAINS(LoadError(checkpoint), state);
  }
}

TEST(ReliabilityCheckpoint, ALatestThatNamesNoCheckpointIsRefused) {
  ScratchDir dir("ckpt_latest");
  SaveTwoSteps(dir.path().string());
  const std::string latest = dir / "LATEST";
  std::string error;
  for (const char* text : {"", "\n", "garbage\n", "step-00000009\n", "../step-00000002\n", "step-2\n",
                           "step-00000002.partial\n", "step-00000002\nstep-00000002\n", "/etc\n", "step-00000002x"}) {
    SCOPED_TRACE(text);
    WriteFile(latest, text);
    EXPECT_FALSE(LatestTrainingCheckpoint(dir.path().string(), &error));
    EXPECT_CONTAINS(error, latest);
  }
  WriteFile(latest, "step-00000002\n");
  auto named = LatestTrainingCheckpoint(dir.path().string(), &error);
  ASSERT_TRUE(named) << error;
  EXPECT_EQ(*named, dir / "step-00000002");
  EXPECT_EQ(LoadError(*named), "");
  // No LATEST: no checkpoint yet, which is no error.
  fs::remove(latest);
  error.clear();
  EXPECT_FALSE(LatestTrainingCheckpoint(dir.path().string(), &error));
  EXPECT_EQ(error, "");
}

TEST(ReliabilityCheckpoint, ACheckpointOfAnOlderFormatIsRefusedAsSuch) {
  ScratchDir dir("ckpt_older");
  const std::string checkpoint = SaveTwoSteps(dir.path().string());
  fs::remove(checkpoint + "/manifest.json");
  fs::remove(checkpoint + "/metrics.jsonl");
  WriteFile(checkpoint + "/state.json", "{\n  \"step\": 2,\n  \"total_steps\": 10\n}\n");  // as fusec wrote it before
  const std::string error = LoadError(checkpoint);
  EXPECT_CONTAINS(error, checkpoint);
  EXPECT_CONTAINS(error, "older");
}

// --- a full disk ---

/// The checkpoint directory holds exactly the checkpoint of step 1, intact, and nothing else of a checkpoint.
void ExpectOnlyStepOne(const std::string& dir) {
  EXPECT_EQ(ReadFile(dir + "/LATEST"), "step-00000001\n");
  std::vector<std::string> names;
  for (const auto& entry : fs::directory_iterator(dir)) names.push_back(entry.path().filename().string());
  std::sort(names.begin(), names.end());
  EXPECT_EQ(names, (std::vector<std::string>{"LATEST", "step-00000001"}));
  EXPECT_EQ(LoadError(dir + "/step-00000001"), "");
}

/// Saves step 1, then step 2 with `limit_writes` in force (making writes fail); the error of the second.
std::string SaveWhileWritesFail(const std::string& dir, const std::function<void()>& limit_writes,
                                const std::function<void()>& lift_limit) {
  LlamaForCausalLM model = TinyModel(1);
  torch::optim::AdamW optimizer = Optimizer(*model);
  StepWithFixedGradients(*model, optimizer);
  std::string error;
  EXPECT_TRUE(SaveTrainingCheckpoint(*model, optimizer, {1, 10, kStage, kMetrics.substr(0, 38)}, dir, &error)) << error;
  StepWithFixedGradients(*model, optimizer);
  limit_writes();
  const bool saved = SaveTrainingCheckpoint(*model, optimizer, {2, 10, kStage, kMetrics}, dir, &error);
  lift_limit();
  EXPECT_FALSE(saved);
  return saved ? "" : error;
}

/// RLIMIT_FSIZE makes a write past the limit fail (EFBIG, with SIGXFSZ ignored) as a full disk would, at each
/// size from within the first file to past the last, without root.
TEST(ReliabilityCheckpoint, AWriteFailureKeepsThePreviousCheckpoint) {
  ScratchDir probe("ckpt_fsize_probe");
  const std::string probe_checkpoint = SaveTwoSteps(probe.path().string());
  uint64_t largest = 0;
  for (const auto& entry : fs::directory_iterator(probe_checkpoint)) largest = std::max(largest, entry.file_size());
  struct sigaction ignore {}, previous {};
  ignore.sa_handler = SIG_IGN;
  sigaction(SIGXFSZ, &ignore, &previous);
  rlimit unlimited{};
  getrlimit(RLIMIT_FSIZE, &unlimited);
  for (uint64_t limit : {uint64_t{0}, uint64_t{1}, uint64_t{8}, uint64_t{200}, uint64_t{4096}, largest / 3,
                         largest / 2, largest - 1}) {
    SCOPED_TRACE(limit);
    ScratchDir dir("ckpt_fsize");
    const std::string error = SaveWhileWritesFail(
        dir.path().string(),
        [&] {
          rlimit limited = unlimited;
          limited.rlim_cur = limit;
          setrlimit(RLIMIT_FSIZE, &limited);
        },
        [&] { setrlimit(RLIMIT_FSIZE, &unlimited); });
    EXPECT_CONTAINS(error, "cannot write " + (dir / "step-00000002.partial/"));
    EXPECT_CONTAINS(error, "file too large");
    ExpectOnlyStepOne(dir.path().string());
  }
  sigaction(SIGXFSZ, &previous, nullptr);
}

/// A small tmpfs filled to several levels: the error says "no space left on device"; skipped where mounting is
/// not permitted.
TEST(ReliabilityCheckpoint, ADiskFullOnATmpfsKeepsThePreviousCheckpoint) {
  ScratchDir probe("ckpt_tmpfs_probe");
  const std::string probe_checkpoint = SaveTwoSteps(probe.path().string());
  uint64_t checkpoint_size = 0;
  for (const auto& entry : fs::directory_iterator(probe_checkpoint)) checkpoint_size += entry.file_size();
  ScratchDir mount_point("ckpt_tmpfs");
  const uint64_t capacity = (checkpoint_size * 3 / 2 + 65535) / 4096 * 4096 + 16 * 4096;
  const std::string options = "size=" + std::to_string(capacity);
  if (::mount("tmpfs", mount_point.path().c_str(), "tmpfs", 0, options.c_str()) != 0) {
    GTEST_SKIP() << "cannot mount a tmpfs here: " << std::strerror(errno);
  }
  // Free space left for the second checkpoint: from none to all but a little of what it needs.
  for (uint64_t room : {uint64_t{0}, uint64_t{4096}, checkpoint_size / 4, checkpoint_size / 2,
                        checkpoint_size * 3 / 4, checkpoint_size - 8192}) {
    SCOPED_TRACE(room);
    const std::string dir = mount_point / "checkpoints";
    fs::create_directories(dir);
    const std::string filler = mount_point / "filler";
    const std::string error = SaveWhileWritesFail(
        dir,
        [&] {
          const uint64_t free_now = fs::space(mount_point.path()).available;
          WriteFile(filler, std::string(free_now > room ? free_now - room : 0, 'x'));
        },
        [] {});
    EXPECT_CONTAINS(error, "cannot write " + dir + "/step-00000002.partial/");
    EXPECT_CONTAINS(error, "no space left on device");
    ExpectOnlyStepOne(dir);
    fs::remove_all(dir);
    fs::remove(filler);
  }
  ::umount2(mount_point.path().c_str(), MNT_DETACH);
}

}  // namespace
}  // namespace fusec::rt
