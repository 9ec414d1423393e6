// Loss graphs: a train node's objective as a small tensor-expression graph, and what it reads.
//
// SSA operations over a few primitives (logp, ref_logp, len, reward, weight, progress) and the operators of
// op_kind.def. Passes fold and share operations (compiler/passes/loss_passes.cpp) and infer the loss's
// Requirements; the runtime evaluates the graph on whole batches of tensors (runtime/objectives/loss.cpp).
#pragma once

#include <string>
#include <vector>

#include "compiler/ir/enums.h"
#include "compiler/ir/ops.h"

namespace fusec::ir {

enum class LossOpKind : uint8_t {
  Const,     // `value`
  Logp,      // policy log-probability of `role`, summed over its tokens
  RefLogp,   // reference log-probability of `role`
  Length,    // token count of `role`
  Reward,    // reward of `role`
  Weight,    // the item's weight
  Progress,  // training progress in [0, 1]
  Op,        // `op` of the args (op_kind.def)
  Select,    // args: condition, then, else
  Reduce,    // `reduction` (sum | mean | max | min) over a group's members
  LooMean,   // leave-one-out mean over a group's members
};
std::string_view Spelling(LossOpKind kind);

/// One operation of a loss graph, in SSA form: `args` index earlier operations.
struct LossOp {
  LossOpKind kind = LossOpKind::Const;
  OpKind op = OpKind::Add;               // Op
  Reduction reduction = Reduction::Sum;  // Reduce
  std::string role;                      // Logp, RefLogp, Length, Reward
  double value = 0;                      // Const
  ScalarType type = ScalarType::Float;
  std::vector<int> args;

  friend bool operator==(const LossOp&, const LossOp&) = default;
};

/// A loss as a tensor-expression graph. The loss is `ops[result]`, one value per unit.
struct LossGraph {
  std::vector<LossOp> ops;
  int result = -1;
  Unit unit = Unit::Pair;
  std::vector<std::string> roles;  // the responses the unit names (`chosen`, `rejected`, or `y`)
  std::string objective;           // `dpo(beta: 10.0, length_norm: true)`, for messages

  /// `%3 = / %1, %2` lines, then `result %4`: canonical, so it is also what the hash reads.
  std::string ToString() const;
};

/// What a train node reads from the data and the models: inferred from its loss graph.
struct Requirements {
  std::vector<std::string> policy_logp;     // roles whose policy log-probabilities are read
  std::vector<std::string> reference_logp;  // roles whose reference log-probabilities are read
  bool lengths = false;
  bool rewards = false;
  bool weight_in_loss = false;  // the loss places the weight; otherwise it multiplies each item's loss
  bool progress = false;
  bool groups = false;

  std::string ToString() const;
};

}  // namespace fusec::ir
