#include "runtime/exec/run_directory.h"

#include <fcntl.h>
#include <stdio.h>

#include <cerrno>
#include <cstring>
#include <ostream>

#include "runtime/support/run_error.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

fs::path WithSuffix(const fs::path& dir, const std::string& suffix) {
  fs::path path = dir;
  path += suffix;
  return path;
}

/// `.NAME.lock` beside `dir`: outside the directories that are swapped, so it stays put.
fs::path LockPathOf(const fs::path& dir) { return dir.parent_path() / ("." + dir.filename().string() + ".lock"); }

/// The model files of an export (what SaveModel and the tokenizer copy write), by name.
bool IsModelFile(const std::string& name) {
  return name == "config.json" || name == "generation_config.json" || name == "tokenizer.json" ||
         name == "tokenizer_config.json" || name == "special_tokens_map.json" || name == "tokenizer.model" ||
         name == "vocab.json" || name == "merges.txt" || name == "model.safetensors.index.json" ||
         (name.starts_with("model") && name.ends_with(".safetensors"));
}

[[noreturn]] void Fail(const std::string& what, const fs::path& path, int error_number) {
  throw RunError(RunErrorKind::FileSystem, what + ": " + std::strerror(error_number)).Place(path.string());
}

/// Links (or, across filesystems, copies) every file of `old_dir` that is not a run output and that the new
/// run did not write into `new_dir`, at the same relative path.
void CarryOverUserFiles(const fs::path& old_dir, const fs::path& new_dir) {
  std::error_code ec;
  for (fs::recursive_directory_iterator it(old_dir, ec), end; !ec && it != end; it.increment(ec)) {
    if (it->is_directory(ec)) continue;
    const fs::path relative = fs::relative(it->path(), old_dir, ec);
    if (ec || IsRunOutput(relative)) continue;
    const fs::path to = new_dir / relative;
    if (fs::exists(fs::symlink_status(to, ec))) continue;  // the new run wrote it
    fs::create_directories(to.parent_path(), ec);
    if (it->is_symlink(ec)) {
      fs::copy_symlink(it->path(), to, ec);
    } else {
      fs::create_hard_link(it->path(), to, ec);
      if (ec) fs::copy_file(it->path(), to, ec);
    }
    if (ec) Fail("cannot keep the user's file " + relative.string() + " in the new run directory", it->path(), ec.value());
  }
  if (ec) Fail("cannot read the old run directory", old_dir, ec.value());
}

}  // namespace

bool IsRunOutput(const fs::path& relative) {
  auto part = relative.begin();
  if (part == relative.end()) return false;
  const std::string first = part->string();
  const std::string name = relative.filename().string();
  if (std::distance(relative.begin(), relative.end()) == 1) {
    return name == "manifest.toml" || name == "metrics.jsonl" || name == "summary.json";
  }
  if (first == "eval") return name.ends_with(".json") || name.ends_with(".jsonl");
  if (first == "export") return std::distance(relative.begin(), relative.end()) == 3 && IsModelFile(name);
  return false;
}

RunDirectory RunDirectory::Begin(const fs::path& dir, const std::string& what, std::ostream& notes) {
  std::error_code ec;
  const fs::path final = dir.lexically_normal();
  if (!final.parent_path().empty()) fs::create_directories(final.parent_path(), ec);
  if (ec) {
    throw RunError(RunErrorKind::FileSystem, "cannot create the run directory's parent: " + ec.message())
        .Place(final.parent_path().string());
  }
  std::string holder;
  auto lock = FileLock::TryAcquire(LockPathOf(final).string(), what, &holder);
  if (!lock) {
    if (holder.starts_with("cannot")) throw RunError(RunErrorKind::FileSystem, holder).Place(final.string());
    throw RunError(RunErrorKind::FileSystem, "another run is writing this run directory: " + holder)
        .Place(final.string())
        .Help("wait for it to finish, or give this run another directory with `--out DIR`");
  }
  if (fs::exists(final, ec) && !fs::is_directory(final, ec)) {
    throw RunError(RunErrorKind::FileSystem, "the run directory is a file, not a directory").Place(final.string());
  }
  const fs::path staging = WithSuffix(final, ".partial");
  if (fs::exists(staging, ec)) {
    notes << "note: replacing " << staging.string() << ", the record of an earlier run that did not finish\n";
    fs::remove_all(staging, ec);
    if (ec) Fail("cannot remove the unfinished run's directory", staging, ec.value());
  }
  fs::create_directories(staging, ec);
  if (ec) Fail("cannot create the run directory", staging, ec.value());
  return RunDirectory(final, staging, std::move(*lock));
}

fs::path RunDirectory::Published(const fs::path& path) const {
  const fs::path normal = path.lexically_normal();
  const fs::path relative = normal.lexically_relative(staging_);
  if (relative.empty() || *relative.begin() == "..") return path;
  return relative == "." ? final_ : final_ / relative;
}

void RunDirectory::Publish() {
  std::error_code ec;
  if (!fs::exists(final_, ec)) {
    fs::rename(staging_, final_, ec);
    if (ec) Fail("cannot move the finished run into place", final_, ec.value());
    return;
  }
  CarryOverUserFiles(final_, staging_);
  if (::renameat2(AT_FDCWD, staging_.c_str(), AT_FDCWD, final_.c_str(), RENAME_EXCHANGE) != 0) {
    // A filesystem without RENAME_EXCHANGE: two renames, with the old run kept aside in between.
    const fs::path aside = WithSuffix(final_, ".previous");
    fs::remove_all(aside, ec);
    fs::rename(final_, aside, ec);
    if (ec) Fail("cannot move the old run directory aside", final_, ec.value());
    fs::rename(staging_, final_, ec);
    if (ec) {
      std::error_code restore;
      fs::rename(aside, final_, restore);
      Fail("cannot move the finished run into place", final_, ec.value());
    }
    fs::remove_all(aside, ec);
    return;
  }
  fs::remove_all(staging_, ec);  // now the old run, whose user files were carried over
}

}  // namespace fusec::rt
