// The samples of an unfinished sampling step, kept in shards so that a killed run resumes where it stopped.
//
// Why: sampling thousands of prompts from several models takes long, and a run can die (a signal, a full
// disk, the machine). So each source's prompts are cut into blocks of kShardPrompts, and once every sample of
// a block is generated it is written as one shard file, atomically (a temporary file renamed over the name),
// under the node's checkpoint directory (`<cache>/checkpoints/<hash>/`). The next run of the same node (same
// hash: same prompts, models and settings) reads the shards there and generates only the missing blocks; the
// draws do not depend on what else is in the batch (generation.h), so the result is the one an uninterrupted
// run gives. A shard that cannot be read is said and sampled again.
//
// A shard `source-<k>-block-<b>.jsonl` has one line per sample: {"prompt": i, "sample": j, "text": ..., "tokens": t},
// i the prompt's index in the step's prompts, j the sample's index (0..n-1), t the generated tokens (stop
// token included).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

namespace fusec::rt {

inline constexpr int64_t kShardPrompts = 8;

struct SampledText {
  std::string text;
  int64_t tokens = 0;
};

/// The samples of one block: [prompt of the block][sample].
using ShardSamples = std::vector<std::vector<SampledText>>;

class SampleShards {
 public:
  /// The shards of `prompts` prompts with `n` samples each, under `dir` (created when missing).
  SampleShards(std::filesystem::path dir, int64_t prompts);

  int64_t blocks() const { return (prompts_ + kShardPrompts - 1) / kShardPrompts; }
  /// The prompts of block `b`: [first, first + count).
  int64_t BlockBegin(int64_t block) const { return block * kShardPrompts; }
  int64_t BlockSize(int64_t block) const;

  /// The samples of source `source`'s block `block` when its shard is complete (each prompt of the block with
  /// exactly `n` samples); nullopt when missing. `problem` receives why a shard present could not be used.
  std::optional<ShardSamples> Read(int64_t source, int64_t block, int64_t n, std::string* problem) const;
  /// Writes a finished block atomically; throws RunError FileSystem when it cannot.
  void Write(int64_t source, int64_t block, const ShardSamples& samples) const;

  std::filesystem::path Path(int64_t source, int64_t block) const;
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  int64_t prompts_;
};

}  // namespace fusec::rt
