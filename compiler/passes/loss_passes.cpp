// Passes over loss graphs: constant folding, common-subexpression elimination, dead-operation removal, and
// the requirements a loss implies.

#include <algorithm>
#include <cmath>
#include <cstring>
#include <map>
#include <variant>

#include "compiler/passes/passes.h"

namespace fusec {
namespace {

using ir::LossGraph;
using ir::LossOp;
using ir::LossOpKind;

bool IsConst(const LossOp& op) { return op.kind == LossOpKind::Const; }
bool IsConstValue(const LossOp& op, double value) { return IsConst(op) && op.value == value; }

LossOp Constant(const LossOp& like, double value) {
  LossOp op;
  op.kind = LossOpKind::Const;
  op.type = like.type;
  op.value = like.type == ir::ScalarType::Int ? std::trunc(value) : value;
  return op;
}

/// The result of folding one operation: keep it, replace it by a constant, or use an earlier operation.
struct Alias {
  int index;
};
using Folded = std::variant<std::monostate, LossOp, Alias>;

Folded Fold(const LossOp& op, const std::vector<LossOp>& ops) {
  auto arg = [&](size_t i) -> const LossOp& { return ops[static_cast<size_t>(op.args[i])]; };
  auto finite = [&](std::optional<double> value) -> Folded {
    if (value && std::isfinite(*value)) return Constant(op, *value);
    return std::monostate{};
  };
  switch (op.kind) {
    case LossOpKind::Op: {
      std::vector<double> values;
      for (size_t i = 0; i < op.args.size(); ++i) {
        if (!IsConst(arg(i))) break;
        values.push_back(arg(i).value);
      }
      if (values.size() == op.args.size()) return finite(ir::EvalScalar(op.op, values));
      // Identities: `- -x`, `x * 1`, `x / 1`, `x ^ 1`, `1 * x`, `x + 0`, `x - 0`, `0 + x`.
      using ir::OpKind;
      if (op.op == OpKind::Neg && arg(0).kind == LossOpKind::Op && arg(0).op == OpKind::Neg) return Alias{arg(0).args[0]};
      if (op.args.size() != 2) return std::monostate{};
      const LossOp& a = arg(0);
      const LossOp& b = arg(1);
      if ((op.op == OpKind::Mul || op.op == OpKind::Div || op.op == OpKind::Pow) && IsConstValue(b, 1)) {
        return Alias{op.args[0]};
      }
      if (op.op == OpKind::Mul && IsConstValue(a, 1)) return Alias{op.args[1]};
      if ((op.op == OpKind::Add || op.op == OpKind::Sub) && IsConstValue(b, 0)) return Alias{op.args[0]};
      if (op.op == OpKind::Add && IsConstValue(a, 0)) return Alias{op.args[1]};
      return std::monostate{};
    }
    case LossOpKind::Select:
      if (IsConst(arg(0))) return Alias{op.args[arg(0).value != 0 ? 1 : 2]};
      return std::monostate{};
    default:
      return std::monostate{};
  }
}

/// A key that is equal exactly for operations computing the same thing.
std::string Key(const LossOp& op) {
  std::string key = std::to_string(static_cast<int>(op.kind)) + "|" + std::to_string(static_cast<int>(op.op)) + "|" +
                    std::to_string(static_cast<int>(op.reduction)) + "|" + op.role + "|" +
                    std::to_string(static_cast<int>(op.type)) + "|";
  uint64_t bits = 0;
  std::memcpy(&bits, &op.value, sizeof bits);
  key += std::to_string(bits);
  for (int arg : op.args) key += "," + std::to_string(arg);
  return key;
}

}  // namespace

LossGraph RemoveDeadOperations(const LossGraph& loss) {
  std::vector<bool> live(loss.ops.size(), false);
  if (loss.result >= 0) live[static_cast<size_t>(loss.result)] = true;
  for (size_t i = loss.ops.size(); i-- > 0;) {
    if (!live[i]) continue;
    for (int arg : loss.ops[i].args) live[static_cast<size_t>(arg)] = true;
  }
  LossGraph out = loss;
  out.ops.clear();
  std::vector<int> remap(loss.ops.size(), -1);
  for (size_t i = 0; i < loss.ops.size(); ++i) {
    if (!live[i]) continue;
    LossOp op = loss.ops[i];
    for (int& arg : op.args) arg = remap[static_cast<size_t>(arg)];
    remap[i] = static_cast<int>(out.ops.size());
    out.ops.push_back(std::move(op));
  }
  out.result = loss.result >= 0 ? remap[static_cast<size_t>(loss.result)] : -1;
  return out;
}

LossGraph FoldConstants(const LossGraph& loss) {
  LossGraph out = loss;
  out.ops.clear();
  std::vector<int> remap(loss.ops.size(), -1);
  for (size_t i = 0; i < loss.ops.size(); ++i) {
    LossOp op = loss.ops[i];
    for (int& arg : op.args) arg = remap[static_cast<size_t>(arg)];
    Folded folded = Fold(op, out.ops);
    if (const auto* alias = std::get_if<Alias>(&folded)) {
      remap[i] = alias->index;
      continue;
    }
    if (const auto* constant = std::get_if<LossOp>(&folded)) op = *constant;
    remap[i] = static_cast<int>(out.ops.size());
    out.ops.push_back(std::move(op));
  }
  out.result = loss.result >= 0 ? remap[static_cast<size_t>(loss.result)] : -1;
  return RemoveDeadOperations(out);
}

LossGraph EliminateCommonSubexpressions(const LossGraph& loss) {
  LossGraph out = loss;
  out.ops.clear();
  std::vector<int> remap(loss.ops.size(), -1);
  std::map<std::string, int> seen;
  for (size_t i = 0; i < loss.ops.size(); ++i) {
    LossOp op = loss.ops[i];
    for (int& arg : op.args) arg = remap[static_cast<size_t>(arg)];
    auto [it, inserted] = seen.emplace(Key(op), static_cast<int>(out.ops.size()));
    if (!inserted) {
      remap[i] = it->second;
      continue;
    }
    remap[i] = it->second;
    out.ops.push_back(std::move(op));
  }
  out.result = loss.result >= 0 ? remap[static_cast<size_t>(loss.result)] : -1;
  return RemoveDeadOperations(out);
}

ir::Requirements RequirementsOf(const LossGraph& loss) {
  LossGraph live = RemoveDeadOperations(loss);
  ir::Requirements requirements;
  auto add = [](std::vector<std::string>& roles, const std::string& role) {
    if (std::find(roles.begin(), roles.end(), role) == roles.end()) roles.push_back(role);
  };
  for (const LossOp& op : live.ops) {
    switch (op.kind) {
      case LossOpKind::Logp:
        add(requirements.policy_logp, op.role);
        break;
      case LossOpKind::RefLogp:
        add(requirements.reference_logp, op.role);
        break;
      case LossOpKind::Length:
        requirements.lengths = true;
        break;
      case LossOpKind::Reward:
        requirements.rewards = true;
        break;
      case LossOpKind::Weight:
        requirements.weight_in_loss = true;
        break;
      case LossOpKind::Progress:
        requirements.progress = true;
        break;
      case LossOpKind::Reduce:
      case LossOpKind::LooMean:
        requirements.groups = true;
        break;
      default:
        break;
    }
  }
  if (ir::IsGroupUnit(loss.unit)) requirements.groups = true;
  return requirements;
}

}  // namespace fusec
