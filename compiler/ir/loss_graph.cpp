#include "compiler/ir/loss_graph.h"

#include <sstream>

#include "compiler/ir/expr.h"

namespace fusec::ir {

std::string_view Spelling(LossOpKind kind) {
  switch (kind) {
    case LossOpKind::Const:
      return "const";
    case LossOpKind::Logp:
      return "logp";
    case LossOpKind::RefLogp:
      return "ref_logp";
    case LossOpKind::Length:
      return "len";
    case LossOpKind::Reward:
      return "reward";
    case LossOpKind::Weight:
      return "weight";
    case LossOpKind::Progress:
      return "progress";
    case LossOpKind::Op:
      return "op";
    case LossOpKind::Select:
      return "select";
    case LossOpKind::Reduce:
      return "reduce";
    case LossOpKind::LooMean:
      return "loo_mean";
  }
  return "?";
}

std::string LossGraph::ToString() const {
  std::ostringstream out;
  for (size_t i = 0; i < ops.size(); ++i) {
    const LossOp& op = ops[i];
    out << "%" << i << " = ";
    switch (op.kind) {
      case LossOpKind::Const:
        out << ConstantText(op.type, op.value, op.value != 0, "");
        break;
      case LossOpKind::Logp:
      case LossOpKind::RefLogp:
      case LossOpKind::Length:
      case LossOpKind::Reward:
        out << Spelling(op.kind) << "(" << op.role << ")";
        break;
      case LossOpKind::Weight:
      case LossOpKind::Progress:
      case LossOpKind::Select:
      case LossOpKind::LooMean:
        out << Spelling(op.kind);
        break;
      case LossOpKind::Op:
        out << Spelling(op.op);
        break;
      case LossOpKind::Reduce:
        out << Spelling(op.reduction);
        break;
    }
    for (size_t a = 0; a < op.args.size(); ++a) out << (a == 0 ? " %" : ", %") << op.args[a];
    out << "\n";
  }
  out << "result %" << result << "\n";
  return out.str();
}

std::string Requirements::ToString() const {
  std::string out;
  auto add = [&](const std::string& part) { out += (out.empty() ? "" : ", ") + part; };
  for (const std::string& role : policy_logp) add("logp(" + role + ")");
  for (const std::string& role : reference_logp) add("ref_logp(" + role + ")");
  if (lengths) add("len");
  if (rewards) add("reward");
  if (groups) add("groups");
  if (progress) add("progress");
  add(weight_in_loss ? "weight inside the loss" : "weight outside the loss");
  return out;
}

}  // namespace fusec::ir
