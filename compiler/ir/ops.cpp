#include "compiler/ir/ops.h"

#include <algorithm>
#include <cmath>
#include <iterator>

namespace fusec::ir {
namespace {

struct OpInfo {
  std::string_view spelling;
  int arity;
  OpForm form;
  int precedence;
};

constexpr OpInfo kOps[] = {
#define FUSEC_OP(Name, Spelling, Arity, Form, Precedence) {Spelling, Arity, OpForm::Form, Precedence},
#include "compiler/ir/op_kind.def"
#undef FUSEC_OP
};

const OpInfo& Info(OpKind op) { return kOps[static_cast<size_t>(op)]; }

}  // namespace

std::string_view Spelling(OpKind op) { return Info(op).spelling; }
int Arity(OpKind op) { return Info(op).arity; }
OpForm FormOf(OpKind op) { return Info(op).form; }
int PrecedenceOf(OpKind op) { return Info(op).precedence; }

std::optional<OpKind> OpBySpelling(std::string_view spelling, int arity) {
  for (size_t i = 0; i < std::size(kOps); ++i) {
    if (kOps[i].spelling == spelling && kOps[i].arity == arity) return static_cast<OpKind>(i);
  }
  return std::nullopt;
}

std::optional<double> EvalScalar(OpKind op, std::span<const double> x) {
  if (x.size() != static_cast<size_t>(Arity(op))) return std::nullopt;
  switch (op) {
    case OpKind::Neg:
      return -x[0];
    case OpKind::Not:
      return x[0] == 0 ? 1.0 : 0.0;
    case OpKind::Add:
      return x[0] + x[1];
    case OpKind::Sub:
      return x[0] - x[1];
    case OpKind::Mul:
      return x[0] * x[1];
    case OpKind::Div:
      if (x[1] == 0) return std::nullopt;
      return x[0] / x[1];
    case OpKind::Pow:
      return std::pow(x[0], x[1]);
    case OpKind::Eq:
      return x[0] == x[1] ? 1.0 : 0.0;
    case OpKind::Ne:
      return x[0] != x[1] ? 1.0 : 0.0;
    case OpKind::Lt:
      return x[0] < x[1] ? 1.0 : 0.0;
    case OpKind::Le:
      return x[0] <= x[1] ? 1.0 : 0.0;
    case OpKind::Gt:
      return x[0] > x[1] ? 1.0 : 0.0;
    case OpKind::Ge:
      return x[0] >= x[1] ? 1.0 : 0.0;
    case OpKind::And:
      return (x[0] != 0) && (x[1] != 0) ? 1.0 : 0.0;
    case OpKind::Or:
      return (x[0] != 0) || (x[1] != 0) ? 1.0 : 0.0;
    case OpKind::Log:
      if (x[0] <= 0) return std::nullopt;
      return std::log(x[0]);
    case OpKind::Exp:
      return std::exp(x[0]);
    case OpKind::Sigmoid:
      return 1.0 / (1.0 + std::exp(-x[0]));
    case OpKind::LogSigmoid:
      return x[0] >= 0 ? -std::log1p(std::exp(-x[0])) : x[0] - std::log1p(std::exp(x[0]));
    case OpKind::Softplus:
      return x[0] > 0 ? x[0] + std::log1p(std::exp(-x[0])) : std::log1p(std::exp(x[0]));
    case OpKind::Relu:
      return std::max(0.0, x[0]);
    case OpKind::Abs:
      return std::abs(x[0]);
    case OpKind::Sqrt:
      if (x[0] < 0) return std::nullopt;
      return std::sqrt(x[0]);
    case OpKind::Detach:
      return x[0];
    case OpKind::Min:
      return std::min(x[0], x[1]);
    case OpKind::Max:
      return std::max(x[0], x[1]);
    case OpKind::Clamp:
      return std::clamp(x[0], x[1], std::max(x[1], x[2]));
  }
  return std::nullopt;
}

}  // namespace fusec::ir
