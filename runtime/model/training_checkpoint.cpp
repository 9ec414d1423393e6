#include "runtime/model/training_checkpoint.h"

#include <c10/util/Exception.h>
#include <torch/serialize.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <nlohmann/json.hpp>
#include <sstream>
#include <utility>
#include <vector>

#include "compiler/support/sha256.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/safetensors.h"
#include "runtime/support/checked_write.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

constexpr const char* kWeights = "model.safetensors";
constexpr const char* kOptimizer = "optimizer.pt";
constexpr const char* kState = "state.json";
constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kManifest = "manifest.json";
/// The files the manifest records, in the order they are verified: state.json first, so that an edited field
/// is named.
constexpr const char* kRecordedFiles[] = {kState, kWeights, kOptimizer, kMetrics};

/// `step-00000012`: the checkpoint directory of a step, named so that names sort as steps do.
std::string CheckpointName(int64_t step) {
  char name[32];
  std::snprintf(name, sizeof name, "step-%08lld", static_cast<long long>(step));
  return name;
}

/// The step a checkpoint directory's name gives (`step-` and 8 or more digits); nullopt for any other name.
std::optional<int64_t> StepOfName(const std::string& name) {
  if (!name.starts_with("step-") || name.size() < 13 || name.size() > 23) return std::nullopt;
  int64_t step = 0;
  for (char c : name.substr(5)) {
    if (c < '0' || c > '9') return std::nullopt;
    step = step * 10 + (c - '0');
  }
  return step;
}

/// A filesystem error as fusec says it: "no space left on device".
std::string Reason(const std::error_code& ec) {
  std::string text = ec.message();
  if (!text.empty()) text[0] = static_cast<char>(std::tolower(static_cast<unsigned char>(text[0])));
  return text;
}

/// What a checkpoint says of the model it is of: the SHA-256 of its configuration (config.json as fusec writes
/// it) and of its parameters' names and shapes.
struct ModelIdentity {
  std::string config_sha256;
  std::string parameters_sha256;
};

ModelIdentity IdentityOf(LlamaForCausalLMImpl& model) {
  Sha256 parameters;
  for (const auto& item : model.named_parameters()) {
    std::string line = item.key();
    for (int64_t d : item.value().sizes()) line += " " + std::to_string(d);
    parameters.Update(line + "\n");
  }
  return {Sha256Hex(ModelConfigToJson(model.config())), parameters.HexDigest()};
}

// --- writing ---

/// Records `file`'s size and SHA-256 under its name in the manifest's `files`.
void Record(Json& files, const char* name, CheckedFile& file) {
  files[name] = {{"size", file.size()}, {"sha256", file.Sha256Hex()}};
}

bool WriteRecorded(const fs::path& staging, const char* name, std::string_view bytes, Json& files, std::string* error) {
  std::unique_ptr<CheckedFile> file = CheckedFile::Create((staging / name).string(), error);
  if (!file || !file->Write(bytes, error) || !file->Finish(error)) return false;
  Record(files, name, *file);
  return true;
}

/// Writes the model's parameters to `staging`/model.safetensors in fp32, under their own names.
bool WriteFp32Weights(LlamaForCausalLMImpl& model, const fs::path& staging, Json& files, std::string* error) {
  std::vector<std::pair<std::string, torch::Tensor>> tensors;  // CPU, contiguous fp32 copies, alive until written
  for (const auto& item : model.named_parameters()) {
    tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU, torch::kFloat).contiguous());
  }
  std::vector<TensorToWrite> writes;
  for (const auto& [tensor_name, tensor] : tensors) {
    writes.push_back({tensor_name, DType::F32, tensor.sizes().vec(), tensor.data_ptr()});
  }
  std::unique_ptr<CheckedFile> file = CheckedFile::Create((staging / kWeights).string(), error);
  if (!file || !file->Write(SafetensorsPrefix(writes, {{"format", "pt"}}), error)) return false;
  for (const TensorToWrite& tensor : writes) {
    if (!file->Write({static_cast<const char*>(tensor.data), TensorByteSize(tensor)}, error)) return false;
  }
  if (!file->Finish(error)) return false;
  Record(files, kWeights, *file);
  return true;
}

/// The optimizer's state as LibTorch serializes it, in memory: LibTorch's own file writer cannot report a
/// failed write (it aborts the process from a destructor), so fusec writes the bytes itself.
std::optional<std::string> OptimizerBytes(const torch::optim::Optimizer& optimizer, std::string* error) {
  try {
    std::ostringstream out;
    torch::save(optimizer, out);
    return std::move(out).str();
  } catch (const c10::Error& torch_error) {
    *error = std::string("cannot serialize the optimizer's state: ") + torch_error.what_without_backtrace();
    return std::nullopt;
  }
}

/// Writes the complete checkpoint into `staging`, each file checked and fsynced, the manifest last.
bool WriteCheckpointFiles(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                          const TrainingState& state, const fs::path& staging, std::string* error) {
  Json files = Json::object();
  if (!WriteFp32Weights(model, staging, files, error)) return false;
  const std::optional<std::string> optimizer_bytes = OptimizerBytes(optimizer, error);
  if (!optimizer_bytes || !WriteRecorded(staging, kOptimizer, *optimizer_bytes, files, error)) return false;
  if (!WriteRecorded(staging, kMetrics, state.metrics, files, error)) return false;
  const ModelIdentity identity = IdentityOf(model);
  const Json state_json = {{"format_version", kTrainingCheckpointFormat},
                           {"stage", state.stage},
                           {"step", state.step},
                           {"total_steps", state.total_steps},
                           {"model_config_sha256", identity.config_sha256},
                           {"parameters_sha256", identity.parameters_sha256}};
  if (!WriteRecorded(staging, kState, state_json.dump(2) + "\n", files, error)) return false;
  const Json manifest = {{"format_version", kTrainingCheckpointFormat}, {"files", files}};
  if (!WriteFileChecked((staging / kManifest).string(), manifest.dump(2) + "\n", error)) return false;
  return FsyncDirectory(staging.string(), error);
}

/// Renames `staging` to checkpoint `name` of `dir` and makes it the one LATEST names (replacing LATEST
/// atomically), then removes the others. On failure the new checkpoint is removed and LATEST is as it was.
bool PublishAsLatest(const fs::path& dir, const fs::path& staging, const std::string& name, std::string* error) {
  const fs::path final_dir = dir / name;
  std::error_code ec;
  fs::remove_all(final_dir, ec);
  fs::rename(staging, final_dir, ec);
  if (ec) {
    *error = "cannot move " + staging.string() + " into place: " + Reason(ec);
    return false;
  }
  const fs::path latest_tmp = dir / "LATEST.tmp";
  if (!FsyncDirectory(dir.string(), error) || !WriteFileChecked(latest_tmp.string(), name + "\n", error)) {
    fs::remove(latest_tmp, ec);
    fs::remove_all(final_dir, ec);
    return false;
  }
  fs::rename(latest_tmp, dir / "LATEST", ec);
  if (ec) {
    *error = "cannot replace " + (dir / "LATEST").string() + ": " + Reason(ec);
    fs::remove(latest_tmp, ec);
    fs::remove_all(final_dir, ec);
    return false;
  }
  if (!FsyncDirectory(dir.string(), error)) return false;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    std::string entry_name = entry.path().filename().string();
    if (entry_name.starts_with("step-") && entry_name != name) fs::remove_all(entry.path(), ec);
  }
  return true;
}

// --- verifying ---

/// The fields of a JSON object read from `file`, each a clear error naming the file and the field when it is
/// missing or of the wrong type.
class Fields {
 public:
  Fields(const Json& json, const fs::path& file) : json_(json), file_(file.string()) {}

  std::optional<int64_t> Integer(const std::string& field, std::string* error) const {
    const Json* value = Find(field, error);
    if (value == nullptr) return std::nullopt;
    if (!value->is_number_integer() ||
        (value->is_number_unsigned() && value->get<uint64_t>() > uint64_t{std::numeric_limits<int64_t>::max()})) {
      *error = file_ + ": `" + field + "` is " + value->dump() + ", not an integer";
      return std::nullopt;
    }
    return value->get<int64_t>();
  }

  std::optional<std::string> String(const std::string& field, std::string* error) const {
    const Json* value = Find(field, error);
    if (value == nullptr) return std::nullopt;
    if (!value->is_string()) {
      *error = file_ + ": `" + field + "` is " + value->dump() + ", not a string";
      return std::nullopt;
    }
    return value->get<std::string>();
  }

  std::optional<Fields> Object(const std::string& field, std::string* error) const {
    const Json* value = Find(field, error);
    if (value == nullptr) return std::nullopt;
    if (!value->is_object()) {
      *error = file_ + ": `" + field + "` is " + value->dump() + ", not an object";
      return std::nullopt;
    }
    return Fields(*value, file_, field + ".");
  }

  /// The format version, which must be this fusec's.
  bool FormatVersion(std::string* error) const {
    std::optional<int64_t> version = Integer("format_version", error);
    if (!version) return false;
    if (*version != kTrainingCheckpointFormat) {
      *error = file_ + ": `format_version` is " + std::to_string(*version) + ", this fusec reads checkpoints of format " +
               std::to_string(kTrainingCheckpointFormat);
      return false;
    }
    return true;
  }

  const std::string& file() const { return file_; }

 private:
  Fields(const Json& json, std::string file, std::string prefix)
      : json_(json), file_(std::move(file)), prefix_(std::move(prefix)) {}

  const Json* Find(const std::string& field, std::string* error) const {
    auto it = json_.find(field);
    if (it == json_.end()) {
      *error = file_ + ": `" + prefix_ + field + "` is missing";
      return nullptr;
    }
    return &*it;
  }

  const Json& json_;
  std::string file_;
  std::string prefix_;
};

/// `file` parsed as a JSON object; nullopt with `error` naming it when it is missing or is not one.
std::optional<Json> ReadJsonObject(const fs::path& file, const std::optional<std::string>& text, std::string* error) {
  if (!text) {
    *error = file.string() + ": missing or unreadable";
    return std::nullopt;
  }
  Json json = Json::parse(*text, nullptr, false);
  if (json.is_discarded() || !json.is_object()) {
    *error = file.string() + ": not a JSON object (damaged)";
    return std::nullopt;
  }
  return json;
}

/// What state.json records: the training state and the model's identity.
struct RecordedState {
  TrainingState state;
  ModelIdentity model;
};

/// state.json's fields, each checked for its type and range, and `step` against the checkpoint's name.
std::optional<RecordedState> ParseState(const Json& state_json, const fs::path& checkpoint, std::string* error) {
  const fs::path file = checkpoint / kState;
  const Fields fields(state_json, file);
  if (!fields.FormatVersion(error)) return std::nullopt;
  auto stage = fields.String("stage", error);
  auto step = stage ? fields.Integer("step", error) : std::nullopt;
  auto total_steps = step ? fields.Integer("total_steps", error) : std::nullopt;
  auto config_sha256 = total_steps ? fields.String("model_config_sha256", error) : std::nullopt;
  auto parameters_sha256 = config_sha256 ? fields.String("parameters_sha256", error) : std::nullopt;
  if (!parameters_sha256) return std::nullopt;
  if (*total_steps < 1) {
    *error = file.string() + ": `total_steps` is " + std::to_string(*total_steps) + ", not a number of steps";
    return std::nullopt;
  }
  if (*step < 1 || *step > *total_steps) {
    *error = file.string() + ": `step` is " + std::to_string(*step) + ", not a step of the stage (1 to " +
             std::to_string(*total_steps) + ")";
    return std::nullopt;
  }
  if (StepOfName(checkpoint.filename().string()) != *step) {
    *error = file.string() + ": `step` is " + std::to_string(*step) + " but the checkpoint is " +
             checkpoint.filename().string() + " (was it edited?)";
    return std::nullopt;
  }
  RecordedState recorded;
  recorded.state.step = *step;
  recorded.state.total_steps = *total_steps;
  recorded.state.stage = *stage;
  recorded.model = {*config_sha256, *parameters_sha256};
  return recorded;
}

/// A verified checkpoint must be of `stage` and of a model like `model`.
bool CheckIdentity(const RecordedState& recorded, const fs::path& checkpoint, const std::string& stage,
                   LlamaForCausalLMImpl& model, std::string* error) {
  const std::string file = (checkpoint / kState).string();
  if (recorded.state.stage != stage) {
    *error = file + ": the checkpoint is of another stage (`" + recorded.state.stage.substr(0, 12) +
             "`), not of this one (`" + stage.substr(0, 12) + "`)";
    return false;
  }
  const ModelIdentity identity = IdentityOf(model);
  if (recorded.model.config_sha256 != identity.config_sha256) {
    *error = file + ": the checkpoint is of another model (its configuration differs from this one's)";
    return false;
  }
  if (recorded.model.parameters_sha256 != identity.parameters_sha256) {
    *error = file + ": the checkpoint is of another model (its parameters' names or shapes differ)";
    return false;
  }
  return true;
}

/// What the manifest records of one file.
struct FileRecord {
  int64_t size = 0;
  std::string sha256;
};

/// Checks `bytes`, the contents of `file`, against the manifest's record of it.
bool MatchesRecord(const fs::path& file, std::string_view bytes, const FileRecord& record, std::string* error) {
  if (static_cast<int64_t>(bytes.size()) != record.size) {
    *error = file.string() + ": " + std::to_string(bytes.size()) + " bytes where the manifest records " +
             std::to_string(record.size) + " (truncated or replaced)";
    return false;
  }
  if (Sha256Hex(bytes) != record.sha256) {
    *error = file.string() + ": its SHA-256 is not the one the manifest records (damaged or replaced)";
    return false;
  }
  return true;
}

/// The files of a checkpoint, read and checked against its manifest: the small ones in memory, the weights
/// checked in place (they are mapped when loaded).
struct VerifiedFiles {
  RecordedState state;
  std::string optimizer;
  std::string metrics;
};

std::optional<VerifiedFiles> VerifyFiles(const fs::path& checkpoint, std::string* error) {
  const fs::path manifest_path = checkpoint / kManifest;
  const std::optional<std::string> manifest_text = ReadWholeFile(manifest_path.string());
  const std::optional<std::string> state_text = ReadWholeFile((checkpoint / kState).string());
  if (!manifest_text && state_text) {
    Json old_state = Json::parse(*state_text, nullptr, false);
    if (!old_state.is_discarded() && old_state.is_object() && !old_state.contains("format_version")) {
      *error = checkpoint.string() + ": a checkpoint of an older fusec, without checksums, which this one does not "
                                     "resume from";
      return std::nullopt;
    }
  }
  const std::optional<Json> manifest = ReadJsonObject(manifest_path, manifest_text, error);
  if (!manifest) return std::nullopt;
  const Fields manifest_fields(*manifest, manifest_path);
  if (!manifest_fields.FormatVersion(error)) return std::nullopt;
  const std::optional<Fields> files = manifest_fields.Object("files", error);
  if (!files) return std::nullopt;

  VerifiedFiles verified;
  for (const char* name : kRecordedFiles) {
    const std::optional<Fields> entry = files->Object(name, error);
    if (!entry) return std::nullopt;
    const std::optional<int64_t> size = entry->Integer("size", error);
    const std::optional<std::string> sha256 = size ? entry->String("sha256", error) : std::nullopt;
    if (!sha256) return std::nullopt;
    const FileRecord record{*size, *sha256};
    const fs::path path = checkpoint / name;
    if (name == std::string_view(kWeights)) {
      std::error_code ec;
      const uint64_t bytes = fs::file_size(path, ec);
      if (ec) {
        *error = path.string() + ": " + Reason(ec);
        return std::nullopt;
      }
      if (static_cast<int64_t>(bytes) != record.size) {
        *error = path.string() + ": " + std::to_string(bytes) + " bytes where the manifest records " +
                 std::to_string(record.size) + " (truncated or replaced)";
        return std::nullopt;
      }
      if (Sha256File(path.string()) != record.sha256) {
        *error = path.string() + ": its SHA-256 is not the one the manifest records (damaged or replaced)";
        return std::nullopt;
      }
      continue;
    }
    const std::optional<std::string> bytes = name == std::string_view(kState) ? state_text : ReadWholeFile(path.string());
    if (!bytes) {
      *error = path.string() + ": missing or unreadable";
      return std::nullopt;
    }
    if (name == std::string_view(kState)) {
      // Its fields first, so that an edited field is named (the checksum would only say "damaged").
      const std::optional<Json> state_json = ReadJsonObject(path, bytes, error);
      const std::optional<RecordedState> state = state_json ? ParseState(*state_json, checkpoint, error) : std::nullopt;
      if (!state) return std::nullopt;
      verified.state = *state;
    }
    if (!MatchesRecord(path, *bytes, record, error)) {
      if (name == std::string_view(kState)) error->append("; was it edited?");
      return std::nullopt;
    }
    if (name == std::string_view(kOptimizer)) verified.optimizer = *bytes;
    if (name == std::string_view(kMetrics)) verified.metrics = *bytes;
  }
  return verified;
}

/// Copies the checkpoint's fp32 weights into the model's parameters; every parameter must be there, in fp32
/// and of its shape.
bool ReadFp32Weights(LlamaForCausalLMImpl& model, const fs::path& checkpoint, std::string* error) {
  auto file = SafetensorsFile::Open((checkpoint / kWeights).string(), error);
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

bool ReadOptimizer(torch::optim::Optimizer& optimizer, const fs::path& checkpoint, const std::string& bytes,
                   std::string* error) {
  try {
    std::istringstream in(bytes);
    torch::load(optimizer, in);
    return true;
  } catch (const c10::Error& torch_error) {
    std::string what = torch_error.what_without_backtrace();
    *error = (checkpoint / kOptimizer).string() + ": not the optimizer state of this model (" +
             what.substr(0, what.find('\n')) + ")";
    return false;
  }
}

}  // namespace

bool SaveTrainingCheckpoint(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                            const TrainingState& state, const std::string& dir, std::string* error) {
  const std::string name = CheckpointName(state.step);
  const fs::path staging = fs::path(dir) / (name + ".partial");
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) {
    *error = "cannot create " + staging.string() + ": " + Reason(ec);
    return false;
  }
  if (WriteCheckpointFiles(model, optimizer, state, staging, error) && PublishAsLatest(dir, staging, name, error)) {
    return true;
  }
  fs::remove_all(staging, ec);
  return false;
}

std::optional<std::string> LatestTrainingCheckpoint(const std::string& dir, std::string* error) {
  error->clear();
  const fs::path latest = fs::path(dir) / "LATEST";
  std::error_code ec;
  if (!fs::exists(latest, ec)) return std::nullopt;
  const std::optional<std::string> text = ReadWholeFile(latest.string());
  std::string name = text ? *text : "";
  if (name.ends_with("\n")) name.pop_back();
  if (!text || !StepOfName(name)) {
    *error = latest.string() + ": names " + (text ? "`" + name + "`" : "nothing readable") +
             ", not a checkpoint (`step-NNNNNNNN`)";
    return std::nullopt;
  }
  const fs::path checkpoint = fs::path(dir) / name;
  if (!fs::is_directory(checkpoint, ec)) {
    *error = latest.string() + ": names `" + name + "`, which is not there";
    return std::nullopt;
  }
  return checkpoint.string();
}

std::optional<TrainingState> LoadTrainingCheckpoint(LlamaForCausalLMImpl& model, torch::optim::Optimizer& optimizer,
                                                    const std::string& checkpoint, const std::string& stage,
                                                    std::string* error) {
  const fs::path path(checkpoint);
  std::optional<VerifiedFiles> files = VerifyFiles(path, error);
  if (!files) return std::nullopt;
  if (!CheckIdentity(files->state, path, stage, model, error) || !ReadFp32Weights(model, path, error) ||
      !ReadOptimizer(optimizer, path, files->optimizer, error)) {
    return std::nullopt;
  }
  TrainingState state = std::move(files->state.state);
  state.metrics = std::move(files->metrics);
  return state;
}

}  // namespace fusec::rt
