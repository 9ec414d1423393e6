// The stage cache never touches what is not a cache, never keeps a corrupt entry it rebuilt, and says what
// is in flight: the marker, the format version, locks, resumable stages (issue 14's "never lose work").
#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "compiler/cache/cache.h"
#include "compiler/driver/driver.h"
#include "compiler/support/file_lock.h"
#include "compiler/support/sha256.h"
#include "run_fusec.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

class CacheSafetyTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fusec_cache_safety_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  StageCache OpenForWrite() {
    std::string error;
    auto cache = StageCache::Open(dir_.string(), CacheUse::Write, &error);
    EXPECT_TRUE(cache) << error;
    return cache.value_or(StageCache(dir_.string()));
  }

  void Commit(StageCache& cache, const std::string& hash, const std::string& contents) {
    std::string staging = cache.BeginEntry(hash);
    std::ofstream(fs::path(staging) / "weights.bin", std::ios::binary) << contents;
    CacheManifest manifest;
    manifest.hash = hash;
    manifest.kind = "train";
    manifest.params = "{}";
    manifest.fusec_version = "fusec test";
    std::string error;
    ASSERT_TRUE(cache.CommitEntry(staging, manifest, &error)) << error;
  }

  /// `fusec ARGS...`: exit status and stdout + stderr.
  std::pair<int, std::string> Fusec(std::vector<std::string> args) {
    test_support::Outcome outcome = test_support::Fusec(std::move(args));
    return {outcome.status, outcome.out + outcome.err};
  }

  fs::path dir_;
  const std::string hash_ = Sha256Hex("node");
};

/// A directory laid out like a cache (`tmp/`, `ab/<64 hex>/`) that is not one: what `gc` used to empty.
void MakeLookalike(const fs::path& dir, const std::string& hash) {
  fs::create_directories(dir / "tmp");
  std::ofstream(dir / "tmp" / "notes.txt") << "mine";
  fs::create_directories(dir / hash.substr(0, 2) / hash);
  std::ofstream(dir / hash.substr(0, 2) / hash / "data.csv") << "1,2\n";
}

TEST_F(CacheSafetyTest, CommandsRefuseADirectoryWithoutTheMarker) {
  MakeLookalike(dir_, hash_);
  for (std::vector<std::string> command : {std::vector<std::string>{"cache", "gc"}, {"cache", "ls"}, {"cache", "verify", "--remove"}}) {
    command.insert(command.end(), {"--cache", dir_.string()});
    auto [status, text] = Fusec(command);
    EXPECT_EQ(status, kExitErrors) << command[1];
    EXPECT_NE(text.find("is not a fusec stage cache"), std::string::npos) << text;
  }
  EXPECT_TRUE(fs::exists(dir_ / "tmp" / "notes.txt"));
  EXPECT_TRUE(fs::exists(dir_ / hash_.substr(0, 2) / hash_ / "data.csv"));
  std::string error;
  EXPECT_FALSE(StageCache::Open(dir_.string(), CacheUse::Write, &error));
  EXPECT_FALSE(StageCache::Open(dir_.string(), CacheUse::Read, &error));
}

TEST_F(CacheSafetyTest, ANewCacheGetsAMarkerAndAnotherFormatIsRefused) {
  StageCache cache = OpenForWrite();
  EXPECT_TRUE(fs::exists(dir_ / "fusec-cache.toml"));
  EXPECT_TRUE(fs::exists(dir_ / "CACHEDIR.TAG"));
  Commit(cache, hash_, "w");
  std::string error;
  EXPECT_TRUE(StageCache::Open(dir_.string(), CacheUse::Inspect, &error)) << error;
  std::ofstream(dir_ / "fusec-cache.toml") << "format = 7\n";
  EXPECT_FALSE(StageCache::Open(dir_.string(), CacheUse::Read, &error));
  EXPECT_NE(error.find("format 7"), std::string::npos) << error;
  EXPECT_NE(error.find("newer fusec"), std::string::npos) << error;
}

TEST_F(CacheSafetyTest, InspectingAMissingCacheIsAnError) {
  auto [status, text] = Fusec({"cache", "verify", "--cache", (dir_ / "nope").string()});
  EXPECT_EQ(status, kExitErrors);
  EXPECT_NE(text.find("there is no stage cache at"), std::string::npos) << text;
  EXPECT_FALSE(fs::exists(dir_ / "nope"));
}

TEST_F(CacheSafetyTest, ARebuiltEntryReplacesOneCorruptWithItsSizeIntact) {
  StageCache cache = OpenForWrite();
  Commit(cache, hash_, "weights");
  fs::path file = fs::path(cache.EntryPath(hash_)) / "weights.bin";
  fs::permissions(file, fs::perms::owner_write, fs::perm_options::add);
  std::ofstream(file, std::ios::binary) << "WEIGHTS";  // same size, other bytes
  ASSERT_EQ(cache.Find(hash_, CacheCheck::Quick).status, CacheStatus::Complete);
  ASSERT_EQ(cache.Find(hash_, CacheCheck::Full).status, CacheStatus::Corrupt);
  Commit(cache, hash_, "weights");
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Full).status, CacheStatus::Complete);
}

TEST_F(CacheSafetyTest, OutputsAreReadOnly) {
  StageCache cache = OpenForWrite();
  Commit(cache, hash_, "weights");
  fs::perms perms = fs::status(fs::path(cache.EntryPath(hash_)) / "weights.bin").permissions();
  EXPECT_EQ(perms & (fs::perms::owner_write | fs::perms::group_write | fs::perms::others_write), fs::perms::none);
}

TEST_F(CacheSafetyTest, CheckpointsAreListedAsResumableNotCorrupt) {
  StageCache cache = OpenForWrite();
  fs::path checkpoint = cache.CheckpointPath(hash_);
  fs::create_directories(checkpoint / "step-00000003");
  std::ofstream(checkpoint / "LATEST") << "step-00000003\n";
  EXPECT_TRUE(cache.List(CacheCheck::Full).empty());
  ASSERT_EQ(cache.Resumable().size(), 1u);
  EXPECT_EQ(cache.Resumable()[0].step, 3);
  auto [status, text] = Fusec({"cache", "verify", "--cache", dir_.string()});
  EXPECT_EQ(status, kExitOk) << text;
  EXPECT_EQ(text.find("corrupt:"), std::string::npos) << text;
  EXPECT_NE(text.find(hash_.substr(0, 12) + "  resumable: checkpoint at step 3"), std::string::npos) << text;
  auto [gc_status, gc_text] = Fusec({"cache", "gc", "--cache", dir_.string()});
  EXPECT_EQ(gc_status, kExitOk);
  EXPECT_EQ(gc_text.find("removed"), std::string::npos) << gc_text;  // nothing to remove, nothing reported
  EXPECT_TRUE(fs::exists(checkpoint / "LATEST"));
}

TEST_F(CacheSafetyTest, GcLeavesWhatARunningProcessHolds) {
  StageCache cache = OpenForWrite();
  std::string staging = cache.BeginEntry(hash_);
  std::string holder;
  auto lock = FileLock::TryAcquire(cache.LockPath(hash_), "test", &holder);
  ASSERT_TRUE(lock) << holder;
  cache.Collect({}, true, false);
  EXPECT_TRUE(fs::exists(staging));
  lock.reset();
  cache.Collect({}, true, false);
  EXPECT_FALSE(fs::exists(staging));
}

TEST(FileLock, ASecondHolderIsRefusedWithTheFirstsName) {
  fs::path path = fs::temp_directory_path() / ("fusec_lock_test_" + std::to_string(::getpid())) / "x.lock";
  std::string holder;
  auto first = FileLock::TryAcquire(path.string(), "fusec run a.fuse", &holder);
  ASSERT_TRUE(first) << holder;
  EXPECT_TRUE(FileLock::IsHeld(path.string()));
  EXPECT_FALSE(FileLock::TryAcquire(path.string(), "fusec run b.fuse", &holder));
  EXPECT_NE(holder.find("pid " + std::to_string(::getpid())), std::string::npos) << holder;
  EXPECT_NE(holder.find("fusec run a.fuse"), std::string::npos) << holder;
  first.reset();
  EXPECT_FALSE(FileLock::IsHeld(path.string()));
  EXPECT_TRUE(FileLock::TryAcquire(path.string(), "fusec run b.fuse", &holder));
  fs::remove_all(path.parent_path());
}

}  // namespace
}  // namespace fusec
