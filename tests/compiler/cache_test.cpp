// The stage cache: hits, misses, corruption, atomic commits, manifests and garbage collection.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>

#include "compiler/cache/cache.h"
#include "compiler/support/sha256.h"

namespace fusec {
namespace {

namespace fs = std::filesystem;

class CacheTest : public testing::Test {
 protected:
  void SetUp() override {
    dir_ = fs::temp_directory_path() / ("fusec_cache_test_" + std::to_string(::getpid()));
    fs::remove_all(dir_);
  }
  void TearDown() override { fs::remove_all(dir_); }

  std::string Commit(StageCache& cache, const std::string& hash, const std::string& contents) {
    std::string staging = cache.BeginEntry(hash);
    fs::create_directories(fs::path(staging) / "model");
    std::ofstream(fs::path(staging) / "model" / "weights.bin", std::ios::binary) << contents;
    std::ofstream(fs::path(staging) / "metrics.jsonl") << "{\"loss\": 1.0}\n";
    CacheManifest manifest;
    manifest.hash = hash;
    manifest.kind = "train";
    manifest.stages = {"e/sft"};
    manifest.source = "x.fuse:3:9";
    manifest.params = "{\"epochs\":1}";
    manifest.inputs = {{"init", std::string(64, 'a')}};
    manifest.fusec_version = "fusec test";
    manifest.started = "2026-11-27T00:00:00Z";
    std::string error;
    auto path = cache.CommitEntry(staging, manifest, &error);
    EXPECT_TRUE(path) << error;
    return path.value_or("");
  }

  fs::path dir_;
  const std::string hash_ = Sha256Hex("node");
};

TEST_F(CacheTest, AMissingEntryIsAMiss) {
  StageCache cache(dir_.string());
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Full).status, CacheStatus::Missing);
  EXPECT_EQ(cache.Find("not-a-hash", CacheCheck::Full).status, CacheStatus::Missing);
}

TEST_F(CacheTest, ACommittedEntryIsAHitWithItsManifest) {
  StageCache cache(dir_.string());
  std::string path = Commit(cache, hash_, "weights");
  EXPECT_EQ(path, cache.EntryPath(hash_));
  CacheLookup lookup = cache.Find(hash_, CacheCheck::Full);
  ASSERT_EQ(lookup.status, CacheStatus::Complete) << lookup.problem;
  EXPECT_EQ(lookup.manifest.kind, "train");
  EXPECT_EQ(lookup.manifest.stages, std::vector<std::string>{"e/sft"});
  EXPECT_EQ(lookup.manifest.inputs.size(), 1u);
  ASSERT_EQ(lookup.manifest.outputs.size(), 2u);
  EXPECT_EQ(lookup.manifest.outputs[1].file, "model/weights.bin");
  EXPECT_EQ(lookup.manifest.outputs[1].sha256, Sha256Hex("weights"));
  EXPECT_FALSE(lookup.manifest.finished.empty());
  // Nothing is left in the staging area.
  EXPECT_TRUE(fs::is_empty(dir_ / "tmp"));
}

TEST_F(CacheTest, ChangedOrMissingOutputsMakeTheEntryCorrupt) {
  StageCache cache(dir_.string());
  Commit(cache, hash_, "weights");
  fs::path weights = fs::path(cache.EntryPath(hash_)) / "model" / "weights.bin";
  // Same size, different bytes: only the full check sees it.
  std::ofstream(weights, std::ios::binary) << "WEIGHTS";
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Quick).status, CacheStatus::Complete);
  CacheLookup full = cache.Find(hash_, CacheCheck::Full);
  EXPECT_EQ(full.status, CacheStatus::Corrupt);
  EXPECT_NE(full.problem.find("model/weights.bin` has checksum"), std::string::npos) << full.problem;
  // A different size is seen by the quick check too.
  std::ofstream(weights, std::ios::binary) << "w";
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Quick).status, CacheStatus::Corrupt);
  fs::remove(weights);
  CacheLookup missing = cache.Find(hash_, CacheCheck::Quick);
  EXPECT_EQ(missing.status, CacheStatus::Corrupt);
  EXPECT_NE(missing.problem.find("is missing"), std::string::npos);
  fs::remove(fs::path(cache.EntryPath(hash_)) / "manifest.toml");
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Quick).problem, "it has no manifest.toml");
}

TEST_F(CacheTest, ACorruptEntryIsReplacedByTheNextCommit) {
  StageCache cache(dir_.string());
  Commit(cache, hash_, "weights");
  fs::remove(fs::path(cache.EntryPath(hash_)) / "metrics.jsonl");
  ASSERT_EQ(cache.Find(hash_, CacheCheck::Quick).status, CacheStatus::Corrupt);
  Commit(cache, hash_, "rebuilt");
  CacheLookup lookup = cache.Find(hash_, CacheCheck::Full);
  ASSERT_EQ(lookup.status, CacheStatus::Complete);
  EXPECT_EQ(lookup.manifest.outputs[1].sha256, Sha256Hex("rebuilt"));
}

TEST_F(CacheTest, ACompleteEntryWinsARace) {
  StageCache cache(dir_.string());
  Commit(cache, hash_, "first");
  Commit(cache, hash_, "second");
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Full).manifest.outputs[1].sha256, Sha256Hex("first"));
}

TEST_F(CacheTest, AnInterruptedWriteLeavesNoEntry) {
  StageCache cache(dir_.string());
  // A producer that died after writing outputs but before committing: only a staging directory remains.
  std::string staging = cache.BeginEntry(hash_);
  std::ofstream(fs::path(staging) / "weights.bin") << "partial";
  EXPECT_EQ(cache.Find(hash_, CacheCheck::Full).status, CacheStatus::Missing);
  EXPECT_TRUE(cache.List(CacheCheck::Quick).empty());
  CacheGcReport report = cache.Collect({}, /*keep_all_complete=*/true, /*dry_run=*/false);
  ASSERT_EQ(report.removed.size(), 1u);
  EXPECT_FALSE(fs::exists(staging));
}

TEST_F(CacheTest, GarbageCollectionKeepsWhatIsAskedFor) {
  StageCache cache(dir_.string());
  std::string other = Sha256Hex("other");
  Commit(cache, hash_, "a");
  Commit(cache, other, "b");
  EXPECT_EQ(cache.List(CacheCheck::Quick).size(), 2u);
  CacheGcReport dry = cache.Collect({hash_}, false, /*dry_run=*/true);
  EXPECT_EQ(dry.removed.size(), 1u);
  EXPECT_EQ(cache.List(CacheCheck::Quick).size(), 2u);
  cache.Collect({hash_}, false, false);
  auto left = cache.List(CacheCheck::Quick);
  ASSERT_EQ(left.size(), 1u);
  EXPECT_EQ(fs::path(left[0].path).filename(), hash_);
}

TEST(CacheManifest, RoundTripsThroughToml) {
  CacheManifest manifest;
  manifest.hash = std::string(64, 'f');
  manifest.kind = "ref_logprobs";
  manifest.stages = {"a/po", "b/po"};
  manifest.params = "{\"roles\":[\"chosen\"]}";
  manifest.inputs = {{"model", std::string(64, '1')}, {"items", std::string(64, '2')}};
  manifest.outputs = {{"logprobs.bin", 12, std::string(64, '3')}};
  manifest.fusec_version = "fusec 0.1.0";
  manifest.finished = "2026-11-27T10:00:00Z";
  std::string error;
  auto back = ManifestFromToml(ManifestToToml(manifest), &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->stages, manifest.stages);
  EXPECT_EQ(back->inputs, manifest.inputs);
  EXPECT_EQ(back->params, manifest.params);
  EXPECT_EQ(back->outputs[0].size, 12u);
  EXPECT_FALSE(ManifestFromToml("hash = 1", &error));
  EXPECT_FALSE(ManifestFromToml("[[[", &error));
}

}  // namespace
}  // namespace fusec
