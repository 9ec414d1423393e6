// The optimizer of one rank: AdamW over the parameters this rank owns, as the stage's `shard` says (ZeRO's
// stages 1 and 2, docs/distributed.md).
//
// With one rank, or `shard = none`, every rank owns every parameter: each keeps both AdamW moments of the whole
// model and takes the same step. With `optimizer` or `gradients` the parameters are partitioned, whole, in
// contiguous runs of backward's order balanced by elements; a rank keeps the moments of its own parameters
// (and, at `gradients`, only their gradients: runtime/dist/gradient_buckets.h), updates them, and then each
// owner broadcasts its updated parameters so every rank holds the whole model again for the next forward.
// The global gradient norm that clipping needs is then a sum over the ranks of their shards' squares.
//
// Why whole parameters and not DeepSpeed's flat, evenly split buffers: Gloo has no reduce-scatter, and a
// parameter's moments staying whole keeps them addressable by name, so a checkpoint (one file of moments per
// rank, keyed by parameter name) resumes at any world size.
#pragma once

#include <torch/optim/adamw.h>
#include <torch/types.h>

#include <cstdint>
#include <optional>
#include <vector>

#include "compiler/ir/enums.h"
#include "runtime/dist/rank_group.h"
#include "runtime/model/llama.h"

namespace fusec::rt {

/// [parameter] the rank owning it: `parameters` (in the model's order) split into `ranks` contiguous runs of
/// backward's order (the reverse), of about equal elements.
std::vector<int64_t> PartitionParameters(const std::vector<torch::Tensor>& parameters, int64_t ranks);

class OptimizerShard {
 public:
  /// `ranks`: nullptr, or a group of one, for one process.
  OptimizerShard(LlamaForCausalLMImpl& model, ir::Shard shard, RankGroup* ranks,
                 const torch::optim::AdamWOptions& options);

  /// [parameter] its owner, in the model's order; empty when every rank owns every parameter.
  const std::vector<int64_t>& owners() const { return owners_; }
  /// Whether each rank keeps only its own parameters' gradients (`shard = gradients` on several ranks).
  bool shards_gradients() const { return shards_gradients_; }
  /// AdamW over this rank's parameters: its state is what a checkpoint keeps of this rank.
  torch::optim::AdamW& adamw() { return adamw_; }
  const torch::optim::AdamW& adamw() const { return adamw_; }

  void SetLearningRate(double lr);
  /// Every parameter's gradient released (undefined), before a step's first backward.
  void ReleaseGradients();
  /// The global L2 norm of the step's gradients (over every rank's shard when they are sharded), which are
  /// then clipped to `max_norm` when it is set.
  double ClipGradients(const std::optional<double>& max_norm);
  /// AdamW on this rank's parameters, then (sharded) every owner's parameters broadcast to the others.
  void Step();

  /// Bytes of the AdamW moments this rank keeps.
  int64_t MomentBytes() const;

 private:
  /// Every rank's parameters become their owners'.
  void BroadcastFromOwners();

  std::vector<torch::Tensor> parameters_;
  RankGroup* ranks_;
  std::vector<int64_t> owners_;
  bool shards_gradients_ = false;
  torch::optim::AdamW adamw_;
};

}  // namespace fusec::rt
