// Data parallel's gradient averaging, overlapped with backward: the parameters are grouped into buckets of
// about 25 MB in reverse order (the order backward produces their gradients), and during the last micro-batch
// of a step each bucket's sum over the ranks starts as soon as its last gradient is ready (a hook on each
// parameter), while backward goes on with the layers below. Buckets start strictly in order, so every rank
// issues the same collectives in the same order whatever order its hooks fire in.
//
// Summed, not averaged: the trainer divides each micro-batch's loss by the whole step's prompt count (over
// every rank), so the sum of the ranks' gradients is the gradient of the step's loss, as with one process.
// A parameter no rank produced a gradient for keeps none (AdamW skips it, as with one process).
#pragma once

#include <torch/types.h>

#include <cstdint>
#include <vector>

#include "runtime/dist/rank_group.h"

namespace fusec::rt {

class GradientBuckets {
 public:
  /// Bucket size in bytes: DDP's default.
  static constexpr int64_t kDefaultBucketBytes = 25 * 1024 * 1024;

  GradientBuckets(std::vector<torch::Tensor> parameters, RankGroup& ranks, int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  /// The next backward is the step's last on this rank: its hooks start the buckets' sums.
  void ArmForLastMicroBatch() { armed_ = true; }
  /// Starts the buckets not started yet (those holding a parameter the last backward did not reach, or all of
  /// them on a rank with no micro-batch this step), waits for every sum and puts the summed gradients in the
  /// parameters' `.grad`.
  void Finish();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> parameters;  // indexes into parameters_
    std::vector<int64_t> offsets;    // each one's first element in `flat`
    torch::Tensor flat;              // [elements] the gradients, then their sum
    size_t ready = 0;
    bool started = false;
  };

  void OnGradient(size_t parameter, const torch::Tensor& incoming);
  /// Copies this rank's gradient of `parameter` (accumulated so far plus `incoming`) into its bucket slot.
  void Stage(size_t parameter, const torch::Tensor& incoming);
  void StartReadyBucketsInOrder();

  std::vector<torch::Tensor> parameters_;
  RankGroup& ranks_;
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // [parameter]
  std::vector<size_t> slot_of_;    // [parameter] its index within its bucket
  std::vector<bool> staged_;       // [parameter] its gradient is in its bucket this step
  std::vector<unsigned> hook_ids_;
  size_t next_to_start_ = 0;
  bool armed_ = false;
};

}  // namespace fusec::rt
