#include "runtime/model/training_checkpoint.h"

#include <fcntl.h>
#include <unistd.h>

#include <torch/serialize.h>

#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <utility>
#include <vector>

#include "runtime/model/checkpoint.h"
#include "runtime/model/safetensors.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

/// fsync a file or directory, so a rename that follows publishes data that is on disk.
void Fsync(const fs::path& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd >= 0) {
    ::fsync(fd);
    ::close(fd);
  }
}

/// `step-00000012`: the checkpoint directory of a step, named so that names sort as steps do.
std::string CheckpointName(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

/// Writes the model's parameters to `path` in fp32, under their own names.
bool WriteFp32Weights(LlamaForCausalLMImpl& model, const fs::path& path, std::string* error) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // CPU, contiguous fp32 copies, alive until written
  for (const auto& item : model.named_parameters()) {
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU, torch::kFloat).contiguous());
  }
  std::vector<TensorToWrite> writes;
  for (const auto& [tensor_name, tensor] : tensors) {
    writes.push_back({tensor_name, DType::F32, tensor.sizes().vec(), tensor.data_ptr()});
  }
  if (!WriteSafetensors(path.string(), writes, {{"format", "pt"}}, error)) {
    *error = "cannot write a checkpoint: " + *error;
    return false;
  }
  return true;
}

/// Writes the complete checkpoint into `staging` and fsyncs it, ready to be renamed into place.
bool WriteCheckpointFiles(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                          const TrainingState& state, const fs::path& staging, std::string* error) {
  if (!WriteFp32Weights(model, staging / "model.safetensors", error)) return false;
  torch::save(optimizer, (staging / "optimizer.pt").string());
  nlohmann::ordered_json json = {{"step", state.step}, {"total_steps", state.total_steps}};
  if (!WriteWholeFile((staging / "state.json").string(), json.dump(2) + "\n")) {
    *error = "cannot write " + (staging / "state.json").string();
    return false;
  }
  for (const char* file : {"model.safetensors", "optimizer.pt", "state.json"}) Fsync(staging / file);
  Fsync(staging);
  return true;
}

/// Makes checkpoint `name` of `dir` the one LATEST names (replacing LATEST atomically), then removes the
/// others.
bool PublishAsLatest(const fs::path& dir, const std::string& name, std::string* error) {
  fs::path latest_tmp = dir / "LATEST.tmp";
  if (!WriteWholeFile(latest_tmp.string(), name + "\n")) {
    *error = "cannot write " + latest_tmp.string();
    return false;
  }
  Fsync(latest_tmp);
  fs::rename(latest_tmp, dir / "LATEST");
  Fsync(dir);
  for (const auto& entry : fs::directory_iterator(dir)) {
    std::string entry_name = entry.path().filename().string();
    if (entry_name.starts_with("step-") && entry_name != name) fs::remove_all(entry.path());
  }
  return true;
}

/// Copies the checkpoint's fp32 weights into the model's parameters; every parameter must be there, in fp32
/// and of its shape.
bool ReadFp32Weights(LlamaForCausalLMImpl& model, const fs::path& checkpoint, std::string* error) {
  auto file = SafetensorsFile::Open((checkpoint / "model.safetensors").string(), error);
  if (!file) {
    *error = "cannot resume: " + *error;
    return false;
  }
  for (auto& item : model.named_parameters()) {
    const TensorInfo* info = file->Find(item.key());
    if (info == nullptr || info->dtype != DType::F32 || c10::IntArrayRef(info->shape) != item.value().sizes()) {
      *error = checkpoint.string() + ": the checkpoint does not match the model at `" + item.key() + "`";
      return false;
    }
    CopyTensorInto(*file, *info, item.value());
  }
  return true;
}

}  // namespace

bool SaveTrainingCheckpoint(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                            const TrainingState& state, const std::string& dir, std::string* error) {
  const std::string name = CheckpointName(state.step);
  const fs::path staging = fs::path(dir) / (name + ".partial");
  fs::remove_all(staging);
  fs::create_directories(staging);
  if (!WriteCheckpointFiles(model, optimizer, state, staging, error)) return false;
  const fs::path final_dir = fs::path(dir) / name;
  fs::remove_all(final_dir);
  fs::rename(staging, final_dir);
  return PublishAsLatest(dir, name, error);
}

std::optional<std::string> LatestTrainingCheckpoint(const std::string& dir) {
  auto latest = ReadWholeFile((fs::path(dir) / "LATEST").string());
  if (!latest) return std::nullopt;
  return (fs::path(dir) / latest->substr(0, latest->find('\n'))).string();
}

std::optional<TrainingState> LoadTrainingCheckpoint(LlamaForCausalLMImpl& model, torch::optim::Optimizer& optimizer,
                                                    const std::string& checkpoint, std::string* error) {
  const fs::path path(checkpoint);
  auto state_text = ReadWholeFile((path / "state.json").string());
  nlohmann::json state_json = nlohmann::json::parse(state_text.value_or(""), nullptr, false);
  if (state_json.is_discarded() || !state_json.contains("step")) {
    *error = path.string() + ": the checkpoint's state.json is missing or damaged";
    return std::nullopt;
  }
  if (!ReadFp32Weights(model, path, error)) return std::nullopt;
  torch::load(optimizer, (path / "optimizer.pt").string());
  return TrainingState{state_json["step"].get<int64_t>(), state_json.value("total_steps", int64_t{0})};
}

}  // namespace fusec::rt
