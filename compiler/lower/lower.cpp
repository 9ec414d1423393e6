#include "compiler/lower/lower.h"

#include <map>
#include <stdexcept>

namespace fusec {
namespace {

[[noreturn]] void Unlowerable(const sema::Term& term, const std::string& why) {
  throw std::logic_error("cannot lower `" + sema::ToString(term) + "`: " + why);
}

ir::OpKind OperatorOf(const sema::Term& term) {
  std::optional<ir::OpKind> op = ir::OpBySpelling(term.name, static_cast<int>(term.args.size()));
  if (!op) Unlowerable(term, "no operator `" + term.name + "` of " + std::to_string(term.args.size()) + " operands");
  return *op;
}

template <typename E>
E EnumOf(const sema::Term& term, const std::string& spelling) {
  std::optional<E> value = ir::EnumBySpelling<E>(spelling);
  if (!value) Unlowerable(term, "unknown " + std::string(ir::EnumTraits<E>::name) + " `" + spelling + "`");
  return *value;
}

/// A rule's or weighting's term as an IR expression (null stays null: no filter).
ir::ExprRef LowerExpr(const sema::TermRef& term) {
  if (!term) return nullptr;
  auto expr = std::make_shared<ir::Expr>();
  expr->type = term->type;
  for (const sema::TermRef& arg : term->args) expr->args.push_back(LowerExpr(arg));
  switch (term->op) {
    case sema::TermOp::Const:
      expr->kind = ir::ExprKind::Const;
      expr->number = term->number;
      expr->boolean = term->boolean;
      expr->text = term->text;
      break;
    case sema::TermOp::Field:
      expr->kind = ir::ExprKind::Field;
      expr->field = EnumOf<ir::Field>(*term, term->name);
      expr->role = term->ref;
      break;
    case sema::TermOp::Unary:
    case sema::TermOp::Binary:
    case sema::TermOp::Math:
      expr->kind = ir::ExprKind::Op;
      expr->op = OperatorOf(*term);
      break;
    case sema::TermOp::Select:
      expr->kind = ir::ExprKind::Select;
      break;
    case sema::TermOp::Aggregate:
      expr->kind = ir::ExprKind::Aggregate;
      expr->reduction = EnumOf<ir::Reduction>(*term, term->name);
      expr->scope = EnumOf<ir::Scope>(*term, term->scope);
      break;
    case sema::TermOp::Normalize:
      expr->kind = ir::ExprKind::Normalize;
      expr->normalization = EnumOf<ir::Normalization>(*term, term->name);
      expr->scope = EnumOf<ir::Scope>(*term, term->scope);
      break;
    case sema::TermOp::Logp:
    case sema::TermOp::RefLogp:
    case sema::TermOp::Weight:
    case sema::TermOp::Progress:
    case sema::TermOp::Reduce:
    case sema::TermOp::LooMean:
      Unlowerable(*term, "it belongs in an objective, which sema checks");
  }
  return expr;
}

/// One loss operation per node of the term tree, nothing shared (the passes share what is equal).
int LowerLossTerm(const sema::Term& term, ir::LossGraph& graph) {
  ir::LossOp op;
  op.role = term.ref;
  op.type = term.type;
  for (const sema::TermRef& arg : term.args) op.args.push_back(LowerLossTerm(*arg, graph));
  switch (term.op) {
    case sema::TermOp::Const:
      op.kind = ir::LossOpKind::Const;
      op.value = term.type == sema::ScalarType::Bool ? (term.boolean ? 1 : 0) : term.number;
      break;
    case sema::TermOp::Field:
      if (term.name == "reward") {
        op.kind = ir::LossOpKind::Reward;
      } else if (term.name == "len") {
        op.kind = ir::LossOpKind::Length;
      } else {
        Unlowerable(term, "an objective reads `reward` and `len` of a response, nothing else");
      }
      break;
    case sema::TermOp::Logp:
      op.kind = ir::LossOpKind::Logp;
      break;
    case sema::TermOp::RefLogp:
      op.kind = ir::LossOpKind::RefLogp;
      break;
    case sema::TermOp::Weight:
      op.kind = ir::LossOpKind::Weight;
      break;
    case sema::TermOp::Progress:
      op.kind = ir::LossOpKind::Progress;
      break;
    case sema::TermOp::Unary:
    case sema::TermOp::Binary:
    case sema::TermOp::Math:
      op.kind = ir::LossOpKind::Op;
      op.op = OperatorOf(term);
      break;
    case sema::TermOp::Select:
      op.kind = ir::LossOpKind::Select;
      break;
    case sema::TermOp::Reduce:
      op.kind = ir::LossOpKind::Reduce;
      op.reduction = EnumOf<ir::Reduction>(term, term.name);
      break;
    case sema::TermOp::LooMean:
      op.kind = ir::LossOpKind::LooMean;
      break;
    case sema::TermOp::Aggregate:
    case sema::TermOp::Normalize:
      Unlowerable(term, "sema refuses aggregates over the pool in objectives");
  }
  graph.ops.push_back(std::move(op));
  return static_cast<int>(graph.ops.size()) - 1;
}

ir::Payload RulePayload(const sema::CheckedStage& stage) {
  if (const auto* selection = std::get_if<sema::CheckedSelection>(&stage.rule)) {
    return ir::Select{{selection->scope, selection->k, LowerExpr(selection->by),
                       LowerExpr(selection->where)}};
  }
  if (const auto* pairing = std::get_if<sema::CheckedPairing>(&stage.rule)) {
    ir::PairingRule rule;
    rule.kind = pairing->kind;
    rule.scope = pairing->scope;
    for (const sema::RoleSelector& role : pairing->roles) {
      rule.roles.push_back({role.name, role.argmax, LowerExpr(role.score), LowerExpr(role.where)});
    }
    rule.by = LowerExpr(pairing->by);
    rule.min_gap = pairing->min_gap;
    rule.where = LowerExpr(pairing->where);
    return ir::Pairs{std::move(rule)};
  }
  const auto& grouping = std::get<sema::CheckedGrouping>(stage.rule);
  return ir::Groups{{grouping.scope, LowerExpr(grouping.where)}};
}

ir::TrainSpec TrainSpecOf(const sema::CheckedStage& stage, const std::string& objective) {
  ir::TrainSpec spec;
  spec.objective = objective;
  spec.optim = stage.optim;
  spec.epochs = stage.epochs;
  spec.max_steps = stage.max_steps;
  spec.batch = stage.batch;
  spec.micro_batch = stage.micro_batch;
  spec.max_len = stage.max_len;
  spec.max_prompt_len = stage.max_prompt_len;
  spec.seed = stage.seed;
  spec.precision = stage.precision;
  spec.grad_clip = stage.grad_clip;
  spec.save_every = stage.save_every;
  spec.shard = stage.shard;
  return spec;
}

class Lowerer {
 public:
  ir::Graph Run(const sema::CheckedProgram& program) {
    for (const sema::CheckedExperiment& experiment : program.experiments) LowerExperiment(experiment);
    return std::move(graph_);
  }

 private:
  ir::NodeId Add(ir::Node node) {
    graph_.nodes.push_back(std::move(node));
    return ir::NodeId{static_cast<uint32_t>(graph_.nodes.size() - 1)};
  }

  ir::NodeId Model(const sema::ValueRef& value) {
    sema::ModelOrigin origin = sema::ModelOriginOf(*value);
    if (const auto* stage = std::get_if<std::string>(&origin)) return stage_models_.at(*stage);
    if (auto it = memo_.find(value.get()); it != memo_.end()) return it->second;
    ir::Node node{ir::LoadModel{std::get<ir::ModelSpec>(std::move(origin))}};
    node.span = value->span;
    return memo_[value.get()] = Add(std::move(node));
  }

  ir::NodeId Dataset(const sema::ValueRef& value) {
    if (auto it = memo_.find(value.get()); it != memo_.end()) return it->second;
    sema::DatasetOrigin origin = sema::DatasetOriginOf(*value, experiment_seed_);
    ir::Node node;
    if (auto* sample = std::get_if<sema::SampleOf>(&origin)) {
      // Inputs: the prompts, then one model per source in the sources' order (Model() shares a model with
      // the stages and evaluations that read it).
      node.payload = std::move(sample->sample);
      node.inputs.push_back({"prompts", Dataset(sample->prompts)});
      for (const sema::ValueRef& model : sample->models) node.inputs.push_back({"model", Model(model)});
      node.span = sample->call_span;
      return memo_[value.get()] = Add(std::move(node));
    } else if (auto* score = std::get_if<sema::ScoreOf>(&origin)) {
      node.payload = std::move(score->score);
      node.inputs.push_back({"data", Dataset(score->data)});
      // The scorer's call (`reward_model("...")`): a missing or unreadable reward model is reported there.
      node.span = score->scorer_span;
      return memo_[value.get()] = Add(std::move(node));
    } else if (auto* part = std::get_if<sema::SplitPartOf>(&origin)) {
      node.payload = std::move(part->part);
      node.inputs.push_back({"data", Dataset(part->data)});
    } else if (auto* keep = std::get_if<sema::KeepSourcesOf>(&origin)) {
      node.payload = std::move(keep->filter);
      node.inputs.push_back({"data", Dataset(keep->data)});
    } else {
      node.payload = ir::LoadData{std::get<ir::DatasetSpec>(std::move(origin))};
    }
    node.span = value->span;
    return memo_[value.get()] = Add(std::move(node));
  }

  ir::NodeId Rule(const sema::CheckedStage& stage, ir::NodeId data, const std::string& label, const ir::Weight& weight) {
    ir::Node node{RulePayload(stage)};
    node.inputs.push_back({"data", data});
    node.stages.push_back(label);
    node.span = stage.span;
    // `len` counts tokens of the stage's own tokenizer (its init model's), as its objective's `len` does.
    if (ir::ReadsResponseLength(node.payload) || ir::ReadsField(weight.weight, ir::Field::Len)) {
      node.inputs.push_back({"tokenizer", Model(stage.init)});
    }
    return Add(std::move(node));
  }

  void LowerStage(const sema::CheckedExperiment& experiment, const sema::CheckedStage& stage,
                  ir::ExperimentOutputs& outputs) {
    std::string label = experiment.name + "/" + stage.name;
    ir::NodeId data = Dataset(stage.data);
    ir::Weight weight{LowerExpr(stage.weight.weight)};
    ir::NodeId items = Rule(stage, data, label, weight);

    ir::Node weigh{std::move(weight)};
    weigh.inputs.push_back({"items", items});
    weigh.stages.push_back(label);
    weigh.span = stage.weight.span.valid() ? stage.weight.span : stage.span;
    ir::NodeId weighted = Add(std::move(weigh));

    ir::LossGraph loss = LowerLoss(*stage.objective);
    ir::Node train{ir::Train{TrainSpecOf(stage, loss.objective), std::move(loss), std::nullopt}};
    train.inputs.push_back({"init", Model(stage.init)});
    train.inputs.push_back({"items", weighted});
    if (stage.reference) train.inputs.push_back({"reference", Model(stage.reference)});
    train.stages.push_back(label);
    train.span = stage.span;
    ir::NodeId trained = Add(std::move(train));
    stage_models_[stage.name] = trained;
    outputs.stages.emplace_back(stage.name, trained);

    ir::Node exported{ir::Export{experiment.output + "/export/" + stage.name}};
    exported.inputs.push_back({"model", trained});
    exported.stages.push_back(label);
    exported.span = stage.span;
    outputs.exports.emplace_back(stage.name, Add(std::move(exported)));
  }

  ir::NodeId LowerEvaluation(const sema::CheckedExperiment& experiment, const ir::ExperimentOutputs& outputs) {
    sema::EvaluationOf evaluation = sema::EvaluationOfValue(*experiment.eval);
    ir::Node evaluate{ir::Evaluate{evaluation.max_new_tokens, evaluation.batch, experiment.output + "/eval"}};
    evaluate.inputs.push_back({"data", Dataset(evaluation.data)});
    if (!evaluation.models.empty()) {
      for (const sema::ValueRef& model : evaluation.models) evaluate.inputs.push_back({"model", Model(model)});
    } else {
      // No models named: the target and every stage.
      evaluate.inputs.push_back({"model", Model(experiment.target)});
      for (const auto& [name, id] : outputs.stages) evaluate.inputs.push_back({"model", id});
    }
    evaluate.stages.push_back(experiment.name + "/eval");
    evaluate.span = experiment.eval->span;
    return Add(std::move(evaluate));
  }

  void LowerExperiment(const sema::CheckedExperiment& experiment) {
    memo_.clear();
    stage_models_.clear();
    experiment_seed_ = experiment.seed;
    ir::ExperimentOutputs outputs;
    outputs.name = experiment.name;
    outputs.output = experiment.output;
    outputs.device = experiment.device;
    outputs.span = experiment.span;
    Model(experiment.target);
    for (const sema::CheckedStage& stage : experiment.stages) LowerStage(experiment, stage, outputs);
    if (experiment.eval) outputs.evaluation = LowerEvaluation(experiment, outputs);
    graph_.experiments.push_back(std::move(outputs));
  }

  ir::Graph graph_;
  std::map<const sema::Value*, ir::NodeId> memo_;  // one node per value of an experiment
  std::map<std::string, ir::NodeId> stage_models_;
  int64_t experiment_seed_ = 0;  // `sample`'s seed where the call leaves it to the experiment
};

}  // namespace

ir::LossGraph LowerLoss(const sema::CheckedObjective& objective) {
  ir::LossGraph graph;
  graph.unit = objective.unit;
  graph.roles = objective.names;
  std::string args;
  for (const auto& [name, value] : objective.args) args += (args.empty() ? "" : ", ") + name + ": " + sema::ToString(value);
  graph.objective = objective.name + "(" + args + ")";
  graph.result = LowerLossTerm(*objective.loss, graph);
  return graph;
}

ir::Graph Lower(const sema::CheckedProgram& program) { return Lowerer().Run(program); }

}  // namespace fusec
