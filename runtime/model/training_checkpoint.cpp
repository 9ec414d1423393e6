#include "runtime/model/training_checkpoint.h"

#include <c10/util/Exception.h>
#include <c10/util/string_utils.h>
#include <torch/optim/adamw.h>

#include <cctype>
#include <cstdio>
#include <filesystem>
#include <limits>
#include <memory>
#include <map>
#include <nlohmann/json.hpp>
#include <set>
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
constexpr const char* kState = "state.json";
constexpr const char* kMetrics = "metrics.jsonl";
constexpr const char* kManifest = "manifest.json";
/// The AdamW moments an optimizer file keeps of a parameter, as suffixes of its name (the longest first: one
/// ends with another).
constexpr const char* kMomentSuffixes[] = {".max_exp_avg_sq", ".exp_avg_sq", ".exp_avg"};

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

/// Named fp32 tensors: CPU, contiguous copies, alive until written.
using NamedTensors = std::vector<std::pair<std::string, torch::Tensor>>;

/// Writes `tensors` as the safetensors file `path`, every write checked and the file fsynced.
std::unique_ptr<CheckedFile> WriteTensorsFile(const fs::path& path, const NamedTensors& tensors,
                                              const std::map<std::string, std::string>& metadata, std::string* error) {
  std::vector<TensorToWrite> writes;
  for (const auto& [tensor_name, tensor] : tensors) {
    writes.push_back({tensor_name, DType::F32, tensor.sizes().vec(), tensor.data_ptr()});
  }
  std::unique_ptr<CheckedFile> file = CheckedFile::Create(path.string(), error);
  if (!file || !file->Write(SafetensorsPrefix(writes, metadata), error)) return nullptr;
  for (const TensorToWrite& tensor : writes) {
    if (!file->Write({static_cast<const char*>(tensor.data), TensorByteSize(tensor)}, error)) return nullptr;
  }
  if (!file->Finish(error)) return nullptr;
  return file;
}

torch::Tensor Fp32CpuCopy(const torch::Tensor& tensor) {
  return tensor.detach().to(torch::kCPU, torch::kFloat).contiguous();
}

/// Writes the model's parameters to `staging`/model.safetensors in fp32, under their own names.
bool WriteFp32Weights(LlamaForCausalLMImpl& model, const fs::path& staging, Json& files, std::string* error) {
  NamedTensors tensors;
  for (const auto& item : model.named_parameters()) tensors.emplace_back(item.key(), Fp32CpuCopy(item.value()));
  std::unique_ptr<CheckedFile> file = WriteTensorsFile(staging / kWeights, tensors, {{"format", "pt"}}, error);
  if (!file) return false;
  Record(files, kWeights, *file);
  return true;
}

/// The key LibTorch's optimizers file a parameter's state under.
std::string StateKey(const torch::Tensor& parameter) { return c10::guts::to_string(parameter.unsafeGetTensorImpl()); }

/// Where the rank that wrote optimizer file `name` leaves its size and SHA-256 for the leader's manifest, which
/// so need not read the file back: `name.record` beside it, removed once the manifest has it.
fs::path ShardRecordPath(const fs::path& staging, const std::string& name) { return staging / (name + ".record"); }

/// Records an optimizer file a rank wrote, from the record it left, and removes the record.
bool RecordShardFile(Json& files, const fs::path& staging, const std::string& name, std::string* error) {
  const fs::path record_path = ShardRecordPath(staging, name);
  const std::optional<std::string> text = ReadWholeFile(record_path.string());
  const Json record = text ? Json::parse(*text, nullptr, false) : Json();
  std::error_code ec;
  const uint64_t size = fs::file_size(staging / name, ec);
  if (!text || ec || !record.is_object() || record.value("size", uint64_t{0}) != size ||
      !record.value("sha256", Json()).is_string()) {
    *error = (staging / name).string() + ": not written whole, so a rank did not write its optimizer state";
    return false;
  }
  files[name] = {{"size", size}, {"sha256", record["sha256"]}};
  fs::remove(record_path, ec);
  return true;
}

/// Writes the rest of the checkpoint into `staging` (its optimizer files are there), each file checked and
/// fsynced, the manifest last.
bool WriteCommonFiles(LlamaForCausalLMImpl& model, const TrainingState& state, int64_t shards,
                      const fs::path& staging, std::string* error) {
  Json files = Json::object();
  if (!WriteFp32Weights(model, staging, files, error)) return false;
  for (int64_t shard = 0; shard < shards; ++shard) {
    if (!RecordShardFile(files, staging, OptimizerShardFileName(shard, shards), error)) return false;
  }
  if (!WriteRecorded(staging, kMetrics, state.metrics, files, error)) return false;
  const ModelIdentity identity = IdentityOf(model);
  const Json state_json = {{"format_version", kTrainingCheckpointFormat},
                           {"stage", state.stage},
                           {"step", state.step},
                           {"total_steps", state.total_steps},
                           {"optimizer_shards", shards},
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
  int64_t optimizer_shards = 1;
  ModelIdentity model;
};

/// state.json's fields, each checked for its type and range, and `step` against the checkpoint's name.
std::optional<RecordedState> ParseState(const Json& state_json, const fs::path& checkpoint, std::string* error) {
  const fs::path file = checkpoint / kState;
  const Fields fields(state_json, file);
  if (!fields.FormatVersion(error)) return std::nullopt;
  const std::optional<std::string> stage = fields.String("stage", error);
  if (!stage) return std::nullopt;
  const std::optional<int64_t> step = fields.Integer("step", error);
  if (!step) return std::nullopt;
  const std::optional<int64_t> total_steps = fields.Integer("total_steps", error);
  if (!total_steps) return std::nullopt;
  const std::optional<int64_t> shards = fields.Integer("optimizer_shards", error);
  if (!shards) return std::nullopt;
  const std::optional<std::string> config_sha256 = fields.String("model_config_sha256", error);
  if (!config_sha256) return std::nullopt;
  const std::optional<std::string> parameters_sha256 = fields.String("parameters_sha256", error);
  if (!parameters_sha256) return std::nullopt;
  if (*total_steps < 1) {
    *error = file.string() + ": `total_steps` is " + std::to_string(*total_steps) + ", not a number of steps";
    return std::nullopt;
  }
  if (*shards < 1 || *shards > 99999) {
    *error = file.string() + ": `optimizer_shards` is " + std::to_string(*shards) + ", not a number of ranks";
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
  recorded.optimizer_shards = *shards;
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

/// The files of a checkpoint, read and checked against its manifest: the small ones in memory, the tensor
/// files (weights, optimizer moments) checked in place (they are mapped when loaded).
struct VerifiedFiles {
  RecordedState state;
  std::string metrics;
};

/// The manifest's record of `name`.
std::optional<FileRecord> RecordOf(const Fields& files, const std::string& name, std::string* error) {
  const std::optional<Fields> entry = files.Object(name, error);
  const std::optional<int64_t> size = entry ? entry->Integer("size", error) : std::nullopt;
  const std::optional<std::string> sha256 = size ? entry->String("sha256", error) : std::nullopt;
  if (!sha256) return std::nullopt;
  return FileRecord{*size, *sha256};
}

/// A large file checked against its record where it lies, without reading it into memory.
bool MatchesRecordOnDisk(const fs::path& path, const FileRecord& record, std::string* error) {
  std::error_code ec;
  const uint64_t bytes = fs::file_size(path, ec);
  if (ec) {
    *error = path.string() + ": " + Reason(ec);
    return false;
  }
  if (static_cast<int64_t>(bytes) != record.size) {
    *error = path.string() + ": " + std::to_string(bytes) + " bytes where the manifest records " +
             std::to_string(record.size) + " (truncated or replaced)";
    return false;
  }
  if (Sha256File(path.string()) != record.sha256) {
    *error = path.string() + ": its SHA-256 is not the one the manifest records (damaged or replaced)";
    return false;
  }
  return true;
}

std::optional<VerifiedFiles> VerifyFiles(const fs::path& checkpoint, std::string* error) {
  const fs::path manifest_path = checkpoint / kManifest;
  const std::optional<std::string> manifest_text = ReadWholeFile(manifest_path.string());
  const fs::path state_path = checkpoint / kState;
  const std::optional<std::string> state_text = ReadWholeFile(state_path.string());
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

  // state.json first, its fields before its checksum, so that an edited field is named (the checksum would
  // only say "damaged").
  VerifiedFiles verified;
  const std::optional<FileRecord> state_record = RecordOf(*files, kState, error);
  if (!state_record) return std::nullopt;
  if (!state_text) {
    *error = state_path.string() + ": missing or unreadable";
    return std::nullopt;
  }
  const std::optional<Json> state_json = ReadJsonObject(state_path, state_text, error);
  const std::optional<RecordedState> state = state_json ? ParseState(*state_json, checkpoint, error) : std::nullopt;
  if (!state) return std::nullopt;
  verified.state = *state;
  if (!MatchesRecord(state_path, *state_text, *state_record, error)) {
    error->append("; was it edited?");
    return std::nullopt;
  }
  std::vector<std::string> tensor_files = {kWeights};
  for (int64_t shard = 0; shard < state->optimizer_shards; ++shard) {
    tensor_files.push_back(OptimizerShardFileName(shard, state->optimizer_shards));
  }
  for (const std::string& name : tensor_files) {
    const std::optional<FileRecord> record = RecordOf(*files, name, error);
    if (!record || !MatchesRecordOnDisk(checkpoint / name, *record, error)) return std::nullopt;
  }
  const std::optional<FileRecord> metrics_record = RecordOf(*files, kMetrics, error);
  if (!metrics_record) return std::nullopt;
  const fs::path metrics_path = checkpoint / kMetrics;
  const std::optional<std::string> metrics = ReadWholeFile(metrics_path.string());
  if (!metrics) {
    *error = metrics_path.string() + ": missing or unreadable";
    return std::nullopt;
  }
  if (!MatchesRecord(metrics_path, *metrics, *metrics_record, error)) return std::nullopt;
  verified.metrics = *metrics;
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

/// The step count of `parameter`'s moments in an optimizer file's metadata.
std::optional<int64_t> MomentStep(const SafetensorsFile& file, const std::string& parameter, std::string* error) {
  auto it = file.metadata().find(parameter + ".step");
  int64_t step = 0;
  bool valid = it != file.metadata().end() && !it->second.empty() && it->second.size() < 19;
  for (char c : valid ? it->second : std::string()) {
    valid = valid && c >= '0' && c <= '9';
    step = step * 10 + (c - '0');
  }
  if (!valid || step < 1) {
    *error = file.path() + ": the step count of `" + parameter + "`'s moments is " +
             (it == file.metadata().end() ? std::string("missing") : "`" + it->second + "`, not a count");
    return std::nullopt;
  }
  return step;
}

/// Loads into `optimizer` the moments of the parameters it holds, from whichever of the checkpoint's `shards`
/// optimizer files has them (they may have been written by another number of ranks). Every moment in the files
/// must be of a parameter of `model`, of its shape, in fp32, and in one file only.
bool ReadOptimizerShards(LlamaForCausalLMImpl& model, torch::optim::Optimizer& optimizer, const fs::path& checkpoint,
                         int64_t shards, std::string* error) {
  std::map<std::string, torch::Tensor> parameter_of;  // by name
  for (const auto& item : model.named_parameters()) parameter_of.emplace(item.key(), item.value());
  std::set<std::string> held;  // the state keys of the parameters `optimizer` holds
  for (const auto& group : optimizer.param_groups()) {
    for (const torch::Tensor& parameter : group.params()) held.insert(StateKey(parameter));
  }
  optimizer.state().clear();
  std::set<std::string> loaded;  // parameters whose moments were found
  for (int64_t shard = 0; shard < shards; ++shard) {
    std::optional<SafetensorsFile> file =
        SafetensorsFile::Open((checkpoint / OptimizerShardFileName(shard, shards)).string(), error);
    if (!file) {
      *error = "cannot resume: " + *error;
      return false;
    }
    std::map<std::string, std::map<std::string, const TensorInfo*>> moments;  // parameter -> suffix -> tensor
    for (const TensorInfo& info : file->tensors()) {
      const char* suffix = nullptr;
      for (const char* candidate : kMomentSuffixes) {
        if (info.name.ends_with(candidate)) {
          suffix = candidate;
          break;
        }
      }
      const std::string name = suffix ? info.name.substr(0, info.name.size() - std::string_view(suffix).size()) : "";
      auto parameter = parameter_of.find(name);
      if (suffix == nullptr || parameter == parameter_of.end()) {
        *error = file->path() + ": `" + info.name + "` is not a moment of a parameter of this model";
        return false;
      }
      if (info.dtype != DType::F32 || c10::IntArrayRef(info.shape) != parameter->second.sizes()) {
        *error = file->path() + ": `" + info.name + "` is not an fp32 tensor of `" + name + "`'s shape";
        return false;
      }
      moments[name][suffix] = &info;
    }
    for (const auto& [name, by_suffix] : moments) {
      if (!by_suffix.count(".exp_avg") || !by_suffix.count(".exp_avg_sq")) {
        *error = file->path() + ": `" + name + "` has only some of its moments";
        return false;
      }
      if (!loaded.insert(name).second) {
        *error = checkpoint.string() + ": the moments of `" + name + "` are in two optimizer files";
        return false;
      }
      const std::optional<int64_t> step = MomentStep(*file, name, error);
      if (!step) return false;
      const torch::Tensor& parameter = parameter_of.at(name);
      if (!held.count(StateKey(parameter))) continue;  // another rank's now
      auto read = [&](const char* suffix) {
        torch::Tensor moment = torch::zeros_like(parameter, parameter.options().dtype(torch::kFloat).requires_grad(false));
        CopyTensorInto(*file, *by_suffix.at(suffix), moment);
        return moment;
      };
      auto state = std::make_unique<torch::optim::AdamWParamState>();
      state->step(*step);
      state->exp_avg(read(".exp_avg"));
      state->exp_avg_sq(read(".exp_avg_sq"));
      if (by_suffix.count(".max_exp_avg_sq")) state->max_exp_avg_sq(read(".max_exp_avg_sq"));
      optimizer.state()[StateKey(parameter)] = std::move(state);
    }
  }
  return true;
}

}  // namespace

std::string OptimizerShardFileName(int64_t shard, int64_t shards) {
  char name[96];
  std::snprintf(name, sizeof name, "optimizer-%05lld-of-%05lld.safetensors", static_cast<long long>(shard),
                static_cast<long long>(shards));
  return name;
}

std::string CheckpointStagingDirectory(const std::string& dir, int64_t step) {
  return (fs::path(dir) / (CheckpointName(step) + ".partial")).string();
}

bool BeginTrainingCheckpoint(const std::string& dir, int64_t step, std::string* error) {
  const fs::path staging = CheckpointStagingDirectory(dir, step);
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) {
    *error = "cannot create " + staging.string() + ": " + Reason(ec);
    return false;
  }
  return true;
}

bool WriteOptimizerShard(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                         const std::string& staging, int64_t shard, int64_t shards, std::string* error) {
  NamedTensors tensors;
  std::map<std::string, std::string> metadata = {{"format", "fusec-adamw"}};
  const auto& states = optimizer.state();
  for (const auto& item : model.named_parameters()) {
    auto it = states.find(StateKey(item.value()));
    if (it == states.end()) continue;  // not this rank's, or no step has reached it
    const auto* state = dynamic_cast<const torch::optim::AdamWParamState*>(it->second.get());
    if (state == nullptr) {
      *error = "cannot checkpoint the optimizer of `" + item.key() + "`: its state is not AdamW's";
      return false;
    }
    tensors.emplace_back(item.key() + ".exp_avg", Fp32CpuCopy(state->exp_avg()));
    tensors.emplace_back(item.key() + ".exp_avg_sq", Fp32CpuCopy(state->exp_avg_sq()));
    if (state->max_exp_avg_sq().defined()) {
      tensors.emplace_back(item.key() + ".max_exp_avg_sq", Fp32CpuCopy(state->max_exp_avg_sq()));
    }
    metadata[item.key() + ".step"] = std::to_string(state->step());
  }
  const std::string name = OptimizerShardFileName(shard, shards);
  std::unique_ptr<CheckedFile> file = WriteTensorsFile(fs::path(staging) / name, tensors, metadata, error);
  if (!file) return false;
  const Json record = {{"size", file->size()}, {"sha256", file->Sha256Hex()}};
  return WriteFileChecked(ShardRecordPath(staging, name).string(), record.dump() + "\n", error);
}

bool CommitTrainingCheckpoint(LlamaForCausalLMImpl& model, const TrainingState& state, int64_t shards,
                              const std::string& dir, std::string* error) {
  const fs::path staging = CheckpointStagingDirectory(dir, state.step);
  if (WriteCommonFiles(model, state, shards, staging, error) &&
      PublishAsLatest(dir, staging, CheckpointName(state.step), error)) {
    return true;
  }
  std::error_code ec;
  fs::remove_all(staging, ec);
  return false;
}

bool SaveTrainingCheckpoint(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                            const TrainingState& state, const std::string& dir, std::string* error) {
  if (!BeginTrainingCheckpoint(dir, state.step, error)) return false;
  if (!WriteOptimizerShard(model, optimizer, CheckpointStagingDirectory(dir, state.step), 0, 1, error)) {
    std::error_code ec;
    fs::remove_all(CheckpointStagingDirectory(dir, state.step), ec);
    return false;
  }
  return CommitTrainingCheckpoint(model, state, 1, dir, error);
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
      !ReadOptimizerShards(model, optimizer, path, files->state.optimizer_shards, error)) {
    return std::nullopt;
  }
  TrainingState state = std::move(files->state.state);
  state.metrics = std::move(files->metrics);
  return state;
}

}  // namespace fusec::rt
