// Stages: template chains, fields, data rules, objectives and their consistency.
//
// A stage extends a stage kind, which is a stage template (`fuse_po` in std/stages.fuse, or a user's) or the
// builtin root `train`. Each level of the chain is a layer of fields; the nearest layer wins a field. The
// three data rules (`select`, `pairs`, `groups`) are one slot: a layer that sets one replaces whichever rule a
// base set, so `stage po = fuse_po { groups = by source; objective = rloo() }` turns FusePO into RLOO.
//
// Fields are evaluated in dependency order: the data rule decides what an item is (a response or a pair),
// which the weighting needs; the objective's unit must agree with the items, and its needs decide whether a
// reference model is required.

#include <algorithm>
#include <functional>
#include <map>
#include <optional>
#include <set>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

struct FieldSpec {
  const char* name;
  TypeRef type;
  bool required = false;
  bool accepts_none = false;
  std::optional<Range> range;
  /// The root `train` template's value when no layer sets the field (null: none, or set elsewhere: `seed`
  /// is the experiment's, `micro_batch` the batch, `optim` is adamw at kDefaultLearningRate). The one place
  /// these defaults are written; docs/language.md's table repeats them for readers.
  ValueRef default_value = nullptr;
};

/// The learning rate of the default optimizer, `adamw(lr: 1e-5)` (adamw's other defaults are its builtin's).
constexpr double kDefaultLearningRate = 1e-5;

const std::vector<FieldSpec>& StageFields() {
  static const std::vector<FieldSpec> fields = [] {
    TypeRef integer = types::Int();
    Range positive{1.0, std::nullopt, true, true};
    return std::vector<FieldSpec>{
        {"init", types::Opaque(TypeKind::Model), true},
        {"data", types::Opaque(TypeKind::Dataset), true},
        {"reference", types::Opaque(TypeKind::Model), false, true},
        {"select", types::Opaque(TypeKind::Selection)},
        {"pairs", types::Opaque(TypeKind::Pairing)},
        {"groups", types::Opaque(TypeKind::Grouping)},
        {"weight", types::Opaque(TypeKind::Weighting)},
        {"objective", types::Opaque(TypeKind::Objective), true},
        {"optim", types::Opaque(TypeKind::Optimizer)},
        {"epochs", integer, false, false, positive, values::Int(1, SourceSpan{})},
        {"max_steps", integer, false, true, positive},
        {"batch", integer, false, false, positive, values::Int(128, SourceSpan{})},
        {"micro_batch", integer, false, true, positive},
        {"max_len", integer, false, false, positive, values::Int(2048, SourceSpan{})},
        {"max_prompt_len", integer, false, true, positive},
        {"seed", integer},
        {"precision", types::Enum(EnumKind::Precision), false, false, std::nullopt,
         values::Enum(EnumKind::Precision, static_cast<size_t>(ir::Precision::Auto), SourceSpan{})},
        {"grad_clip", types::Float(), false, true, Range{0.0, std::nullopt, false, true}, values::Float(1.0, SourceSpan{})},
        {"save_every", integer, false, true, positive},
        {"shard", types::Enum(EnumKind::Shard), false, false, std::nullopt,
         values::Enum(EnumKind::Shard, static_cast<size_t>(ir::Shard::Gradients), SourceSpan{})},
    };
  }();
  return fields;
}

const FieldSpec* FindField(const std::string& name) {
  for (const FieldSpec& field : StageFields()) {
    if (name == field.name) return &field;
  }
  return nullptr;
}

bool IsDataRule(const std::string& name) { return name == "select" || name == "pairs" || name == "groups"; }

struct Layer {
  std::string kind;  // the template's name, or the stage's own name for the first layer
  ScopeRef scope = nullptr;
  const std::vector<ast::BodyItem>* body = nullptr;
};

struct FieldSource {
  const ast::FieldAssign* field = nullptr;
  ScopeRef scope = nullptr;
};

std::optional<int64_t> IntOf(const ValueRef& value) {
  if (!value) return std::nullopt;
  if (const auto* i = value->As<int64_t>()) return *i;
  return std::nullopt;
}

/// Where the setting of a field named as in TRL's or OpenRLHF's trainer arguments lives in a stage: users
/// coming from those write `learning_rate = ...` or `beta = ...`, which no edit distance leads to.
std::optional<std::string> TrainerFieldPointer(const std::string& name) {
  static const std::map<std::string, std::string> pointers = {
      {"lr", "`lr` is set in the optimizer: `optim = adamw(lr: ...)`"},
      {"learning_rate", "the learning rate is set in the optimizer: `optim = adamw(lr: ...)`"},
      {"warmup", "`warmup` is set in the optimizer: `optim = adamw(warmup: ...)`"},
      {"warmup_ratio", "the warmup fraction is set in the optimizer: `optim = adamw(warmup: ...)`"},
      {"schedule", "`schedule` is set in the optimizer: `optim = adamw(schedule: cosine)`"},
      {"lr_scheduler_type", "the schedule is set in the optimizer: `optim = adamw(schedule: cosine)`"},
      {"weight_decay", "`weight_decay` is set in the optimizer: `optim = adamw(weight_decay: ...)`"},
      {"adam_epsilon", "epsilon is set in the optimizer: `optim = adamw(eps: ...)`"},
      {"beta", "`beta` is an argument of the objective, as in `objective = dpo(beta: ...)`"},
      {"loss_type", "the loss is the objective, as in `objective = dpo(beta: 0.1)` or `simpo(...)`"},
      {"per_device_train_batch_size",
       "the batch is set per stage over all devices: `batch = ...` (and `micro_batch = ...` for memory)"},
      {"train_batch_size", "the batch is set with `batch = ...`"},
      {"gradient_accumulation_steps",
       "set `batch = ...` and `micro_batch = ...`; fusec accumulates `batch / micro_batch` steps"},
      {"num_train_epochs", "epochs are set with `epochs = ...`"},
      {"max_epochs", "epochs are set with `epochs = ...`"},
      {"max_length", "the token limit is set with `max_len = ...`"},
      {"max_seq_length", "the token limit is set with `max_len = ...`"},
      {"max_prompt_length", "the prompt limit is set with `max_prompt_len = ...`"},
      {"max_grad_norm", "gradient clipping is set with `grad_clip = ...`"},
      {"save_steps", "checkpoints are written with `save_every = ...`"},
      {"bf16", "the precision is set with `precision = bf16`"},
      {"fp16", "the precision is set with `precision = ...`"},
      {"model_name_or_path", "the model a stage starts from is `init = ...` (for example `init = target`)"},
      {"ref_model", "the reference model is set with `reference = ...`"},
      {"dataset", "the data is set with `data = ...`"},
  };
  auto it = pointers.find(name);
  if (it == pointers.end()) return std::nullopt;
  return it->second;
}

}  // namespace

const std::vector<std::string>& StageFieldNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all;
    for (const FieldSpec& field : StageFields()) all.emplace_back(field.name);
    return all;
  }();
  return names;
}

ConstructedVal Sema::DefaultOptimizer() const {
  ConstructedVal adamw{"adamw", {}};
  for (const Builtin& builtin : builtins_) {
    if (builtin.name != "adamw") continue;
    for (const ParamSpec& param : builtin.params) {
      adamw.args.emplace_back(param.name, param.name == "lr" ? values::Float(kDefaultLearningRate, SourceSpan{})
                                                             : param.default_value);
    }
  }
  return adamw;
}

std::optional<CheckedStage> Sema::ElaborateStage(const StageRequest& request) {
  CheckedStage stage;
  stage.name = request.name;
  stage.span = request.name_span;
  stage.seed = request.experiment_seed;
  DataContext none;
  bool ok = true;

  // 1. The template chain, nearest first.
  std::vector<Layer> layers;
  layers.push_back(Layer{request.name, request.scope, request.body});
  const ast::StageBase* base = request.base;
  ScopeRef arg_scope = request.outer;
  std::set<const void*> visited;
  // With a broken chain (an unknown kind) the stage's own fields are still checked, but what the kind
  // would have supplied is unknown: no missing-field errors.
  bool broken_chain = false;
  while (base != nullptr) {
    // Stage kinds live among declarations: a stage named `sft` does not hide the kind `sft`, so
    // `stage sft = sft { ... }` reads naturally. The nearest binding that is a stage template wins.
    Binding* binding = nullptr;
    const DeclVal* decl = nullptr;
    ValueRef value;
    for (Scope* scope = arg_scope; scope != nullptr; scope = scope->parent()) {
      Binding* candidate = scope->FindLocal(base->name.text);
      if (candidate == nullptr || candidate->kind == BindingKind::Stage || candidate->kind == BindingKind::Field) {
        continue;
      }
      binding = candidate;
      value = Force(*candidate, base->name.span);
      decl = value->As<DeclVal>();
      if (decl != nullptr && decl->kind == DeclVal::Kind::StageTemplate) break;
    }
    if (decl == nullptr || decl->kind != DeclVal::Kind::StageTemplate) {
      broken_chain = true;
      if (value && value->is_error()) break;
      auto builder = Report(DiagnosticKind::UnknownStageKind, base->name.span,
                            binding == nullptr ? "unknown stage kind `" + base->name.text + "`"
                                               : "`" + base->name.text + "` is " + DescribeKind(*value) +
                                                     ", not a stage kind");
      if (decl != nullptr && decl->kind == DeclVal::Kind::Objective) {
        builder.Help("an objective is set inside a stage: `stage name = po { objective = " + base->name.text +
                     "(...) }`");
      }
      std::vector<std::string> kinds;
      for (const std::string& name : arg_scope->VisibleNames()) {
        Binding* candidate = arg_scope->Find(name);
        if (candidate != nullptr && candidate->value) {
          const auto* candidate_decl = candidate->value->As<DeclVal>();
          if (candidate_decl != nullptr && candidate_decl->kind == DeclVal::Kind::StageTemplate) kinds.push_back(name);
        }
      }
      std::string hint = DidYouMean(base->name.text, kinds);
      if (decl != nullptr && decl->kind == DeclVal::Kind::Objective) {
        // the help above says where objectives go
      } else if (!hint.empty()) {
        builder.Help(hint);
      } else if (auto stdlib = StdlibHint(base->name.text)) {
        builder.Help(*stdlib);
      } else {
        builder.Help("stage kinds are `sft`, `fuse_sft`, `po`, `fuse_po`, user stage templates, and `train`");
      }
      break;
    }
    if (decl->decl == nullptr) {  // the builtin root
      if (base->args && !base->args->empty()) {
        Report(DiagnosticKind::TooManyArguments, base->span, "`train` takes no arguments");
        ok = false;
      }
      stage.kinds.emplace_back("train");
      break;
    }
    const auto& template_decl = *static_cast<const ast::StageTemplateDecl*>(decl->decl);
    if (!visited.insert(&template_decl).second) {
      Report(DiagnosticKind::CyclicDefinition, base->name.span,
             "stage template `" + decl->name + "` extends itself")
          .Note(template_decl.name.span, "`" + decl->name + "` is declared here");
      return std::nullopt;
    }
    const auto& params = ResolveParams(template_decl.params, decl->env);
    static const std::vector<ast::Argument> no_args;
    auto bound = BindArguments(decl->name, base->span, params, base->args ? *base->args : no_args, arg_scope, none,
                               decl->name_span);
    if (!bound) {
      broken_chain = true;
      break;
    }
    ScopeRef params_scope = BindScope(decl->env, params, *bound);
    ScopeRef lets_scope = MakeScope(params_scope);
    DefineLets(template_decl.body, lets_scope, none, /*warn_if_unused=*/false);
    RunChecks(template_decl.body, lets_scope, none, base->span, decl->name);
    layers.push_back(Layer{decl->name, lets_scope, &template_decl.body});
    stage.kinds.push_back(decl->name);
    base = &template_decl.base;
    arg_scope = params_scope;
  }

  // 2. Fields: the nearest layer wins; a data rule set by a layer replaces the base's.
  std::map<std::string, FieldSource> fields;
  int rule_layer = -1;
  for (int index = static_cast<int>(layers.size()) - 1; index >= 0; --index) {
    const Layer& layer = layers[static_cast<size_t>(index)];
    std::map<std::string, const ast::FieldAssign*> in_layer;
    const ast::FieldAssign* layer_rule = nullptr;
    for (const ast::BodyItem& item : *layer.body) {
      if (const auto* nested = std::get_if<ast::StageDecl>(&item.node)) {
        Report(DiagnosticKind::MisplacedDeclaration, nested->name.span,
               "stage `" + nested->name.text + "` is declared inside a stage")
            .Help("declare stages directly in the experiment");
        ok = false;
        continue;
      }
      const auto* field = std::get_if<ast::FieldAssign>(&item.node);
      if (field == nullptr) continue;
      const std::string& name = field->name.text;
      if (FindField(name) == nullptr) {
        auto builder = Report(DiagnosticKind::UnknownField, field->name.span, "stages have no field `" + name + "`");
        std::string hint = DidYouMean(name, StageFieldNames());
        if (std::optional<std::string> pointer = TrainerFieldPointer(name)) {
          builder.Help(*pointer);
        } else if (!hint.empty()) {
          builder.Help(hint);
        }
        ok = false;
        continue;
      }
      auto [it, inserted] = in_layer.emplace(name, field);
      if (!inserted) {
        Report(DiagnosticKind::DuplicateField, field->name.span, "field `" + name + "` is set twice")
            .Note(it->second->name.span, "first set here");
        ok = false;
        continue;
      }
      if (IsDataRule(name)) {
        if (layer_rule != nullptr) {
          Report(DiagnosticKind::ConflictingFields, field->name.span,
                 "`" + name + "` and `" + layer_rule->name.text + "` are both set")
              .Note(layer_rule->name.span, "`" + layer_rule->name.text + "` is set here")
              .Help("a stage trains on selected responses (`select`), pairs (`pairs`) or groups (`groups`)");
          ok = false;
          continue;
        }
        layer_rule = field;
      }
    }
    if (layer_rule != nullptr) {
      fields.erase("select");
      fields.erase("pairs");
      fields.erase("groups");
      rule_layer = index;
    }
    for (const auto& [name, field] : in_layer) fields[name] = FieldSource{field, layer.scope};
  }
  (void)rule_layer;

  auto eval_field = [&](const std::string& name) -> ValueRef {
    auto it = fields.find(name);
    if (it == fields.end()) return nullptr;
    const FieldSpec& spec = *FindField(name);
    std::string what = "field `" + name + "` of stage `" + request.name + "`";
    ValueRef value = EvalAs(*it->second.field->value, it->second.scope, none, spec.type, what, spec.accepts_none);
    if (value->is_none() && !spec.accepts_none) {
      Report(DiagnosticKind::TypeMismatch, it->second.field->value->span, what + " cannot be `none`");
      value = values::Error(value->span);
    }
    if (spec.range && !value->is_error() && !CheckRange(value, *spec.range, what, it->second.field->value->span)) {
      value = values::Error(value->span);
    }
    stage.field_spans[name] = it->second.field->value->span;
    if (value->is_error()) ok = false;
    return value;
  };
  bool lenient = request.abstract || broken_chain;
  auto required = [&](const std::string& name, const std::string& help) {
    if (lenient || fields.count(name) > 0) return;
    auto builder = Report(DiagnosticKind::MissingField, request.name_span,
                          "stage `" + request.name + "` has no `" + name + "`");
    if (!help.empty()) builder.Help(help);
    ok = false;
  };

  // 3. The data rule decides what an item is.
  ItemKind items = ItemKind::Unknown;
  std::vector<std::string> roles;
  SourceSpan rule_span;
  const char* rule_name = nullptr;
  for (const char* name : {"select", "pairs", "groups"}) {
    ValueRef value = eval_field(name);
    if (!value) continue;
    rule_name = name;
    rule_span = stage.field_spans[name];
    if (const auto* selection = value->As<SelectionVal>()) {
      stage.rule = *selection->selection;
      items = ItemKind::Response;
    } else if (const auto* pairing = value->As<PairingVal>()) {
      stage.rule = *pairing->pairing;
      items = ItemKind::Pair;
      for (const RoleSelector& role : pairing->pairing->roles) roles.push_back(role.name);
    } else if (const auto* grouping = value->As<GroupingVal>()) {
      stage.rule = *grouping->grouping;
      items = ItemKind::Response;
    } else if (value->is_unknown()) {
      items = std::string(name) == "pairs" ? ItemKind::Pair : ItemKind::Response;
    }
  }
  if (rule_name == nullptr && !lenient) {
    Report(DiagnosticKind::MissingField, request.name_span,
           "stage `" + request.name + "` does not say what it trains on")
        .Help("set `select = ...` (responses, for SFT), `pairs = ...` (preference pairs) or `groups = ...` "
              "(groups of samples, for RLOO)");
    ok = false;
  }

  // 4. The weighting, in the items' context.
  DataContext weight_context;
  weight_context.kind = DataContext::Kind::Weight;
  weight_context.item = items;
  weight_context.roles = roles;
  weight_context.abstract = items == ItemKind::Unknown;
  if (auto it = fields.find("weight"); it != fields.end()) {
    WeightingVal closure;
    closure.expr = it->second.field->value.get();
    closure.env = it->second.scope;
    closure.description = Describe(*it->second.field->value);
    stage.field_spans["weight"] = it->second.field->value->span;
    ValueRef value = values::Make(types::Opaque(TypeKind::Weighting), it->second.field->value->span, closure);
    stage.weight = ElaborateWeighting(value, weight_context, it->second.field->value->span);
    if (!stage.weight.weight) ok = false;
  } else {
    Term uniform;
    uniform.op = TermOp::Normalize;
    uniform.name = "uniform";
    uniform.scope = "prompt";
    uniform.level = Level::Item;
    uniform.item = items;
    uniform.span = request.name_span;
    stage.weight.weight = MakeTerm(std::move(uniform));
    stage.weight.description = "uniform over prompt";
    stage.weight.span = request.name_span;
  }

  // 5. The objective, which must fit the items.
  required("objective", "set `objective = ...`, for example `nll()` for SFT or `dpo(beta: 0.1)` for pairs");
  if (ValueRef value = eval_field("objective")) {
    if (const auto* objective = value->As<ObjectiveVal>()) {
      stage.objective = objective->objective;
      const CheckedObjective& o = *objective->objective;
      bool pair_unit = o.unit == ObjectiveUnit::Pair || o.unit == ObjectiveUnit::GroupOfPairs;
      SourceSpan objective_span = stage.field_spans["objective"];
      if (rule_name != nullptr && items != ItemKind::Unknown) {
        std::string rule(rule_name);
        std::string problem;
        if (pair_unit && items != ItemKind::Pair) {
          problem = rule == "select" ? "selects responses" : "groups responses";
        } else if (!pair_unit && items == ItemKind::Pair) {
          problem = "builds pairs";
        } else if (o.unit == ObjectiveUnit::GroupOfResponses && rule != "groups") {
          problem = "selects responses but does not group them";
        }
        if (!problem.empty()) {
          auto builder = Report(DiagnosticKind::ObjectiveUnitMismatch, objective_span,
                                "objective `" + o.name + "` is " + UnitName(o.unit) + ", but stage `" + request.name +
                                    "` " + problem);
          builder.Note(rule_span, "`" + rule + "` is set here");
          if (pair_unit) {
            builder.Help("preference objectives need `pairs = ...`");
          } else if (o.unit == ObjectiveUnit::GroupOfResponses) {
            builder.Help("group objectives need `groups = by source` or `groups = by prompt`");
          } else {
            builder.Help("per-response objectives need `select = ...` or `groups = ...`");
          }
          ok = false;
        } else if (pair_unit) {
          for (const std::string& role : o.names) {
            if (std::find(roles.begin(), roles.end(), role) != roles.end()) continue;
            std::string available;
            for (const std::string& name : roles) available += (available.empty() ? "`" : ", `") + name + "`";
            Report(DiagnosticKind::MissingRole, objective_span,
                   "objective `" + o.name + "` reads role `" + role + "`, but the pairs of stage `" + request.name +
                       "` have " + available)
                .Note(rule_span, "the pairs are built here");
            ok = false;
          }
        }
      }
    } else if (!value->is_unknown() && !value->is_error()) {
      ok = false;
    }
  }

  // 6. Models and data.
  required("init", "set `init = target` or `init = <earlier stage>`");
  if (!request.default_data) required("data", "set `data = ...` in the stage, or `data = ...` in the experiment");
  if (ValueRef value = eval_field("init")) stage.init = value;
  if (ValueRef value = eval_field("data")) {
    stage.data = value;
  } else if (request.default_data && !request.default_data->is_error()) {
    stage.data = request.default_data;
  }
  ValueRef reference = eval_field("reference");
  bool needs_reference = stage.objective && stage.objective->needs.reference_logp;
  if (needs_reference) {
    if (reference && reference->is_none()) {
      Report(DiagnosticKind::MissingReference, stage.field_spans["reference"],
             "objective `" + stage.objective->name + "` reads `ref_logp`, but stage `" + request.name +
                 "` has no reference model")
          .Note(stage.field_spans["objective"], "the objective is set here")
          .Help("set `reference = <model or stage>`, or drop the line to use the stage's `init` (frozen)");
      ok = false;
    } else if (reference) {
      stage.reference = reference;
    } else {
      stage.reference = stage.init;  // the paper's reading: the frozen starting model
    }
  } else if (reference && !reference->is_none() && !reference->is_error() && stage.objective) {
    Report(DiagnosticKind::UnusedReference, stage.field_spans["reference"],
           "stage `" + request.name + "` sets `reference`, but objective `" + stage.objective->name +
               "` never reads `ref_logp`")
        .Help("remove `reference`, or use an objective with a reference term such as `dpo`");
  }
  auto depend_on = [&](const std::string& name) {
    if (std::find(stage.depends_on.begin(), stage.depends_on.end(), name) == stage.depends_on.end()) {
      stage.depends_on.push_back(name);
    }
  };
  for (const ValueRef& model : {stage.init, stage.reference}) {
    if (!model) continue;
    if (const auto* stage_model = model->As<StageModelVal>()) depend_on(stage_model->stage);
  }
  // Data sampled from a stage's model (`sample(..., models: {target: sft})`) waits for that stage.
  if (stage.data) {
    for (const std::string& name : StagesReadBy(*stage.data)) depend_on(name);
    if (!request.abstract && !CheckRuleSources(stage)) ok = false;
  }

  // 7. Training settings: each from the nearest layer that sets it, else the root template's default
  // (StageFields' last column).
  auto setting = [&](const std::string& name) -> ValueRef {
    if (ValueRef value = eval_field(name)) return value;
    return FindField(name)->default_value;
  };
  ValueRef optim = eval_field("optim");
  stage.optim = OptimSpecOf(optim && optim->As<ConstructedVal>() ? *optim->As<ConstructedVal>() : DefaultOptimizer());
  if (auto v = IntOf(setting("epochs"))) stage.epochs = *v;
  if (ValueRef v = setting("max_steps"); IntOf(v)) stage.max_steps = IntOf(v);
  if (auto v = IntOf(setting("batch"))) stage.batch = *v;
  stage.micro_batch = stage.batch;
  if (ValueRef v = setting("micro_batch"); IntOf(v)) stage.micro_batch = *IntOf(v);
  if (auto v = IntOf(setting("max_len"))) stage.max_len = *v;
  if (ValueRef v = setting("max_prompt_len"); IntOf(v)) stage.max_prompt_len = IntOf(v);
  if (auto v = IntOf(setting("seed"))) stage.seed = *v;
  if (ValueRef v = setting("precision"); v && v->As<EnumVal>()) {
    stage.precision = *ir::EnumAt<ir::Precision>(v->As<EnumVal>()->index);
    if (stage.precision == ir::Precision::Fp16) {  // the runtime would refuse it only when the stage starts
      Report(DiagnosticKind::OutOfRange, stage.field_spans["precision"],
             "`precision = fp16` needs loss scaling, which fusec's trainer does not do")
          .Help("use `bf16` (the same memory, fp32's range) or `fp32`");
      ok = false;
    }
  }
  if (ValueRef v = setting("grad_clip")) {
    if (v->is_none()) {
      stage.grad_clip.reset();
    } else if (auto number = v->AsNumber()) {
      stage.grad_clip = number;
    }
  }
  if (ValueRef v = setting("save_every"); IntOf(v)) stage.save_every = IntOf(v);
  if (ValueRef v = setting("shard"); v && v->As<EnumVal>()) stage.shard = *ir::EnumAt<ir::Shard>(v->As<EnumVal>()->index);
  if (fields.count("micro_batch") > 0 && stage.micro_batch > stage.batch) {
    Report(DiagnosticKind::InconsistentSettings, stage.field_spans["micro_batch"],
           "`micro_batch` (" + std::to_string(stage.micro_batch) + ") is larger than `batch` (" +
               std::to_string(stage.batch) + ")");
    ok = false;
  } else if (stage.micro_batch > 0 && stage.batch % stage.micro_batch != 0) {
    Report(DiagnosticKind::InconsistentSettings, stage.field_spans["micro_batch"],
           "`batch` (" + std::to_string(stage.batch) + ") is not a multiple of `micro_batch` (" +
               std::to_string(stage.micro_batch) + ")")
        .Help("gradient accumulation adds up whole micro-batches to reach the global batch");
    ok = false;
  }
  if (stage.max_prompt_len && *stage.max_prompt_len >= stage.max_len) {
    Report(DiagnosticKind::InconsistentSettings, stage.field_spans["max_prompt_len"],
           "`max_prompt_len` (" + std::to_string(*stage.max_prompt_len) +
               ") leaves no room for a response within `max_len` (" + std::to_string(stage.max_len) + ")");
    ok = false;
  }

  RunChecks(*request.body, request.scope, none);
  CheckUnforcedLets(request.scope);
  WarnUnused(request.scope);
  if (!ok || broken_chain) return std::nullopt;
  return stage;
}

void Sema::CheckStageTemplateDecl(const ast::StageTemplateDecl& decl, const ScopeRef& env) {
  const auto& params = ResolveParams(decl.params, env);
  NamedValues args = AbstractArguments(params);
  ScopeRef params_scope = BindScope(env, params, args);
  ScopeRef lets_scope = MakeScope(params_scope);
  DataContext none;
  DefineLets(decl.body, lets_scope, none, /*warn_if_unused=*/true);
  StageRequest request;
  request.name = decl.name.text;
  request.name_span = decl.name.span;
  request.body = &decl.body;
  request.scope = lets_scope;
  request.outer = params_scope;
  request.base = &decl.base;
  request.abstract = true;
  ElaborateStage(request);
}

std::vector<CheckedStage> Sema::OrderStages(std::vector<CheckedStage> stages,
                                            const std::map<std::string, SourceSpan>& stage_spans) {
  std::map<std::string, size_t> index;
  for (size_t i = 0; i < stages.size(); ++i) index[stages[i].name] = i;
  // Depth-first search for cycles, in declaration order so the report is deterministic.
  enum class Mark : uint8_t { None, Active, Done };
  std::vector<Mark> marks(stages.size(), Mark::None);
  std::vector<size_t> order;
  std::vector<size_t> path;
  std::set<size_t> in_cycle;
  std::function<void(size_t)> visit = [&](size_t i) {
    marks[i] = Mark::Active;
    path.push_back(i);
    for (const std::string& dependency : stages[i].depends_on) {
      auto it = index.find(dependency);
      if (it == index.end()) continue;
      size_t j = it->second;
      if (marks[j] == Mark::Active) {
        auto start = std::find(path.begin(), path.end(), j);
        std::string chain;
        for (auto p = start; p != path.end(); ++p) chain += "`" + stages[*p].name + "` -> ";
        chain += "`" + stages[j].name + "`";
        bool self = start + 1 == path.end();
        auto builder = Report(DiagnosticKind::StageCycle, stages[j].span,
                              self ? "stage `" + stages[j].name + "` depends on itself"
                                   : "stages depend on each other in a cycle: " + chain);
        for (auto p = start; p != path.end(); ++p) {
          const CheckedStage& from = stages[*p];
          for (const char* field : {"init", "reference", "data"}) {
            if (std::string(field) == "data" && (!from.data || StagesReadBy(*from.data).empty())) continue;
            auto span = from.field_spans.find(field);
            if (span != from.field_spans.end()) {
              builder.Note(span->second, "`" + from.name + "` reads its `" + field + "` from here");
            }
          }
          in_cycle.insert(*p);
        }
        continue;
      }
      if (marks[j] == Mark::None) visit(j);
    }
    path.pop_back();
    marks[i] = Mark::Done;
    order.push_back(i);
  };
  for (size_t i = 0; i < stages.size(); ++i) {
    if (marks[i] == Mark::None) visit(i);
  }
  (void)stage_spans;
  std::vector<CheckedStage> ordered;
  for (size_t i : order) {
    if (in_cycle.count(i) == 0) ordered.push_back(std::move(stages[i]));
  }
  return ordered;
}

}  // namespace fusec::sema
