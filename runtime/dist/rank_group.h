// The ranks of a distributed run, as one object: who this process is among them, the collectives training
// needs (sums, maxima, broadcasts, all started on c10d's Gloo process group), and the key-value store the
// leader (rank 0) uses to tell the other ranks what it did alone (a committed cache entry, a failure).
//
// Why a wrapper rather than c10d itself in the trainer and the executor: c10d's headers need USE_C10D_GLOO,
// which Debian's LibTorch config does not define, and its classes moved between 1.13 and 2.x (process groups
// became backends); only rank_group.cpp sees them. Every failure of a peer (a rank killed, a collective that
// timed out, the store gone) becomes a DistributedError naming this rank and what it was doing, never a hang:
// a dead peer's sockets close at once, a hung one runs into the timeout.
#pragma once

#include <torch/types.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <string>

#include "runtime/support/launch_environment.h"

namespace fusec::rt {

/// A peer rank failed or stopped answering, or the store is gone; the message names this rank and the step.
class DistributedError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// What this rank spent in collectives: for fusec-bench's communication figures.
struct CollectiveTally {
  double seconds_waiting = 0;  // in Wait()s and synchronous collectives
  int64_t calls = 0;
  int64_t bytes_reduced = 0;  // bytes of the tensors summed (what a ring all-reduce moves 2(N-1)/N of)
};

class RankGroup {
 public:
  /// Connects to the other ranks of `launch` (a world of more than one): the TCP store at MASTER_ADDR:
  /// MASTER_PORT as torchrun's rule says (every rank a client of the agent's store when
  /// TORCHELASTIC_USE_AGENT_STORE is True, else rank 0 hosts it), then a Gloo process group whose collectives
  /// time out after `timeout`. Throws DistributedError when the others do not come within the timeout.
  static std::unique_ptr<RankGroup> Connect(const LaunchEnvironment& launch, std::chrono::milliseconds timeout);
  ~RankGroup();
  RankGroup(const RankGroup&) = delete;
  RankGroup& operator=(const RankGroup&) = delete;

  int64_t rank() const { return rank_; }
  int64_t size() const { return size_; }
  /// The rank among those of this node: the GPU it takes.
  int64_t local_rank() const { return local_rank_; }
  /// Rank 0: the one that writes (cache entries, checkpoints, metrics, the console's progress).
  bool leader() const { return rank_ == 0; }

  /// Sums `values` (contiguous) over the ranks, in place.
  void Sum(torch::Tensor& values);
  /// Element-wise maximum over the ranks, in place.
  void Max(torch::Tensor& values);
  /// Every rank's `values` become rank `root`'s.
  void Broadcast(torch::Tensor& values, int64_t root);
  /// Starts summing `values` (contiguous, kept alive by the caller until WaitForStarted) and returns at once:
  /// gradient buckets overlap their sums with the rest of backward.
  void StartSum(torch::Tensor& values);
  /// Starts summing `values` over the ranks into rank `root`'s `values` (the others' are left undefined) and
  /// returns at once: at ZeRO stage 2 a gradient bucket's sum goes to the rank that owns its parameters.
  void StartSumTo(torch::Tensor& values, int64_t root);
  /// Waits for the oldest collective started and not waited for yet.
  void WaitForOldestStarted();
  /// Waits for every collective started since the last wait, in the order they were started.
  void WaitForStarted();
  /// Every rank arrives before any leaves.
  void Barrier();

  /// The leader's word to the others: `key` set to `value` in the store.
  void Post(const std::string& key, const std::string& value);
  /// Waits, without a timeout, until `key` is posted and returns its value: the leader's step may take hours
  /// (sampling a source). A leader that posted its failure (PostFailure), or died and took the store (or, under
  /// torchrun, the whole group) with it, ends the wait with a DistributedError.
  std::string AwaitPost(const std::string& key);
  /// The leader stopped with `message`: every rank waiting in AwaitPost stops too.
  void PostFailure(const std::string& message);

  const CollectiveTally& tally() const { return tally_; }

  /// "rank 1 of 3".
  std::string Describe() const;

 private:
  struct Impl;
  RankGroup(int64_t rank, int64_t size, int64_t local_rank, std::unique_ptr<Impl> impl);
  /// Waits for `work`'s kind of failure-prone call, turning c10d's errors into DistributedError.
  template <typename Call>
  void Collective(const char* what, int64_t bytes, Call&& call);

  int64_t rank_;
  int64_t size_;
  int64_t local_rank_;
  std::unique_ptr<Impl> impl_;
  CollectiveTally tally_;
};

}  // namespace fusec::rt
