// Read-only memory-mapped files.
//
// Model weights are gigabytes: they are mapped, not read into buffers, and tensors view the mapping
// directly until they are copied into parameters. A MappedFile is shared by everything that views it and is
// unmapped when the last view goes away.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

namespace fusec::rt {

class MappedFile {
 public:
  /// Maps the whole file read-only; nullopt with `error` set when it cannot (missing, not a regular file).
  static std::shared_ptr<const MappedFile> Open(const std::string& path, std::string* error);
  ~MappedFile();
  MappedFile(const MappedFile&) = delete;
  MappedFile& operator=(const MappedFile&) = delete;

  const uint8_t* data() const { return data_; }
  size_t size() const { return size_; }
  std::string_view bytes() const { return {reinterpret_cast<const char*>(data_), size_}; }
  const std::string& path() const { return path_; }

 private:
  MappedFile(std::string path, const uint8_t* data, size_t size) : path_(std::move(path)), data_(data), size_(size) {}

  std::string path_;
  const uint8_t* data_;
  size_t size_;
};

}  // namespace fusec::rt
