// Experiments, experiment templates, instances and sweeps; and Check() itself.
//
// A concrete experiment is elaborated once. A template (an experiment with parameters) is checked on its own
// with its defaults (Unknown where there is none) and produces nothing; each instance and each sweep point
// binds the parameters and elaborates the body again, so an argument that breaks a range deep inside a stage
// is reported at the argument, with a note naming the instance or point.

#include <algorithm>
#include <filesystem>
#include <set>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

namespace fs = std::filesystem;

constexpr size_t kMaxSweepPoints = 10000;

struct ExperimentField {
  const char* name;
  TypeRef type;
};

const std::vector<ExperimentField>& ExperimentFields() {
  static const std::vector<ExperimentField> fields = {
      {"target", types::Opaque(TypeKind::Model)},
      {"data", types::Opaque(TypeKind::Dataset)},
      {"seed", types::Int()},
      {"output", types::String()},
      {"device", types::Enum(EnumKind::Device)},
      {"eval", types::Opaque(TypeKind::Evaluation)},
  };
  return fields;
}

const ExperimentField* FindExperimentField(const std::string& name) {
  for (const ExperimentField& field : ExperimentFields()) {
    if (name == field.name) return &field;
  }
  return nullptr;
}

/// `tau=0.5,seed=1` for a sweep point's name: values as .fuse text without spaces.
std::string PointLabel(const NamedValues& point) {
  std::string label;
  for (const auto& [name, value] : point) {
    if (!label.empty()) label += ",";
    std::string text = ToString(value);
    text.erase(std::remove(text.begin(), text.end(), ' '), text.end());
    label += name + "=" + text;
  }
  return label;
}

/// A directory name from a label: letters, digits and `._=,+-` stay, runs of anything else become one `_`.
std::string PathSafe(const std::string& label) {
  std::string out;
  for (char c : label) {
    bool keep = std::isalnum(static_cast<unsigned char>(c)) || std::string("._=,+-").find(c) != std::string::npos;
    if (keep) {
      out.push_back(c);
    } else if (out.empty() || out.back() != '_') {
      out.push_back('_');
    }
  }
  while (!out.empty() && out.back() == '_') out.pop_back();
  return out;
}

}  // namespace

const std::vector<std::string>& ExperimentFieldNames() {
  static const std::vector<std::string> names = [] {
    std::vector<std::string> all;
    for (const ExperimentField& field : ExperimentFields()) all.emplace_back(field.name);
    return all;
  }();
  return names;
}

Sema::Sema(SourceManager& sources, Diagnostics& diagnostics, std::string stdlib_dir)
    : sources_(sources), diagnostics_(diagnostics), stdlib_dir_(std::move(stdlib_dir)) {}

std::optional<CheckedExperiment> Sema::ElaborateExperiment(const std::string& name, SourceSpan span,
                                                           const std::vector<ast::BodyItem>& body,
                                                           const ScopeRef& scope) {
  DataContext none;
  auto shared_none = std::make_shared<const DataContext>();
  ScopeRef experiment_scope = MakeScope(scope);
  size_t errors_before = diagnostics_.error_count();
  bool ok = true;
  std::map<std::string, SourceSpan> defined;
  auto claim = [&](const ast::Identifier& id, const char* what) {
    auto [it, inserted] = defined.emplace(id.text, id.span);
    if (!inserted) {
      Report(DiagnosticKind::DuplicateName, id.span, std::string(what) + " `" + id.text + "` is defined twice")
          .Note(it->second, "first defined here");
      ok = false;
    }
    return inserted;
  };
  // Names first, all of them, so the order of declarations in the body does not matter.
  for (const ast::BodyItem& item : body) {
    if (const auto* let = std::get_if<ast::LetDecl>(&item.node)) claim(let->name, "`let`");
  }
  DefineLets(body, experiment_scope, none, /*warn_if_unused=*/true);
  std::map<std::string, const ast::FieldAssign*> fields;
  std::vector<const ast::StageDecl*> stage_decls;
  for (const ast::BodyItem& item : body) {
    if (const auto* field = std::get_if<ast::FieldAssign>(&item.node)) {
      if (FindExperimentField(field->name.text) == nullptr) {
        auto builder = Report(DiagnosticKind::UnknownField, field->name.span,
                              "experiments have no field `" + field->name.text + "`");
        std::string hint = DidYouMean(field->name.text, ExperimentFieldNames());
        builder.Help(!hint.empty() ? hint
                                   : "experiment fields are `target`, `data`, `seed`, `output`, `device` and "
                                     "`eval`; name other values with `let`");
        ok = false;
        continue;
      }
      if (!claim(field->name, "field")) continue;
      fields[field->name.text] = field;
      Binding binding;
      binding.name = field->name.text;
      binding.kind = BindingKind::Field;
      binding.span = field->name.span;
      binding.state = Binding::State::Pending;
      binding.expr = field->value.get();
      binding.env = experiment_scope;
      binding.context = shared_none;
      experiment_scope->Define(std::move(binding));
    } else if (const auto* stage = std::get_if<ast::StageDecl>(&item.node)) {
      if (!claim(stage->name, "stage")) continue;
      stage_decls.push_back(stage);
      Binding binding;
      binding.name = stage->name.text;
      binding.kind = BindingKind::Stage;
      binding.span = stage->name.span;
      binding.value = values::Make(types::Opaque(TypeKind::Stage), stage->name.span, StageModelVal{stage->name.text});
      experiment_scope->Define(std::move(binding));
    }
  }
  RunChecks(body, experiment_scope, none);

  CheckedExperiment experiment;
  experiment.name = name;
  experiment.span = span;
  experiment.output = "runs/" + name;
  auto field_value = [&](const std::string& field_name) -> ValueRef {
    Binding* binding = experiment_scope->FindLocal(field_name);
    if (binding == nullptr || binding->kind != BindingKind::Field) return nullptr;
    bool was_used = binding->used;
    ValueRef value = Force(*binding, binding->span);
    binding->used = was_used;
    value = Coerce(value, FindExperimentField(field_name)->type, "field `" + field_name + "` of experiment `" + name + "`",
                   fields[field_name]->value->span);
    if (value->is_error()) ok = false;
    return value;
  };
  if (ValueRef target = field_value("target")) {
    experiment.target = target;
  } else {
    Report(DiagnosticKind::MissingField, span, "experiment `" + name + "` has no `target`")
        .Help("set the model to train, as in `target = hf_model(\"models/Llama-3.1-8B-Instruct\")`");
    ok = false;
  }
  if (ValueRef seed = field_value("seed"); seed && seed->As<int64_t>()) experiment.seed = *seed->As<int64_t>();
  if (ValueRef output = field_value("output"); output && output->As<std::string>()) {
    experiment.output = *output->As<std::string>();
  }
  if (ValueRef device = field_value("device"); device && device->As<EnumVal>()) {
    experiment.device = *ir::EnumAt<ir::DeviceName>(device->As<EnumVal>()->index);
  }
  experiment.eval = field_value("eval");
  ValueRef default_data = field_value("data");
  if (experiment.eval && experiment.eval->is_error()) experiment.eval = nullptr;

  std::vector<CheckedStage> stages;
  std::map<std::string, SourceSpan> stage_spans;
  for (const ast::StageDecl* decl : stage_decls) {
    ScopeRef stage_scope = MakeScope(experiment_scope);
    DefineLets(decl->body, stage_scope, none, /*warn_if_unused=*/true);
    StageRequest request;
    request.name = decl->name.text;
    request.name_span = decl->name.span;
    request.body = &decl->body;
    request.scope = stage_scope;
    request.outer = experiment_scope;
    request.base = &decl->base;
    request.experiment_seed = experiment.seed;
    request.default_data = default_data;
    stage_spans[decl->name.text] = decl->name.span;
    if (auto stage = ElaborateStage(request)) {
      stages.push_back(std::move(*stage));
    } else {
      ok = false;
    }
  }
  size_t elaborated = stages.size();
  experiment.stages = OrderStages(std::move(stages), stage_spans);
  if (experiment.stages.size() != elaborated) ok = false;
  if (stage_decls.empty() && !experiment.eval) {
    Report(DiagnosticKind::MissingField, span, "experiment `" + name + "` has no stages and no `eval`")
        .Help("add a stage, as in `stage sft = fuse_sft { init = target; data = ... }`");
    ok = false;
  }
  // A stage nothing reads is likely a mistake, unless it is the experiment's last, its result, or the
  // experiment evaluates it: `evaluate(...)` without `models` compares the target and every stage, so
  // sibling stages (an ablation, stages from one base) are all used. After an error these warnings are
  // skipped: a stage that failed may be the one that would have used the others.
  bool clean = diagnostics_.error_count() == errors_before;
  bool evaluates_every_stage = false;
  if (experiment.eval) {
    if (const auto* evaluate = experiment.eval->As<ConstructedVal>()) {
      ValueRef models = FindNamed(evaluate->args, "models");
      const auto* listed = models ? models->As<ListVal>() : nullptr;
      evaluates_every_stage = listed == nullptr || listed->elements.empty();
    }
  }
  for (size_t i = 0; clean && !evaluates_every_stage && i + 1 < stage_decls.size(); ++i) {
    Binding* binding = experiment_scope->FindLocal(stage_decls[i]->name.text);
    if (binding != nullptr && !binding->used) {
      Report(DiagnosticKind::UnusedStage, stage_decls[i]->name.span,
             "stage `" + stage_decls[i]->name.text + "` is not used by any later stage and is not the last stage")
          .Help("start a later stage from it (`init = " + stage_decls[i]->name.text + "`), or remove it");
    }
  }
  CheckUnforcedLets(experiment_scope);
  if (clean && diagnostics_.error_count() == errors_before) WarnUnused(experiment_scope);
  if (!ok) return std::nullopt;
  return experiment;
}

CheckedProgram Sema::CheckFiles(const std::vector<std::string>& files,
                                const std::vector<std::pair<std::string, std::string>>& texts,
                                const std::vector<std::string>& overrides) {
  CheckedProgram program;
  builtin_scope_ = MakeBuiltinScope();
  std::error_code ec;
  if (!fs::is_directory(stdlib_dir_, ec)) {
    Report(DiagnosticKind::FileNotFound, SourceSpan{}, "the stdlib was not found at " + stdlib_dir_)
        .Help("set FUSEC_STDLIB or pass --stdlib to the directory that holds stages.fuse");
  } else if (ModuleInfo* prelude = LoadStdlibModule({ast::Identifier{"std", {}}, ast::Identifier{"stages", {}}}, {})) {
    prelude_scope_ = MakeScope(builtin_scope_);
    if (prelude->scope) {
      for (Binding* binding : prelude->scope->ordered()) {
        if (binding->kind == BindingKind::Import) continue;
        Binding copy;
        copy.name = binding->name;
        copy.kind = BindingKind::Builtin;
        copy.span = binding->span;
        copy.value = Force(*binding, binding->span);
        prelude_scope_->Define(std::move(copy));
      }
    }
  }
  std::set<const ModuleInfo*> roots;
  for (const std::string& file : files) {
    if (ModuleInfo* module = LoadRootModule(file)) roots.insert(module);
  }
  for (const auto& [path, text] : texts) {
    if (ModuleInfo* module = LoadRootModule(path, &text)) roots.insert(module);
  }
  if (!overrides.empty()) {
    for (ModuleInfo& module : modules_) {
      if (roots.count(&module) > 0) ApplyOverrides(module, overrides);
    }
  }

  // Check every declaration of every loaded module; emit the experiments of the files named.
  for (size_t m = 0; m < modules_.size(); ++m) {
    ModuleInfo& module = modules_[m];
    if (!module.parsed || !module.scope) continue;
    size_t module_errors_before = diagnostics_.error_count();
    bool emit = roots.count(&module) > 0;
    for (const ast::Decl& decl : module.ast.decls) {
      if (const auto* let = std::get_if<ast::LetDecl>(&decl)) {
        if (Binding* binding = module.scope->FindLocal(let->name.text); binding != nullptr && !let->params) {
          bool was_used = binding->used;
          Force(*binding, let->name.span);
          binding->used = was_used;
        }
      } else if (const auto* objective = std::get_if<ast::ObjectiveDecl>(&decl)) {
        CheckObjectiveDecl(*objective, module.scope);
      } else if (const auto* weighting = std::get_if<ast::WeightingDecl>(&decl)) {
        CheckWeightingDecl(*weighting, module.scope);
      } else if (const auto* stage = std::get_if<ast::StageTemplateDecl>(&decl)) {
        CheckStageTemplateDecl(*stage, module.scope);
      } else if (const auto* experiment = std::get_if<ast::ExperimentDecl>(&decl)) {
        if (experiment->instance_of) {
          // experiment name = template(args)
          Binding* binding = module.scope->Find(experiment->instance_of->text);
          const DeclVal* template_decl = nullptr;
          if (binding != nullptr) {
            ValueRef value = Force(*binding, experiment->instance_of->span);
            template_decl = value->As<DeclVal>();
          }
          if (template_decl == nullptr || template_decl->kind != DeclVal::Kind::ExperimentTemplate) {
            auto builder = Report(DiagnosticKind::UnknownTemplate, experiment->instance_of->span,
                                  binding == nullptr ? "unknown experiment template `" + experiment->instance_of->text + "`"
                                                     : "`" + experiment->instance_of->text + "` is not an experiment template");
            std::vector<std::string> templates;
            for (const std::string& candidate : module.scope->VisibleNames()) {
              Binding* b = module.scope->Find(candidate);
              if (b != nullptr && b->value && b->value->As<DeclVal>() &&
                  b->value->As<DeclVal>()->kind == DeclVal::Kind::ExperimentTemplate) {
                templates.push_back(candidate);
              }
            }
            std::string hint = DidYouMean(experiment->instance_of->text, templates);
            if (!hint.empty()) builder.Help(hint);
            continue;
          }
          const auto& template_ast = *static_cast<const ast::ExperimentDecl*>(template_decl->decl);
          const auto& params = ResolveParams(*template_ast.params, template_decl->env);
          auto args = BindArguments(template_decl->name, experiment->span, params, experiment->args, module.scope,
                                    DataContext{}, template_decl->name_span);
          if (!args) continue;
          ScopeRef params_scope = BindScope(template_decl->env, params, *args);
          InstantiationNote note(*this, experiment->name.span,
                                 "in experiment `" + experiment->name.text + "`, an instance of `" +
                                     template_decl->name + "`");
          auto checked = ElaborateExperiment(experiment->name.text, experiment->name.span, template_ast.body,
                                             params_scope);
          if (checked && emit) {
            checked->template_name = template_decl->name;
            checked->template_args = *args;
            program.experiments.push_back(std::move(*checked));
          }
        } else if (experiment->params) {
          // A template on its own: checked with its defaults, produces nothing.
          const auto& params = ResolveParams(*experiment->params, module.scope);
          NamedValues args = AbstractArguments(params);
          ScopeRef params_scope = BindScope(module.scope, params, args);
          ElaborateExperiment(experiment->name.text, experiment->name.span, experiment->body, params_scope);
        } else {
          auto checked =
              ElaborateExperiment(experiment->name.text, experiment->name.span, experiment->body, module.scope);
          if (checked && emit) program.experiments.push_back(std::move(*checked));
        }
      } else if (const auto* sweep = std::get_if<ast::SweepDecl>(&decl)) {
        auto points = ExpandSweep(*sweep, module.scope);
        for (auto& point : points) {
          if (emit) program.experiments.push_back(std::move(point));
        }
      }
    }
    // Unused imports are reported only when nothing failed: code that failed may have used them.
    (void)module_errors_before;
    if (!module.is_stdlib && !diagnostics_.has_errors()) {
      for (Binding* binding : module.scope->ordered()) {
        if (binding->kind == BindingKind::Import && binding->warn_if_unused && !binding->used) {
          Report(DiagnosticKind::UnusedImport, binding->span, "`" + binding->name + "` is imported but never used")
              .Help("remove it from the import");
        }
      }
    }
  }
  return program;
}

std::vector<CheckedExperiment> Sema::ExpandSweep(const ast::SweepDecl& sweep, const ScopeRef& scope) {
  std::vector<CheckedExperiment> out;
  Binding* binding = scope->Find(sweep.template_name.text);
  const DeclVal* template_decl = nullptr;
  if (binding != nullptr) template_decl = Force(*binding, sweep.template_name.span)->As<DeclVal>();
  if (template_decl == nullptr || template_decl->kind != DeclVal::Kind::ExperimentTemplate) {
    Report(DiagnosticKind::UnknownTemplate, sweep.template_name.span,
           binding == nullptr ? "unknown experiment template `" + sweep.template_name.text + "`"
                              : "`" + sweep.template_name.text + "` is not an experiment template")
        .Help("a sweep runs a template, declared as `experiment name(param: type = default) { ... }`");
    ReportIgnoredOverrides(sweep, nullptr, {});
    return out;
  }
  const auto& template_ast = *static_cast<const ast::ExperimentDecl*>(template_decl->decl);
  const auto& params = ResolveParams(*template_ast.params, template_decl->env);
  std::vector<std::string> names = ParamNames(params);
  auto find_param = [&](const std::string& name) -> const ParamSpec* {
    for (const ParamSpec& param : params) {
      if (param.name == name) return &param;
    }
    return nullptr;
  };
  auto unknown_param = [&](const ast::Identifier& id) {
    auto builder = Report(DiagnosticKind::UnknownArgument, id.span,
                          "`" + template_decl->name + "` has no parameter `" + id.text + "`");
    std::string hint = DidYouMean(id.text, names);
    if (!hint.empty()) builder.Help(hint);
  };
  DataContext none;
  bool ok = true;

  // Fixed arguments, positional or named.
  NamedValues fixed;
  std::map<std::string, SourceSpan> spans;
  for (size_t i = 0; i < sweep.fixed_args.size(); ++i) {
    const ast::Argument& arg = sweep.fixed_args[i];
    const ParamSpec* param = arg.name ? find_param(arg.name->text) : (i < params.size() ? &params[i] : nullptr);
    if (param == nullptr) {
      if (arg.name) {
        unknown_param(*arg.name);
      } else {
        Report(DiagnosticKind::TooManyArguments, arg.span, "`" + template_decl->name + "` has fewer parameters");
      }
      ok = false;
      continue;
    }
    fixed.emplace_back(param->name, EvalArgument(*arg.value, *param, scope, none));
    spans[param->name] = arg.value->span;
  }

  // The grid: axes in the file, explicit points, or a TOML file.
  std::vector<NamedValues> points;
  const ast::Expr& grid = *sweep.grid;
  auto check_new = [&](const std::string& name, SourceSpan span) {
    if (FindNamed(fixed, name)) {
      Report(DiagnosticKind::DuplicateArgument, span, "`" + name + "` is both fixed and swept")
          .Note(spans[name], "fixed here");
      return false;
    }
    return true;
  };
  if (const auto* axes = grid.As<ast::RecordExpr>()) {
    points.emplace_back();
    std::set<std::string> seen;
    for (const ast::RecordField& axis : axes->fields) {
      const ParamSpec* param = find_param(axis.name.text);
      if (param == nullptr) {
        unknown_param(axis.name);
        ok = false;
        continue;
      }
      if (!seen.insert(axis.name.text).second) {
        Report(DiagnosticKind::DuplicateField, axis.name.span, "axis `" + axis.name.text + "` is given twice");
        ok = false;
        continue;
      }
      if (!check_new(axis.name.text, axis.name.span)) {
        ok = false;
        continue;
      }
      std::vector<ValueRef> axis_values;
      if (const auto* list = axis.value->As<ast::ListExpr>()) {
        for (const ast::ExprPtr& element : list->elements) axis_values.push_back(EvalArgument(*element, *param, scope, none));
      } else {
        ValueRef value = Eval(*axis.value, scope, none);
        if (const auto* list_value = value->As<ListVal>()) {
          axis_values = list_value->elements;
        } else if (!value->is_error()) {
          Report(DiagnosticKind::InvalidGrid, axis.value->span,
                 "axis `" + axis.name.text + "` must be a list of values, as in `[0.1, 1.0]`");
          ok = false;
          continue;
        }
      }
      if (axis_values.empty()) {
        Report(DiagnosticKind::InvalidGrid, axis.value->span, "axis `" + axis.name.text + "` has no values");
        ok = false;
        continue;
      }
      std::vector<NamedValues> next;
      for (const NamedValues& point : points) {
        for (const ValueRef& value : axis_values) {
          NamedValues extended = point;
          extended.emplace_back(axis.name.text, value);
          next.push_back(std::move(extended));
        }
        if (next.size() > kMaxSweepPoints) break;
      }
      points = std::move(next);
      if (points.size() > kMaxSweepPoints) {
        Report(DiagnosticKind::InvalidGrid, grid.span,
               "the sweep has more than " + std::to_string(kMaxSweepPoints) + " points");
        return out;
      }
    }
  } else if (const auto* list = grid.As<ast::ListExpr>()) {
    for (const ast::ExprPtr& element : list->elements) {
      const auto* record = element->As<ast::RecordExpr>();
      if (record == nullptr) {
        Report(DiagnosticKind::InvalidGrid, element->span, "each point is a record, as in `{tau: 0.1, seed: 1}`");
        ok = false;
        continue;
      }
      NamedValues point;
      for (const ast::RecordField& field : record->fields) {
        const ParamSpec* param = find_param(field.name.text);
        if (param == nullptr) {
          unknown_param(field.name);
          ok = false;
          continue;
        }
        if (!check_new(field.name.text, field.name.span)) {
          ok = false;
          continue;
        }
        point.emplace_back(field.name.text, EvalArgument(*field.value, *param, scope, none));
      }
      points.push_back(std::move(point));
    }
    if (list->elements.size() > kMaxSweepPoints) {
      Report(DiagnosticKind::InvalidGrid, grid.span, "the sweep has more than " + std::to_string(kMaxSweepPoints) + " points");
      return out;
    }
  } else if (grid.kind() == ast::ExprKind::Call) {
    ValueRef value = Eval(grid, scope, none);
    if (const auto* file_grid = value->As<GridVal>()) {
      for (const NamedValues& point : file_grid->points) {
        for (const auto& [name, point_value] : point) {
          auto key = file_grid->key_spans.find(name);
          SourceSpan key_span = key != file_grid->key_spans.end() ? key->second : point_value->span;
          if (find_param(name) == nullptr) {
            auto builder = Report(DiagnosticKind::UnknownArgument, key_span,
                                  "`" + template_decl->name + "` has no parameter `" + name + "`");
            std::string hint = DidYouMean(name, names);
            if (!hint.empty()) builder.Help(hint);
            ok = false;
          } else if (!check_new(name, key_span)) {
            ok = false;
          }
        }
      }
      points = file_grid->points;
    } else if (!value->is_error()) {
      Report(DiagnosticKind::InvalidGrid, grid.span, "a sweep runs over a grid; this is `" + ToString(value->type) + "`");
      ok = false;
    } else {
      ok = false;
    }
  } else {
    Report(DiagnosticKind::InvalidGrid, grid.span,
           "a sweep runs over `{param: [values], ...}`, a list of points, or `grid(\"file.toml\")`");
    ok = false;
  }
  std::map<std::string, std::string> given_by_sweep;
  for (const auto& [name, value] : fixed) given_by_sweep[name] = "fixed";
  for (const NamedValues& point : points) {
    for (const auto& [name, value] : point) given_by_sweep[name] = "swept";
  }
  ReportIgnoredOverrides(sweep, &template_ast, given_by_sweep);
  if (!ok) return out;
  if (points.empty()) {
    Report(DiagnosticKind::InvalidGrid, grid.span, "the sweep has no points");
    return out;
  }

  std::set<std::string> point_names;
  for (const NamedValues& point : points) {
    NamedValues given = fixed;
    std::map<std::string, SourceSpan> given_spans = spans;
    for (const auto& [name, value] : point) {
      given.emplace_back(name, value);
      given_spans[name] = value->span;
    }
    std::string label = PointLabel(point);
    InstantiationNote note(*this, sweep.name.span, "in sweep `" + sweep.name.text + "` at point `" + label + "`");
    auto args = BindValues(template_decl->name, sweep.span, params, given, given_spans);
    if (!args) continue;
    ScopeRef params_scope = BindScope(template_decl->env, params, *args);
    std::string name = sweep.name.text + "[" + label + "]";
    if (!point_names.insert(name).second) {
      Report(DiagnosticKind::InvalidGrid, sweep.name.span, "the sweep has the point `" + label + "` twice");
      continue;
    }
    auto checked = ElaborateExperiment(name, sweep.name.span, template_ast.body, params_scope);
    if (!checked) continue;
    if (checked->output == "runs/" + name) checked->output = "runs/" + sweep.name.text + "/" + PathSafe(label);
    checked->template_name = template_decl->name;
    checked->template_args = *args;
    checked->sweep = sweep.name.text;
    out.push_back(std::move(*checked));
  }
  return out;
}

}  // namespace fusec::sema

namespace fusec {

std::string DefaultStdlibDir() {
  namespace fs = std::filesystem;
  if (const char* env = std::getenv("FUSEC_STDLIB"); env != nullptr && *env != '\0') return env;
  std::error_code ec;
  fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    fs::path installed = exe.parent_path() / ".." / "share" / "fusec" / "stdlib";
    if (fs::is_directory(installed, ec)) return installed.lexically_normal().string();
  }
  return FUSEC_SOURCE_STDLIB;
}

sema::CheckedProgram Check(const CheckOptions& options, SourceManager& sources, Diagnostics& diagnostics) {
  sema::Sema sema(sources, diagnostics, options.stdlib_dir.empty() ? DefaultStdlibDir() : options.stdlib_dir);
  return sema.CheckFiles(options.files, options.texts, options.overrides);
}

}  // namespace fusec
