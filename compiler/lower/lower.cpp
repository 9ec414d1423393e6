#include "compiler/lower/lower.h"

#include <map>

namespace fusec {
namespace {

using nlohmann::ordered_json;

/// A checked value as JSON parameters: constructors as objects with their arguments, stage models by name.
ordered_json ValueJson(const sema::ValueRef& value) {
  if (!value) return nullptr;
  if (const auto* i = value->As<int64_t>()) return *i;
  if (const auto* f = value->As<double>()) return *f;
  if (const auto* b = value->As<bool>()) return *b;
  if (const auto* s = value->As<std::string>()) return *s;
  if (value->is_none()) return nullptr;
  if (value->As<sema::EnumVal>() != nullptr) return sema::ToString(value);
  if (const auto* list = value->As<sema::ListVal>()) {
    ordered_json out = ordered_json::array();
    for (const sema::ValueRef& element : list->elements) out.push_back(ValueJson(element));
    return out;
  }
  if (const auto* record = value->As<sema::RecordVal>()) {
    ordered_json out = ordered_json::object();
    for (const auto& [name, field] : record->fields) out[name] = ValueJson(field);
    return out;
  }
  if (const auto* constructed = value->As<sema::ConstructedVal>()) {
    ordered_json out = ordered_json::object();
    out["constructor"] = constructed->constructor;
    for (const auto& [name, arg] : constructed->args) out[name] = ValueJson(arg);
    return out;
  }
  if (const auto* stage = value->As<sema::StageModelVal>()) return ordered_json{{"stage", stage->stage}};
  return sema::ToString(value);
}

ordered_json TermJson(const sema::TermRef& term) {
  if (!term) return nullptr;
  return sema::ToString(term);
}

ir::LossOpKind OpKindOf(const sema::Term& term) {
  switch (term.op) {
    case sema::TermOp::Const:
      return ir::LossOpKind::Const;
    case sema::TermOp::Field:
      return term.name == "reward" ? ir::LossOpKind::Reward : ir::LossOpKind::Length;
    case sema::TermOp::Logp:
      return ir::LossOpKind::Logp;
    case sema::TermOp::RefLogp:
      return ir::LossOpKind::RefLogp;
    case sema::TermOp::Weight:
      return ir::LossOpKind::Weight;
    case sema::TermOp::Progress:
      return ir::LossOpKind::Progress;
    case sema::TermOp::Unary:
      return ir::LossOpKind::Unary;
    case sema::TermOp::Binary:
      return ir::LossOpKind::Binary;
    case sema::TermOp::Math:
      return ir::LossOpKind::Math;
    case sema::TermOp::Select:
      return ir::LossOpKind::Select;
    case sema::TermOp::Reduce:
      return ir::LossOpKind::Reduce;
    case sema::TermOp::LooMean:
      return ir::LossOpKind::LooMean;
    case sema::TermOp::Aggregate:
    case sema::TermOp::Normalize:
      break;  // sema refuses these in objectives
  }
  return ir::LossOpKind::Const;
}

int LowerTerm(const sema::Term& term, ir::LossGraph& graph) {
  ir::LossOp op;
  op.kind = OpKindOf(term);
  op.name = term.name;
  op.role = term.ref;
  op.type = term.type;
  op.level = term.level;
  op.item = term.item;
  if (term.op == sema::TermOp::Const) op.value = term.type == sema::ScalarType::Bool ? (term.boolean ? 1 : 0) : term.number;
  for (const sema::TermRef& arg : term.args) op.args.push_back(LowerTerm(*arg, graph));
  graph.ops.push_back(std::move(op));
  return static_cast<int>(graph.ops.size()) - 1;
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
    if (const auto* stage = value->As<sema::StageModelVal>()) return stage_models_.at(stage->stage);
    if (auto it = memo_.find(value.get()); it != memo_.end()) return it->second;
    ir::Node node;
    node.kind = ir::NodeKind::LoadModel;
    node.params = ValueJson(value);
    node.span = value->span;
    return memo_[value.get()] = Add(std::move(node));
  }

  ir::NodeId Dataset(const sema::ValueRef& value) {
    if (auto it = memo_.find(value.get()); it != memo_.end()) return it->second;
    const auto* constructed = value->As<sema::ConstructedVal>();
    ir::Node node;
    node.span = value->span;
    if (constructed != nullptr && constructed->constructor == "split_part") {
      const sema::ValueRef split = sema::FindNamed(constructed->args, "split");
      const auto& split_args = split->As<sema::ConstructedVal>()->args;
      node.kind = ir::NodeKind::Split;
      node.inputs.push_back({"data", Dataset(sema::FindNamed(split_args, "data"))});
      node.params["part"] = ValueJson(sema::FindNamed(constructed->args, "part"));
      ordered_json fractions = ordered_json::object();
      for (const auto& [name, arg] : split_args) {
        if (name != "data" && name != "seed") fractions[name] = ValueJson(arg);
      }
      node.params["fractions"] = fractions;
      node.params["seed"] = ValueJson(sema::FindNamed(split_args, "seed"));
    } else if (constructed != nullptr && constructed->constructor == "keep_sources") {
      node.kind = ir::NodeKind::FilterSources;
      node.inputs.push_back({"data", Dataset(sema::FindNamed(constructed->args, "data"))});
      node.params["sources"] = ValueJson(sema::FindNamed(constructed->args, "sources"));
    } else {
      node.kind = ir::NodeKind::LoadData;
      node.params = ValueJson(value);
    }
    return memo_[value.get()] = Add(std::move(node));
  }

  ir::NodeId Rule(const sema::CheckedStage& stage, ir::NodeId data, const std::string& label) {
    ir::Node node;
    node.inputs.push_back({"data", data});
    node.stages.push_back(label);
    node.span = stage.span;
    node.rule = stage.rule;
    if (const auto* selection = std::get_if<sema::CheckedSelection>(&stage.rule)) {
      node.kind = ir::NodeKind::Select;
      node.params["scope"] = selection->scope;
      node.params["k"] = selection->k ? ordered_json(*selection->k) : ordered_json(nullptr);
      node.params["by"] = TermJson(selection->by);
      node.params["where"] = TermJson(selection->where);
    } else if (const auto* pairing = std::get_if<sema::CheckedPairing>(&stage.rule)) {
      node.kind = ir::NodeKind::Pairs;
      const char* kinds[] = {"within", "all_pairs", "across_sources"};
      node.params["rule"] = kinds[static_cast<size_t>(pairing->kind)];
      node.params["scope"] = pairing->scope;
      ordered_json roles = ordered_json::array();
      for (const sema::RoleSelector& role : pairing->roles) {
        roles.push_back(ordered_json{{"name", role.name},
                                     {"pick", role.argmax ? "argmax" : "argmin"},
                                     {"score", TermJson(role.score)},
                                     {"where", TermJson(role.where)}});
      }
      node.params["roles"] = roles;
      node.params["by"] = TermJson(pairing->by);
      node.params["min_gap"] = pairing->min_gap;
      node.params["where"] = TermJson(pairing->where);
    } else if (const auto* grouping = std::get_if<sema::CheckedGrouping>(&stage.rule)) {
      node.kind = ir::NodeKind::Groups;
      node.params["scope"] = grouping->scope;
      node.params["where"] = TermJson(grouping->where);
    }
    // `len` counts tokens of the stage's own tokenizer (its init model's), as its objective's `len` does.
    if (ir::ReadsResponseLength(stage.rule) || ir::ReadsResponseLength(stage.weight.weight)) {
      node.inputs.push_back({"tokenizer", Model(stage.init)});
    }
    return Add(std::move(node));
  }

  void LowerExperiment(const sema::CheckedExperiment& experiment) {
    memo_.clear();
    stage_models_.clear();
    ir::ExperimentOutputs outputs;
    outputs.name = experiment.name;
    outputs.output = experiment.output;
    outputs.span = experiment.span;
    Model(experiment.target);
    for (const sema::CheckedStage& stage : experiment.stages) {
      std::string label = experiment.name + "/" + stage.name;
      ir::NodeId data = Dataset(stage.data);
      ir::NodeId items = Rule(stage, data, label);

      ir::Node weight;
      weight.kind = ir::NodeKind::Weight;
      weight.inputs.push_back({"items", items});
      weight.weight = stage.weight.weight;
      weight.params["weight"] = TermJson(stage.weight.weight);
      weight.stages.push_back(label);
      weight.span = stage.weight.span.valid() ? stage.weight.span : stage.span;
      ir::NodeId weighted = Add(std::move(weight));

      ir::Node train;
      train.kind = ir::NodeKind::Train;
      train.inputs.push_back({"init", Model(stage.init)});
      train.inputs.push_back({"items", weighted});
      if (stage.reference) train.inputs.push_back({"reference", Model(stage.reference)});
      train.loss = LowerLoss(*stage.objective);
      const sema::OptimizerSettings& optim = stage.optim;
      train.params["objective"] = train.loss->objective;
      train.params["optim"] = ordered_json{{"name", optim.name},
                                           {"lr", optim.lr},
                                           {"betas", {optim.beta1, optim.beta2}},
                                           {"eps", optim.eps},
                                           {"weight_decay", optim.weight_decay},
                                           {"warmup", optim.warmup},
                                           {"schedule", optim.schedule},
                                           {"min_lr_ratio", optim.min_lr_ratio}};
      train.params["epochs"] = stage.epochs;
      train.params["max_steps"] = stage.max_steps ? ordered_json(*stage.max_steps) : ordered_json(nullptr);
      train.params["batch"] = stage.batch;
      train.params["micro_batch"] = stage.micro_batch;
      train.params["max_len"] = stage.max_len;
      train.params["max_prompt_len"] =
          stage.max_prompt_len ? ordered_json(*stage.max_prompt_len) : ordered_json(nullptr);
      train.params["seed"] = stage.seed;
      train.params["precision"] = stage.precision;
      train.params["grad_clip"] = stage.grad_clip ? ordered_json(*stage.grad_clip) : ordered_json(nullptr);
      train.params["save_every"] = stage.save_every ? ordered_json(*stage.save_every) : ordered_json(nullptr);
      train.stages.push_back(label);
      train.span = stage.span;
      ir::NodeId trained = Add(std::move(train));
      stage_models_[stage.name] = trained;
      outputs.stages.emplace_back(stage.name, trained);

      ir::Node exported;
      exported.kind = ir::NodeKind::Export;
      exported.inputs.push_back({"model", trained});
      exported.params["path"] = experiment.output + "/export/" + stage.name;
      exported.stages.push_back(label);
      exported.span = stage.span;
      outputs.exports.emplace_back(stage.name, Add(std::move(exported)));
    }
    if (experiment.eval) {
      const auto& args = experiment.eval->As<sema::ConstructedVal>()->args;
      ir::Node evaluate;
      evaluate.kind = ir::NodeKind::Evaluate;
      evaluate.inputs.push_back({"data", Dataset(sema::FindNamed(args, "data"))});
      const sema::ValueRef models = sema::FindNamed(args, "models");
      const auto* list = models ? models->As<sema::ListVal>() : nullptr;
      if (list != nullptr && !list->elements.empty()) {
        for (const sema::ValueRef& model : list->elements) evaluate.inputs.push_back({"model", Model(model)});
      } else {
        // No models named: the target and every stage.
        evaluate.inputs.push_back({"model", Model(experiment.target)});
        for (const auto& [name, id] : outputs.stages) evaluate.inputs.push_back({"model", id});
      }
      evaluate.params["max_new_tokens"] = ValueJson(sema::FindNamed(args, "max_new_tokens"));
      evaluate.params["batch"] = ValueJson(sema::FindNamed(args, "batch"));
      evaluate.params["output"] = experiment.output + "/eval";
      evaluate.stages.push_back(experiment.name + "/eval");
      evaluate.span = experiment.eval->span;
      outputs.evaluation = Add(std::move(evaluate));
    }
    graph_.experiments.push_back(std::move(outputs));
  }

  ir::Graph graph_;
  std::map<const sema::Value*, ir::NodeId> memo_;  // one node per value of an experiment
  std::map<std::string, ir::NodeId> stage_models_;
};

}  // namespace

ir::LossGraph LowerLoss(const sema::CheckedObjective& objective) {
  ir::LossGraph graph;
  graph.unit = objective.unit;
  graph.roles = objective.names;
  std::string args;
  for (const auto& [name, value] : objective.args) args += (args.empty() ? "" : ", ") + name + ": " + sema::ToString(value);
  graph.objective = objective.name + "(" + args + ")";
  graph.result = LowerTerm(*objective.loss, graph);
  return graph;
}

ir::Graph Lower(const sema::CheckedProgram& program) { return Lowerer().Run(program); }

}  // namespace fusec
