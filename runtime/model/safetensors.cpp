#include "runtime/model/safetensors.h"

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "runtime/support/json_text.h"

namespace fusec::rt {
namespace {

constexpr uint64_t kMaxElements = uint64_t{1} << 48;

}  // namespace

std::string_view DTypeName(DType dtype) {
  switch (dtype) {
    case DType::F32:
      return "F32";
    case DType::F16:
      return "F16";
    case DType::BF16:
      return "BF16";
  }
  return "?";
}

std::optional<DType> DTypeByName(std::string_view name) {
  if (name == "F32") return DType::F32;
  if (name == "F16") return DType::F16;
  if (name == "BF16") return DType::BF16;
  return std::nullopt;
}

size_t DTypeSize(DType dtype) { return dtype == DType::F32 ? 4 : 2; }

uint64_t TensorInfo::numel() const {
  uint64_t n = 1;
  for (int64_t d : shape) n *= static_cast<uint64_t>(d);
  return n;
}

std::optional<SafetensorsHeader> ParseSafetensorsHeader(std::string_view prefix, uint64_t file_size,
                                                        std::string* error) {
  if (file_size < 8 || prefix.size() < 8) {
    *error = "is too short to be a safetensors file (" + std::to_string(file_size) + " bytes)";
    return std::nullopt;
  }
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<uint8_t>(prefix[static_cast<size_t>(i)]);
  if (header_size > kMaxSafetensorsHeaderBytes) {
    *error = "declares a header of " + std::to_string(header_size) + " bytes, more than the 100 MiB allowed";
    return std::nullopt;
  }
  if (header_size > file_size - 8) {
    *error = "declares a header of " + std::to_string(header_size) + " bytes but has only " +
             std::to_string(file_size - 8) + " after the length (truncated?)";
    return std::nullopt;
  }
  if (prefix.size() < 8 + header_size) {
    *error = "header is not readable";
    return std::nullopt;
  }
  const std::string_view header_text = prefix.substr(8, header_size);
  if (auto nesting = JsonNestingError(header_text)) {
    *error = "has a header that " + *nesting;
    return std::nullopt;
  }
  nlohmann::json json = nlohmann::json::parse(header_text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    *error = "has a header that is not a JSON object";
    return std::nullopt;
  }
  SafetensorsHeader header;
  header.data_offset = 8 + header_size;
  uint64_t data_size = file_size - header.data_offset;
  for (const auto& [name, entry] : json.items()) {
    if (name == "__metadata__") {
      if (!entry.is_object()) {
        *error = "has `__metadata__` that is not an object";
        return std::nullopt;
      }
      for (const auto& [key, value] : entry.items()) {
        if (!value.is_string()) {
          *error = "has metadata `" + key + "` that is not a string";
          return std::nullopt;
        }
        header.metadata[key] = value.get<std::string>();
      }
      continue;
    }
    auto bad = [&](const std::string& what) {
      *error = "tensor `" + name + "`: " + what;
      return std::nullopt;
    };
    if (!entry.is_object()) return bad("its entry is not an object");
    TensorInfo tensor;
    tensor.name = name;
    auto dtype = entry.find("dtype");
    if (dtype == entry.end() || !dtype->is_string()) return bad("no `dtype`");
    auto parsed = DTypeByName(dtype->get<std::string>());
    if (!parsed) return bad("dtype " + dtype->get<std::string>() + " is not supported (F32, F16 and BF16 are)");
    tensor.dtype = *parsed;
    auto shape = entry.find("shape");
    if (shape == entry.end() || !shape->is_array()) return bad("no `shape`");
    uint64_t numel = 1;
    for (const auto& dim : *shape) {
      if (!dim.is_number_integer() || dim.get<int64_t>() < 0) return bad("a dimension of its shape is not a size");
      auto d = static_cast<uint64_t>(dim.get<int64_t>());
      if (d != 0 && numel > kMaxElements / d) return bad("its shape has too many elements");
      numel *= d;
      tensor.shape.push_back(dim.get<int64_t>());
    }
    auto offsets = entry.find("data_offsets");
    if (offsets == entry.end() || !offsets->is_array() || offsets->size() != 2 || !(*offsets)[0].is_number_unsigned() ||
        !(*offsets)[1].is_number_unsigned()) {
      return bad("`data_offsets` is not two offsets");
    }
    tensor.begin = (*offsets)[0].get<uint64_t>();
    tensor.end = (*offsets)[1].get<uint64_t>();
    if (tensor.begin > tensor.end || tensor.end > data_size) {
      return bad("its data [" + std::to_string(tensor.begin) + ", " + std::to_string(tensor.end) +
                 ") is outside the file's " + std::to_string(data_size) + " data bytes");
    }
    if (tensor.end - tensor.begin != numel * DTypeSize(tensor.dtype)) {
      return bad("its data is " + std::to_string(tensor.end - tensor.begin) + " bytes, but its shape and dtype need " +
                 std::to_string(numel * DTypeSize(tensor.dtype)));
    }
    header.tensors.push_back(std::move(tensor));
  }
  // The tensors tile the data region exactly, as the reference implementation requires: sorted by offset,
  // each starts where the one before ended, and the last ends where the file does. Two tensors sharing bytes,
  // bytes no tensor owns (a gap, or data past the last tensor) mean the header does not describe this file.
  std::vector<const TensorInfo*> by_offset;
  for (const TensorInfo& tensor : header.tensors) by_offset.push_back(&tensor);
  std::sort(by_offset.begin(), by_offset.end(), [](const TensorInfo* a, const TensorInfo* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t covered = 0;  // the data region is covered up to here
  const TensorInfo* previous = nullptr;
  for (const TensorInfo* tensor : by_offset) {
    if (tensor->begin < covered) {
      *error = "tensors `" + previous->name + "` and `" + tensor->name + "` overlap (`" + tensor->name + "` starts at " +
               std::to_string(tensor->begin) + ", inside `" + previous->name + "`, which ends at " +
               std::to_string(covered) + ")";
      return std::nullopt;
    }
    if (tensor->begin > covered) {
      *error = "bytes [" + std::to_string(covered) + ", " + std::to_string(tensor->begin) + ") of the data region " +
               "belong to no tensor (a gap before `" + tensor->name + "`)";
      return std::nullopt;
    }
    covered = tensor->end;
    if (tensor->end > tensor->begin) previous = tensor;
  }
  if (covered != data_size) {
    *error = "has " + std::to_string(data_size) + " data bytes but its tensors cover only " + std::to_string(covered) +
             (previous != nullptr ? " (the last, `" + previous->name + "`, ends there)" : "") +
             "; the header does not describe this file";
    return std::nullopt;
  }
  std::sort(header.tensors.begin(), header.tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  return header;
}

std::optional<SafetensorsFile> SafetensorsFile::Open(const std::string& path, std::string* error) {
  auto mapping = MappedFile::Open(path, error);
  if (!mapping) {
    *error = path + ": " + *error;
    return std::nullopt;
  }
  auto header = ParseSafetensorsHeader(mapping->bytes(), mapping->size(), error);
  if (!header) {
    *error = path + ": " + *error;
    return std::nullopt;
  }
  return SafetensorsFile(std::move(mapping), std::move(*header));
}

const TensorInfo* SafetensorsFile::Find(std::string_view name) const {
  auto it = std::lower_bound(header_.tensors.begin(), header_.tensors.end(), name,
                             [](const TensorInfo& t, std::string_view n) { return t.name < n; });
  return it != header_.tensors.end() && it->name == name ? &*it : nullptr;
}

std::string SafetensorsPrefix(const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata) {
  nlohmann::ordered_json header = nlohmann::ordered_json::object();
  if (!metadata.empty()) header["__metadata__"] = metadata;
  uint64_t offset = 0;
  for (const TensorToWrite& tensor : tensors) {
    const uint64_t size = TensorByteSize(tensor);
    header[tensor.name] = {{"dtype", DTypeName(tensor.dtype)}, {"shape", tensor.shape}, {"data_offsets", {offset, offset + size}}};
    offset += size;
  }
  std::string text = header.dump();
  while ((8 + text.size()) % 8 != 0) text.push_back(' ');
  const uint64_t length = text.size();
  std::string prefix(8, '\0');
  for (int i = 0; i < 8; ++i) prefix[static_cast<size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return prefix + text;
}

uint64_t TensorByteSize(const TensorToWrite& tensor) {
  uint64_t numel = 1;
  for (int64_t d : tensor.shape) numel *= static_cast<uint64_t>(d);
  return numel * DTypeSize(tensor.dtype);
}

bool WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata, std::string* error) {
  const std::string prefix = SafetensorsPrefix(tensors, metadata);
  std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary);
    out.write(prefix.data(), static_cast<std::streamsize>(prefix.size()));
    for (const TensorToWrite& tensor : tensors) {
      out.write(static_cast<const char*>(tensor.data), static_cast<std::streamsize>(TensorByteSize(tensor)));
    }
    if (!out) {
      *error = "cannot write " + tmp;
      return false;
    }
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) {
    *error = "cannot move " + tmp + " into place: " + ec.message();
    return false;
  }
  return true;
}

}  // namespace fusec::rt
