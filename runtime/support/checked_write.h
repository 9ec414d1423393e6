// Writing files that must reach the disk whole, or fail with the reason: every write(2), fsync(2) and
// close(2) is checked, so a full disk (ENOSPC), a file-size limit (EFBIG) or an I/O error is an error naming
// the file and saying why, never a short file that looks complete. std::ofstream cannot say why, and misses
// an error that only shows when its buffer is flushed at close.
//
// The bytes are hashed (SHA-256) as they are written, so what a manifest records is what was written.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "compiler/support/sha256.h"

namespace fusec::rt {

/// The C library's text for an errno value, lower case as fusec's messages are: "no space left on device".
std::string ErrnoText(int errnum);

/// A file being written; created (or truncated) by Create, complete and on disk once Finish returns true.
class CheckedFile {
 public:
  /// Nullptr with `error` ("cannot write PATH: why") when the file cannot be created.
  static std::unique_ptr<CheckedFile> Create(const std::string& path, std::string* error);
  CheckedFile(const CheckedFile&) = delete;
  CheckedFile& operator=(const CheckedFile&) = delete;
  ~CheckedFile();

  /// Appends `bytes`; false with `error` naming the file and the reason when they cannot all be written.
  bool Write(std::string_view bytes, std::string* error);
  /// fsyncs and closes the file; false with `error` when either fails.
  bool Finish(std::string* error);

  uint64_t size() const { return size_; }
  /// The SHA-256 of the bytes written, as hex; call once, after Finish.
  std::string Sha256Hex() { return sha256_.HexDigest(); }

 private:
  CheckedFile(std::string path, int fd) : path_(std::move(path)), fd_(fd) {}
  bool Fail(const std::string& what, std::string* error);

  std::string path_;
  int fd_;
  uint64_t size_ = 0;
  Sha256 sha256_;
};

/// Writes `bytes` as the whole of `path` and fsyncs it; false with `error` naming the file and the reason.
bool WriteFileChecked(const std::string& path, std::string_view bytes, std::string* error);

/// WriteFileChecked into `path + ".tmp"`, then renamed over `path`: a reader, or a run killed midway, sees the
/// old file or the whole new one, never part of it. False with `error` naming the file and the reason.
bool WriteFileAtomically(const std::string& path, std::string_view bytes, std::string* error);

/// fsyncs a directory, so that the entries created or renamed in it are on disk; false with `error`.
bool FsyncDirectory(const std::string& path, std::string* error);

}  // namespace fusec::rt
