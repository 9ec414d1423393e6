// Data parallel's gradient sums, overlapped with backward: the parameters are grouped into buckets of about
// 25 MB in reverse order (the order backward produces their gradients), and each bucket's sum over the ranks
// starts as soon as its last gradient is ready (a hook on each parameter), while backward goes on with the
// layers below. Buckets start strictly in order, so every rank issues the same collectives in the same order
// whatever order its hooks fire in.
//
// Two ways, as the stage's `shard` says:
// - Every rank gets every sum (`none`, `optimizer`): gradients accumulate locally over the step's
//   micro-batches and only the last backward's hooks start the sums (one all-reduce per bucket and step).
//   Each gradient is released once it is in its bucket, and the summed gradients are views of the buckets
//   (as DDP's gradient_as_bucket_view), so a rank holds one copy of the gradients, not two.
// - Each sum goes to the rank owning the bucket's parameters (`gradients`, ZeRO-2): buckets hold one owner's
//   parameters, every micro-batch's backward starts the sums (a reduce per bucket, to its owner), and each
//   gradient is released once it is in its bucket; the owner adds the sums to its shard's gradients. A rank
//   then holds the gradients of its own parameters, not the whole model's, and about two buckets' buffers.
//   Every rank must take part in every micro-batch's sums: a rank with fewer micro-batches than another calls
//   AfterBackward() without a backward for each one it lacks (its share is zero).
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
  /// Sums to owners: how many bucket buffers may be alive (filling or in flight) before a new one waits for the
  /// oldest sum in flight.
  static constexpr int64_t kBucketBuffers = 2;

  /// `owners`: empty, every rank gets every sum; else [parameter] the rank owning it, which alone gets its sum.
  GradientBuckets(std::vector<torch::Tensor> parameters, RankGroup& ranks, std::vector<int64_t> owners = {},
                  int64_t bucket_bytes = kDefaultBucketBytes);
  ~GradientBuckets();
  GradientBuckets(const GradientBuckets&) = delete;
  GradientBuckets& operator=(const GradientBuckets&) = delete;

  /// Whether every micro-batch's gradients are summed (to their owners), not only the step's last.
  bool sums_every_micro_batch() const { return !owners_.empty(); }

  /// The next backward is of a micro-batch (the step's last on this rank when `last`): arms the hooks when its
  /// gradients are to be summed.
  void BeforeBackward(bool last);
  /// After each backward, or in place of one: sums to owners, the buckets its hooks did not start (a parameter
  /// it did not reach, or all of them without a backward) start, every sum is waited for and added to the
  /// owners' gradients, and every other gradient is released. Nothing when every rank gets every sum.
  void AfterBackward();
  /// The step's gradients, once each rank's last micro-batch is done: every rank's summed gradients in the
  /// parameters' `.grad` (every rank gets every sum), or the owned parameters' alone (sums to owners).
  void Finish();

  int64_t bucket_count() const { return static_cast<int64_t>(buckets_.size()); }

 private:
  struct Bucket {
    std::vector<size_t> parameters;  // indexes into parameters_
    std::vector<int64_t> offsets;    // each one's first element in `flat`
    int64_t elements = 0;
    int64_t owner = -1;  // sums to owners: the rank that gets the sum
    torch::Tensor flat;  // [elements] the gradients, then their sum (sums to owners: only while in flight)
    size_t ready = 0;
  };

  void OnGradient(size_t parameter, const torch::Tensor& incoming);
  /// Copies this rank's gradient of `parameter` (accumulated so far plus `incoming`) into its bucket slot.
  void Stage(size_t parameter, const torch::Tensor& incoming);
  void StartReadyBucketsInOrder();
  /// Sums to owners: waits for the oldest bucket in flight, adds its sum to the owned gradients, frees it.
  void CompleteOldestBucket();
  /// Sums to owners: releases the gradients already copied into a bucket.
  void ReleaseStagedGradients();
  torch::Tensor Slot(const Bucket& bucket, size_t parameter) const;

  std::vector<torch::Tensor> parameters_;
  RankGroup& ranks_;
  std::vector<int64_t> owners_;  // [parameter], or empty
  std::vector<Bucket> buckets_;
  std::vector<size_t> bucket_of_;  // [parameter]
  std::vector<size_t> slot_of_;    // [parameter] its index within its bucket
  std::vector<bool> staged_;       // [parameter] its gradient is in its bucket this micro-batch
  std::vector<bool> had_gradient_;     // [parameter] this rank produced a gradient for it this step
  std::vector<torch::Tensor> owned_sum_;  // [parameter] sums to owners: the step's sum so far, owned ones
  std::vector<size_t> to_release_;        // staged parameters whose `.grad` is to be released
  std::vector<unsigned> hook_ids_;
  size_t next_to_start_ = 0;
  size_t next_to_complete_ = 0;
  int64_t live_buffers_ = 0;  // bucket buffers allocated and not yet released
  bool armed_ = false;
};

}  // namespace fusec::rt
