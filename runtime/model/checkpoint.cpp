#include "runtime/model/checkpoint.h"

#include <torch/torch.h>

#include <bit>
#include <filesystem>
#include <map>
#include <nlohmann/json.hpp>
#include <set>

#include "runtime/model/safetensors.h"
#include "runtime/support/json_text.h"
#include "runtime/support/run_error.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
static_assert(std::endian::native == std::endian::little, "safetensors data is little-endian");

torch::Dtype TorchDtype(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return torch::kFloat;
    case DType::F16:
      return torch::kHalf;
    case DType::BF16:
      return torch::kBFloat16;
  }
  return torch::kFloat;
}

std::optional<DType> FileDtype(torch::Dtype dtype) {
  if (dtype == torch::kFloat) return DType::F32;
  if (dtype == torch::kHalf) return DType::F16;
  if (dtype == torch::kBFloat16) return DType::BF16;
  return std::nullopt;
}

std::string ConfigDtypeName(torch::Dtype dtype) {
  if (dtype == torch::kBFloat16) return "bfloat16";
  if (dtype == torch::kHalf) return "float16";
  return "float32";
}

std::string ShapeText(c10::IntArrayRef shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

/// Tensors older checkpoints carry that are recomputed rather than loaded.
bool IsIgnorable(const std::string& name) { return name.ends_with("rotary_emb.inv_freq"); }

/// The safetensors files of a checkpoint directory, and which file holds each tensor.
struct CheckpointFiles {
  std::vector<std::string> files;
  std::map<std::string, std::string> index;  // tensor -> file name (sharded only)
};

std::optional<CheckpointFiles> FindCheckpointFiles(const fs::path& dir, std::string* error) {
  CheckpointFiles found;
  fs::path index_path = dir / "model.safetensors.index.json";
  // status() with an error code: a symlink loop or an unreadable directory is an error naming the path, not a
  // filesystem_error thrown out of the loader.
  auto exists = [&](const fs::path& path) -> std::optional<bool> {
    std::error_code ec;
    fs::file_status status = fs::status(path, ec);
    if (ec && ec != std::errc::no_such_file_or_directory) {
      *error = path.string() + ": cannot read: " + ec.message();
      return std::nullopt;
    }
    return fs::exists(status);
  };
  auto has_index = exists(index_path);
  if (!has_index) return std::nullopt;
  if (*has_index) {
    auto text = ReadWholeFile(index_path.string());
    if (!text) {
      *error = index_path.string() + ": cannot read";
      return std::nullopt;
    }
    if (auto nesting = JsonNestingError(*text)) {
      *error = index_path.string() + ": " + *nesting;
      return std::nullopt;
    }
    nlohmann::json index = nlohmann::json::parse(*text, nullptr, false);
    if (index.is_discarded() || !index.is_object() || !index.contains("weight_map") || !index["weight_map"].is_object()) {
      *error = index_path.string() + ": not a safetensors index (no `weight_map` object)";
      return std::nullopt;
    }
    std::set<std::string> files;
    for (const auto& [tensor, file] : index["weight_map"].items()) {
      if (!file.is_string()) {
        *error = index_path.string() + ": the file of tensor `" + tensor + "` is not a string";
        return std::nullopt;
      }
      std::string name = file.get<std::string>();
      if (name.empty() || name.find('/') != std::string::npos || name.starts_with(".")) {
        *error = index_path.string() + ": shard name `" + name + "` is not a file name in the directory";
        return std::nullopt;
      }
      found.index[tensor] = name;
      files.insert(name);
    }
    found.files.assign(files.begin(), files.end());
    return found;
  }
  auto has_single = exists(dir / "model.safetensors");
  if (!has_single) return std::nullopt;
  if (*has_single) {
    found.files.push_back("model.safetensors");
    return found;
  }
  *error = dir.string() + ": no model.safetensors or model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(dir / "pytorch_model.bin", ec) || fs::exists(dir / "pytorch_model.bin.index.json", ec)) {
    *error += " (pickled PyTorch weights are not read; convert them to safetensors)";
  }
  return std::nullopt;
}

}  // namespace

std::optional<torch::Dtype> ResolveDtype(const std::string& requested, const ModelConfig& config,
                                         const torch::Device& device, std::string* error) {
  if (requested == "fp32") return torch::kFloat;
  if (requested == "bf16") return torch::kBFloat16;
  if (requested == "fp16") {
    if (device.is_cpu()) {  // LibTorch 1.13 has no float16 matrix product on the CPU
      *error = "dtype fp16 is not supported on the CPU (its matrix products have no float16 kernels); use fp32 or bf16";
      return std::nullopt;
    }
    return torch::kHalf;
  }
  if (requested != "auto") {
    *error = "dtype `" + requested + "` is not one of auto, fp32, bf16, fp16";
    return std::nullopt;
  }
  if (device.is_cpu()) return torch::kFloat;
  if (config.torch_dtype == "bfloat16") return torch::kBFloat16;
  if (config.torch_dtype == "float16") return torch::kHalf;
  return torch::kFloat;
}

bool LoadWeights(LlamaForCausalLMImpl& model, const std::string& dir, std::string* error) {
  auto files = FindCheckpointFiles(dir, error);
  if (!files) return false;
  std::map<std::string, SafetensorsFile> opened;
  std::map<std::string, std::pair<const SafetensorsFile*, const TensorInfo*>> tensors;
  for (const std::string& name : files->files) {
    std::string path = (fs::path(dir) / name).string();
    auto file = SafetensorsFile::Open(path, error);
    if (!file) return false;
    auto [it, inserted] = opened.emplace(name, std::move(*file));
    for (const TensorInfo& tensor : it->second.tensors()) {
      if (!files->index.empty()) {
        auto listed = files->index.find(tensor.name);
        if (listed == files->index.end() || listed->second != name) continue;  // the index decides
      }
      if (tensors.count(tensor.name) != 0) {
        *error = path + ": tensor `" + tensor.name + "` is also in another shard";
        return false;
      }
      tensors[tensor.name] = {&it->second, &tensor};
    }
  }
  for (const auto& [tensor, file] : files->index) {
    if (tensors.count(tensor) == 0) {
      *error = (fs::path(dir) / file).string() + ": has no tensor `" + tensor + "`, which the index puts there";
      return false;
    }
  }

  torch::NoGradGuard no_grad;
  std::set<std::string> used;
  for (auto& item : model.named_parameters()) {
    const std::string& name = item.key();
    torch::Tensor& parameter = item.value();
    auto found = tensors.find(name);
    if (found == tensors.end()) {
      *error = dir + ": the checkpoint has no tensor `" + name + "` (" + model.config().architecture + " with " +
               std::to_string(model.config().num_layers) + " layers needs it)";
      return false;
    }
    const auto& [file, info] = found->second;
    if (c10::IntArrayRef(info->shape) != parameter.sizes()) {
      *error = file->path() + ": tensor `" + name + "` has shape " + ShapeText(info->shape) + ", but config.json makes it " +
               ShapeText(parameter.sizes());
      return false;
    }
    CopyTensorInto(*file, *info, parameter);
    // Once, on load: a NaN or Inf weight (or a value the conversion to the parameter's dtype overflows)
    // would otherwise surface as NaN scores far from its cause.
    if (!parameter.isfinite().all().item<bool>()) {
      *error = file->path() + ": tensor `" + name + "` has non-finite values (NaN or Inf" +
               (TorchDtype(info->dtype) == parameter.scalar_type() ? std::string(")")
                                                                   : ", in the dtype it is loaded in)");
      return false;
    }
    used.insert(name);
  }
  std::vector<std::string> unexpected;
  for (const auto& [name, where] : tensors) {
    if (used.count(name) != 0 || IsIgnorable(name)) continue;
    if (name == "lm_head.weight" && model.config().tie_word_embeddings) continue;  // transformers ties it anyway
    unexpected.push_back(name);
  }
  if (!unexpected.empty()) {
    *error = dir + ": the checkpoint has " + std::to_string(unexpected.size()) + " tensor(s) the model does not use, e.g. `" +
             unexpected.front() + "` (does config.json describe this checkpoint?)";
    return false;
  }
  return true;
}

void CopyTensorInto(const SafetensorsFile& file, const TensorInfo& tensor, torch::Tensor& parameter) {
  // View the mapping in place when aligned (from_blob does not copy), else copy the bytes out first.
  const uint8_t* data = file.Data(tensor);
  const torch::TensorOptions options = torch::TensorOptions().dtype(TorchDtype(tensor.dtype));
  torch::Tensor source;
  if (reinterpret_cast<uintptr_t>(data) % DTypeSize(tensor.dtype) == 0) {
    source = torch::from_blob(const_cast<uint8_t*>(data), tensor.shape, options);
  } else {
    source = torch::empty(tensor.shape, options);
    std::memcpy(source.data_ptr(), data, tensor.end - tensor.begin);
  }
  torch::NoGradGuard no_grad;  // parameters are leaves that require grad
  parameter.copy_(source);
}

std::optional<LlamaForCausalLM> LoadModel(const std::string& dir, torch::Dtype dtype, const torch::Device& device,
                                          std::string* error) {
  auto config = ReadModelConfig(dir, error);
  if (!config) return std::nullopt;
  LlamaForCausalLM model{nullptr};
  try {
    model = LlamaForCausalLM(*config);
  } catch (RunError& too_large) {  // the config asks for more memory than there is
    throw too_large.Place((fs::path(dir) / "config.json").string());
  }
  model->to(device, dtype);  // before loading, so the weights are never held twice on the device
  if (!LoadWeights(*model, dir, error)) return std::nullopt;
  model->eval();
  model->set_source(dir);
  return model;
}

bool SaveModel(LlamaForCausalLMImpl& model, const std::string& dir, const SaveOptions& options, std::string* error) {
  auto file_dtype = FileDtype(options.dtype);
  if (!file_dtype) {
    *error = "weights can be written as float32, bfloat16 or float16 only";
    return false;
  }
  fs::path target(dir);
  if (fs::exists(target) && !fs::exists(target / "config.json")) {
    *error = dir + ": exists and is not a model directory; not overwriting it";
    return false;
  }
  fs::path staging = target;
  staging += ".partial";
  std::error_code ec;
  fs::remove_all(staging, ec);
  fs::create_directories(staging, ec);
  if (ec) {
    *error = staging.string() + ": cannot create: " + ec.message();
    return false;
  }

  // CPU, contiguous copies in the written dtype; kept alive until written.
  std::vector<std::pair<std::string, torch::Tensor>> tensors;
  {
    torch::NoGradGuard no_grad;
    for (const auto& item : model.named_parameters()) {
      tensors.emplace_back(item.key(), item.value().detach().to(torch::kCPU, options.dtype).contiguous());
    }
  }
  // Shards in parameter order, each at most max_shard_bytes (a single larger tensor gets a shard of its own).
  std::vector<std::vector<size_t>> shards(1);
  uint64_t shard_bytes = 0;
  uint64_t total_bytes = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    uint64_t bytes = static_cast<uint64_t>(tensors[i].second.numel()) * DTypeSize(*file_dtype);
    if (!shards.back().empty() && shard_bytes + bytes > options.max_shard_bytes) {
      shards.emplace_back();
      shard_bytes = 0;
    }
    shards.back().push_back(i);
    shard_bytes += bytes;
    total_bytes += bytes;
  }
  nlohmann::ordered_json weight_map = nlohmann::ordered_json::object();
  for (size_t s = 0; s < shards.size(); ++s) {
    char name[64];
    if (shards.size() == 1) {
      std::snprintf(name, sizeof name, "model.safetensors");
    } else {
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", s + 1, shards.size());
    }
    std::vector<TensorToWrite> writes;
    for (size_t i : shards[s]) {
      const auto& [tensor_name, tensor] = tensors[i];
      writes.push_back(TensorToWrite{tensor_name, *file_dtype, tensor.sizes().vec(), tensor.data_ptr()});
      weight_map[tensor_name] = name;
    }
    if (!WriteSafetensors((staging / name).string(), writes, {{"format", "pt"}}, error)) return false;
  }
  ModelConfig config = model.config();
  config.torch_dtype = ConfigDtypeName(options.dtype);
  nlohmann::ordered_json generation = {{"_from_model_config", true}};
  if (config.bos_token_id) generation["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_ids.size() == 1) generation["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) generation["eos_token_id"] = config.eos_token_ids;
  std::vector<std::pair<std::string, std::string>> files = {{"config.json", ModelConfigToJson(config)},
                                                            {"generation_config.json", generation.dump(2) + "\n"}};
  if (shards.size() > 1) {
    nlohmann::ordered_json index = {{"metadata", {{"total_size", total_bytes}}}, {"weight_map", weight_map}};
    files.emplace_back("model.safetensors.index.json", index.dump(2) + "\n");
  }
  for (const auto& [name, text] : files) {
    if (!WriteWholeFile((staging / name).string(), text)) {
      *error = (staging / name).string() + ": cannot write";
      return false;
    }
  }
  if (!options.tokenizer_dir.empty()) {
    for (const char* file : kTokenizerFiles) {
      fs::path from = fs::path(options.tokenizer_dir) / file;
      if (!fs::exists(from)) continue;
      fs::copy_file(from, staging / file, fs::copy_options::overwrite_existing, ec);
      if (ec) {
        *error = from.string() + ": cannot copy: " + ec.message();
        return false;
      }
    }
  }
  if (options.chat_template) {
    const fs::path config_path = staging / "tokenizer_config.json";
    auto recorded = RecordChatTemplate(ReadWholeFile(config_path.string()).value_or(""), *options.chat_template, error);
    if (!recorded) {
      *error = (fs::path(options.tokenizer_dir) / "tokenizer_config.json").string() + ": " + *error;
      return false;
    }
    if (!WriteWholeFile(config_path.string(), *recorded)) {
      *error = config_path.string() + ": cannot write";
      return false;
    }
  }
  // Replace the old directory only now that the new one is complete.
  fs::path old = target;
  old += ".old";
  fs::remove_all(old, ec);
  if (fs::exists(target)) fs::rename(target, old, ec);
  fs::rename(staging, target, ec);
  if (ec) {
    *error = dir + ": cannot move the written model into place: " + ec.message();
    return false;
  }
  fs::remove_all(old, ec);
  return true;
}

}  // namespace fusec::rt
