// Datasets as stage-cache entries: what `sample` and `score` commit, and read back when they are cached.
//
// Why: sampling is the most expensive step of a FuseRL pipeline after training, and a sweep over FusePO's
// settings must sample once. So the sampled (and the scored) records are committed like a trained model: a
// `records.jsonl` in the node's entry (jsonl_writer.h's format), which a later run with the same hash reads
// instead of computing anything.
#pragma once

#include <filesystem>
#include <memory>
#include <string>

#include "runtime/exec/rules.h"

namespace fusec::rt {

/// The file of an entry (or a staging directory) that holds its records.
inline constexpr const char* kDatasetEntryFile = "records.jsonl";

/// Writes `records` into the staging directory `staging`; throws RunError FileSystem when it cannot.
void WriteDatasetEntry(const std::filesystem::path& staging, const Dataset& records);

/// The records of a committed entry; throws RunError CacheEntry naming the entry when they cannot be read.
std::shared_ptr<const Dataset> ReadDatasetEntry(const std::string& entry);

}  // namespace fusec::rt
