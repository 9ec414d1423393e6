#include "compiler/cache/cache.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <ctime>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <toml++/toml.h>

#include "compiler/support/file_lock.h"
#include "compiler/support/sha256.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

constexpr const char* kManifest = "manifest.toml";
constexpr const char* kMarker = "fusec-cache.toml";
constexpr const char* kCacheDirTag = "CACHEDIR.TAG";

bool IsHex(const std::string& text, size_t size) {
  return text.size() == size &&
         std::all_of(text.begin(), text.end(), [](char c) { return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'); });
}
bool IsHash(const std::string& text) { return IsHex(text, 64); }

/// Writes `text` to `path` through a temporary file renamed into place; false when it cannot.
bool WriteFileAtomically(const fs::path& path, const std::string& text) {
  fs::path tmp = path;
  tmp += ".tmp." + std::to_string(::getpid());
  {
    std::ofstream out(tmp, std::ios::binary);
    out << text;
    out.flush();
    if (!out) {
      std::error_code ec;
      fs::remove(tmp, ec);
      return false;
    }
  }
  std::error_code ec;
  fs::rename(tmp, path, ec);
  return !ec;
}

/// Writes the marker (and CACHEDIR.TAG) into `dir`, which exists.
bool WriteMarker(const fs::path& dir) {
  const std::string marker = "# This directory is a fusec stage cache (docs/running.md). fusec commands refuse a\n"
                             "# --cache directory without this file, so they never delete files they did not write.\n"
                             "format = " + std::to_string(kCacheFormat) + "\n";
  const std::string tag = "Signature: 8a477f597d28d172789f06886806bc55\n"
                          "# This file is a cache directory tag created by fusec: its stage cache can be rebuilt.\n";
  return WriteFileAtomically(dir / kCacheDirTag, tag) && WriteFileAtomically(dir / kMarker, marker);
}

/// The format a marker records, or nullopt with `error` when it is unreadable.
std::optional<int64_t> MarkerFormat(const fs::path& marker, std::string* error) {
  try {
    toml::table table = toml::parse_file(marker.string());
    if (auto format = table["format"].value<int64_t>()) return *format;
    *error = marker.string() + " has no integer `format`";
  } catch (const toml::parse_error& parse_error) {
    *error = marker.string() + " is not valid TOML: " + std::string(parse_error.description());
  }
  return std::nullopt;
}

/// fsync a file or directory; best effort on filesystems that refuse it for directories.
void Sync(const fs::path& path, bool directory) {
  int fd = ::open(path.c_str(), directory ? O_RDONLY | O_DIRECTORY : O_RDONLY);
  if (fd < 0) return;
  ::fsync(fd);
  ::close(fd);
}

uint64_t DirectorySize(const fs::path& dir) {
  uint64_t total = 0;
  std::error_code ec;
  for (fs::recursive_directory_iterator it(dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec)) total += it->file_size(ec);
  }
  return total;
}

}  // namespace

std::string UtcNow() {
  std::time_t now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm utc{};
  gmtime_r(&now, &utc);
  char buffer[32];
  std::strftime(buffer, sizeof buffer, "%Y-%m-%dT%H:%M:%SZ", &utc);
  return buffer;
}

std::string ManifestToToml(const CacheManifest& manifest) {
  toml::table table;
  table.insert("hash", manifest.hash);
  table.insert("kind", manifest.kind);
  toml::array stages;
  for (const std::string& stage : manifest.stages) stages.push_back(stage);
  table.insert("stages", stages);
  table.insert("source", manifest.source);
  table.insert("params", manifest.params);
  table.insert("fusec_version", manifest.fusec_version);
  table.insert("started", manifest.started);
  table.insert("finished", manifest.finished);
  toml::array inputs;
  for (const auto& [slot, hash] : manifest.inputs) inputs.push_back(toml::table{{"slot", slot}, {"hash", hash}});
  table.insert("inputs", inputs);
  toml::array outputs;
  for (const CacheOutput& output : manifest.outputs) {
    outputs.push_back(toml::table{
        {"file", output.file}, {"size", static_cast<int64_t>(output.size)}, {"sha256", output.sha256}});
  }
  table.insert("outputs", outputs);
  std::ostringstream out;
  out << "# A stage-cache entry written by fusec. Its outputs are the files listed under [[outputs]].\n";
  out << table << "\n";
  return out.str();
}

std::optional<CacheManifest> ManifestFromToml(const std::string& text, std::string* error) {
  toml::table table;
  try {
    table = toml::parse(text);
  } catch (const toml::parse_error& parse_error) {
    *error = "manifest.toml is not valid TOML: " + std::string(parse_error.description());
    return std::nullopt;
  }
  CacheManifest manifest;
  auto text_field = [&](const char* name, std::string& into) {
    auto value = table[name].value<std::string>();
    if (!value) {
      *error = "manifest.toml has no `" + std::string(name) + "`";
      return false;
    }
    into = *value;
    return true;
  };
  if (!text_field("hash", manifest.hash) || !text_field("kind", manifest.kind) ||
      !text_field("params", manifest.params) || !text_field("fusec_version", manifest.fusec_version) ||
      !text_field("finished", manifest.finished)) {
    return std::nullopt;
  }
  manifest.source = table["source"].value_or(std::string());
  manifest.started = table["started"].value_or(std::string());
  if (auto stages = table["stages"].as_array()) {
    for (const toml::node& stage : *stages) {
      if (auto value = stage.value<std::string>()) manifest.stages.push_back(*value);
    }
  }
  if (auto inputs = table["inputs"].as_array()) {
    for (const toml::node& input : *inputs) {
      const toml::table* entry = input.as_table();
      if (entry == nullptr) continue;
      manifest.inputs.emplace_back((*entry)["slot"].value_or(std::string()), (*entry)["hash"].value_or(std::string()));
    }
  }
  const toml::array* outputs = table["outputs"].as_array();
  if (outputs == nullptr) {
    *error = "manifest.toml has no `outputs`";
    return std::nullopt;
  }
  for (const toml::node& output : *outputs) {
    const toml::table* entry = output.as_table();
    auto file = entry ? (*entry)["file"].value<std::string>() : std::nullopt;
    auto size = entry ? (*entry)["size"].value<int64_t>() : std::nullopt;
    auto sha = entry ? (*entry)["sha256"].value<std::string>() : std::nullopt;
    if (!file || !size || !sha || *size < 0) {
      *error = "manifest.toml has an output without `file`, `size` and `sha256`";
      return std::nullopt;
    }
    manifest.outputs.push_back(CacheOutput{*file, static_cast<uint64_t>(*size), *sha});
  }
  return manifest;
}

StageCache::StageCache(std::string dir) : dir_(std::move(dir)) {}

std::optional<StageCache> StageCache::Open(const std::string& dir, CacheUse use, std::string* error) {
  std::error_code ec;
  const fs::path path = dir;
  if (!fs::exists(path, ec)) {
    if (use == CacheUse::Read) return StageCache(dir);
    if (use == CacheUse::Inspect) {
      *error = "there is no stage cache at " + dir;
      return std::nullopt;
    }
    fs::create_directories(path, ec);
    if (ec) {
      *error = "cannot create the stage cache " + dir + ": " + ec.message();
      return std::nullopt;
    }
  }
  if (!fs::is_directory(path, ec)) {
    *error = dir + " is not a directory, so it cannot be a stage cache";
    return std::nullopt;
  }
  const fs::path marker = path / kMarker;
  if (!fs::exists(marker, ec)) {
    const bool empty = fs::is_empty(path, ec) && !ec;
    if (!empty) {
      *error = dir + " is not a fusec stage cache (it has no " + kMarker +
               "); fusec will not read, write or clean files in it";
      return std::nullopt;
    }
    if (use != CacheUse::Write) return StageCache(dir);
    if (!WriteMarker(path)) {
      *error = "cannot write " + marker.string();
      return std::nullopt;
    }
    return StageCache(dir);
  }
  auto format = MarkerFormat(marker, error);
  if (!format) return std::nullopt;
  if (*format != kCacheFormat) {
    *error = dir + " is a stage cache of format " + std::to_string(*format) + "; this fusec reads format " +
             std::to_string(kCacheFormat) + (*format > kCacheFormat ? " (it was written by a newer fusec)" : "");
    return std::nullopt;
  }
  return StageCache(dir);
}

std::string StageCache::EntryPath(const std::string& hash) const {
  return (fs::path(dir_) / hash.substr(0, 2) / hash).string();
}

std::string StageCache::LockPath(const std::string& hash) const {
  return (fs::path(dir_) / "locks" / (hash + ".lock")).string();
}

std::string StageCache::CheckpointPath(const std::string& hash) const {
  return (fs::path(dir_) / "checkpoints" / hash).string();
}

CacheLookup StageCache::Find(const std::string& hash, CacheCheck check) const {
  CacheLookup lookup;
  if (!IsHash(hash)) return lookup;
  lookup.path = EntryPath(hash);
  std::error_code ec;
  if (!fs::is_directory(lookup.path, ec)) return lookup;
  auto corrupt = [&](std::string problem) {
    lookup.status = CacheStatus::Corrupt;
    lookup.problem = std::move(problem);
    return lookup;
  };
  fs::path manifest_path = fs::path(lookup.path) / kManifest;
  std::ifstream in(manifest_path, std::ios::binary);
  if (!in) return corrupt("it has no manifest.toml");
  std::ostringstream text;
  text << in.rdbuf();
  std::string error;
  auto manifest = ManifestFromToml(text.str(), &error);
  if (!manifest) return corrupt(error);
  if (manifest->hash != hash) return corrupt("its manifest is for " + manifest->hash.substr(0, 12));
  for (const CacheOutput& output : manifest->outputs) {
    fs::path file = fs::path(lookup.path) / output.file;
    if (output.file.find("..") != std::string::npos || fs::path(output.file).is_absolute()) {
      return corrupt("output `" + output.file + "` is outside the entry");
    }
    if (!fs::is_regular_file(file, ec)) return corrupt("output `" + output.file + "` is missing");
    uint64_t size = fs::file_size(file, ec);
    if (size != output.size) {
      return corrupt("output `" + output.file + "` has " + std::to_string(size) + " bytes, the manifest says " +
                     std::to_string(output.size));
    }
    if (check == CacheCheck::Full) {
      std::string sha = Sha256File(file.string());
      if (sha != output.sha256) {
        return corrupt("output `" + output.file + "` has checksum " + sha.substr(0, 12) + ", the manifest says " +
                       output.sha256.substr(0, 12));
      }
    }
  }
  lookup.status = CacheStatus::Complete;
  lookup.manifest = std::move(*manifest);
  return lookup;
}

std::vector<CacheLookup> StageCache::List(CacheCheck check) const {
  std::vector<std::string> hashes;
  std::error_code ec;
  for (fs::directory_iterator prefix(dir_, ec), end; !ec && prefix != end; prefix.increment(ec)) {
    if (!prefix->is_directory(ec) || !IsHex(prefix->path().filename().string(), 2)) continue;
    for (fs::directory_iterator entry(prefix->path(), ec); !ec && entry != end; entry.increment(ec)) {
      std::string name = entry->path().filename().string();
      if (entry->is_directory(ec) && IsHash(name) && name.starts_with(prefix->path().filename().string())) {
        hashes.push_back(name);
      }
    }
  }
  std::sort(hashes.begin(), hashes.end());
  std::vector<CacheLookup> entries;
  for (const std::string& hash : hashes) entries.push_back(Find(hash, check));
  return entries;
}

std::vector<ResumableStage> StageCache::Resumable() const {
  std::vector<ResumableStage> stages;
  std::error_code ec;
  for (fs::directory_iterator it(fs::path(dir_) / "checkpoints", ec), end; !ec && it != end; it.increment(ec)) {
    std::string hash = it->path().filename().string();
    if (!it->is_directory(ec) || !IsHash(hash)) continue;
    ResumableStage stage{hash, it->path().string(), "", 0};
    std::ifstream latest(it->path() / "LATEST");
    std::string name;
    if (latest >> name && name.starts_with("step-") && fs::is_directory(it->path() / name, ec)) {
      stage.checkpoint = name;
      try {
        stage.step = std::stoll(name.substr(5));
      } catch (const std::exception&) {
        stage.step = 0;
      }
    }
    for (fs::directory_iterator file(it->path(), ec), none; !ec && file != none; file.increment(ec)) {
      const std::string file_name = file->path().filename().string();
      const bool shard = file_name.starts_with("source-") && file_name.find("-block-") != std::string::npos &&
                         file_name.ends_with(".jsonl");
      if (shard) {
        ++stage.sample_shards;
      }
    }
    ec.clear();
    stages.push_back(std::move(stage));
  }
  std::sort(stages.begin(), stages.end(), [](const auto& a, const auto& b) { return a.hash < b.hash; });
  return stages;
}

std::string StageCache::BeginEntry(const std::string& hash) const {
  static std::atomic<uint64_t> counter{0};
  fs::path staging = fs::path(dir_) / "tmp" /
                     (hash.substr(0, 12) + "." + std::to_string(::getpid()) + "." + std::to_string(counter++) + "." +
                      std::to_string(std::chrono::steady_clock::now().time_since_epoch().count()));
  fs::create_directories(staging);
  return staging.string();
}

std::optional<std::string> StageCache::CommitEntry(const std::string& staging, CacheManifest manifest,
                                                   std::string* error) const {
  std::error_code ec;
  manifest.outputs.clear();
  std::vector<fs::path> files;
  for (fs::recursive_directory_iterator it(staging, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_regular_file(ec) && it->path().filename() != kManifest) files.push_back(it->path());
  }
  if (ec) {
    *error = "cannot read the staging directory " + staging + ": " + ec.message();
    return std::nullopt;
  }
  std::sort(files.begin(), files.end());
  for (const fs::path& file : files) {
    fs::permissions(file, fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write,
                    fs::perm_options::remove, ec);
    Sync(file, /*directory=*/false);
    manifest.outputs.push_back(CacheOutput{fs::relative(file, staging).string(), fs::file_size(file, ec),
                                           Sha256File(file.string())});
  }
  if (manifest.finished.empty()) manifest.finished = UtcNow();
  // The manifest goes last: an entry directory with a manifest is one whose outputs were all written.
  fs::path manifest_tmp = fs::path(staging) / (std::string(kManifest) + ".tmp");
  {
    std::ofstream out(manifest_tmp, std::ios::binary);
    out << ManifestToToml(manifest);
    if (!out) {
      *error = "cannot write " + manifest_tmp.string();
      return std::nullopt;
    }
  }
  Sync(manifest_tmp, false);
  fs::rename(manifest_tmp, fs::path(staging) / kManifest, ec);
  if (ec) {
    *error = "cannot write the manifest: " + ec.message();
    return std::nullopt;
  }
  for (fs::recursive_directory_iterator it(staging, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) Sync(it->path(), true);
  }
  Sync(staging, true);

  std::string target = EntryPath(manifest.hash);
  fs::create_directories(fs::path(target).parent_path(), ec);
  // Full: an entry whose bytes were damaged with their sizes intact is replaced, not kept.
  CacheLookup existing = Find(manifest.hash, CacheCheck::Full);
  if (existing.status == CacheStatus::Complete) {
    AbandonEntry(staging);
    return target;
  }
  if (existing.status == CacheStatus::Corrupt) {
    fs::path trash = fs::path(dir_) / "tmp" / ("corrupt." + fs::path(staging).filename().string());
    fs::rename(target, trash, ec);
    fs::remove_all(trash, ec);
  }
  fs::rename(staging, target, ec);
  if (ec) {
    *error = "cannot move the entry into place: " + ec.message();
    return std::nullopt;
  }
  Sync(fs::path(target).parent_path(), true);
  return target;
}

void StageCache::AbandonEntry(const std::string& staging) const {
  std::error_code ec;
  fs::remove_all(staging, ec);
}

CacheGcReport StageCache::Collect(const std::set<std::string>& keep, bool keep_all_complete, bool dry_run) const {
  CacheGcReport report;
  std::error_code ec;
  auto remove = [&](const fs::path& path) {
    if (!fs::exists(path, ec)) return;
    report.bytes += DirectorySize(path);
    report.removed.push_back(path.string());
    if (!dry_run) fs::remove_all(path, ec);
  };
  // Hashes whose lock a running process holds: their staging directories and checkpoints are in use.
  std::vector<std::string> busy;
  for (fs::directory_iterator it(fs::path(dir_) / "locks", ec), end; !ec && it != end; it.increment(ec)) {
    std::string name = it->path().filename().string();
    if (name.ends_with(".lock") && FileLock::IsHeld(it->path().string())) busy.push_back(name.substr(0, 64));
  }
  auto is_busy = [&](const std::string& name) {
    return std::any_of(busy.begin(), busy.end(), [&](const std::string& hash) {
      return name.starts_with(hash.substr(0, 12));
    });
  };
  for (fs::directory_iterator it(fs::path(dir_) / "tmp", ec), end; !ec && it != end; it.increment(ec)) {
    if (!is_busy(it->path().filename().string())) remove(it->path());
  }
  for (const CacheLookup& entry : List(CacheCheck::Quick)) {
    bool complete = entry.status == CacheStatus::Complete;
    std::string hash = fs::path(entry.path).filename().string();
    if (is_busy(hash)) continue;
    if (!complete || (!keep_all_complete && keep.count(hash) == 0)) remove(entry.path);
  }
  if (!keep_all_complete) {
    for (const ResumableStage& stage : Resumable()) {
      if (keep.count(stage.hash) == 0 && !is_busy(stage.hash)) remove(stage.path);
    }
  }
  return report;
}

}  // namespace fusec
