// Safetensors files: reading (memory-mapped, validated) and writing.
//
// The format is 8 little-endian bytes giving the header's length, a JSON header mapping tensor names to
// {dtype, shape, data_offsets}, then the data. Nothing in a header is trusted: its length, every offset and
// size, every dtype and shape is checked against the file before any tensor is viewed, so a truncated or
// hostile file is an error that names the file and the tensor, never a crash or an out-of-bounds read. This
// part knows no LibTorch (it is fuzzed on its own); checkpoint.cpp turns the views into tensors.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/support/mapped_file.h"

namespace fusec::rt {

enum class DType : uint8_t { F32, F16, BF16 };
std::string_view DTypeName(DType dtype);  // as in safetensors: "F32", "F16", "BF16"
std::optional<DType> DTypeByName(std::string_view name);
size_t DTypeSize(DType dtype);

struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  uint64_t begin = 0;  // byte offsets into the data region
  uint64_t end = 0;

  uint64_t numel() const;
};

/// The parsed and validated header of a safetensors file of `file_size` bytes whose first bytes are
/// `prefix` (at least the 8-byte length and the header). Tensors are sorted by name.
struct SafetensorsHeader {
  std::vector<TensorInfo> tensors;
  std::map<std::string, std::string> metadata;
  uint64_t data_offset = 0;  // where the data region starts in the file
};
std::optional<SafetensorsHeader> ParseSafetensorsHeader(std::string_view prefix, uint64_t file_size,
                                                        std::string* error);

/// Headers longer than this are refused (the reference implementation's limit).
inline constexpr uint64_t kMaxSafetensorsHeaderBytes = uint64_t{100} * 1024 * 1024;

class SafetensorsFile {
 public:
  /// Maps and validates the file; nullopt with `error` as `path: what is wrong`.
  static std::optional<SafetensorsFile> Open(const std::string& path, std::string* error);

  const std::vector<TensorInfo>& tensors() const { return header_.tensors; }
  const std::map<std::string, std::string>& metadata() const { return header_.metadata; }
  const TensorInfo* Find(std::string_view name) const;
  /// The bytes of a tensor, inside the mapping.
  const uint8_t* Data(const TensorInfo& tensor) const { return mapping_->data() + header_.data_offset + tensor.begin; }
  const std::shared_ptr<const MappedFile>& mapping() const { return mapping_; }
  const std::string& path() const { return mapping_->path(); }

 private:
  SafetensorsFile(std::shared_ptr<const MappedFile> mapping, SafetensorsHeader header)
      : mapping_(std::move(mapping)), header_(std::move(header)) {}

  std::shared_ptr<const MappedFile> mapping_;
  SafetensorsHeader header_;
};

/// A tensor to write: its bytes must be `numel * DTypeSize(dtype)` long, little-endian.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  const void* data = nullptr;
};

/// The bytes `tensor`'s data takes.
uint64_t TensorByteSize(const TensorToWrite& tensor);

/// What a safetensors file of `tensors` begins with: the header's length (8 bytes, little-endian) and the
/// header, padded so the data that follows (the tensors' bytes, in order) is 8-byte aligned. For writers that
/// write the data themselves (training checkpoints, which check and hash every write).
std::string SafetensorsPrefix(const std::vector<TensorToWrite>& tensors,
                              const std::map<std::string, std::string>& metadata);

/// Writes a safetensors file (tensors in the given order, data 8-byte aligned as the reference writer does),
/// to a temporary file then renamed into place. Returns false with `error` set on failure.
bool WriteSafetensors(const std::string& path, const std::vector<TensorToWrite>& tensors,
                      const std::map<std::string, std::string>& metadata, std::string* error);

}  // namespace fusec::rt
