// Loss graphs evaluated on LibTorch tensors, with autograd.
//
// Objectives are written in .fuse (stdlib/objectives.fuse, or a user's file) and reach the runtime as the
// compiler's loss graph (ir::LossGraph): SSA operations over a few primitives (logp, ref_logp, len, reward,
// weight, progress). This evaluator is the only place those operations get a tensor meaning, so a new
// objective trains without C++. It works on a batch of items at once: every per-item value is a [U] tensor,
// every per-group value a [G] tensor, constants and `progress` are scalars. The operations' semantics are
// those of the compiler's constant folder (compiler/passes/loss_passes.cpp): comparisons give 0 or 1,
// `clamp(x, lo, hi)` never has hi below lo, `loo_mean` is the mean of the other members of the group.
#pragma once

#include <torch/types.h>

#include <map>
#include <stdexcept>
#include <string>

#include "compiler/ir/ir.h"

namespace fusec::rt {

/// The values a loss graph reads for a batch of U items (responses or pairs), in G groups for group units.
struct LossBatch {
  std::map<std::string, torch::Tensor> logp;      // role -> [U] float, policy log-probabilities (with grad)
  std::map<std::string, torch::Tensor> ref_logp;  // role -> [U] float
  std::map<std::string, torch::Tensor> length;    // role -> [U] float, token counts
  std::map<std::string, torch::Tensor> reward;    // role -> [U] float
  torch::Tensor weight;                           // [U], each item's weight
  double progress = 0;                            // training progress in [0, 1]
  torch::Tensor group;                            // [U] int64: each item's group (group units only)
  int64_t groups = 0;                             // G
};

/// A loss graph that cannot be evaluated on a batch: a role the batch lacks, a group of one member for
/// `loo_mean`. The message names the objective.
class LossError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

/// The loss of each unit: [U] for response and pair units, [G] for group units.
torch::Tensor EvaluateLoss(const ir::LossGraph& loss, const LossBatch& batch);

}  // namespace fusec::rt
