// Objectives and weightings.
//
// An objective is elaborated where it is called, with its arguments: its body's `loss` becomes a Term whose
// level says what the loss is one value of (response, pair, or group), and from which the needs of the
// stage are read (policy and reference log-probs, lengths, groups). A declaration is also checked on its own,
// with Unknown for arguments that have no default, so a library objective is checked even if nothing uses it.
//
// A weighting is elaborated inside a stage, because `reward` means the item's own reward when items are
// responses and each pool response's reward (usable only in an aggregate) when items are pairs.

#include <algorithm>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

ValueRef ResponseName(const std::string& name, ItemKind item, SourceSpan span) {
  return values::Make(types::Opaque(TypeKind::Response), span, ResponseVal{name, item});
}

void DefineContextName(const ScopeRef& scope, const std::string& name, ItemKind item, SourceSpan span) {
  Binding binding;
  binding.name = name;
  binding.kind = BindingKind::Context;
  binding.span = span;
  binding.value = ResponseName(name, item, span);
  scope->Define(std::move(binding));
}

/// Visits the nodes a loss evaluates: the untaken branch of an `if` on a constant is dead, so the
/// reference term of `rloo(kl: 0)` does not make the stage load a reference model.
template <typename Visit>
void ForEachLiveTerm(const TermRef& term, Visit&& visit) {
  if (!term) return;
  visit(*term);
  if (term->op == TermOp::Select && term->args[0]->op == TermOp::Const && term->args[0]->name != "?") {
    ForEachLiveTerm(term->args[term->args[0]->boolean ? 1 : 2], visit);
    return;
  }
  for (const TermRef& arg : term->args) ForEachLiveTerm(arg, visit);
}

LossNeeds ComputeNeeds(const TermRef& loss) {
  LossNeeds needs;
  ForEachLiveTerm(loss, [&](const Term& term) {
    switch (term.op) {
      case TermOp::Logp:
        needs.policy_logp = true;
        if (std::find(needs.logp_of.begin(), needs.logp_of.end(), term.ref) == needs.logp_of.end()) {
          needs.logp_of.push_back(term.ref);
        }
        break;
      case TermOp::RefLogp:
        needs.reference_logp = true;
        break;
      case TermOp::Field:
        if (term.name == "len") needs.lengths = true;
        if (term.name == "reward") needs.rewards = true;
        break;
      case TermOp::Weight:
        needs.weight = true;
        break;
      case TermOp::Progress:
        needs.progress = true;
        break;
      case TermOp::Reduce:
      case TermOp::LooMean:
        needs.groups = true;
        break;
      default:
        break;
    }
  });
  return needs;
}

}  // namespace

NamedValues Sema::AbstractArguments(const std::vector<ParamSpec>& params) {
  // Defaults are checked like arguments; parameters without one stay Unknown.
  auto bound = BindParameters("", SourceSpan{}, params, {}, nullptr, DataContext{}, SourceSpan{},
                              MissingArguments::Unknown);
  if (bound) return *bound;
  NamedValues unknown;  // a default was wrong (and reported): check the rest with Unknown values
  for (const ParamSpec& param : params) unknown.emplace_back(param.name, values::Unknown(param.type, param.span));
  return unknown;
}

void Sema::RunChecks(const std::vector<ast::BodyItem>& body, const ScopeRef& scope, const DataContext& context,
                     SourceSpan use, const std::string& owner) {
  for (const ast::BodyItem& item : body) {
    const auto* check = std::get_if<ast::CheckStmt>(&item.node);
    if (check == nullptr) continue;
    ValueRef condition = Coerce(Eval(*check->condition, scope, context), types::Bool(),
                                std::string(check->is_error ? "an `error if`" : "a `warn if`") + " condition",
                                check->condition->span);
    if (condition->As<TermVal>() != nullptr) {
      Report(DiagnosticKind::NotInThisContext, check->condition->span,
             "a check must be decided before training, but this depends on the data");
      continue;
    }
    const auto* fires = condition->As<bool>();
    if (fires == nullptr || !*fires) continue;
    // `{name}` in the message is replaced by the value bound to `name`.
    std::string message;
    for (size_t i = 0; i < check->message.size(); ++i) {
      if (check->message[i] == '{') {
        size_t close = check->message.find('}', i);
        if (close != std::string::npos) {
          std::string name = check->message.substr(i + 1, close - i - 1);
          if (Binding* binding = scope->Find(name); binding != nullptr && binding->value) {
            message += Shown(binding->value);
            i = close;
            continue;
          }
        }
      }
      message.push_back(check->message[i]);
    }
    DiagnosticKind kind = check->is_error ? DiagnosticKind::UserError : DiagnosticKind::UserWarning;
    if (use.valid()) {
      Report(kind, use, message).Note(check->condition->span, "from this check in `" + owner + "`");
    } else {
      Report(kind, check->condition->span, message);
    }
  }
}

void Sema::DefineLets(const std::vector<ast::BodyItem>& body, const ScopeRef& scope, const DataContext& context,
                      bool warn_if_unused) {
  auto shared_context = std::make_shared<const DataContext>(context);
  for (const ast::BodyItem& item : body) {
    const auto* let = std::get_if<ast::LetDecl>(&item.node);
    if (let == nullptr) continue;
    Binding binding;
    binding.name = let->name.text;
    binding.kind = BindingKind::Let;
    binding.span = let->name.span;
    binding.warn_if_unused = warn_if_unused;
    if (let->params) {
      binding.value = values::Make(types::Opaque(TypeKind::Function), let->span, FunctionVal{let, scope});
    } else {
      binding.state = Binding::State::Pending;
      binding.expr = let->value.get();
      binding.env = scope;
      binding.context = shared_context;
    }
    auto [existing, inserted] = scope->Define(std::move(binding));
    if (!inserted) {
      Report(DiagnosticKind::DuplicateName, let->name.span, "`" + let->name.text + "` is defined twice in this body")
          .Note(existing->span, "first defined here");
    }
  }
}

void Sema::CheckUnforcedLets(const ScopeRef& scope) {
  for (Binding* binding : scope->ordered()) {
    if (binding->kind != BindingKind::Let || binding->state != Binding::State::Pending) continue;
    bool was_used = binding->used;
    Force(*binding, binding->span);
    binding->used = was_used;
  }
}

void Sema::WarnUnused(const ScopeRef& scope) {
  for (Binding* binding : scope->ordered()) {
    if (!binding->warn_if_unused || binding->used || binding->name.starts_with("_")) continue;
    Report(DiagnosticKind::UnusedBinding, binding->span, "`" + binding->name + "` is never used")
        .Help("remove it, or start its name with `_` to keep it");
  }
}

ValueRef Sema::InstantiateObjective(const DeclVal& decl, SourceSpan use, const NamedValues& args) {
  const auto& objective = *static_cast<const ast::ObjectiveDecl*>(decl.decl);
  const auto& params = ResolveParams(objective.params, decl.env);
  ScopeRef param_scope = BindScope(decl.env, params, args);
  bool used_elsewhere = use != decl.name_span;
  RunChecks(objective.body, param_scope, DataContext{}, used_elsewhere ? use : SourceSpan{}, decl.name);
  std::optional<InstantiationNote> note;
  if (used_elsewhere) note.emplace(*this, use, "in objective `" + decl.name + "` used here");

  // The implicit names: declared by `per ...`, or `y`, `chosen` and `rejected`.
  DataContext context;
  context.kind = DataContext::Kind::Objective;
  ScopeRef context_scope = MakeScope(param_scope);
  std::optional<ObjectiveUnit> declared_unit;
  std::vector<std::string> names;
  bool ok = true;
  if (objective.unit) {
    const ast::UnitClause& unit = *objective.unit;
    bool pair = unit.unit.text == "pair";
    if (!pair && unit.unit.text != "response") {
      auto builder = Report(DiagnosticKind::UnknownName, unit.unit.span, "unknown unit `" + unit.unit.text + "`");
      std::string hint = DidYouMean(unit.unit.text, {"response", "pair"});
      builder.Help(hint.empty() ? "an objective is `per response(y)`, `per pair(chosen, rejected)` or "
                                  "`per group of ...`"
                                : hint);
      ok = false;
    } else if (!pair && unit.names.size() != 1) {
      Report(DiagnosticKind::TypeMismatch, unit.span, "a per-response objective names one response, as in `response(y)`");
      ok = false;
    } else if (pair && unit.names.size() < 2) {
      Report(DiagnosticKind::TypeMismatch, unit.span, "a pair has at least two roles, as in `pair(chosen, rejected)`");
      ok = false;
    }
    context.item = pair ? ItemKind::Pair : ItemKind::Response;
    declared_unit = unit.group ? (pair ? ObjectiveUnit::GroupOfPairs : ObjectiveUnit::GroupOfResponses)
                               : (pair ? ObjectiveUnit::Pair : ObjectiveUnit::Response);
    for (const ast::Identifier& name : unit.names) {
      if (context_scope->FindLocal(name.text) != nullptr) {
        Report(DiagnosticKind::DuplicateName, name.span, "`" + name.text + "` is named twice");
        ok = false;
        continue;
      }
      DefineContextName(context_scope, name.text, context.item, name.span);
      names.push_back(name.text);
      if (pair) context.roles.push_back(name.text);
    }
  } else {
    DefineContextName(context_scope, "y", ItemKind::Response, SourceSpan{});
    DefineContextName(context_scope, "chosen", ItemKind::Pair, SourceSpan{});
    DefineContextName(context_scope, "rejected", ItemKind::Pair, SourceSpan{});
    context.roles = {"chosen", "rejected"};
  }

  ScopeRef body_scope = MakeScope(context_scope);
  DefineLets(objective.body, body_scope, context, /*warn_if_unused=*/true);
  const ast::FieldAssign* loss_field = nullptr;
  for (const ast::BodyItem& item : objective.body) {
    if (const auto* stage = std::get_if<ast::StageDecl>(&item.node)) {
      Report(DiagnosticKind::MisplacedDeclaration, stage->name.span, "a stage cannot be declared in an objective");
      ok = false;
    }
    const auto* field = std::get_if<ast::FieldAssign>(&item.node);
    if (field == nullptr) continue;
    if (field->name.text != "loss") {
      auto builder = Report(DiagnosticKind::UnknownField, field->name.span,
                            "objectives have no field `" + field->name.text + "`");
      builder.Help(DidYouMean(field->name.text, {"loss"}).empty()
                       ? "an objective sets `loss`; helpers are declared with `let`"
                       : "did you mean `loss`?");
      ok = false;
      continue;
    }
    if (loss_field != nullptr) {
      Report(DiagnosticKind::DuplicateField, field->name.span, "`loss` is set twice")
          .Note(loss_field->name.span, "first set here");
      ok = false;
      continue;
    }
    loss_field = field;
  }
  if (loss_field == nullptr) {
    Report(DiagnosticKind::MissingField, decl.name_span, "objective `" + decl.name + "` has no `loss`")
        .Help("add `loss = ...`, an expression over `logp`, `ref_logp`, `len`, `reward` and `weight`");
    return values::Error(use);
  }
  ValueRef loss = Coerce(Eval(*loss_field->value, body_scope, context), types::Float(), "the loss",
                         loss_field->value->span);
  CheckUnforcedLets(body_scope);
  WarnUnused(body_scope);
  if (loss->is_error() || !ok) return values::Error(use);

  const ast::Expr& loss_expr = *loss_field->value;
  const auto* term_value = loss->As<TermVal>();
  if (term_value == nullptr) {
    if (!loss->is_unknown()) {
      Report(DiagnosticKind::LossLevel, loss_expr.span, "the loss is a constant; it must depend on the data")
          .Help("a loss reads responses, as in `-logp(y) / len(y)`");
      return values::Error(use);
    }
    return values::Unknown(types::Opaque(TypeKind::Objective), use);
  }
  TermRef term = term_value->term;
  LossNeeds needs = ComputeNeeds(term);
  std::optional<ObjectiveUnit> unit;
  if (term->level == Level::Const || term->level == Level::Step) {
    Report(DiagnosticKind::LossLevel, loss_expr.span,
           "the loss is the same for every response; it must depend on the responses")
        .Help("a loss reads responses, as in `-logp(y) / len(y)`");
    return values::Error(use);
  }
  if (term->item == ItemKind::Unknown) {
    Report(DiagnosticKind::LossLevel, loss_expr.span, "the loss reads no response")
        .Help("read one, as in `logp(y)` or `logp(chosen)`");
    return values::Error(use);
  }
  bool pair = term->item == ItemKind::Pair;
  if (term->level == Level::Group) {
    unit = pair ? ObjectiveUnit::GroupOfPairs : ObjectiveUnit::GroupOfResponses;
  } else if (needs.groups) {
    Report(DiagnosticKind::LossLevel, loss_expr.span,
           std::string("the loss uses group statistics (`loo_mean`, `sum`, `mean`), so it must be one value per "
                       "group, but it is one value per ") +
               (pair ? "pair" : "response"))
        .Help("reduce it over the group, as in `sum(...)` or `mean(...)`");
    return values::Error(use);
  } else {
    unit = pair ? ObjectiveUnit::Pair : ObjectiveUnit::Response;
  }
  if (declared_unit && *declared_unit != *unit) {
    Report(DiagnosticKind::LossLevel, loss_expr.span,
           std::string("the loss is ") + UnitName(*unit) + ", but the objective is declared " +
               UnitName(*declared_unit))
        .Note(objective.unit->span, "declared here");
    return values::Error(use);
  }
  if (!objective.unit) {
    // The implicit names in use: y for response objectives, the pair roles otherwise.
    names = pair ? std::vector<std::string>{"chosen", "rejected"} : std::vector<std::string>{"y"};
  }
  if (!needs.policy_logp) {
    Report(DiagnosticKind::LossIgnoresPolicy, loss_expr.span,
           "the loss never reads `logp`, so training cannot change the model")
        .Help("a loss reads the policy's log-probabilities, as in `-logp(y)`");
  }
  auto checked = std::make_shared<CheckedObjective>();
  checked->name = decl.name;
  checked->declaration = decl.name_span;
  checked->use = use;
  checked->args = args;
  checked->unit = *unit;
  checked->names = names;
  checked->loss = term;
  checked->needs = needs;
  return values::Make(types::Opaque(TypeKind::Objective), use, ObjectiveVal{checked});
}

void Sema::CheckObjectiveDecl(const ast::ObjectiveDecl& decl, const ScopeRef& env) {
  const auto& params = ResolveParams(decl.params, env);
  NamedValues args = AbstractArguments(params);
  DeclVal value{DeclVal::Kind::Objective, &decl, env, decl.name.text, decl.name.span};
  InstantiateObjective(value, decl.name.span, args);
}

ValueRef Sema::EvalWeightingBody(const WeightingVal& weighting, const DataContext& context, SourceSpan use) {
  ScopeRef scope = weighting.env;
  const ast::Expr* body = weighting.expr;
  std::optional<InstantiationNote> note;
  if (weighting.decl != nullptr) {
    const auto& params = ResolveParams(weighting.decl->params, weighting.env);
    scope = BindScope(weighting.env, params, weighting.args);
    body = weighting.decl->body.get();
    if (use != weighting.decl->name.span) {
      note.emplace(*this, use, "in weighting `" + weighting.decl->name.text + "` used here");
    }
  }
  if (body == nullptr) return values::Error(use);
  // Roles are visible when the items are pairs (and, checking a declaration on its own, always).
  ScopeRef roles = MakeScope(scope);
  std::vector<std::string> role_names = context.roles;
  if (context.abstract && role_names.empty()) role_names = {"chosen", "rejected"};
  for (const std::string& role : role_names) DefineContextName(roles, role, ItemKind::Pair, SourceSpan{});
  DataContext weight_context = context;
  weight_context.roles = role_names;
  return Eval(*body, roles, weight_context);
}

CheckedWeighting Sema::ElaborateWeighting(const ValueRef& weighting, const DataContext& context, SourceSpan use) {
  CheckedWeighting checked;
  checked.span = weighting->span.valid() ? weighting->span : use;
  checked.description = ToString(weighting);
  ValueRef value = weighting;
  for (int depth = 0; depth < 8; ++depth) {
    const auto* closure = value->As<WeightingVal>();
    if (closure == nullptr) break;
    value = EvalWeightingBody(*closure, context, use);
  }
  if (value->is_error() || value->is_unknown()) return checked;
  if (value->As<WeightingVal>() != nullptr) {
    Report(DiagnosticKind::ExpansionTooLarge, use, "weightings refer to each other too deeply");
    return checked;
  }
  value = Coerce(value, types::Float(), "a weight", use);
  if (value->is_error() || value->is_unknown()) return checked;
  TermRef term = ToTerm(value, use);
  if (term->level == Level::Pool) {
    Report(DiagnosticKind::LevelMismatch, term->span,
           "a weight must be one value per item, but this is one value per response of the prompt's pool")
        .Help("the items are pairs here: aggregate first, as in `softmax(max(reward) over source) over sources`, or "
              "read a role, as in `reward(chosen)`");
    return checked;
  }
  checked.weight = term;
  return checked;
}

void Sema::CheckWeightingDecl(const ast::WeightingDecl& decl, const ScopeRef& env) {
  const auto& params = ResolveParams(decl.params, env);
  NamedValues args = AbstractArguments(params);
  WeightingVal weighting{nullptr, &decl, args, env, decl.name.text};
  DataContext context;
  context.kind = DataContext::Kind::Weight;
  context.abstract = true;
  ValueRef value = values::Make(types::Opaque(TypeKind::Weighting), decl.name.span, weighting);
  ElaborateWeighting(value, context, decl.name.span);
}

}  // namespace fusec::sema
