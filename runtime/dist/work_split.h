// The split of a node's work over the ranks of a run (reference log-probabilities, evaluation, sampling,
// scoring), and the gathering of its results, once.
//
// Why units dealt round-robin: the units are the batches (or blocks) one process would form, and rank r
// computes those with index mod N == r. So every result is computed exactly as one process computes it (the
// same batch, the same rounding), the ranks end within a batch of each other, and no rank needs another's
// inputs. Why gather by a sum: every value is computed by one rank and is 0 on the others, so the sum over the
// ranks is that value exactly (0 + x == x), in one collective; c10d's Gloo has no all-gather of unequal sizes.
#pragma once

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace fusec::rt {

class RankGroup;

class WorkSplit {
 public:
  /// The whole work on this process when `ranks` is null (one process).
  explicit WorkSplit(RankGroup* ranks = nullptr) : ranks_(ranks) {}

  /// Whether this rank computes unit `unit` (a batch's or a block's index, counted from 0).
  bool Owns(int64_t unit) const;
  /// Owns() as a function, for the batching loops that take a filter.
  std::function<bool(int64_t)> Filter() const;
  /// How many ranks share the work (1 on one process).
  int64_t ranks() const;
  /// Whether this process writes the results (rank 0, or the only process).
  bool writes() const;

  /// Every rank's part of `values`, in place: each element computed by one rank and 0 on the others.
  void Gather(std::vector<double>& values) const;
  void Gather(std::vector<int64_t>& values) const;
  /// Every rank's `mine`, in rank order (just `mine` on one process).
  std::vector<std::string> GatherTexts(const std::string& mine) const;
  /// Whether any rank says `flag`.
  bool AnyRank(bool flag) const;
  /// Every rank arrives before any leaves (what rank 0 did alone before is done for all).
  void WaitForEveryRank() const;

 private:
  RankGroup* ranks_;
};

}  // namespace fusec::rt
