// Expressions: names, calls, arguments, operators, types, ranges and levels.
//
// Eval() is a partial evaluator: constants are computed, data-dependent values become Terms whose levels
// are checked as they are combined, and Error values (already reported) silently absorb whatever is built
// on them. The data context decides which primitives exist: `reward` alone means the current response's
// reward in a selection or weighting, and is an error in a hyperparameter.

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

constexpr size_t kMaxExpansion = 2'000'000;
constexpr size_t kMaxInlineDepth = 64;
/// Deepest list or record value (`[[[...]]]` built up through `let`s, which the parser's nesting bound does
/// not see). The printers, type checks and destructors of values recurse over their nesting, so a bound
/// here keeps every later walk within the stack.
constexpr size_t kMaxValueNesting = 200;

/// Nesting of list and record types, counted no further than `limit + 1`.
size_t TypeNesting(const Type& type, size_t limit) {
  if (limit == 0) return 1;
  size_t deepest = 0;
  if (type.element) deepest = TypeNesting(*type.element, limit - 1);
  for (const auto& [name, field] : type.fields) {
    if (field) deepest = std::max(deepest, TypeNesting(*field, limit - 1));
  }
  return (type.kind == TypeKind::List || type.kind == TypeKind::Record ? 1 : 0) + deepest;
}

bool IsNumberType(const Type& type) { return type.kind == TypeKind::Int || type.kind == TypeKind::Float; }

ScalarType ScalarOf(const Type& type) {
  switch (type.kind) {
    case TypeKind::Int:
      return ScalarType::Int;
    case TypeKind::Bool:
      return ScalarType::Bool;
    case TypeKind::String:
      return ScalarType::String;
    default:
      return ScalarType::Float;
  }
}

TypeRef TypeOfScalar(ScalarType scalar) {
  switch (scalar) {
    case ScalarType::Int:
      return types::Int();
    case ScalarType::Bool:
      return types::Bool();
    case ScalarType::String:
      return types::String();
    case ScalarType::Float:
      return types::Float();
  }
  return types::Float();
}

bool IsComparison(ast::BinaryOp op) {
  return op == ast::BinaryOp::Eq || op == ast::BinaryOp::Ne || op == ast::BinaryOp::Lt ||
         op == ast::BinaryOp::Le || op == ast::BinaryOp::Gt || op == ast::BinaryOp::Ge;
}

bool IsLogical(ast::BinaryOp op) { return op == ast::BinaryOp::And || op == ast::BinaryOp::Or; }

/// The `a` in "a per-pair value".
std::string Article(const std::string& phrase) {
  return (!phrase.empty() && std::string("aeiou").find(phrase[0]) != std::string::npos ? "an " : "a ") + phrase;
}

}  // namespace

// ---------------------------------------------------------------------------------------------------------
// Ranges

bool Range::Contains(double value) const {
  if (low && (low_inclusive ? value < *low : value <= *low)) return false;
  if (high && (high_inclusive ? value > *high : value >= *high)) return false;
  return true;
}

std::string Range::ToString() const {
  // Whole bounds print without a fraction: `>= 1`, `in [0, 1)`.
  auto bound = [](double value) {
    return value == std::floor(value) && std::abs(value) < 1e15 ? std::to_string(static_cast<int64_t>(value))
                                                                : FormatFloat(value);
  };
  if (low && high) {
    return std::string("in ") + (low_inclusive ? "[" : "(") + bound(*low) + ", " + bound(*high) +
           (high_inclusive ? "]" : ")");
  }
  if (low) return std::string(low_inclusive ? ">= " : "> ") + bound(*low);
  if (high) return std::string(high_inclusive ? "<= " : "< ") + bound(*high);
  return "any value";
}

std::vector<std::string> ParamNames(const std::vector<ParamSpec>& params) {
  std::vector<std::string> names;
  names.reserve(params.size());
  for (const ParamSpec& param : params) names.push_back(param.name);
  return names;
}

bool IsResponseField(const std::string& name) {
  return name == "reward" || name == "len" || name == "source" || name == "index";
}

// ---------------------------------------------------------------------------------------------------------
// Reporting

DiagnosticBuilder Sema::Report(DiagnosticKind kind, SourceSpan span, std::string message) {
  DiagnosticBuilder builder = diagnostics_.Report(kind, span, std::move(message));
  for (const auto& [note_span, note] : instantiation_notes_) builder.Note(note_span, note);
  return builder;
}

Sema::InstantiationNote::InstantiationNote(Sema& sema, SourceSpan span, std::string note) : sema_(sema) {
  sema_.instantiation_notes_.emplace_back(span, std::move(note));
}

Sema::InstantiationNote::~InstantiationNote() { sema_.instantiation_notes_.pop_back(); }

bool Sema::ChargeExpansion(SourceSpan span, size_t amount) {
  expansion_used_ += amount;
  if (expansion_used_ <= kMaxExpansion) return true;
  if (!expansion_reported_) {
    expansion_reported_ = true;
    Report(DiagnosticKind::ExpansionTooLarge, span,
           "expanding functions and templates produced more than " + std::to_string(kMaxExpansion) +
               " expression nodes")
        .Help("a function that calls another several times doubles the expression at each level; use `let`");
  }
  return false;
}

std::string Sema::Describe(const ast::Expr& expr) const {
  std::string text(sources_.Text(expr.span));
  for (char& c : text) {
    if (c == '\n' || c == '\t') c = ' ';
  }
  if (text.size() > 48) text = text.substr(0, 45) + "...";
  return text;
}

// ---------------------------------------------------------------------------------------------------------
// Terms and levels

TermRef Sema::MakeTerm(Term term) {
  ChargeExpansion(term.span);
  return std::make_shared<const Term>(std::move(term));
}

TermRef Sema::ToTerm(const ValueRef& value, SourceSpan span) {
  if (const auto* term = value->As<TermVal>()) return term->term;
  Term constant;
  constant.op = TermOp::Const;
  constant.span = value->span.valid() ? value->span : span;
  if (value->is_unknown()) {
    constant.type = ScalarOf(*value->type);
    constant.name = "?";  // an Unknown parameter: printed as `<float>`, never reaches a checked program
    constant.text = "<" + ToString(value->type) + ">";
    return MakeTerm(std::move(constant));
  }
  if (const auto* i = value->As<int64_t>()) {
    constant.type = ScalarType::Int;
    constant.number = static_cast<double>(*i);
  } else if (const auto* f = value->As<double>()) {
    // Terms are computed in 32-bit floats (losses on tensors): a constant beyond them would be inf there.
    if (!(std::isfinite(*f) && std::abs(*f) <= std::numeric_limits<float>::max())) {
      Report(DiagnosticKind::OutOfRange, constant.span,
             "a constant in a data-dependent expression must be a finite number of at most 3.4e38 in size (fusec "
             "computes these in 32-bit floats), got `" + Shown(value) + "`")
          .Help("use a smaller value");
    }
    constant.type = ScalarType::Float;
    constant.number = *f;
  } else if (const auto* b = value->As<bool>()) {
    constant.type = ScalarType::Bool;
    constant.boolean = *b;
  } else if (const auto* s = value->As<std::string>()) {
    constant.type = ScalarType::String;
    constant.text = *s;
  }
  return MakeTerm(std::move(constant));
}

ValueRef Sema::TermValue(TermRef term, SourceSpan span) {
  TypeRef type = TypeOfScalar(term->type);
  return values::Make(type, span, TermVal{std::move(term)});
}

bool Sema::IsScalarLike(const ValueRef& value) const {
  if (value->As<TermVal>() != nullptr) return true;
  switch (value->type->kind) {
    case TypeKind::Int:
    case TypeKind::Float:
    case TypeKind::Bool:
    case TypeKind::String:
      return true;
    default:
      return false;
  }
}

std::optional<std::pair<Level, ItemKind>> Sema::CombineLevels(const std::vector<TermRef>& operands,
                                                             SourceSpan span, const std::string& operation) {
  Level level = Level::Const;
  ItemKind item = ItemKind::Unknown;
  const Term* item_source = nullptr;  // the operand that fixed `item`, for the message
  const Term* pool_source = nullptr;
  const Term* item_level_source = nullptr;
  for (const TermRef& operand : operands) {
    if (operand->level == Level::Pool) {
      pool_source = operand.get();
    } else if (operand->level == Level::Item) {
      item_level_source = operand.get();
    }
    if (operand->item != ItemKind::Unknown && (operand->level == Level::Item || operand->level == Level::Group)) {
      if (item != ItemKind::Unknown && item != operand->item) {
        std::string a = LevelName(item_source->level, item_source->item);
        std::string b = LevelName(operand->level, operand->item);
        Report(DiagnosticKind::LevelMismatch, span,
               "cannot " + operation + " " + Article(a) + " value with " + Article(b) + " value")
            .Note(item_source->span, "this is " + a)
            .Note(operand->span, "this is " + b)
            .Help("an objective is either per response (`y`) or per pair (`chosen`, `rejected`)");
        return std::nullopt;
      }
      if (item == ItemKind::Unknown) {
        item = operand->item;
        item_source = operand.get();
      }
    }
    auto rank = [](Level l) {
      switch (l) {
        case Level::Const:
          return 0;
        case Level::Step:
          return 1;
        case Level::Group:
          return 2;
        case Level::Pool:
          return 3;
        case Level::Item:
          return 4;
      }
      return 0;
    };
    if (rank(operand->level) > rank(level)) level = operand->level;
  }
  if (pool_source != nullptr && item_level_source != nullptr) {
    std::string b = LevelName(item_level_source->level, item_level_source->item);
    Report(DiagnosticKind::LevelMismatch, span,
           "cannot " + operation + " a per-response value of the prompt's pool with " + Article(b) + " value")
        .Note(pool_source->span, "this is one value per response of the pool")
        .Note(item_level_source->span, "this is " + b)
        .Help("aggregate pool values first, as in `max(reward) over source`");
    return std::nullopt;
  }
  return std::make_pair(level, item);
}

// ---------------------------------------------------------------------------------------------------------
// Bindings

ValueRef Sema::Force(Binding& binding, SourceSpan use) {
  binding.used = true;
  switch (binding.state) {
    case Binding::State::Ready:
      return binding.value ? binding.value : values::Error(use);
    case Binding::State::Evaluating:
      Report(DiagnosticKind::CyclicDefinition, use, "`" + binding.name + "` is defined in terms of itself")
          .Note(binding.span, "`" + binding.name + "` is defined here");
      return values::Error(use);
    case Binding::State::Pending: {
      binding.state = Binding::State::Evaluating;
      DataContext none;
      const DataContext& context = binding.context ? *binding.context : none;
      ValueRef value = Eval(*binding.expr, binding.env, context);
      binding.value = value;
      binding.state = Binding::State::Ready;
      return value;
    }
  }
  return values::Error(use);
}

// ---------------------------------------------------------------------------------------------------------
// Types and ranges

ValueRef Sema::Coerce(const ValueRef& value, const TypeRef& expected, const std::string& what, SourceSpan use,
                      bool accepts_none) {
  if (value->is_error() || expected->kind == TypeKind::Error) return value;
  SourceSpan at = value->span.valid() ? value->span : use;
  auto mismatch = [&](const std::string& got) {
    auto builder =
        Report(DiagnosticKind::TypeMismatch, at, what + " expects `" + ToString(expected) + "`, got " + got);
    if (at != use && use.valid()) builder.Note(use, "used here");
    if (expected->kind == TypeKind::Int && value->As<double>() != nullptr) {
      builder.Help("use a whole number");
    } else if (expected->kind == TypeKind::Enum && value->As<std::string>() != nullptr) {
      builder.Help("write the name without quotes, one of: " + [&] {
        std::string list;
        for (auto name : GetEnumInfo(expected->enum_kind).values) {
          list += (list.empty() ? "`" : ", `") + std::string(name) + "`";
        }
        return list;
      }());
    } else if (value->As<ResponseVal>() != nullptr) {
      const auto& name = value->As<ResponseVal>()->name;
      builder.Help("`" + name + "` is a response; use `logp(" + name + ")`, `len(" + name + ")` or `reward(" + name +
                   ")`");
    }
    return values::Error(at);
  };
  if (value->is_none()) {
    if (accepts_none || expected->kind == TypeKind::None) return value;
    // An enum may spell one of its values `none` (`shard = none`): the keyword is that value.
    if (expected->kind == TypeKind::Enum) {
      const EnumInfo& wanted = GetEnumInfo(expected->enum_kind);
      for (size_t i = 0; i < wanted.values.size(); ++i) {
        if (wanted.values[i] == "none") return values::Enum(expected->enum_kind, i, value->span);
      }
    }
    return mismatch("`none`");
  }
  if (const auto* term = value->As<TermVal>()) {
    ScalarType scalar = term->term->type;
    bool fits = (expected->kind == TypeKind::Float && (scalar == ScalarType::Float || scalar == ScalarType::Int)) ||
                (expected->kind == TypeKind::Int && scalar == ScalarType::Int) ||
                (expected->kind == TypeKind::Bool && scalar == ScalarType::Bool) ||
                (expected->kind == TypeKind::String && scalar == ScalarType::String);
    if (fits) return value;
    if (IsScalarLike(value) && (expected->kind == TypeKind::Float || expected->kind == TypeKind::Bool ||
                                expected->kind == TypeKind::Int || expected->kind == TypeKind::String)) {
      return mismatch("`" + ToString(TypeOfScalar(scalar)) + "`");
    }
    return mismatch("a data-dependent `" + ToString(TypeOfScalar(scalar)) + "`");
  }
  if (value->is_unknown()) {
    if (IsAssignable(*value->type, *expected)) return values::Unknown(expected, value->span);
    return mismatch("`" + ToString(value->type) + "`");
  }
  // The runtime computes in float32 and float64 tensors: a float the checker accepts must be finite and fit
  // a float32 (`dpo(beta: 1e300)` passed the checker, then overflowed in the runtime). Folded constants
  // (`1e300 * 1e300` is inf) are refused here too, at the expression.
  if (expected->kind == TypeKind::Float) {
    if (std::optional<double> number = value->AsNumber();
        number && !(std::isfinite(*number) && std::abs(*number) <= std::numeric_limits<float>::max())) {
      Report(DiagnosticKind::OutOfRange, at,
             what + " must be a finite number of at most 3.4e38 in size (fusec trains in 32-bit floats), got `" +
                 Shown(value) + "`")
          .Help("use a smaller value");
      return values::Error(at);
    }
  }
  if (expected->kind == TypeKind::Float && value->type->kind == TypeKind::Int) {
    return values::Float(static_cast<double>(*value->As<int64_t>()), value->span);
  }
  // Enum values are builtin names shared by all enums (`auto` is a precision, a device and a chat
  // template): a value of another enum with the same name is that name in the expected enum.
  if (expected->kind == TypeKind::Enum && value->type->kind == TypeKind::Enum &&
      value->type->enum_kind != expected->enum_kind) {
    std::string_view name = GetEnumInfo(value->type->enum_kind).values[value->As<EnumVal>()->index];
    const EnumInfo& wanted = GetEnumInfo(expected->enum_kind);
    for (size_t i = 0; i < wanted.values.size(); ++i) {
      if (wanted.values[i] == name) return values::Enum(expected->enum_kind, i, value->span);
    }
  }
  if (expected->kind == TypeKind::List && value->type->kind == TypeKind::List) {
    const auto* list = value->As<ListVal>();
    if (list == nullptr) return values::Unknown(expected, value->span);
    ListVal coerced;
    bool ok = true;
    for (const ValueRef& element : list->elements) {
      ValueRef c = Coerce(element, expected->element, what, use);
      ok = ok && !c->is_error();
      coerced.elements.push_back(c);
    }
    if (!ok) return values::Error(at);
    return values::Make(expected, value->span, std::move(coerced));
  }
  if (IsAssignable(*value->type, *expected)) return value;
  std::string shown = ToString(*value);
  std::string got = "`" + ToString(value->type) + "`";
  if (value->is_known() && shown.size() <= 40 && IsScalarLike(value)) got += " (`" + shown + "`)";
  return mismatch(got);
}

std::string Sema::Shown(const ValueRef& value) const {
  if (value->is_known() && IsScalarLike(value) && value->span.valid()) {
    std::string written(sources_.Text(value->span));
    if (!written.empty() && written.size() <= 40 && written.find('\n') == std::string::npos) return written;
  }
  return ToString(*value);
}

bool Sema::CheckRange(const ValueRef& value, const Range& range, const std::string& what, SourceSpan use) {
  if (const auto* list = value->As<ListVal>()) {
    bool ok = true;
    for (const ValueRef& element : list->elements) ok = CheckRange(element, range, what, use) && ok;
    return ok;
  }
  std::optional<double> number = value->AsNumber();
  if (!number || range.Contains(*number)) return true;
  SourceSpan at = value->span.valid() ? value->span : use;
  auto builder =
      Report(DiagnosticKind::OutOfRange, at, what + " must be " + range.ToString() + ", got `" + Shown(value) + "`");
  if (at != use && use.valid()) builder.Note(use, "used here");
  return false;
}

const std::vector<ParamSpec>& Sema::ResolveParams(const std::vector<ast::Param>& params, const ScopeRef& env) {
  auto cached = resolved_params_.find(&params);
  if (cached != resolved_params_.end()) return cached->second;
  std::vector<ParamSpec> specs;
  std::map<std::string, SourceSpan> seen;
  DataContext none;
  std::function<TypeRef(const ast::TypeExpr&)> resolve_type = [&](const ast::TypeExpr& type) -> TypeRef {
    if (type.is_record) {
      std::vector<std::pair<std::string, TypeRef>> fields;
      for (const ast::TypeField& field : type.record_fields) fields.emplace_back(field.name.text, resolve_type(field.type));
      return types::Record(std::move(fields));
    }
    if (type.name.text == "list") {
      if (type.args.size() != 1) {
        Report(DiagnosticKind::UnknownType, type.span, "`list` takes one element type, as in `list[float]`");
        return types::Error();
      }
      return types::List(resolve_type(type.args[0]));
    }
    TypeRef named = TypeByName(type.name.text);
    if (!named) {
      auto builder = Report(DiagnosticKind::UnknownType, type.name.span, "unknown type `" + type.name.text + "`");
      std::string hint = DidYouMean(type.name.text, TypeNames());
      if (!hint.empty()) builder.Help(hint);
      return types::Error();
    }
    if (!type.args.empty()) {
      Report(DiagnosticKind::UnknownType, type.span, "type `" + type.name.text + "` takes no parameters");
    }
    return named;
  };
  for (const ast::Param& param : params) {
    ParamSpec spec;
    spec.name = param.name.text;
    spec.span = param.name.span;
    auto [it, inserted] = seen.emplace(spec.name, param.name.span);
    if (!inserted) {
      Report(DiagnosticKind::DuplicateName, param.name.span, "parameter `" + spec.name + "` is declared twice")
          .Note(it->second, "first declared here");
    }
    spec.type = resolve_type(param.type);
    if (spec.type->kind == TypeKind::Weighting) spec.mode = ArgMode::Closure;
    if (param.constraint) {
      const ast::Constraint& constraint = *param.constraint;
      bool numeric = IsNumberType(*spec.type) ||
                     (spec.type->kind == TypeKind::List && IsNumberType(*spec.type->element));
      if (!numeric && !IsError(*spec.type)) {
        Report(DiagnosticKind::TypeMismatch, constraint.span,
               "a range needs a numeric parameter, but `" + spec.name + "` is `" + ToString(spec.type) + "`");
      } else {
        auto bound = [&](const ast::ExprPtr& expr) -> std::optional<double> {
          if (!expr) return std::nullopt;
          ValueRef value = Eval(*expr, env, none);
          if (auto number = value->AsNumber()) return number;
          if (!value->is_error()) {
            Report(DiagnosticKind::TypeMismatch, expr->span, "a range bound must be a number");
          }
          return std::nullopt;
        };
        Range range;
        switch (constraint.kind) {
          case ast::Constraint::Kind::Greater:
            range.low = bound(constraint.low);
            range.low_inclusive = false;
            break;
          case ast::Constraint::Kind::GreaterEqual:
            range.low = bound(constraint.low);
            break;
          case ast::Constraint::Kind::Less:
            range.high = bound(constraint.low);
            range.high_inclusive = false;
            break;
          case ast::Constraint::Kind::LessEqual:
            range.high = bound(constraint.low);
            break;
          case ast::Constraint::Kind::Interval:
            range.low = bound(constraint.low);
            range.high = bound(constraint.high);
            range.low_inclusive = constraint.low_inclusive;
            range.high_inclusive = constraint.high_inclusive;
            if (range.low && range.high && *range.low > *range.high) {
              Report(DiagnosticKind::OutOfRange, constraint.span, "the range of `" + spec.name + "` is empty");
            }
            break;
        }
        if (range.low || range.high) spec.range = range;
      }
    }
    if (param.default_value) {
      spec.default_expr = param.default_value.get();
      spec.default_env = env;
    }
    specs.push_back(std::move(spec));
  }
  return resolved_params_.emplace(&params, std::move(specs)).first->second;
}

ScopeRef Sema::BindScope(const ScopeRef& parent, const std::vector<ParamSpec>& params, const NamedValues& values) {
  ScopeRef scope = MakeScope(parent);
  for (size_t i = 0; i < params.size() && i < values.size(); ++i) {
    Binding binding;
    binding.name = params[i].name;
    binding.kind = BindingKind::Param;
    binding.span = params[i].span;
    binding.value = values[i].second;
    scope->Define(std::move(binding));
  }
  return scope;
}

ValueRef Sema::EvalArgument(const ast::Expr& expr, const ParamSpec& param, const ScopeRef& scope,
                            const DataContext& context) {
  switch (param.mode) {
    case ArgMode::Closure: {
      // A call of a declared weighting binds its arguments now (`softmax_over_sources(tau: tau)` becomes
      // `softmax_over_sources(tau: 1.0)`); anything else waits for a stage to give it a context.
      if (const auto* call = expr.As<ast::CallExpr>()) {
        if (const auto* name = call->callee->As<ast::NameExpr>()) {
          Binding* binding = scope->Find(name->name);
          const DeclVal* decl = binding != nullptr && binding->value ? binding->value->As<DeclVal>() : nullptr;
          if (decl != nullptr && decl->kind == DeclVal::Kind::Weighting) return Eval(expr, scope, DataContext{});
        }
      }
      WeightingVal closure;
      closure.expr = &expr;
      closure.env = scope;
      closure.description = Describe(expr);
      return values::Make(types::Opaque(TypeKind::Weighting), expr.span, std::move(closure));
    }
    case ArgMode::ResponseExpr: {
      DataContext response;
      response.kind = DataContext::Kind::Response;
      response.abstract = context.abstract;
      return Eval(expr, scope, response);
    }
    case ArgMode::Value:
      break;
  }
  return Eval(expr, scope, context);
}

namespace {

void ReportUnknownParameter(Sema& sema, const std::string& callee, const ast::Identifier& name,
                            const std::vector<std::string>& names) {
  auto builder = sema.Report(DiagnosticKind::UnknownArgument, name.span,
                             "`" + callee + "` has no parameter `" + name.text + "`");
  std::string hint = DidYouMean(name.text, names);
  if (!hint.empty()) {
    builder.Help(hint);
  } else if (names.empty()) {
    builder.Help("`" + callee + "` takes no arguments");
  } else {
    std::string list;
    for (const std::string& n : names) list += (list.empty() ? "`" : ", `") + n + "`";
    builder.Help("its parameters are " + list);
  }
}

}  // namespace

std::optional<NamedValues> Sema::BindParameters(const std::string& callee, SourceSpan use,
                                                const std::vector<ParamSpec>& params,
                                                const std::vector<GivenArgument>& given, const ScopeRef& scope,
                                                const DataContext& context, SourceSpan declaration,
                                                MissingArguments missing) {
  bool ok = true;
  NamedValues bound;
  // Parameters are bound one by one into a scope over the declaration's, so a default can read the
  // parameters before it (`weight: weighting = softmax_over_sources(tau: tau)`).
  ScopeRef defaults_scope = nullptr;
  for (size_t i = 0; i < params.size(); ++i) {
    const ParamSpec& param = params[i];
    const GivenArgument* argument = i < given.size() && (given[i].expr != nullptr || given[i].value) ? &given[i]
                                                                                                       : nullptr;
    std::string what = (missing == MissingArguments::Unknown ? "the default of `" : "argument `") + param.name +
                       (missing == MissingArguments::Unknown ? "`" : "` of `" + callee + "`");
    if (!defaults_scope && param.default_env) defaults_scope = MakeScope(param.default_env);
    ValueRef value;
    SourceSpan at = use;
    if (argument != nullptr) {
      at = argument->span;
      value = argument->expr != nullptr ? EvalArgument(*argument->expr, param, scope, context) : argument->value;
    } else if (param.default_value) {
      value = param.default_value;
    } else if (param.default_expr != nullptr) {
      at = param.default_expr->span;
      value = EvalArgument(*param.default_expr, param, defaults_scope, DataContext{});
    } else if (missing == MissingArguments::Unknown) {
      value = values::Unknown(param.type, param.span);
    } else {
      if (missing == MissingArguments::Report) {
        auto builder =
            Report(DiagnosticKind::MissingArgument, use, "missing argument `" + param.name + "` of `" + callee + "`");
        if (param.span.valid()) {
          builder.Note(param.span, "`" + param.name + "` is declared here without a default");
        } else if (declaration.valid()) {
          builder.Note(declaration, "`" + callee + "` is declared here");
        }
      }
      ok = false;
      value = values::Error(use);
    }
    // Weightings stay closures until a stage elaborates them; a constant weight (from a grid file) is one too.
    bool closure = param.mode == ArgMode::Closure &&
                   (value->type->kind == TypeKind::Weighting || IsScalarLike(value) || value->is_error());
    if (!closure) {
      if (value->As<TermVal>() != nullptr && !param.accepts_terms) {
        Report(DiagnosticKind::NotInThisContext, at, what + " must be a constant, but this depends on the data");
        value = values::Error(at);
      }
      if (param.any_record && !value->is_error() && !value->is_unknown() && value->type->kind != TypeKind::Record) {
        Report(DiagnosticKind::TypeMismatch, value->span.valid() ? value->span : at,
               what + " expects a record, as in `" + param.name + ": {name: ...}`, got `" + ToString(value->type) + "`");
        value = values::Error(at);
      } else if (!param.any_record) {
        value = Coerce(value, param.type, what, at, param.accepts_none);
      }
      if (param.range && !value->is_error() && !CheckRange(value, *param.range, what, at)) {
        value = values::Error(value->span);
      }
    }
    if (value->is_error()) ok = false;
    if (defaults_scope) {
      Binding binding;
      binding.name = param.name;
      binding.kind = BindingKind::Param;
      binding.value = value;
      defaults_scope->Define(std::move(binding));
    }
    bound.emplace_back(param.name, value);
  }
  if (!ok) return std::nullopt;
  return bound;
}

std::optional<NamedValues> Sema::BindArguments(const std::string& callee, SourceSpan call_span,
                                               const std::vector<ParamSpec>& params,
                                               const std::vector<ast::Argument>& args, const ScopeRef& scope,
                                               const DataContext& context, SourceSpan declaration) {
  std::vector<GivenArgument> given(params.size());
  std::vector<const ast::Argument*> sources(params.size(), nullptr);
  bool ok = true;
  bool seen_named = false;
  bool unknown_argument = false;  // a misspelt name: the "missing" parameter is probably the one meant
  size_t positional = 0;
  std::vector<std::string> names = ParamNames(params);
  for (const ast::Argument& arg : args) {
    size_t index = params.size();
    if (!arg.name) {
      if (seen_named) {
        Report(DiagnosticKind::ArgumentOrder, arg.span, "positional argument after a named one")
            .Help("name it, as in `" + (positional < params.size() ? params[positional].name : std::string("name")) +
                  ": ...`");
        ok = false;
        continue;
      }
      index = positional++;
      if (index >= params.size()) {
        Report(DiagnosticKind::TooManyArguments, arg.span,
               "`" + callee + "` takes " + std::to_string(params.size()) + " argument" +
                   (params.size() == 1 ? "" : "s") + ", got " + std::to_string(args.size()));
        ok = false;
        break;
      }
    } else {
      seen_named = true;
      auto it = std::find(names.begin(), names.end(), arg.name->text);
      if (it == names.end()) {
        ReportUnknownParameter(*this, callee, *arg.name, names);
        ok = false;
        unknown_argument = true;
        continue;
      }
      index = static_cast<size_t>(it - names.begin());
    }
    if (sources[index] != nullptr) {
      Report(DiagnosticKind::DuplicateArgument, arg.span, "argument `" + params[index].name + "` is given twice")
          .Note(sources[index]->span, "first given here");
      ok = false;
      continue;
    }
    sources[index] = &arg;
    given[index] = GivenArgument{arg.value.get(), nullptr, arg.value->span};
  }
  auto bound = BindParameters(callee, call_span, params, given, scope, context, declaration,
                              unknown_argument ? MissingArguments::Quiet : MissingArguments::Report);
  if (!ok) return std::nullopt;
  return bound;
}

std::optional<NamedValues> Sema::BindValues(const std::string& callee, SourceSpan use,
                                            const std::vector<ParamSpec>& params, const NamedValues& values,
                                            const std::map<std::string, SourceSpan>& spans) {
  bool ok = true;
  std::vector<std::string> names = ParamNames(params);
  std::vector<GivenArgument> given(params.size());
  for (const auto& [name, value] : values) {
    auto span_it = spans.find(name);
    SourceSpan span = span_it != spans.end() ? span_it->second : use;
    auto it = std::find(names.begin(), names.end(), name);
    if (it == names.end()) {
      ReportUnknownParameter(*this, callee, ast::Identifier{name, span}, names);
      ok = false;
      continue;
    }
    given[static_cast<size_t>(it - names.begin())] = GivenArgument{nullptr, value, span};
  }
  auto bound = BindParameters(callee, use, params, given, nullptr, DataContext{}, SourceSpan{},
                              MissingArguments::Report);
  if (!ok) return std::nullopt;
  return bound;
}

// ---------------------------------------------------------------------------------------------------------
// Expressions

/// Evaluates expressions in one data context. A helper object so that the many cases share their context.
class ExpressionEvaluator {
 public:
  ExpressionEvaluator(Sema& sema, const DataContext& context) : sema_(sema), context_(context) {}

  ValueRef Eval(const ast::Expr& expr, const ScopeRef& scope) {
    switch (expr.kind()) {
      case ast::ExprKind::Error:
        return values::Error(expr.span);
      case ast::ExprKind::Int:
        return values::Int(expr.As<ast::IntExpr>()->value, expr.span);
      case ast::ExprKind::Float:
        return values::Float(expr.As<ast::FloatExpr>()->value, expr.span);
      case ast::ExprKind::Bool:
        return values::Bool(expr.As<ast::BoolExpr>()->value, expr.span);
      case ast::ExprKind::String:
        return values::String(expr.As<ast::StringExpr>()->value, expr.span);
      case ast::ExprKind::None:
        return values::None(expr.span);
      case ast::ExprKind::Name:
        return EvalName(expr, scope, /*as_callee=*/false);
      case ast::ExprKind::Member:
        return EvalMember(expr, *expr.As<ast::MemberExpr>(), scope);
      case ast::ExprKind::Call:
        return EvalCall(expr, *expr.As<ast::CallExpr>(), scope, std::nullopt);
      case ast::ExprKind::Index:
        return EvalIndex(expr, *expr.As<ast::IndexExpr>(), scope);
      case ast::ExprKind::Over:
        return EvalOver(expr, *expr.As<ast::OverExpr>(), scope);
      case ast::ExprKind::Unary:
        return EvalUnary(expr, *expr.As<ast::UnaryExpr>(), scope);
      case ast::ExprKind::Binary:
        return EvalBinary(expr, *expr.As<ast::BinaryExpr>(), scope);
      case ast::ExprKind::Where:
        return EvalWhere(expr, *expr.As<ast::WhereExpr>(), scope);
      case ast::ExprKind::If:
        return EvalIf(expr, *expr.As<ast::IfExpr>(), scope);
      case ast::ExprKind::List:
        return EvalList(expr, *expr.As<ast::ListExpr>(), scope);
      case ast::ExprKind::Record:
        return EvalRecord(expr, *expr.As<ast::RecordExpr>(), scope);
      case ast::ExprKind::Within:
        return EvalWithin(expr, *expr.As<ast::WithinExpr>(), scope);
      case ast::ExprKind::By:
        return EvalBy(expr, *expr.As<ast::ByExpr>(), scope);
    }
    return values::Error(expr.span);
  }

 private:
  // name
  ValueRef EvalName(const ast::Expr& expr, const ScopeRef& scope, bool as_callee) {
    const std::string& name = expr.As<ast::NameExpr>()->name;
    Binding* binding = scope->Find(name);
    if (binding == nullptr) return ReportUnknownName(name, expr.span, scope);
    // `seed = seed` in a template, `let lr = lr / 2` in a stage: a field or let that names itself while it is
    // being defined means the binding of that name in an enclosing scope, if there is one.
    if (binding->state == Binding::State::Evaluating &&
        (binding->kind == BindingKind::Field || binding->kind == BindingKind::Let)) {
      const Scope* owner = scope;
      while (owner != nullptr && owner->FindLocal(name) != binding) owner = owner->parent();
      if (owner != nullptr && owner->parent() != nullptr) {
        if (Binding* outer = owner->parent()->Find(name)) binding = outer;
      }
    }
    ValueRef value = values::WithSpan(sema_.Force(*binding, expr.span), expr.span);
    if (as_callee) return value;
    if (const auto* builtin = value->As<BuiltinVal>()) {
      if (builtin->builtin->is_constant) {
        CallSite site;
        site.name = name;
        site.span = expr.span;
        site.callee_span = expr.span;
        site.scope = scope;
        site.context = &context_;
        return sema_.CallBuiltin(*builtin->builtin, std::move(site));
      }
      if (IsResponseField(name)) return CurrentResponseField(name, expr.span);
    }
    return value;
  }

  ValueRef ReportUnknownName(const std::string& name, SourceSpan span, const ScopeRef& scope) {
    auto builder = sema_.Report(DiagnosticKind::UnknownName, span, "unknown name `" + name + "`");
    std::vector<std::string> candidates = scope->VisibleNames();
    AddContextCandidates(candidates);
    std::string hint = DidYouMean(name, candidates);
    if (!hint.empty()) {
      builder.Help(hint);
    } else if (auto stdlib = sema_.StdlibHint(name)) {
      builder.Help(*stdlib);
    } else if (name == "y" || name == "chosen" || name == "rejected") {
      builder.Help("`" + name + "` exists only inside an objective");
    }
    return values::Error(span);
  }

  void AddContextCandidates(std::vector<std::string>& candidates) const {
    for (const std::string& role : context_.roles) candidates.push_back(role);
  }

  /// `reward` alone: a field of the response the context makes current.
  ValueRef CurrentResponseField(const std::string& field, SourceSpan span) {
    Term term;
    term.op = TermOp::Field;
    term.name = field;
    term.span = span;
    term.type = field == "source" ? ScalarType::String : field == "reward" ? ScalarType::Float : ScalarType::Int;
    switch (context_.kind) {
      case DataContext::Kind::Response:
        term.level = Level::Item;
        term.item = ItemKind::Response;
        break;
      case DataContext::Kind::Weight:
        if (context_.item == ItemKind::Pair) {
          term.level = Level::Pool;
          term.item = ItemKind::Response;
        } else {
          term.level = Level::Item;
          term.item = ItemKind::Response;
        }
        break;
      case DataContext::Kind::Pair: {
        std::string role = context_.roles.empty() ? "chosen" : context_.roles.front();
        sema_.Report(DiagnosticKind::NotInThisContext, span, "`" + field + "` alone is ambiguous in a pair filter")
            .Help("say which response, as in `" + field + "(" + role + ")`");
        return values::Error(span);
      }
      case DataContext::Kind::Objective:
        sema_.Report(DiagnosticKind::NotInThisContext, span, "`" + field + "` needs a response in an objective")
            .Help("write `" + field + "(y)`, or `" + field + "(chosen)` in a pair objective");
        return values::Error(span);
      case DataContext::Kind::None:
        sema_.Report(DiagnosticKind::NotInThisContext, span,
                     "`" + field + "` is a field of a response and has no value here")
            .Help("it can be used in a selection, pairing, grouping, weighting or objective");
        return values::Error(span);
    }
    return sema_.TermValue(sema_.MakeTerm(std::move(term)), span);
  }

  // expr '.' name
  ValueRef EvalMember(const ast::Expr& expr, const ast::MemberExpr& member, const ScopeRef& scope) {
    ValueRef object = Eval(*member.object, scope);
    if (object->is_error()) return object;
    const std::string& name = member.member.text;
    if (const auto* module = object->As<ModuleVal>()) {
      Binding* binding = module->module->scope ? module->module->scope->FindLocal(name) : nullptr;
      if (binding == nullptr || binding->kind == BindingKind::Import) {
        auto builder = sema_.Report(DiagnosticKind::UnknownMember, member.member.span,
                                    "module `" + module->module->name + "` has no `" + name + "`");
        std::vector<std::string> exported;
        if (module->module->scope) {
          for (Binding* b : module->module->scope->ordered()) {
            if (b->kind != BindingKind::Import) exported.push_back(b->name);
          }
        }
        std::string hint = DidYouMean(name, exported);
        if (!hint.empty()) builder.Help(hint);
        return values::Error(expr.span);
      }
      return values::WithSpan(sema_.Force(*binding, expr.span), expr.span);
    }
    if (object->type->kind == TypeKind::Record) {
      for (const auto& [field, type] : object->type->fields) {
        if (field != name) continue;
        if (const auto* record = object->As<RecordVal>()) {
          ValueRef value = FindNamed(record->fields, name);
          if (value) return value;
        }
        return values::Unknown(type, expr.span);
      }
      auto builder = sema_.Report(DiagnosticKind::UnknownMember, member.member.span,
                                  "`" + sema_.Describe(*member.object) + "` has no field `" + name + "`");
      std::vector<std::string> fields;
      for (const auto& [field, type] : object->type->fields) fields.push_back(field);
      std::string hint = DidYouMean(name, fields);
      if (!hint.empty()) {
        builder.Help(hint);
      } else {
        std::string list;
        for (const std::string& field : fields) list += (list.empty() ? "`" : ", `") + field + "`";
        if (!list.empty()) builder.Help("its fields are " + list);
      }
      return values::Error(expr.span);
    }
    if (object->is_unknown()) return values::Error(expr.span);
    sema_.Report(DiagnosticKind::UnknownMember, member.member.span,
                 "a value of type `" + ToString(object->type) + "` has no fields");
    return values::Error(expr.span);
  }

  // expr '[' expr ']'
  ValueRef EvalIndex(const ast::Expr& expr, const ast::IndexExpr& index, const ScopeRef& scope) {
    ValueRef object = Eval(*index.object, scope);
    ValueRef position = sema_.Coerce(Eval(*index.index, scope), types::Int(), "an index", index.index->span);
    if (object->is_error() || position->is_error()) return values::Error(expr.span);
    if (object->type->kind != TypeKind::List) {
      sema_.Report(DiagnosticKind::TypeMismatch, index.object->span,
                   "only lists can be indexed, this is `" + ToString(object->type) + "`");
      return values::Error(expr.span);
    }
    const auto* list = object->As<ListVal>();
    const auto* i = position->As<int64_t>();
    if (list == nullptr || i == nullptr) return values::Unknown(object->type->element, expr.span);
    if (*i < 0 || static_cast<size_t>(*i) >= list->elements.size()) {
      sema_.Report(DiagnosticKind::IndexOutOfRange, index.index->span,
                   "index " + std::to_string(*i) + " is outside a list of " + std::to_string(list->elements.size()) +
                       " element" + (list->elements.size() == 1 ? "" : "s"));
      return values::Error(expr.span);
    }
    return list->elements[static_cast<size_t>(*i)];
  }

 public:
  // call
  ValueRef EvalCall(const ast::Expr& expr, const ast::CallExpr& call, const ScopeRef& scope,
                    std::optional<ast::Identifier> over) {
    ValueRef callee = call.callee->kind() == ast::ExprKind::Name ? EvalName(*call.callee, scope, /*as_callee=*/true)
                                                                 : Eval(*call.callee, scope);
    if (callee->is_error()) {
      // Still check the arguments, for errors independent of the callee.
      for (const ast::Argument& arg : call.args) Eval(*arg.value, scope);
      return values::Error(expr.span);
    }
    std::string name = sema_.Describe(*call.callee);
    if (const auto* builtin = callee->As<BuiltinVal>()) {
      CallSite site;
      site.name = builtin->builtin->name;
      site.span = expr.span;
      site.callee_span = call.callee->span;
      site.call = &call;
      site.scope = scope;
      site.context = &context_;
      site.over = std::move(over);
      if (!builtin->builtin->custom_arguments) {
        auto bound = sema_.BindArguments(builtin->builtin->name, expr.span, builtin->builtin->params, call.args, scope,
                                         context_, SourceSpan{});
        if (!bound) return values::Error(expr.span);
        site.args = std::move(*bound);
        for (const ast::Argument& arg : call.args) {
          if (arg.name) site.arg_spans[arg.name->text] = arg.value->span;
        }
        for (size_t i = 0; i < call.args.size() && i < builtin->builtin->params.size(); ++i) {
          if (!call.args[i].name) site.arg_spans[builtin->builtin->params[i].name] = call.args[i].value->span;
        }
      }
      return sema_.CallBuiltin(*builtin->builtin, std::move(site));
    }
    if (over) return ReportBadOver(*over, callee, expr.span);
    if (const auto* function = callee->As<FunctionVal>()) return InlineFunction(expr, call, *function, scope);
    if (const auto* decl = callee->As<DeclVal>()) return CallDeclaration(expr, call, *decl, scope);
    auto builder = sema_.Report(DiagnosticKind::NotCallable, call.callee->span,
                                "`" + name + "` is not a function; it is a value of type `" +
                                    ToString(callee->type) + "`");
    if (callee->As<ObjectiveVal>() != nullptr) builder.Help("it is already an objective; drop the arguments");
    return values::Error(expr.span);
  }

  ValueRef ReportBadOver(const ast::Identifier& over, const ValueRef& value, SourceSpan span) {
    sema_.Report(DiagnosticKind::NotInThisContext, over.span,
                 "`over " + over.text + "` cannot follow a value of type `" + ToString(value->type) + "`")
        .Help("`over` follows an aggregation (`max(reward) over source`), a normalisation "
              "(`softmax(reward) over prompt`) or a selection (`top_k(2) over source`)");
    return values::Error(span);
  }

 private:
  ValueRef InlineFunction(const ast::Expr& expr, const ast::CallExpr& call, const FunctionVal& function,
                          const ScopeRef& scope) {
    const ast::LetDecl& decl = *function.decl;
    const std::vector<ast::FuncParam>& params = *decl.params;
    std::vector<ValueRef> args;
    for (const ast::Argument& arg : call.args) {
      if (arg.name) {
        sema_.Report(DiagnosticKind::UnknownArgument, arg.name->span,
                     "arguments of `" + decl.name.text + "` are positional")
            .Note(decl.name.span, "`" + decl.name.text + "` is declared here");
        return values::Error(expr.span);
      }
      args.push_back(Eval(*arg.value, scope));
    }
    if (args.size() != params.size()) {
      sema_.Report(args.size() > params.size() ? DiagnosticKind::TooManyArguments : DiagnosticKind::MissingArgument,
                   expr.span,
                   "`" + decl.name.text + "` takes " + std::to_string(params.size()) + " argument" +
                       (params.size() == 1 ? "" : "s") + ", got " + std::to_string(args.size()))
          .Note(decl.name.span, "`" + decl.name.text + "` is declared here");
      return values::Error(expr.span);
    }
    for (const ValueRef& arg : args) {
      if (arg->is_error()) return values::Error(expr.span);
    }
    if (std::find(sema_.inline_stack_.begin(), sema_.inline_stack_.end(), &decl) != sema_.inline_stack_.end()) {
      sema_.Report(DiagnosticKind::CyclicDefinition, expr.span,
                   "`" + decl.name.text + "` calls itself; functions cannot be recursive")
          .Note(decl.name.span, "`" + decl.name.text + "` is declared here");
      return values::Error(expr.span);
    }
    if (sema_.inline_stack_.size() >= kMaxInlineDepth) {
      sema_.Report(DiagnosticKind::ExpansionTooLarge, expr.span,
                   "functions call each other more than " + std::to_string(kMaxInlineDepth) + " levels deep");
      return values::Error(expr.span);
    }
    if (!sema_.ChargeExpansion(expr.span)) return values::Error(expr.span);
    ScopeRef body_scope = MakeScope(function.env);
    for (size_t i = 0; i < params.size(); ++i) {
      ValueRef value = args[i];
      if (params[i].type) {
        // Function parameters may be annotated with a named type (`x: float`); it is checked like any other.
        TypeRef type = params[i].type->is_record ? nullptr : TypeByName(params[i].type->name.text);
        if (!type) {
          sema_.Report(DiagnosticKind::UnknownType, params[i].type->span,
                       "function parameters can be annotated with a named type such as `float`");
        } else {
          value = sema_.Coerce(value, type, "argument `" + params[i].name.text + "`", call.args[i].value->span);
        }
      }
      Binding binding;
      binding.name = params[i].name.text;
      binding.kind = BindingKind::Param;
      binding.span = params[i].name.span;
      binding.value = value;
      auto [existing, inserted] = body_scope->Define(std::move(binding));
      if (!inserted) {
        sema_.Report(DiagnosticKind::DuplicateName, params[i].name.span,
                     "parameter `" + params[i].name.text + "` is declared twice")
            .Note(existing->span, "first declared here");
      }
    }
    sema_.inline_stack_.push_back(&decl);
    ValueRef result = Eval(*decl.value, body_scope);
    sema_.inline_stack_.pop_back();
    return result;
  }

  ValueRef CallDeclaration(const ast::Expr& expr, const ast::CallExpr& call, const DeclVal& decl,
                           const ScopeRef& scope) {
    switch (decl.kind) {
      case DeclVal::Kind::Objective: {
        const auto& objective = *static_cast<const ast::ObjectiveDecl*>(decl.decl);
        const auto& params = sema_.ResolveParams(objective.params, decl.env);
        auto bound = sema_.BindArguments(decl.name, expr.span, params, call.args, scope, context_, decl.name_span);
        if (!bound) return values::Error(expr.span);
        return sema_.InstantiateObjective(decl, expr.span, *bound);
      }
      case DeclVal::Kind::Weighting: {
        const auto& weighting = *static_cast<const ast::WeightingDecl*>(decl.decl);
        const auto& params = sema_.ResolveParams(weighting.params, decl.env);
        auto bound = sema_.BindArguments(decl.name, expr.span, params, call.args, scope, context_, decl.name_span);
        if (!bound) return values::Error(expr.span);
        WeightingVal closure;
        closure.decl = &weighting;
        closure.args = std::move(*bound);
        closure.env = decl.env;
        closure.description = decl.name + "(";
        for (size_t i = 0; i < closure.args.size(); ++i) {
          closure.description += (i > 0 ? ", " : "") + closure.args[i].first + ": " + ToString(closure.args[i].second);
        }
        closure.description += ")";
        if (context_.kind == DataContext::Kind::Weight) {
          return sema_.EvalWeightingBody(closure, context_, expr.span);
        }
        return values::Make(types::Opaque(TypeKind::Weighting), expr.span, std::move(closure));
      }
      case DeclVal::Kind::StageTemplate:
        sema_.Report(DiagnosticKind::NotCallable, call.callee->span,
                     "`" + decl.name + "` is a stage template, not a function")
            .Help("use it as the kind of a stage: `stage name = " + decl.name + "(...) { ... }`");
        return values::Error(expr.span);
      case DeclVal::Kind::ExperimentTemplate:
        sema_.Report(DiagnosticKind::NotCallable, call.callee->span,
                     "`" + decl.name + "` is an experiment template, not a function")
            .Help("instantiate it with `experiment name = " + decl.name + "(...)`");
        return values::Error(expr.span);
    }
    return values::Error(expr.span);
  }

  // expr 'over' name
  ValueRef EvalOver(const ast::Expr& expr, const ast::OverExpr& over, const ScopeRef& scope) {
    const ast::Expr& operand = *over.operand;
    if (const auto* call = operand.As<ast::CallExpr>()) return EvalCall(operand, *call, scope, over.scope);
    if (operand.kind() == ast::ExprKind::Name) {
      ValueRef callee = EvalName(operand, scope, /*as_callee=*/true);
      if (callee->is_error()) return callee;
      if (const auto* builtin = callee->As<BuiltinVal>()) {
        if (builtin->builtin->is_constant) {
          CallSite site;
          site.name = builtin->builtin->name;
          site.span = expr.span;
          site.callee_span = operand.span;
          site.scope = scope;
          site.context = &context_;
          site.over = over.scope;
          return sema_.CallBuiltin(*builtin->builtin, std::move(site));
        }
      }
      return ReportBadOver(over.scope, callee, expr.span);
    }
    ValueRef value = Eval(operand, scope);
    if (value->is_error()) return value;
    return ReportBadOver(over.scope, value, expr.span);
  }

  // ('-' | '+' | 'not') expr
  ValueRef EvalUnary(const ast::Expr& expr, const ast::UnaryExpr& unary, const ScopeRef& scope) {
    ValueRef operand = Eval(*unary.operand, scope);
    if (operand->is_error()) return operand;
    bool logical = unary.op == ast::UnaryOp::Not;
    TypeRef wanted = logical ? types::Bool() : types::Float();
    bool ok = logical ? (operand->type->kind == TypeKind::Bool) : IsNumberType(*operand->type);
    if (!ok) {
      auto builder = sema_.Report(DiagnosticKind::TypeMismatch, unary.operand->span,
                                  std::string("`") + ast::Spelling(unary.op) + "` needs " +
                                      (logical ? "a bool" : "a number") + ", got `" + ToString(operand->type) + "`");
      if (const auto* response = operand->As<ResponseVal>()) {
        builder.Help("`" + response->name + "` is a response; use `logp(" + response->name + ")`, `len(" +
                     response->name + ")` or `reward(" + response->name + ")`");
      }
      return values::Error(expr.span);
    }
    if (operand->is_unknown()) return values::Unknown(operand->type, expr.span);
    if (const auto* term = operand->As<TermVal>()) {
      if (unary.op == ast::UnaryOp::Plus) return operand;
      Term node;
      node.op = TermOp::Unary;
      node.name = logical ? "not" : "-";
      node.type = term->term->type;
      node.level = term->term->level;
      node.item = term->term->item;
      node.args = {term->term};
      node.span = expr.span;
      return sema_.TermValue(sema_.MakeTerm(std::move(node)), expr.span);
    }
    switch (unary.op) {
      case ast::UnaryOp::Not:
        return values::Bool(!*operand->As<bool>(), expr.span);
      case ast::UnaryOp::Plus:
        return values::WithSpan(operand, expr.span);
      case ast::UnaryOp::Negate:
        if (const auto* i = operand->As<int64_t>()) {
          if (*i == std::numeric_limits<int64_t>::min()) {
            sema_.Report(DiagnosticKind::ArithmeticError, expr.span, "integer overflow in `-`");
            return values::Error(expr.span);
          }
          return values::Int(-*i, expr.span);
        }
        return values::Float(-*operand->As<double>(), expr.span);
    }
    return values::Error(expr.span);
  }

  // expr op expr
  ValueRef EvalBinary(const ast::Expr& expr, const ast::BinaryExpr& binary, const ScopeRef& scope) {
    ValueRef lhs = Eval(*binary.lhs, scope);
    ValueRef rhs = Eval(*binary.rhs, scope);
    if (lhs->is_error() || rhs->is_error()) return values::Error(expr.span);
    const char* op = ast::Spelling(binary.op);
    auto type_error = [&](const std::string& needs) {
      const ValueRef& bad = !Fits(lhs, binary.op) ? lhs : rhs;
      const ast::Expr& bad_expr = !Fits(lhs, binary.op) ? *binary.lhs : *binary.rhs;
      auto builder = sema_.Report(DiagnosticKind::TypeMismatch, bad_expr.span,
                                  std::string("`") + op + "` needs " + needs + ", got `" + ToString(bad->type) + "`");
      if (const auto* response = bad->As<ResponseVal>()) {
        builder.Help("`" + response->name + "` is a response; use `logp(" + response->name + ")`, `len(" +
                     response->name + ")` or `reward(" + response->name + ")`");
      }
      return values::Error(expr.span);
    };
    TypeKind lk = lhs->type->kind;
    TypeKind rk = rhs->type->kind;
    // Type rules.
    TypeRef result;
    if (IsLogical(binary.op)) {
      if (lk != TypeKind::Bool || rk != TypeKind::Bool) return type_error("bools");
      result = types::Bool();
    } else if (IsComparison(binary.op)) {
      bool equality = binary.op == ast::BinaryOp::Eq || binary.op == ast::BinaryOp::Ne;
      bool numbers = IsNumberType(*lhs->type) && IsNumberType(*rhs->type);
      bool same = lk == rk && (lk == TypeKind::String || lk == TypeKind::Bool || lk == TypeKind::Enum);
      if (!numbers && !(equality && same) && !(lk == TypeKind::String && rk == TypeKind::String)) {
        if (lk != rk && !numbers) {
          sema_.Report(DiagnosticKind::TypeMismatch, binary.op_span,
                       std::string("cannot compare `") + ToString(lhs->type) + "` with `" + ToString(rhs->type) + "`");
          return values::Error(expr.span);
        }
        return type_error(equality ? "two values of the same type" : "numbers");
      }
      result = types::Bool();
    } else if (binary.op == ast::BinaryOp::Add && lk == TypeKind::String && rk == TypeKind::String) {
      result = types::String();
    } else {
      if (!IsNumberType(*lhs->type) || !IsNumberType(*rhs->type)) return type_error("numbers");
      bool ints = lk == TypeKind::Int && rk == TypeKind::Int;
      bool int_result = ints && binary.op != ast::BinaryOp::Div && binary.op != ast::BinaryOp::Pow;
      result = int_result ? types::Int() : types::Float();
    }
    if (lhs->As<TermVal>() != nullptr || rhs->As<TermVal>() != nullptr) {
      TermRef a = sema_.ToTerm(lhs, binary.lhs->span);
      TermRef b = sema_.ToTerm(rhs, binary.rhs->span);
      auto level = sema_.CombineLevels({a, b}, expr.span, std::string("combine with `") + op + "`");
      if (!level) return values::Error(expr.span);
      Term node;
      node.op = TermOp::Binary;
      node.name = op;
      node.type = ScalarOf(*result);
      node.level = level->first;
      node.item = level->second;
      node.args = {a, b};
      node.span = expr.span;
      return sema_.TermValue(sema_.MakeTerm(std::move(node)), expr.span);
    }
    if (lhs->is_unknown() || rhs->is_unknown()) return values::Unknown(result, expr.span);
    return FoldBinary(expr, binary, lhs, rhs, result);
  }

  static bool Fits(const ValueRef& value, ast::BinaryOp op) {
    TypeKind kind = value->type->kind;
    if (IsLogical(op)) return kind == TypeKind::Bool;
    if (IsComparison(op)) return true;
    return kind == TypeKind::Int || kind == TypeKind::Float || kind == TypeKind::String;
  }

  ValueRef FoldBinary(const ast::Expr& expr, const ast::BinaryExpr& binary, const ValueRef& lhs, const ValueRef& rhs,
                      const TypeRef& result) {
    SourceSpan span = expr.span;
    using Op = ast::BinaryOp;
    if (result->kind == TypeKind::String) return values::String(*lhs->As<std::string>() + *rhs->As<std::string>(), span);
    if (IsLogical(binary.op)) {
      bool a = *lhs->As<bool>();
      bool b = *rhs->As<bool>();
      return values::Bool(binary.op == Op::And ? a && b : a || b, span);
    }
    if (IsComparison(binary.op) && !(IsNumberType(*lhs->type) && IsNumberType(*rhs->type))) {
      std::string a = ToString(*lhs);
      std::string b = ToString(*rhs);
      bool equal = a == b;
      switch (binary.op) {
        case Op::Eq:
          return values::Bool(equal, span);
        case Op::Ne:
          return values::Bool(!equal, span);
        case Op::Lt:
          return values::Bool(a < b, span);
        case Op::Le:
          return values::Bool(a <= b, span);
        case Op::Gt:
          return values::Bool(a > b, span);
        default:
          return values::Bool(a >= b, span);
      }
    }
    if (result->kind == TypeKind::Int) {
      int64_t a = *lhs->As<int64_t>();
      int64_t b = *rhs->As<int64_t>();
      int64_t out = 0;
      bool overflow = false;
      switch (binary.op) {
        case Op::Add:
          overflow = __builtin_add_overflow(a, b, &out);
          break;
        case Op::Sub:
          overflow = __builtin_sub_overflow(a, b, &out);
          break;
        case Op::Mul:
          overflow = __builtin_mul_overflow(a, b, &out);
          break;
        default:
          break;
      }
      if (overflow) {
        sema_.Report(DiagnosticKind::ArithmeticError, span,
                     std::string("integer overflow in `") + ast::Spelling(binary.op) + "`");
        return values::Error(span);
      }
      return values::Int(out, span);
    }
    // Floats: the operator's meaning is ir::EvalScalar's, the runtime's own.
    const ir::OpKind op = *ir::OpBySpelling(ast::Spelling(binary.op), 2);
    const double operands[] = {*lhs->AsNumber(), *rhs->AsNumber()};
    std::optional<double> value = ir::EvalScalar(op, operands);
    if (!value && op == ir::OpKind::Div) {
      sema_.Report(DiagnosticKind::ArithmeticError, binary.rhs->span, "division by zero");
      return values::Error(span);
    }
    if (IsComparison(binary.op)) return values::Bool(*value != 0, span);
    const double out = value.value_or(std::nan(""));
    if (!std::isfinite(out)) {
      sema_.Report(DiagnosticKind::ArithmeticError, span,
                   std::string("`") + ast::Spelling(binary.op) + "` gives a result that is not a finite number");
      return values::Error(span);
    }
    return values::Float(out, span);
  }

  // expr 'where' expr
  ValueRef EvalWhere(const ast::Expr& expr, const ast::WhereExpr& where, const ScopeRef& scope) {
    ValueRef subject = Eval(*where.subject, scope);
    if (subject->is_error()) return subject;
    auto condition_in = [&](const DataContext& context, const ScopeRef& condition_scope) -> TermRef {
      ExpressionEvaluator inner(sema_, context);
      ValueRef condition = inner.Eval(*where.condition, condition_scope);
      condition = sema_.Coerce(condition, types::Bool(), "a `where` condition", where.condition->span);
      if (condition->is_error()) return nullptr;
      return sema_.ToTerm(condition, where.condition->span);
    };
    auto conjoin = [&](const TermRef& old_condition, const TermRef& added) -> TermRef {
      if (!old_condition) return added;
      Term node;
      node.op = TermOp::Binary;
      node.name = "and";
      node.type = ScalarType::Bool;
      node.level = added->level == Level::Item || old_condition->level == Level::Item ? Level::Item : added->level;
      node.item = added->item != ItemKind::Unknown ? added->item : old_condition->item;
      node.args = {old_condition, added};
      node.span = added->span;
      return sema_.MakeTerm(std::move(node));
    };
    DataContext response;
    response.kind = DataContext::Kind::Response;
    response.abstract = context_.abstract;
    std::string suffix = " where " + sema_.Describe(*where.condition);
    if (const auto* selection = subject->As<SelectionVal>()) {
      TermRef condition = condition_in(response, scope);
      if (!condition) return values::Error(expr.span);
      auto filtered = std::make_shared<CheckedSelection>(*selection->selection);
      filtered->where = conjoin(filtered->where, condition);
      filtered->description += suffix;
      return values::Make(subject->type, expr.span, SelectionVal{filtered});
    }
    if (const auto* grouping = subject->As<GroupingVal>()) {
      TermRef condition = condition_in(response, scope);
      if (!condition) return values::Error(expr.span);
      auto filtered = std::make_shared<CheckedGrouping>(*grouping->grouping);
      filtered->where = conjoin(filtered->where, condition);
      filtered->description += suffix;
      return values::Make(subject->type, expr.span, GroupingVal{filtered});
    }
    if (const auto* role = subject->As<RoleSelectorVal>()) {
      TermRef condition = condition_in(response, scope);
      if (!condition) return values::Error(expr.span);
      auto filtered = std::make_shared<RoleSelector>(*role->selector);
      filtered->where = conjoin(filtered->where, condition);
      return values::Make(subject->type, expr.span, RoleSelectorVal{filtered});
    }
    if (const auto* pairing = subject->As<PairingVal>()) {
      DataContext pair;
      pair.kind = DataContext::Kind::Pair;
      pair.item = ItemKind::Pair;
      pair.abstract = context_.abstract;
      ScopeRef roles = MakeScope(scope);
      for (const RoleSelector& role : pairing->pairing->roles) {
        pair.roles.push_back(role.name);
        Binding binding;
        binding.name = role.name;
        binding.kind = BindingKind::Context;
        binding.value = values::Make(types::Opaque(TypeKind::Response), role.span, ResponseVal{role.name, ItemKind::Pair});
        roles->Define(std::move(binding));
      }
      TermRef condition = condition_in(pair, roles);
      if (!condition) return values::Error(expr.span);
      auto filtered = std::make_shared<CheckedPairing>(*pairing->pairing);
      filtered->where = conjoin(filtered->where, condition);
      filtered->description += suffix;
      return values::Make(subject->type, expr.span, PairingVal{filtered});
    }
    if (subject->is_unknown()) return subject;
    sema_.Report(DiagnosticKind::TypeMismatch, where.subject->span,
                 "`where` filters selections, pairings, groupings and roles, not a `" + ToString(subject->type) + "`");
    return values::Error(expr.span);
  }

  // 'if' expr 'then' expr 'else' expr
  ValueRef EvalIf(const ast::Expr& expr, const ast::IfExpr& if_expr, const ScopeRef& scope) {
    ValueRef condition =
        sema_.Coerce(Eval(*if_expr.condition, scope), types::Bool(), "an `if` condition", if_expr.condition->span);
    // Both branches are checked, whichever is taken.
    ValueRef then_value = Eval(*if_expr.then_branch, scope);
    ValueRef else_value = Eval(*if_expr.else_branch, scope);
    if (condition->is_error() || then_value->is_error() || else_value->is_error()) return values::Error(expr.span);
    TypeRef type = Join(then_value->type, else_value->type);
    if (!type) {
      sema_.Report(DiagnosticKind::TypeMismatch, expr.span,
                   "the branches of `if` have different types: `" + ToString(then_value->type) + "` and `" +
                       ToString(else_value->type) + "`")
          .Note(if_expr.then_branch->span, "this is `" + ToString(then_value->type) + "`")
          .Note(if_expr.else_branch->span, "this is `" + ToString(else_value->type) + "`");
      return values::Error(expr.span);
    }
    bool data_dependent = condition->As<TermVal>() != nullptr || then_value->As<TermVal>() != nullptr ||
                          else_value->As<TermVal>() != nullptr;
    if (data_dependent) {
      if (!IsScalarLike(then_value) || !IsScalarLike(else_value)) {
        sema_.Report(DiagnosticKind::TypeMismatch, expr.span,
                     "a data-dependent `if` must choose between numbers or bools");
        return values::Error(expr.span);
      }
      // Kept as a Select even when the condition is constant, for the graph's constant folding.
      TermRef c = sema_.ToTerm(condition, if_expr.condition->span);
      TermRef a = sema_.ToTerm(then_value, if_expr.then_branch->span);
      TermRef b = sema_.ToTerm(else_value, if_expr.else_branch->span);
      auto level = sema_.CombineLevels({c, a, b}, expr.span, "choose between");
      if (!level) return values::Error(expr.span);
      Term node;
      node.op = TermOp::Select;
      node.type = ScalarOf(*type);
      node.level = level->first;
      node.item = level->second;
      node.args = {c, a, b};
      node.span = expr.span;
      return sema_.TermValue(sema_.MakeTerm(std::move(node)), expr.span);
    }
    if (condition->is_unknown()) return values::Unknown(type, expr.span);
    ValueRef chosen = *condition->As<bool>() ? then_value : else_value;
    return sema_.Coerce(chosen, type, "an `if` branch", expr.span);
  }

  bool IsScalarLike(const ValueRef& value) const { return sema_.IsScalarLike(value); }

  // '[' expr, ... ']'
  ValueRef EvalList(const ast::Expr& expr, const ast::ListExpr& list, const ScopeRef& scope) {
    ListVal out;
    TypeRef element_type;
    bool ok = true;
    for (const ast::ExprPtr& element : list.elements) {
      ValueRef value = Eval(*element, scope);
      if (value->is_error()) {
        ok = false;
        continue;
      }
      if (value->As<TermVal>() != nullptr) {
        sema_.Report(DiagnosticKind::TypeMismatch, element->span, "a list cannot hold data-dependent values");
        ok = false;
        continue;
      }
      if (!element_type) {
        element_type = value->type;
      } else {
        TypeRef joined = Join(element_type, value->type);
        if (!joined) {
          sema_.Report(DiagnosticKind::TypeMismatch, element->span,
                       "list elements must have one type: this is `" + ToString(value->type) +
                           "`, earlier elements are `" + ToString(element_type) + "`");
          ok = false;
          continue;
        }
        element_type = joined;
      }
      out.elements.push_back(value);
    }
    if (!ok) return values::Error(expr.span);
    if (!element_type) element_type = types::Error();  // `[]`: fits any list type
    TypeRef type = types::List(element_type);
    if (!CheckValueNesting(*type, expr.span)) return values::Error(expr.span);
    // Widen ints in a float list now, so the value reads back with one type.
    for (ValueRef& element : out.elements) {
      if (element_type->kind == TypeKind::Float && element->type->kind == TypeKind::Int && element->is_known()) {
        element = values::Float(static_cast<double>(*element->As<int64_t>()), element->span);
      }
    }
    return values::Make(type, expr.span, std::move(out));
  }

  // '{' name: expr, ... '}'
  ValueRef EvalRecord(const ast::Expr& expr, const ast::RecordExpr& record, const ScopeRef& scope) {
    RecordVal out;
    std::vector<std::pair<std::string, TypeRef>> field_types;
    std::map<std::string, SourceSpan> seen;
    bool ok = true;
    for (const ast::RecordField& field : record.fields) {
      auto [it, inserted] = seen.emplace(field.name.text, field.name.span);
      if (!inserted) {
        sema_.Report(DiagnosticKind::DuplicateField, field.name.span, "field `" + field.name.text + "` is given twice")
            .Note(it->second, "first given here");
        ok = false;
        continue;
      }
      ValueRef value = Eval(*field.value, scope);
      if (value->is_error()) ok = false;
      field_types.emplace_back(field.name.text, value->type);
      out.fields.emplace_back(field.name.text, value);
    }
    if (!ok) return values::Error(expr.span);
    TypeRef type = types::Record(std::move(field_types));
    if (!CheckValueNesting(*type, expr.span)) return values::Error(expr.span);
    return values::Make(type, expr.span, std::move(out));
  }

  /// Reports a list or record value nested deeper than kMaxValueNesting.
  bool CheckValueNesting(const Type& type, SourceSpan span) {
    if (TypeNesting(type, kMaxValueNesting) <= kMaxValueNesting) return true;
    sema_.Report(DiagnosticKind::NestingTooDeep, span,
                 "value is nested more than " + std::to_string(kMaxValueNesting) + " levels deep")
        .Help("lists and records nest a few levels; build flat lists");
    return false;
  }

  // 'within' name '{' role: selector, ... '}'
  ValueRef EvalWithin(const ast::Expr& expr, const ast::WithinExpr& within, const ScopeRef& scope) {
    bool ok = CheckScope(within.scope, {"source", "prompt"});
    auto pairing = std::make_shared<CheckedPairing>();
    pairing->kind = CheckedPairing::Kind::Within;
    pairing->scope = ir::EnumBySpelling<ir::Scope>(within.scope.text).value_or(ir::Scope::Source);  // checked above
    pairing->span = expr.span;
    pairing->description = sema_.Describe(expr);
    std::map<std::string, SourceSpan> seen;
    for (const ast::RecordField& role : within.roles) {
      auto [it, inserted] = seen.emplace(role.name.text, role.name.span);
      if (!inserted) {
        sema_.Report(DiagnosticKind::DuplicateField, role.name.span, "role `" + role.name.text + "` is given twice")
            .Note(it->second, "first given here");
        ok = false;
        continue;
      }
      ValueRef value = Eval(*role.value, scope);
      if (value->is_error()) {
        ok = false;
        continue;
      }
      const auto* selector = value->As<RoleSelectorVal>();
      if (selector == nullptr) {
        sema_.Report(DiagnosticKind::TypeMismatch, role.value->span,
                     "role `" + role.name.text + "` must pick a response, as in `argmax(reward)`; got `" +
                         ToString(value->type) + "`");
        ok = false;
        continue;
      }
      RoleSelector named = *selector->selector;
      named.name = role.name.text;
      named.span = role.name.span;
      pairing->roles.push_back(std::move(named));
    }
    if (ok && pairing->roles.size() < 2) {
      sema_.Report(DiagnosticKind::MissingField, expr.span, "a pair needs at least two roles")
          .Help("as in `within source { chosen: argmax(reward), rejected: argmin(reward) }`");
      ok = false;
    }
    if (!ok) return values::Error(expr.span);
    return values::Make(types::Opaque(TypeKind::Pairing), expr.span, PairingVal{pairing});
  }

  // 'by' name
  ValueRef EvalBy(const ast::Expr& expr, const ast::ByExpr& by, const ScopeRef& /*scope*/) {
    if (!CheckScope(by.scope, {"source", "prompt"})) return values::Error(expr.span);
    auto grouping = std::make_shared<CheckedGrouping>();
    grouping->scope = *ir::EnumBySpelling<ir::Scope>(by.scope.text);  // checked above
    grouping->span = expr.span;
    grouping->description = "by " + by.scope.text;
    return values::Make(types::Opaque(TypeKind::Grouping), expr.span, GroupingVal{grouping});
  }

  bool CheckScope(const ast::Identifier& scope, const std::vector<std::string>& allowed) {
    if (std::find(allowed.begin(), allowed.end(), scope.text) != allowed.end()) return true;
    auto builder = sema_.Report(DiagnosticKind::UnknownScope, scope.span, "unknown scope `" + scope.text + "`");
    std::string hint = DidYouMean(scope.text, allowed);
    std::string list;
    for (const std::string& name : allowed) list += (list.empty() ? "`" : " or `") + name + "`";
    builder.Help(hint.empty() ? "expected " + list : hint);
    return false;
  }

  Sema& sema_;
  const DataContext& context_;
};

ValueRef Sema::Eval(const ast::Expr& expr, const ScopeRef& scope, const DataContext& context) {
  ExpressionEvaluator evaluator(*this, context);
  return evaluator.Eval(expr, scope);
}

ValueRef Sema::EvalAs(const ast::Expr& expr, const ScopeRef& scope, const DataContext& context,
                      const TypeRef& expected, const std::string& what, bool accepts_none) {
  // Unknown names get a category-specific diagnostic where one is expected.
  if (expected->kind == TypeKind::Objective) {
    const ast::Expr* callee = &expr;
    if (const auto* call = expr.As<ast::CallExpr>()) callee = call->callee.get();
    if (const auto* name = callee->As<ast::NameExpr>(); name != nullptr && scope->Find(name->name) == nullptr) {
      auto builder =
          Report(DiagnosticKind::UnknownObjective, callee->span, "unknown objective `" + name->name + "`");
      std::vector<std::string> objectives;
      for (const std::string& candidate : scope->VisibleNames()) {
        Binding* binding = scope->Find(candidate);
        if (binding != nullptr && binding->value) {
          const auto* decl = binding->value->As<DeclVal>();
          if (decl != nullptr && decl->kind == DeclVal::Kind::Objective) objectives.push_back(candidate);
        }
      }
      std::string hint = DidYouMean(name->name, objectives);
      if (!hint.empty()) {
        builder.Help(hint);
      } else if (auto stdlib = StdlibHint(name->name)) {
        builder.Help(*stdlib);
      }
      return values::Error(expr.span);
    }
  }
  ValueRef value = Eval(expr, scope, context);
  // A declared objective whose parameters all have defaults may be named without parentheses.
  if (const auto* decl = value->As<DeclVal>(); decl != nullptr && expected->kind == TypeKind::Objective &&
                                                decl->kind == DeclVal::Kind::Objective) {
    const auto& objective = *static_cast<const ast::ObjectiveDecl*>(decl->decl);
    const auto& params = ResolveParams(objective.params, decl->env);
    auto bound = BindArguments(decl->name, expr.span, params, {}, scope, context, decl->name_span);
    if (!bound) return values::Error(expr.span);
    return InstantiateObjective(*decl, expr.span, *bound);
  }
  if (const auto* decl = value->As<DeclVal>(); decl != nullptr && expected->kind == TypeKind::Weighting &&
                                                decl->kind == DeclVal::Kind::Weighting) {
    const auto& weighting = *static_cast<const ast::WeightingDecl*>(decl->decl);
    const auto& params = ResolveParams(weighting.params, decl->env);
    auto bound = BindArguments(decl->name, expr.span, params, {}, scope, context, decl->name_span);
    if (!bound) return values::Error(expr.span);
    WeightingVal closure{nullptr, &weighting, std::move(*bound), decl->env, decl->name};
    return values::Make(types::Opaque(TypeKind::Weighting), expr.span, std::move(closure));
  }
  return Coerce(value, expected, what, expr.span, accepts_none);
}

}  // namespace fusec::sema
