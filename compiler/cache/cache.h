// The stage cache: the outputs of graph nodes on disk, addressed by the nodes' content hashes.
//
// A node whose hash has a complete entry does not run again: its outputs are reused, across runs and
// across the points of a sweep. Layout: `<dir>/<first two hex digits>/<hash>/` holds the node's output
// files and `manifest.toml`, which records how the entry was made (node, parameters, input hashes, fusec
// version, times) and every output's size and SHA-256.
//
// Entries are written atomically: outputs go to a staging directory under `<dir>/tmp/`, the manifest is
// written there last, everything is fsynced, and the directory is renamed into place. A crash therefore
// leaves at worst a staging directory (ignored, removed by `fusec cache gc`), never an entry that looks
// complete. An entry whose files are missing or whose checksums differ from its manifest is corrupt: it is
// reported and treated as absent, so the node runs again; committing its rebuilt outputs replaces it.
//
// A cache is marked: `fusec-cache.toml` records its format version (and `CACHEDIR.TAG` tells backup tools to
// skip it). Every command opens a cache through StageCache::Open, which refuses a directory that exists
// without the marker, so no fusec command deletes or mixes files in a directory that is not a stage cache
// (a mistyped `--cache`), and a cache of a newer format is refused rather than misread. Interrupted training
// stages keep their checkpoints in `checkpoints/<hash>/`; they are resumable, listed apart from the entries.
#pragma once

#include <cstdint>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

namespace fusec {

enum class CacheStatus : uint8_t { Missing, Complete, Corrupt };
/// Quick: the manifest reads and every output exists with its recorded size (cheap: for plans).
/// Full: also every output's SHA-256 (reads everything: before reuse, and `fusec cache verify`).
enum class CacheCheck : uint8_t { Quick, Full };

struct CacheOutput {
  std::string file;  // relative to the entry directory
  uint64_t size = 0;
  std::string sha256;
};

struct CacheManifest {
  std::string hash;
  std::string kind;
  std::vector<std::string> stages;  // `experiment/stage`
  std::string source;               // `file:line:col` of the declaration that made the node
  std::string params;               // the node's parameters, as canonical JSON
  std::vector<std::pair<std::string, std::string>> inputs;  // slot, input hash
  std::vector<CacheOutput> outputs;
  std::string fusec_version;
  std::string started;  // UTC, ISO 8601
  std::string finished;
};

std::string ManifestToToml(const CacheManifest& manifest);
std::optional<CacheManifest> ManifestFromToml(const std::string& text, std::string* error);

struct CacheLookup {
  CacheStatus status = CacheStatus::Missing;
  std::string path;     // the entry directory
  std::string problem;  // for Corrupt: what is wrong, lower case
  CacheManifest manifest;
};

struct CacheGcReport {
  std::vector<std::string> removed;  // entry and staging directories
  uint64_t bytes = 0;
};

/// What a command does with a cache, which decides what StageCache::Open accepts.
enum class CacheUse : uint8_t {
  Read,     // `fusec plan`: a missing directory is an empty cache
  Write,    // `fusec run`: a missing or empty directory becomes a new cache (its marker is written)
  Inspect,  // `fusec cache ls|verify|gc`: the cache must exist
};

/// The format of the cache layout this fusec reads and writes (fusec-cache.toml's `format`).
inline constexpr int64_t kCacheFormat = 1;

/// A stage in flight: `checkpoints/<hash>/` with a published checkpoint, which `fusec run` resumes.
struct ResumableStage {
  std::string hash;
  std::string path;        // the checkpoint directory
  std::string checkpoint;  // what LATEST names (`step-00000012`), empty when LATEST is missing or unreadable
  int64_t step = 0;        // the step it names, 0 when unknown
  /// A sampling step's finished shards (`source-<k>-block-<b>.jsonl`, runtime/exec/sample_shards.h) instead
  /// of a training checkpoint: the next run samples only the rest.
  int64_t sample_shards = 0;
};

class StageCache {
 public:
  /// A cache at `dir`, unchecked: commands use Open.
  explicit StageCache(std::string dir);

  /// The cache at `dir` for `use`, or nullopt with `error` (lower case, naming the directory): a directory
  /// without the marker that is not empty, a marker of another format, a missing directory for Inspect.
  static std::optional<StageCache> Open(const std::string& dir, CacheUse use, std::string* error);

  const std::string& dir() const { return dir_; }
  std::string EntryPath(const std::string& hash) const;
  /// The lock file a process holds (FileLock, compiler/support/file_lock.h) while it computes the node of
  /// `hash` (trains its stage, writes its entry): `locks/<hash>.lock`.
  std::string LockPath(const std::string& hash) const;
  /// A stage's checkpoint directory: `checkpoints/<hash>/`.
  std::string CheckpointPath(const std::string& hash) const;

  CacheLookup Find(const std::string& hash, CacheCheck check) const;
  /// Every entry (including corrupt ones), sorted by hash.
  std::vector<CacheLookup> List(CacheCheck check) const;
  /// Every stage in flight (a checkpoint directory), sorted by hash.
  std::vector<ResumableStage> Resumable() const;

  /// A new, empty staging directory for a node's outputs.
  std::string BeginEntry(const std::string& hash) const;
  /// Records the outputs found in `staging` (every file, recursively), writes the manifest, syncs and
  /// renames the directory into place. Returns the entry's path, or nullopt with `error` set. If an entry
  /// for the hash appeared meanwhile and passes the full check, it is kept and the staging directory is
  /// removed; one that does not (a corrupt entry being rebuilt) is replaced. Output files are made read-only,
  /// so a hard link to them (an export) cannot be written through by mistake.
  std::optional<std::string> CommitEntry(const std::string& staging, CacheManifest manifest,
                                         std::string* error) const;
  void AbandonEntry(const std::string& staging) const;

  /// Removes staging directories, corrupt entries, and complete entries whose hash is not in `keep`
  /// (unless `keep_all_complete`). With `dry_run`, only reports. What a running process holds the lock of
  /// (its staging directory, its checkpoints) is never removed; checkpoints are kept unless `keep` is given
  /// and does not name their stage.
  CacheGcReport Collect(const std::set<std::string>& keep, bool keep_all_complete, bool dry_run) const;

 private:
  std::string dir_;
};

/// The current time, UTC, ISO 8601 (`2026-11-27T10:00:00Z`).
std::string UtcNow();

}  // namespace fusec
