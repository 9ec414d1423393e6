// Command-line overrides: `fusec plan x.fuse --set po.optim.lr=1e-6`.
//
// An override edits the AST of the named file before it is checked, so its value is checked exactly like
// text in the file, and a problem with it is reported in the override itself (shown as the file `--set`).
// A path names, optionally, an experiment first; then an experiment field, a let, a template parameter, or
// a stage and one of its fields, and optionally one argument of that field's call:
//   seed=7   target="models/x"   po.epochs=2   po.optim.lr=1e-6   fuserl.tau=0.5   fuserl.po.batch=64
// Without an experiment name, the override applies to every experiment of the file that has the path.

#include <algorithm>

#include "compiler/diag/suggest.h"
#include "compiler/parse/parse.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

/// The call at the top of an expression, if it is one.
ast::CallExpr* CallOf(ast::Expr& expr) { return std::get_if<ast::CallExpr>(&expr.node); }

}  // namespace

void Sema::ApplyOverrides(ModuleInfo& module, const std::vector<std::string>& overrides) {
  if (!module.parsed) return;
  for (const std::string& text : overrides) {
    FileId file = sources_.Add("--set", "", text);
    std::optional<ast::Setting> setting = ParseSetting(sources_, file, diagnostics_);
    if (!setting) continue;
    // A fresh copy of the value for each place it goes (one override can apply to several experiments).
    auto fresh_value = [&]() {
      Diagnostics scratch;
      return std::move(ParseSetting(sources_, file, scratch)->value);
    };
    const std::vector<ast::Identifier>& path = setting->path;

    // Which experiments: the one the path starts with, or all of the file's.
    std::vector<ast::ExperimentDecl*> targets;
    std::vector<std::string> experiment_names;
    size_t first = 0;
    for (ast::Decl& decl : module.ast.decls) {
      if (auto* sweep = std::get_if<ast::SweepDecl>(&decl); sweep != nullptr && sweep->name.text == path[0].text) {
        // Its points take their values from its grid; what to say depends on the grid (ExpandSweep).
        std::vector<std::string> rest;
        for (size_t i = 1; i < path.size(); ++i) rest.push_back(path[i].text);
        sweep_overrides_.push_back(SweepOverride{sweep, rest, text.substr(text.find('=') + 1), path[0].span});
        targets.clear();
        first = path.size();
        break;
      }
      auto* experiment = std::get_if<ast::ExperimentDecl>(&decl);
      if (experiment == nullptr) continue;
      experiment_names.push_back(experiment->name.text);
      if (experiment->name.text == path[0].text && path.size() > 1) {
        targets = {experiment};
        first = 1;
        break;
      }
      targets.push_back(experiment);
    }
    if (first == path.size()) continue;

    size_t applied = 0;
    struct Failure {
      SourceSpan span;
      std::string message;
      std::string help;
    };
    std::optional<Failure> failure;  // the first reason an experiment did not take the override
    auto fail = [&](SourceSpan span, std::string message, std::string help = "") {
      if (!failure) failure = Failure{span, std::move(message), std::move(help)};
    };
    for (ast::ExperimentDecl* experiment : targets) {
      const ast::Identifier& name = path[first];
      bool last = first + 1 == path.size();

      // An instance: its arguments are the template's parameters.
      if (experiment->instance_of) {
        const ast::ExperimentDecl* template_decl = nullptr;
        for (const ast::Decl& decl : module.ast.decls) {
          const auto* candidate = std::get_if<ast::ExperimentDecl>(&decl);
          if (candidate != nullptr && candidate->params && candidate->name.text == experiment->instance_of->text) {
            template_decl = candidate;
          }
        }
        bool is_param = template_decl != nullptr &&
                        std::any_of(template_decl->params->begin(), template_decl->params->end(),
                                    [&](const ast::Param& p) { return p.name.text == name.text; });
        if (!last || !is_param) {
          fail(name.span, "experiment `" + experiment->name.text + "` is an instance of `" +
                              experiment->instance_of->text + "`; only its template's parameters can be set");
          continue;
        }
        auto it = std::find_if(experiment->args.begin(), experiment->args.end(),
                               [&](const ast::Argument& arg) { return arg.name && arg.name->text == name.text; });
        if (it != experiment->args.end()) {
          it->value = fresh_value();
        } else {
          experiment->args.push_back(ast::Argument{name, fresh_value(), setting->span});
        }
        ++applied;
        continue;
      }

      // A template parameter's default.
      if (experiment->params && last) {
        auto param = std::find_if(experiment->params->begin(), experiment->params->end(),
                                  [&](const ast::Param& p) { return p.name.text == name.text; });
        if (param != experiment->params->end()) {
          param->default_value = fresh_value();
          template_param_overrides_.push_back(TemplateParamOverride{experiment, name.text, name.span});
          ++applied;
          continue;
        }
      }

      // An experiment field or let.
      std::vector<std::string> candidates = ExperimentFieldNames();
      ast::FieldAssign* field = nullptr;
      ast::LetDecl* let = nullptr;
      ast::StageDecl* stage = nullptr;
      for (ast::BodyItem& item : experiment->body) {
        if (auto* f = std::get_if<ast::FieldAssign>(&item.node); f != nullptr && f->name.text == name.text) field = f;
        if (auto* l = std::get_if<ast::LetDecl>(&item.node)) {
          candidates.push_back(l->name.text);
          if (l->name.text == name.text) let = l;
        }
        if (auto* s = std::get_if<ast::StageDecl>(&item.node)) {
          candidates.push_back(s->name.text);
          if (s->name.text == name.text) stage = s;
        }
      }
      if (experiment->params) {
        for (const ast::Param& param : *experiment->params) candidates.push_back(param.name.text);
      }
      const auto& experiment_fields = ExperimentFieldNames();
      bool is_field = std::find(experiment_fields.begin(), experiment_fields.end(), name.text) != experiment_fields.end();

      // Sets `path[at]` in a body: the whole field, or one argument of the call the field holds.
      auto set_in_body = [&](std::vector<ast::BodyItem>& body, size_t at, const std::string& owner) -> bool {
        const ast::Identifier& field_name = path[at];
        ast::FieldAssign* existing = nullptr;
        for (ast::BodyItem& item : body) {
          auto* f = std::get_if<ast::FieldAssign>(&item.node);
          if (f != nullptr && f->name.text == field_name.text) existing = f;
        }
        if (at + 1 == path.size()) {
          if (existing != nullptr) {
            existing->value = fresh_value();
          } else {
            body.push_back(ast::BodyItem{ast::FieldAssign{field_name, fresh_value(), setting->span}});
          }
          return true;
        }
        if (at + 2 != path.size()) {
          fail(path[at + 2].span, "an override reaches one argument deep, as in `po.optim.lr=1e-6`");
          return false;
        }
        ast::CallExpr* call = existing != nullptr ? CallOf(*existing->value) : nullptr;
        if (call == nullptr) {
          fail(field_name.span, existing == nullptr
                                    ? "`" + field_name.text + "` is not set in " + owner +
                                          " itself, so it has no arguments to change"
                                    : "`" + field_name.text + "` in " + owner + " is not a call");
          return false;
        }
        const ast::Identifier& arg_name = path[at + 1];
        auto arg = std::find_if(call->args.begin(), call->args.end(),
                                [&](const ast::Argument& a) { return a.name && a.name->text == arg_name.text; });
        if (arg != call->args.end()) {
          arg->value = fresh_value();
        } else {
          call->args.push_back(ast::Argument{arg_name, fresh_value(), setting->span});
        }
        return true;
      };

      if (stage != nullptr) {
        if (last) {
          fail(name.span, "`" + name.text + "` is a stage; say which field, as in `" + name.text + ".epochs=2`");
          continue;
        }
        const ast::Identifier& stage_field = path[first + 1];
        const auto& fields = StageFieldNames();
        if (std::find(fields.begin(), fields.end(), stage_field.text) == fields.end()) {
          // An argument of the stage kind: `sft.k=3` for `stage sft = fuse_sft(k: 2) { ... }`.
          std::optional<std::vector<std::string>> kind_params = StageKindParams(module, stage->base);
          auto param = kind_params ? std::find(kind_params->begin(), kind_params->end(), stage_field.text)
                                   : std::vector<std::string>::iterator{};
          if (kind_params && param != kind_params->end()) {
            if (first + 2 != path.size()) {
              fail(path[first + 2].span, "`" + stage_field.text + "` is an argument of the stage kind `" +
                                             stage->base.name.text + "`; it is replaced whole");
              continue;
            }
            if (!stage->base.args) stage->base.args.emplace();
            std::vector<ast::Argument>& args = *stage->base.args;
            auto position = static_cast<size_t>(param - kind_params->begin());
            auto named = std::find_if(args.begin(), args.end(),
                                      [&](const ast::Argument& a) { return a.name && a.name->text == stage_field.text; });
            if (named != args.end()) {
              named->value = fresh_value();
            } else if (position < args.size() && !args[position].name) {
              args[position].value = fresh_value();  // given by position
            } else {
              args.push_back(ast::Argument{stage_field, fresh_value(), setting->span});
            }
            ++applied;
            continue;
          }
          std::vector<std::string> stage_candidates = fields;
          if (kind_params) stage_candidates.insert(stage_candidates.end(), kind_params->begin(), kind_params->end());
          std::string help;
          // An argument of the stage's objective (TRL's `beta`): point at the field that holds it.
          for (ast::BodyItem& item : stage->body) {
            auto* objective = std::get_if<ast::FieldAssign>(&item.node);
            ast::CallExpr* call =
                objective != nullptr && objective->name.text == "objective" ? CallOf(*objective->value) : nullptr;
            if (call != nullptr &&
                std::any_of(call->args.begin(), call->args.end(),
                            [&](const ast::Argument& a) { return a.name && a.name->text == stage_field.text; })) {
              help = "`" + stage_field.text + "` is an argument of the stage's objective: `--set " + stage->name.text +
                     ".objective." + stage_field.text + "=" + text.substr(text.find('=') + 1) + "`";
            }
          }
          if (help.empty()) help = DidYouMean(stage_field.text, stage_candidates);
          fail(stage_field.span,
               kind_params ? "`" + stage_field.text + "` is neither a stage field nor a parameter of `" +
                                 stage->name.text + "`'s kind `" + stage->base.name.text + "`"
                           : "stages have no field `" + stage_field.text + "`",
               help);
          continue;
        }
        if (set_in_body(stage->body, first + 1, "stage `" + stage->name.text + "`")) ++applied;
        continue;
      }
      if (let != nullptr) {
        if (!last) {
          fail(path[first + 1].span, "`" + let->name.text + "` is a `let`; it is replaced whole");
          continue;
        }
        let->value = fresh_value();
        ++applied;
        continue;
      }
      if (field != nullptr || is_field) {
        if (set_in_body(experiment->body, first, "experiment `" + experiment->name.text + "`")) ++applied;
        continue;
      }
      fail(name.span,
           "experiment `" + experiment->name.text + "` has no field, stage, let or parameter `" + name.text + "`",
           DidYouMean(name.text, candidates));
    }
    if (applied == 0) {
      if (targets.empty()) {
        Report(DiagnosticKind::InvalidOverride, setting->span, "the file has no experiment to override");
      } else if (failure) {
        auto builder = Report(DiagnosticKind::InvalidOverride, failure->span, failure->message);
        if (!failure->help.empty()) builder.Help(failure->help);
      }
    }
  }
}

std::optional<std::vector<std::string>> Sema::StageKindParams(ModuleInfo& module, const ast::StageBase& base) {
  if (!module.scope) return std::nullopt;
  // As the check finds a stage's kind (stages.cpp): the nearest binding that is a stage template.
  for (Scope* scope = module.scope; scope != nullptr; scope = scope->parent()) {
    Binding* binding = scope->FindLocal(base.name.text);
    if (binding == nullptr) continue;
    bool was_used = binding->used;  // looking is not using: the unused-import warning stays as it was
    ValueRef value = Force(*binding, base.name.span);
    binding->used = was_used;
    const auto* decl = value ? value->As<DeclVal>() : nullptr;
    if (decl == nullptr || decl->kind != DeclVal::Kind::StageTemplate) continue;
    if (decl->decl == nullptr) return std::vector<std::string>{};  // the builtin root `train`
    std::vector<std::string> names;
    for (const ast::Param& param : static_cast<const ast::StageTemplateDecl*>(decl->decl)->params) {
      names.push_back(param.name.text);
    }
    return names;
  }
  return std::nullopt;
}

void Sema::ReportIgnoredOverrides(const ast::SweepDecl& sweep, const ast::ExperimentDecl* template_decl,
                                  const std::map<std::string, std::string>& given) {
  auto how = [&](const std::string& param) {
    return "`" + param + "` is " + given.at(param) + " by sweep `" + sweep.name.text + "`";
  };
  const std::string& template_name = sweep.template_name.text;
  for (const SweepOverride& override_of : sweep_overrides_) {
    if (override_of.sweep != &sweep) continue;
    if (!override_of.path.empty() && given.count(override_of.path[0]) > 0) {
      Report(DiagnosticKind::InvalidOverride, override_of.span,
             how(override_of.path[0]) + ": each point takes it from the sweep, so `--set` cannot change it")
          .Help("change the values in the sweep `" + sweep.name.text + "` in the file");
      continue;
    }
    std::string rest;
    for (const std::string& part : override_of.path) rest += "." + part;
    Report(DiagnosticKind::InvalidOverride, override_of.span,
           "`" + sweep.name.text + "` is a sweep; `--set` changes the template it runs, not its points")
        .Help("override the template `" + template_name + "`, which changes every point of the sweep (and every "
              "other experiment made from it): `--set " + template_name +
              (rest.empty() ? ".FIELD=..." : rest + "=" + override_of.value_text) + "`");
  }
  for (const TemplateParamOverride& override_of : template_param_overrides_) {
    if (override_of.template_decl != template_decl || given.count(override_of.param) == 0) continue;
    Report(DiagnosticKind::InvalidOverride, override_of.span,
           how(override_of.param) + ": its points would ignore this override of `" + template_name + "`'s default")
        .Help("change the values in the sweep `" + sweep.name.text + "` in the file; to set `" + override_of.param +
              "` for one instance of `" + template_name + "`, name the instance: `--set NAME." + override_of.param +
              "=...`");
  }
}

}  // namespace fusec::sema
