#include "runtime/objectives/loss.h"

#include <torch/torch.h>

namespace fusec::rt {
namespace {

using ir::LossOp;
using ir::LossOpKind;

/// A value of the loss graph: a scalar, one per item ([U]) or one per group ([G]).
struct Value {
  enum class Shape : uint8_t { Scalar, Item, Group };
  torch::Tensor tensor;
  Shape shape = Shape::Scalar;
};

class Evaluator {
 public:
  Evaluator(const ir::LossGraph& loss, const LossBatch& batch) : loss_(loss), batch_(batch) {
    options_ = batch.weight.defined() ? batch.weight.options() : batch.logp.begin()->second.options();
    options_ = options_.requires_grad(false);
    grouped_ = ir::IsGroupUnit(loss.unit);
    if (grouped_) {
      if (!batch.group.defined() || batch.groups <= 0) Fail("it is a group objective but the batch has no groups");
      counts_ = torch::zeros({batch.groups}, options_).index_add_(0, batch.group, torch::ones_like(batch.group, options_));
    }
  }

  torch::Tensor Run() {
    std::vector<Value> values;
    values.reserve(loss_.ops.size());
    for (const LossOp& op : loss_.ops) values.push_back(Apply(op, values));
    Value result = values.at(static_cast<size_t>(loss_.result));
    Value::Shape unit_shape = grouped_ ? Value::Shape::Group : Value::Shape::Item;
    if (result.shape == Value::Shape::Scalar) {
      int64_t size = grouped_ ? batch_.groups : Items();
      return result.tensor.expand({size}).clone();
    }
    if (result.shape != unit_shape) Fail("its result is per item, but the objective is per group");
    return result.tensor;
  }

 private:
  [[noreturn]] void Fail(const std::string& what) const {
    throw LossError("objective `" + loss_.objective + "`: " + what);
  }

  int64_t Items() const {
    if (batch_.weight.defined()) return batch_.weight.size(0);
    return batch_.logp.begin()->second.size(0);
  }

  Value Scalar(double value) const { return {torch::scalar_tensor(value, options_), Value::Shape::Scalar}; }
  Value Item(const torch::Tensor& tensor) const { return {tensor, Value::Shape::Item}; }

  const torch::Tensor& Field(const std::map<std::string, torch::Tensor>& field, const LossOp& op) const {
    auto it = field.find(op.role);
    if (it == field.end() || !it->second.defined()) {
      Fail("it reads " + std::string(ir::Spelling(op.kind)) + "(" + op.role + "), which the batch does not have");
    }
    return it->second;
  }

  /// Brings per-group values to per-item ones when the other operand is per item.
  std::vector<torch::Tensor> Aligned(const std::vector<Value>& args, Value::Shape* shape) const {
    *shape = Value::Shape::Scalar;
    for (const Value& arg : args) {
      if (arg.shape == Value::Shape::Item) *shape = Value::Shape::Item;
      if (arg.shape == Value::Shape::Group && *shape == Value::Shape::Scalar) *shape = Value::Shape::Group;
    }
    std::vector<torch::Tensor> out;
    for (const Value& arg : args) {
      if (*shape == Value::Shape::Item && arg.shape == Value::Shape::Group) {
        out.push_back(arg.tensor.index_select(0, batch_.group));
      } else {
        out.push_back(arg.tensor);
      }
    }
    return out;
  }

  torch::Tensor ItemValues(const Value& value) const {
    if (value.shape == Value::Shape::Item) return value.tensor;
    if (value.shape == Value::Shape::Scalar) return value.tensor.expand({Items()});
    Fail("a group aggregate reads a value that is already per group");
  }

  Value Apply(const LossOp& op, const std::vector<Value>& values) const {
    std::vector<Value> args;
    for (int arg : op.args) args.push_back(values.at(static_cast<size_t>(arg)));
    switch (op.kind) {
      case LossOpKind::Const:
        return Scalar(op.value);
      case LossOpKind::Logp:
        return Item(Field(batch_.logp, op));
      case LossOpKind::RefLogp:
        return Item(Field(batch_.ref_logp, op));
      case LossOpKind::Length:
        return Item(Field(batch_.length, op));
      case LossOpKind::Reward:
        return Item(Field(batch_.reward, op));
      case LossOpKind::Weight:
        if (!batch_.weight.defined()) Fail("it reads `weight`, which the batch does not have");
        return Item(batch_.weight);
      case LossOpKind::Progress:
        return Scalar(batch_.progress);
      case LossOpKind::Op:
        return Operator(op.op, args);
      case LossOpKind::Select: {
        Value::Shape shape;
        std::vector<torch::Tensor> t = Aligned(args, &shape);
        return {torch::where(t[0] != 0, t[1], t[2]), shape};
      }
      case LossOpKind::Reduce: {
        if (!grouped_) {
          Fail("`" + std::string(ir::Spelling(op.reduction)) + "` over a group, but the objective is not per group");
        }
        torch::Tensor x = ItemValues(args[0]);
        torch::Tensor zeros = torch::zeros({batch_.groups}, x.options());
        torch::Tensor sums = zeros.index_add(0, batch_.group, x);
        switch (op.reduction) {
          case ir::Reduction::Sum:
            return {sums, Value::Shape::Group};
          case ir::Reduction::Mean:
            return {sums / counts_, Value::Shape::Group};
          case ir::Reduction::Max:
            return {zeros.scatter_reduce(0, batch_.group, x, "amax", false), Value::Shape::Group};
          case ir::Reduction::Min:
            return {zeros.scatter_reduce(0, batch_.group, x, "amin", false), Value::Shape::Group};
          case ir::Reduction::Count:
            break;
        }
        Fail("`" + std::string(ir::Spelling(op.reduction)) + "` is not a group reduction");
      }
      case LossOpKind::LooMean: {
        if (!grouped_) Fail("`loo_mean` over a group, but the objective is not per group");
        if ((counts_ < 2).any().item<bool>()) Fail("`loo_mean` needs groups of at least two members");
        torch::Tensor x = ItemValues(args[0]);
        torch::Tensor sums = torch::zeros({batch_.groups}, x.options()).index_add(0, batch_.group, x);
        torch::Tensor others = sums.index_select(0, batch_.group) - x;
        return {others / (counts_.index_select(0, batch_.group) - 1), Value::Shape::Item};
      }
    }
    Fail("unknown operation");
  }

  /// The tensor meaning of each operator of op_kind.def (comparisons and logic give 0 or 1, as EvalScalar's).
  Value Operator(ir::OpKind kind, const std::vector<Value>& args) const {
    Value::Shape shape;
    std::vector<torch::Tensor> t = Aligned(args, &shape);
    auto as_float = [&](const torch::Tensor& b) { return b.to(options_.dtype()); };
    switch (kind) {
      case ir::OpKind::Neg:
        return {-t[0], shape};
      case ir::OpKind::Not:
        return {as_float(t[0] == 0), shape};
      case ir::OpKind::Add:
        return {t[0] + t[1], shape};
      case ir::OpKind::Sub:
        return {t[0] - t[1], shape};
      case ir::OpKind::Mul:
        return {t[0] * t[1], shape};
      case ir::OpKind::Div:
        return {t[0] / t[1], shape};
      case ir::OpKind::Pow:
        return {torch::pow(t[0], t[1]), shape};
      case ir::OpKind::Eq:
        return {as_float(t[0] == t[1]), shape};
      case ir::OpKind::Ne:
        return {as_float(t[0] != t[1]), shape};
      case ir::OpKind::Lt:
        return {as_float(t[0] < t[1]), shape};
      case ir::OpKind::Le:
        return {as_float(t[0] <= t[1]), shape};
      case ir::OpKind::Gt:
        return {as_float(t[0] > t[1]), shape};
      case ir::OpKind::Ge:
        return {as_float(t[0] >= t[1]), shape};
      case ir::OpKind::And:
        return {as_float((t[0] != 0).logical_and(t[1] != 0)), shape};
      case ir::OpKind::Or:
        return {as_float((t[0] != 0).logical_or(t[1] != 0)), shape};
      case ir::OpKind::Log:
        return {torch::log(t[0]), shape};
      case ir::OpKind::Exp:
        return {torch::exp(t[0]), shape};
      case ir::OpKind::Sigmoid:
        return {torch::sigmoid(t[0]), shape};
      case ir::OpKind::LogSigmoid:
        return {torch::log_sigmoid(t[0]), shape};
      case ir::OpKind::Softplus:
        return {torch::softplus(t[0]), shape};
      case ir::OpKind::Relu:
        return {torch::relu(t[0]), shape};
      case ir::OpKind::Abs:
        return {torch::abs(t[0]), shape};
      case ir::OpKind::Sqrt:
        return {torch::sqrt(t[0]), shape};
      case ir::OpKind::Detach:
        return {t[0].detach(), shape};
      case ir::OpKind::Min:
        return {torch::minimum(t[0], t[1]), shape};
      case ir::OpKind::Max:
        return {torch::maximum(t[0], t[1]), shape};
      case ir::OpKind::Clamp:
        return {torch::minimum(torch::maximum(t[0], t[1]), torch::maximum(t[1], t[2])), shape};
    }
    Fail("unknown operator");
  }

  const ir::LossGraph& loss_;
  const LossBatch& batch_;
  torch::TensorOptions options_;
  bool grouped_ = false;
  torch::Tensor counts_;  // [G] members per group
};

}  // namespace

torch::Tensor EvaluateLoss(const ir::LossGraph& loss, const LossBatch& batch) {
  if (!batch.weight.defined() && batch.logp.empty()) {
    throw LossError("objective `" + loss.objective + "`: the batch is empty");
  }
  return Evaluator(loss, batch).Run();
}

}  // namespace fusec::rt
