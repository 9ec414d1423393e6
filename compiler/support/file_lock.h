// Advisory file locks: one process at a time in a run directory or on a stage-cache entry.
//
// Two runs writing one run directory interleave their metrics, and two runs training one stage race for its
// checkpoints and its cache entry. A FileLock (flock(2) on a lock file) is held while the object lives and
// released by the kernel when the process dies, so a killed run (SIGKILL included) never leaves a stale lock
// behind. The holder writes who it is into the file, so the process that finds the lock taken can say which
// run has it.
#pragma once

#include <optional>
#include <string>

namespace fusec {

class FileLock {
 public:
  /// Takes the lock on `path` (creating the file and its directory) without waiting. Nullopt when another
  /// process holds it (`holder` is what it wrote: `pid 123 on host since 2026-12-02T10:00:00Z: fusec run ...`)
  /// or when the file cannot be created (`holder` says why, starting `cannot`).
  static std::optional<FileLock> TryAcquire(const std::string& path, const std::string& what, std::string* holder);
  /// Takes the lock on `path`, waiting for the process that holds it; nullopt with `error` when the file
  /// cannot be created.
  static std::optional<FileLock> Acquire(const std::string& path, const std::string& what, std::string* error);
  /// Whether some process holds the lock on `path` now (a missing file is not held).
  static bool IsHeld(const std::string& path);

  FileLock(FileLock&& other) noexcept;
  FileLock& operator=(FileLock&& other) noexcept;
  FileLock(const FileLock&) = delete;
  FileLock& operator=(const FileLock&) = delete;
  ~FileLock();

  const std::string& path() const { return path_; }

 private:
  FileLock(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_ = -1;
  std::string path_;
};

/// `pid 123 on host since TIME: what`: how a lock holder describes itself.
std::string LockHolderText(const std::string& what);

}  // namespace fusec
