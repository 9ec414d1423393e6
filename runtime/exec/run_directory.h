// A run directory is replaced only by a finished run, whole, and never loses a file fusec did not write.
//
// A rerun into an existing run directory used to truncate its metrics.jsonl and rewrite its manifest first,
// so a kill or a full disk left the old run's record destroyed or mixed with the new one, and exports
// replaced whole `export/<stage>/` directories, notes and all. Now a run writes into `RUN.partial/` beside
// the run directory and publishes it when it finishes: the files of the old `RUN/` that fusec did not write
// (anything but its record and the model files of exports) are linked into the new one, the two directories
// are swapped in one atomic rename (renameat2 RENAME_EXCHANGE), and the old one is removed. A run that fails
// or is killed leaves `RUN/` as it was and its own record in `RUN.partial/`, which the next run replaces.
// The run holds a lock (`.RUN.lock` beside it) from start to publication, so a second run into the same
// directory is refused with the first one's process named, instead of interleaving their metrics.
#pragma once

#include <filesystem>
#include <optional>
#include <string>

#include "compiler/support/file_lock.h"

namespace fusec::rt {

class RunDirectory {
 public:
  /// Claims `dir` for this run: takes its lock (or throws a FileSystem RunError naming the process that
  /// holds it) and makes an empty `dir.partial/`, replacing one an earlier, unfinished run left. `what` says
  /// who holds the lock (`fusec run x.fuse`); `notes` gets a line when a stale partial directory is replaced.
  static RunDirectory Begin(const std::filesystem::path& dir, const std::string& what, std::ostream& notes);

  /// Where this run writes (`dir.partial`) and where it is published (`dir`).
  const std::filesystem::path& staging() const { return staging_; }
  const std::filesystem::path& final() const { return final_; }

  /// `path` under staging() as it will be once published (for messages and summaries); others unchanged.
  std::filesystem::path Published(const std::filesystem::path& path) const;

  /// Makes the staged run the run directory (see the top of this file). Throws a FileSystem RunError when it
  /// cannot; the old run directory is then intact.
  void Publish();

 private:
  RunDirectory(std::filesystem::path final, std::filesystem::path staging, FileLock lock)
      : final_(std::move(final)), staging_(std::move(staging)), lock_(std::move(lock)) {}

  std::filesystem::path final_;
  std::filesystem::path staging_;
  FileLock lock_;
};

/// Whether `relative` (a path inside a run directory) is one fusec writes: the run's record (manifest.toml,
/// metrics.jsonl, summary.json, eval/*.json and *.jsonl) or an export's model files. Other files are the
/// user's and are kept when a new run replaces the directory.
bool IsRunOutput(const std::filesystem::path& relative);

}  // namespace fusec::rt
