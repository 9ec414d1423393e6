// The builtin functions and constants of .fuse.
//
// Each builtin is a row of the table in MakeBuiltins(): its parameters (types, ranges, defaults) are data,
// so argument binding, type and range errors are uniform with user declarations; the implementation only
// builds the value. Data-dependent builtins check the context they are called in (`logp` only in
// objectives, `softmax` only in weightings) and build Terms.

#include <algorithm>
#include <cmath>
#include <functional>
#include <filesystem>
#include <toml++/toml.h>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"
#include "compiler/source/toml_span.h"

namespace fusec::sema {
namespace {

// ---------------------------------------------------------------------------------------------------------
// Table helpers

Range Greater(double low) { return Range{low, std::nullopt, false, true}; }
Range AtLeast(double low) { return Range{low, std::nullopt, true, true}; }
Range Between(double low, double high, bool low_inclusive, bool high_inclusive) {
  return Range{low, high, low_inclusive, high_inclusive};
}

ParamSpec Param(std::string name, TypeRef type, ValueRef default_value = nullptr,
                std::optional<Range> range = std::nullopt) {
  ParamSpec spec;
  spec.name = std::move(name);
  spec.type = std::move(type);
  spec.default_value = std::move(default_value);
  spec.range = range;
  return spec;
}

ParamSpec OptionalParam(std::string name, TypeRef type, std::optional<Range> range = std::nullopt) {
  ParamSpec spec = Param(std::move(name), std::move(type), values::None(SourceSpan{}), range);
  spec.accepts_none = true;
  return spec;
}

/// A number that may depend on the data (math functions).
ParamSpec NumberParam(std::string name) {
  ParamSpec spec = Param(std::move(name), types::Float());
  spec.accepts_terms = true;
  return spec;
}

/// A score evaluated with one response current: `by: reward`, `argmax(reward - 0.1 * len)`.
ParamSpec ResponseParam(std::string name, TypeRef type, ValueRef default_value = nullptr) {
  ParamSpec spec = Param(std::move(name), std::move(type), std::move(default_value));
  spec.mode = ArgMode::ResponseExpr;
  spec.accepts_terms = true;
  return spec;
}

ValueRef Str(const char* text) { return values::String(text, SourceSpan{}); }
ValueRef IntV(int64_t value) { return values::Int(value, SourceSpan{}); }
ValueRef FloatV(double value) { return values::Float(value, SourceSpan{}); }
ValueRef BoolV(bool value) { return values::Bool(value, SourceSpan{}); }
ValueRef EnumV(EnumKind kind, const char* name) {
  const EnumInfo& info = GetEnumInfo(kind);
  for (size_t i = 0; i < info.values.size(); ++i) {
    if (info.values[i] == name) return values::Enum(kind, i, SourceSpan{});
  }
  return values::Error();
}

/// The reward of the current response: the default ranking score.
ValueRef CurrentReward() {
  Term term;
  term.op = TermOp::Field;
  term.name = "reward";
  term.type = ScalarType::Float;
  term.level = Level::Item;
  term.item = ItemKind::Response;
  static const TermRef shared = std::make_shared<const Term>(term);
  return values::Make(types::Float(), SourceSpan{}, TermVal{shared});
}

ValueRef Construct(TypeKind kind, const CallSite& site) {
  return values::Make(types::Opaque(kind), site.span, ConstructedVal{site.name, site.args});
}

ValueRef Arg(const CallSite& site, std::string_view name) {
  ValueRef value = FindNamed(site.args, name);
  return value ? value : values::Error(site.span);
}

SourceSpan ArgSpan(const CallSite& site, const std::string& name) {
  auto it = site.arg_spans.find(name);
  return it == site.arg_spans.end() ? site.span : it->second;
}

bool InContext(const CallSite& site, DataContext::Kind kind) { return site.context->kind == kind; }

ValueRef NotHere(Sema& sema, const CallSite& site, const std::string& where) {
  sema.Report(DiagnosticKind::NotInThisContext, site.callee_span, "`" + site.name + "` can only be used " + where);
  return values::Error(site.span);
}

/// The scope after `over`, or `fallback` without one; nullopt (reported) when it is not one of `allowed`.
std::optional<std::string> ScopeOf(Sema& sema, const CallSite& site, const Builtin& builtin,
                                   const std::string& fallback) {
  if (!site.over) return fallback;
  const std::string& scope = site.over->text;
  if (std::find(builtin.scopes.begin(), builtin.scopes.end(), scope) != builtin.scopes.end()) return scope;
  auto report = sema.Report(DiagnosticKind::UnknownScope, site.over->span,
                            "`" + site.name + "` cannot be taken over `" + scope + "`");
  std::string hint = DidYouMean(scope, builtin.scopes);
  std::string list;
  for (const std::string& allowed : builtin.scopes) list += (list.empty() ? "`" : " or `") + allowed + "`";
  report.Help(hint.empty() ? "expected " + list : hint);
  return std::nullopt;
}

TermRef Node(Sema& sema, TermOp op, std::string name, ScalarType type, Level level, ItemKind item,
             std::vector<TermRef> args, SourceSpan span) {
  Term term;
  term.op = op;
  term.name = std::move(name);
  term.type = type;
  term.level = level;
  term.item = item;
  term.args = std::move(args);
  term.span = span;
  return sema.MakeTerm(std::move(term));
}

/// Evaluates the call's positional arguments by hand (builtins with custom_arguments).
std::optional<std::vector<ValueRef>> PositionalArgs(Sema& sema, const CallSite& site, size_t min, size_t max) {
  std::vector<ValueRef> out;
  if (site.call == nullptr) return out;
  for (const ast::Argument& arg : site.call->args) {
    if (arg.name) {
      sema.Report(DiagnosticKind::UnknownArgument, arg.name->span,
                  "`" + site.name + "` takes positional arguments only");
      return std::nullopt;
    }
  }
  size_t count = site.call->args.size();
  if (count < min || count > max) {
    std::string expected = min == max ? std::to_string(min) : std::to_string(min) + " to " + std::to_string(max);
    sema.Report(count < min ? DiagnosticKind::MissingArgument : DiagnosticKind::TooManyArguments, site.span,
                "`" + site.name + "` takes " + expected + " argument" + (max == 1 ? "" : "s") + ", got " +
                    std::to_string(count));
    return std::nullopt;
  }
  bool ok = true;
  for (const ast::Argument& arg : site.call->args) {
    ValueRef value = sema.Eval(*arg.value, site.scope, *site.context);
    ok = ok && !value->is_error();
    out.push_back(value);
  }
  if (!ok) return std::nullopt;
  return out;
}

// ---------------------------------------------------------------------------------------------------------
// Models, data and training settings

ValueRef HfModel(Sema& /*sema*/, const CallSite& site) { return Construct(TypeKind::Model, site); }

ValueRef NewModel(Sema& sema, const CallSite& site) {
  auto number = [&](const char* name) -> std::optional<int64_t> {
    ValueRef value = Arg(site, name);
    if (const auto* i = value->As<int64_t>()) return *i;
    return std::nullopt;
  };
  bool ok = true;
  std::optional<int64_t> hidden = number("hidden_size");
  std::optional<int64_t> heads = number("num_heads");
  std::optional<int64_t> kv_heads = number("num_kv_heads");
  if (hidden && heads && *hidden % *heads != 0) {
    sema.Report(DiagnosticKind::InconsistentSettings, ArgSpan(site, "hidden_size"),
                "`hidden_size` (" + std::to_string(*hidden) + ") is not a multiple of `num_heads` (" +
                    std::to_string(*heads) + ")");
    ok = false;
  }
  if (heads && kv_heads && *heads % *kv_heads != 0) {
    sema.Report(DiagnosticKind::InconsistentSettings, ArgSpan(site, "num_kv_heads"),
                "`num_heads` (" + std::to_string(*heads) + ") is not a multiple of `num_kv_heads` (" +
                    std::to_string(*kv_heads) + ")")
        .Help("grouped-query attention shares each key-value head among an equal number of query heads");
    ok = false;
  }
  if (hidden && heads && *hidden % *heads == 0 && (*hidden / *heads) % 2 != 0) {
    sema.Report(DiagnosticKind::InconsistentSettings, ArgSpan(site, "hidden_size"),
                "the head size `hidden_size / num_heads` (" + std::to_string(*hidden / *heads) +
                    ") must be even for rotary embeddings");
    ok = false;
  }
  const auto* architecture = Arg(site, "architecture")->As<std::string>();
  if (architecture != nullptr && *architecture != "llama" && *architecture != "qwen2" && *architecture != "mistral") {
    auto builder = sema.Report(DiagnosticKind::OutOfRange, ArgSpan(site, "architecture"),
                               "unknown architecture \"" + *architecture + "\"");
    std::string hint = DidYouMean(*architecture, {"llama", "qwen2", "mistral"});
    builder.Help(hint.empty() ? "supported: \"llama\", \"qwen2\", \"mistral\"" : hint);
    ok = false;
  }
  if (!ok) return values::Error(site.span);
  return Construct(TypeKind::Model, site);
}

ValueRef Jsonl(Sema& /*sema*/, const CallSite& site) { return Construct(TypeKind::Dataset, site); }

ValueRef KeepSources(Sema& sema, const CallSite& site) {
  const auto* sources = Arg(site, "sources")->As<ListVal>();
  if (sources != nullptr && sources->elements.empty()) {
    sema.Report(DiagnosticKind::OutOfRange, ArgSpan(site, "sources"), "`keep_sources` needs at least one source");
    return values::Error(site.span);
  }
  if (!sema.CheckKeptSources(Arg(site, "data"), Arg(site, "sources"))) return values::Error(site.span);
  return Construct(TypeKind::Dataset, site);
}

/// split(data, seed: 0, sft: 0.4, po: 0.6): parts are named arguments whose fractions sum to 1.
ValueRef Split(Sema& sema, const CallSite& site) {
  DataContext none;
  ValueRef data;
  ValueRef seed = values::Int(0, SourceSpan{});
  NamedValues parts;
  std::map<std::string, SourceSpan> seen;
  bool ok = true;
  size_t positional = 0;
  for (const ast::Argument& arg : site.call->args) {
    if (!arg.name) {
      if (positional++ == 0) {
        data = sema.Coerce(sema.Eval(*arg.value, site.scope, none), types::Opaque(TypeKind::Dataset),
                           "argument `data` of `split`", arg.value->span);
      } else {
        sema.Report(DiagnosticKind::TooManyArguments, arg.span, "the parts of `split` are named, as in `sft: 0.4`");
        ok = false;
      }
      continue;
    }
    const std::string& name = arg.name->text;
    auto [it, inserted] = seen.emplace(name, arg.name->span);
    if (!inserted) {
      sema.Report(DiagnosticKind::DuplicateArgument, arg.name->span, "`" + name + "` is given twice")
          .Note(it->second, "first given here");
      ok = false;
      continue;
    }
    if (name == "data") {
      data = sema.Coerce(sema.Eval(*arg.value, site.scope, none), types::Opaque(TypeKind::Dataset),
                         "argument `data` of `split`", arg.value->span);
    } else if (name == "seed") {
      seed = sema.Coerce(sema.Eval(*arg.value, site.scope, none), types::Int(), "argument `seed` of `split`",
                         arg.value->span);
    } else {
      ValueRef fraction = sema.Coerce(sema.Eval(*arg.value, site.scope, none), types::Float(),
                                      "the fraction of part `" + name + "`", arg.value->span);
      if (!fraction->is_error() &&
          !sema.CheckRange(fraction, Between(0, 1, false, true), "the fraction of part `" + name + "`",
                           arg.value->span)) {
        fraction = values::Error(fraction->span);
      }
      parts.emplace_back(name, fraction);
    }
  }
  if (!data) {
    sema.Report(DiagnosticKind::MissingArgument, site.span, "missing argument `data` of `split`");
    ok = false;
  }
  if (parts.empty()) {
    sema.Report(DiagnosticKind::InvalidSplit, site.span, "`split` needs named parts, as in `sft: 0.4, po: 0.6`");
    ok = false;
  }
  double total = 0;
  bool all_known = true;
  for (const auto& [name, fraction] : parts) {
    if (fraction->is_error()) ok = false;
    if (auto number = fraction->AsNumber()) {
      total += *number;
    } else {
      all_known = false;
    }
  }
  if (ok && all_known && std::abs(total - 1.0) > 1e-9) {
    auto builder = sema.Report(DiagnosticKind::InvalidSplit, site.span,
                               "split fractions sum to " + FormatFloat(total) + ", not 1");
    for (const auto& [name, fraction] : parts) builder.Note(fraction->span, "`" + name + "` is " + ToString(fraction));
    ok = false;
  }
  if (!ok || data->is_error() || seed->is_error()) return values::Error(site.span);
  NamedValues split_args = {{"data", data}};
  for (const auto& part : parts) split_args.push_back(part);
  split_args.emplace_back("seed", seed);
  ValueRef split = values::Make(types::Opaque(TypeKind::Dataset), site.span, ConstructedVal{"split", split_args});
  RecordVal record;
  std::vector<std::pair<std::string, TypeRef>> fields;
  for (const auto& [name, fraction] : parts) {
    NamedValues part_args = {{"split", split}, {"part", values::String(name, fraction->span)}};
    record.fields.emplace_back(name, values::Make(types::Opaque(TypeKind::Dataset), fraction->span,
                                                  ConstructedVal{"split_part", part_args}));
    fields.emplace_back(name, types::Opaque(TypeKind::Dataset));
  }
  return values::Make(types::Record(std::move(fields)), site.span, std::move(record));
}

/// take(list, n): the first n elements.
ValueRef Take(Sema& sema, const CallSite& site) {
  auto args = PositionalArgs(sema, site, 2, 2);
  if (!args) return values::Error(site.span);
  ValueRef list = (*args)[0];
  ValueRef n = sema.Coerce((*args)[1], types::Int(), "argument `n` of `take`", site.call->args[1].value->span);
  if (n->is_error()) return values::Error(site.span);
  if (list->type->kind != TypeKind::List) {
    sema.Report(DiagnosticKind::TypeMismatch, site.call->args[0].value->span,
                "`take` needs a list, got `" + ToString(list->type) + "`");
    return values::Error(site.span);
  }
  const auto* elements = list->As<ListVal>();
  const auto* count = n->As<int64_t>();
  if (elements == nullptr || count == nullptr) return values::Unknown(list->type, site.span);
  if (*count < 0 || static_cast<size_t>(*count) > elements->elements.size()) {
    sema.Report(DiagnosticKind::IndexOutOfRange, n->span,
                "cannot take " + std::to_string(*count) + " elements of a list of " +
                    std::to_string(elements->elements.size()));
    return values::Error(site.span);
  }
  ListVal out;
  out.elements.assign(elements->elements.begin(), elements->elements.begin() + *count);
  return values::Make(list->type, site.span, std::move(out));
}

ValueRef AdamW(Sema& sema, const CallSite& site) {
  const auto* betas = Arg(site, "betas")->As<ListVal>();
  if (betas != nullptr && betas->elements.size() != 2) {
    sema.Report(DiagnosticKind::OutOfRange, ArgSpan(site, "betas"),
                "`betas` must have two elements, got " + std::to_string(betas->elements.size()));
    return values::Error(site.span);
  }
  return Construct(TypeKind::Optimizer, site);
}

ValueRef Evaluate(Sema& /*sema*/, const CallSite& site) { return Construct(TypeKind::Evaluation, site); }

/// grid("file.toml"): sweep points from a TOML file, path relative to the .fuse file. Top-level keys are
/// axes (a key and a list of values; points are their product); or `[[point]]` tables, one per point.
ValueRef Grid(Sema& sema, const CallSite& site) {
  ValueRef path_value = Arg(site, "path");
  const auto* path = path_value->As<std::string>();
  if (path == nullptr) return values::Error(site.span);
  std::filesystem::path base = sema.sources().file(site.span.file).canonical_path();
  std::filesystem::path full = std::filesystem::path(*path).is_absolute() ? std::filesystem::path(*path)
                                                                          : base.parent_path() / *path;
  std::string error;
  // Shown relative to the .fuse file as the user named it, like imports.
  std::filesystem::path shown = std::filesystem::path(*path).is_absolute()
                                    ? std::filesystem::path(*path)
                                    : std::filesystem::path(sema.sources().file(site.span.file).display_name())
                                              .parent_path() /
                                          *path;
  auto file = sema.sources().Load(full.string(), shown.lexically_normal().string(), &error);
  if (!file) {
    sema.Report(DiagnosticKind::FileNotFound, path_value->span, "grid file \"" + *path + "\" " + error)
        .Note("looked for " + shown.lexically_normal().string());
    return values::Error(site.span);
  }
  const SourceFile& source = sema.sources().file(*file);
  auto span_of = [&](const toml::source_region& region) { return TomlSpan(source, *file, region); };
  toml::table table;
  try {
    table = toml::parse(source.text(), source.display_name());
  } catch (const toml::parse_error& parse_error) {
    sema.Report(DiagnosticKind::InvalidGrid, span_of(parse_error.source()),
                "invalid TOML: " + std::string(parse_error.description()));
    return values::Error(site.span);
  }
  std::function<ValueRef(const toml::node&)> convert = [&](const toml::node& node) -> ValueRef {
    SourceSpan span = span_of(node.source());
    if (auto v = node.as_integer()) return values::Int(v->get(), span);
    if (auto v = node.as_floating_point()) return values::Float(v->get(), span);
    if (auto v = node.as_boolean()) return values::Bool(v->get(), span);
    if (auto v = node.as_string()) return values::String(v->get(), span);
    if (auto array = node.as_array()) {
      ListVal list;
      TypeRef element = types::Error();
      for (const toml::node& item : *array) {
        ValueRef value = convert(item);
        if (value->is_error()) return value;
        TypeRef joined = Join(element, value->type);
        if (!joined) {
          sema.Report(DiagnosticKind::InvalidGrid, value->span, "array elements must have one type");
          return values::Error(span);
        }
        element = joined;
        list.elements.push_back(value);
      }
      return values::Make(types::List(element), span, std::move(list));
    }
    sema.Report(DiagnosticKind::InvalidGrid, span,
                "grid values are numbers, bools, strings and arrays of them; tables and dates are not accepted");
    return values::Error(span);
  };
  GridVal grid;
  // toml++ iterates keys in sorted order; the file's order is the one the user chose.
  auto in_file_order = [&](const toml::table& t) {
    std::vector<std::pair<std::string, const toml::node*>> entries;
    for (const auto& [key, node] : t) {
      entries.emplace_back(std::string(key.str()), &node);
      grid.key_spans.emplace(std::string(key.str()), span_of(key.source()));
    }
    std::stable_sort(entries.begin(), entries.end(), [](const auto& a, const auto& b) {
      const auto& x = a.second->source().begin;
      const auto& y = b.second->source().begin;
      return x.line != y.line ? x.line < y.line : x.column < y.column;
    });
    return entries;
  };
  if (auto points = table["point"].as_array()) {
    for (const toml::node& point : *points) {
      const toml::table* point_table = point.as_table();
      if (point_table == nullptr) {
        sema.Report(DiagnosticKind::InvalidGrid, span_of(point.source()), "each `[[point]]` must be a table");
        return values::Error(site.span);
      }
      NamedValues values;
      for (const auto& [key, node] : in_file_order(*point_table)) {
        ValueRef value = convert(*node);
        if (value->is_error()) return values::Error(site.span);
        values.emplace_back(key, value);
      }
      grid.points.push_back(std::move(values));
    }
    if (table.size() > 1) {
      sema.Report(DiagnosticKind::InvalidGrid, span_of(table.source()),
                  "a grid file has either axes (`tau = [...]`) or `[[point]]` tables, not both");
      return values::Error(site.span);
    }
  } else {
    std::vector<std::pair<std::string, std::vector<ValueRef>>> axes;
    for (const auto& [key, node] : in_file_order(table)) {
      ValueRef value = convert(*node);
      if (value->is_error()) return values::Error(site.span);
      const auto* list = value->As<ListVal>();
      if (list == nullptr || list->elements.empty()) {
        sema.Report(DiagnosticKind::InvalidGrid, value->span, "axis `" + key + "` must be a non-empty array of values");
        return values::Error(site.span);
      }
      axes.emplace_back(key, list->elements);
    }
    if (axes.empty()) {
      sema.Report(DiagnosticKind::InvalidGrid, path_value->span, "grid file \"" + *path + "\" has no axes");
      return values::Error(site.span);
    }
    grid.points.emplace_back();
    for (const auto& [name, axis_values] : axes) {
      std::vector<NamedValues> next;
      for (const NamedValues& point : grid.points) {
        for (const ValueRef& value : axis_values) {
          NamedValues extended = point;
          extended.emplace_back(name, value);
          next.push_back(std::move(extended));
          if (next.size() > 10000) {
            sema.Report(DiagnosticKind::InvalidGrid, path_value->span, "the grid has more than 10000 points");
            return values::Error(site.span);
          }
        }
      }
      grid.points = std::move(next);
    }
  }
  return values::Make(types::Opaque(TypeKind::Grid), site.span, std::move(grid));
}

// ---------------------------------------------------------------------------------------------------------
// Selections, pairings and groupings

ValueRef MakeSelection(Sema& sema, const CallSite& site, const Builtin& builtin, std::optional<int64_t> k,
                       TermRef by, const std::string& description) {
  auto scope = ScopeOf(sema, site, builtin, "prompt");
  if (!scope) return values::Error(site.span);
  auto selection = std::make_shared<CheckedSelection>();
  selection->scope = ir::EnumBySpelling<ir::Scope>(*scope).value_or(ir::Scope::Prompt);
  selection->k = k;
  selection->by = std::move(by);
  selection->span = site.span;
  selection->description = description + (site.over ? " over " + *scope : "");
  return values::Make(types::Opaque(TypeKind::Selection), site.span, SelectionVal{selection});
}

const Builtin* FindBuiltin(Sema& sema, const std::string& name) {
  for (const Builtin& builtin : sema.builtins()) {
    if (builtin.name == name) return &builtin;
  }
  return nullptr;
}

ValueRef TopK(Sema& sema, const CallSite& site) {
  ValueRef k = Arg(site, "k");
  ValueRef by = Arg(site, "by");
  if (k->is_error() || by->is_error()) return values::Error(site.span);
  std::optional<int64_t> count;
  if (const auto* i = k->As<int64_t>()) count = *i;
  std::string description = "top_k(" + ToString(k) + ", by: " + ToString(by) + ")";
  return MakeSelection(sema, site, *FindBuiltin(sema, "top_k"), count, sema.ToTerm(by, site.span), description);
}

ValueRef Best(Sema& sema, const CallSite& site) {
  return MakeSelection(sema, site, *FindBuiltin(sema, "best"), 1, sema.ToTerm(CurrentReward(), site.span), "best");
}

ValueRef All(Sema& sema, const CallSite& site) {
  return MakeSelection(sema, site, *FindBuiltin(sema, "all"), std::nullopt, sema.ToTerm(CurrentReward(), site.span),
                       "all");
}

ValueRef RoleChoice(Sema& sema, const CallSite& site, bool argmax) {
  ValueRef score = Arg(site, "score");
  if (score->is_error()) return score;
  auto selector = std::make_shared<RoleSelector>();
  selector->argmax = argmax;
  selector->score = sema.ToTerm(score, site.span);
  selector->span = site.span;
  return values::Make(types::Opaque(TypeKind::RoleSelector), site.span, RoleSelectorVal{selector});
}
ValueRef Argmax(Sema& sema, const CallSite& site) { return RoleChoice(sema, site, true); }
ValueRef Argmin(Sema& sema, const CallSite& site) { return RoleChoice(sema, site, false); }

ValueRef PairsBy(Sema& sema, const CallSite& site, CheckedPairing::Kind kind) {
  ValueRef by = Arg(site, "by");
  ValueRef gap = Arg(site, "min_gap");
  if (by->is_error() || gap->is_error()) return values::Error(site.span);
  const Builtin& builtin = *FindBuiltin(sema, site.name);
  auto scope = ScopeOf(sema, site, builtin, kind == CheckedPairing::Kind::AcrossSources ? "prompt" : "prompt");
  if (!scope) return values::Error(site.span);
  auto pairing = std::make_shared<CheckedPairing>();
  pairing->kind = kind;
  pairing->scope = ir::EnumBySpelling<ir::Scope>(*scope).value_or(ir::Scope::Prompt);
  pairing->by = sema.ToTerm(by, site.span);
  pairing->min_gap = gap->AsNumber().value_or(0);
  pairing->span = site.span;
  pairing->description = site.name + "(by: " + ToString(by) + ", min_gap: " + ToString(gap) + ")" +
                         (site.over ? " over " + *scope : "");
  for (const char* role : {"chosen", "rejected"}) {
    RoleSelector selector;
    selector.name = role;
    selector.argmax = std::string(role) == "chosen";
    selector.score = pairing->by;
    selector.span = site.span;
    pairing->roles.push_back(std::move(selector));
  }
  return values::Make(types::Opaque(TypeKind::Pairing), site.span, PairingVal{pairing});
}
ValueRef AllPairs(Sema& sema, const CallSite& site) { return PairsBy(sema, site, CheckedPairing::Kind::AllPairs); }
ValueRef AcrossSources(Sema& sema, const CallSite& site) {
  return PairsBy(sema, site, CheckedPairing::Kind::AcrossSources);
}

// ---------------------------------------------------------------------------------------------------------
// Fields of responses, and objective primitives

/// reward(y), len(chosen), source(y), index(y); `len(list)` is a list's length.
ValueRef ResponseField(Sema& sema, const CallSite& site) {
  auto args = PositionalArgs(sema, site, 1, 1);
  if (!args) return values::Error(site.span);
  ValueRef arg = (*args)[0];
  if (site.name == "len" && arg->type->kind == TypeKind::List) {
    if (const auto* list = arg->As<ListVal>()) return values::Int(static_cast<int64_t>(list->elements.size()), site.span);
    return values::Unknown(types::Int(), site.span);
  }
  const auto* response = arg->As<ResponseVal>();
  if (response == nullptr) {
    auto builder = sema.Report(DiagnosticKind::TypeMismatch, site.call->args[0].value->span,
                               "`" + site.name + "` needs a response such as `y` or `chosen`, got `" +
                                   ToString(arg->type) + "`");
    if (site.name == "len") builder.Help("`len` also gives the length of a list");
    return values::Error(site.span);
  }
  Term term;
  term.op = TermOp::Field;
  term.name = site.name;
  term.ref = response->name;
  term.type = site.name == "source" ? ScalarType::String : site.name == "reward" ? ScalarType::Float : ScalarType::Int;
  term.level = Level::Item;
  term.item = response->item;
  term.span = site.span;
  return sema.TermValue(sema.MakeTerm(std::move(term)), site.span);
}

ValueRef LogProbability(Sema& sema, const CallSite& site, TermOp op) {
  if (!InContext(site, DataContext::Kind::Objective)) return NotHere(sema, site, "in an objective");
  auto args = PositionalArgs(sema, site, 1, 1);
  if (!args) return values::Error(site.span);
  const auto* response = (*args)[0]->As<ResponseVal>();
  if (response == nullptr) {
    sema.Report(DiagnosticKind::TypeMismatch, site.call->args[0].value->span,
                "`" + site.name + "` needs a response such as `y` or `chosen`, got `" + ToString((*args)[0]->type) +
                    "`");
    return values::Error(site.span);
  }
  Term term;
  term.op = op;
  term.ref = response->name;
  term.type = ScalarType::Float;
  term.level = Level::Item;
  term.item = response->item;
  term.span = site.span;
  return sema.TermValue(sema.MakeTerm(std::move(term)), site.span);
}
ValueRef Logp(Sema& sema, const CallSite& site) { return LogProbability(sema, site, TermOp::Logp); }
ValueRef RefLogp(Sema& sema, const CallSite& site) { return LogProbability(sema, site, TermOp::RefLogp); }

ValueRef WeightPrimitive(Sema& sema, const CallSite& site) {
  if (!InContext(site, DataContext::Kind::Objective)) {
    auto builder = sema.Report(DiagnosticKind::NotInThisContext, site.callee_span,
                               "`weight` can only be used in an objective");
    if (InContext(site, DataContext::Kind::Weight)) builder.Help("a weighting defines the weight; it cannot read it");
    return values::Error(site.span);
  }
  Term term;
  term.op = TermOp::Weight;
  term.level = Level::Item;
  term.item = site.context->item;
  term.span = site.span;
  return sema.TermValue(sema.MakeTerm(std::move(term)), site.span);
}

ValueRef ProgressPrimitive(Sema& sema, const CallSite& site) {
  if (!InContext(site, DataContext::Kind::Objective)) return NotHere(sema, site, "in an objective");
  Term term;
  term.op = TermOp::Progress;
  term.level = Level::Step;
  term.span = site.span;
  return sema.TermValue(sema.MakeTerm(std::move(term)), site.span);
}

// ---------------------------------------------------------------------------------------------------------
// Math

/// A math function of a constant, with ir::EvalScalar's meaning (the runtime's); the error says why when the
/// argument is outside the function's domain.
std::optional<double> ApplyMath(const std::string& name, double x, std::string* error) {
  std::optional<ir::OpKind> op = ir::OpBySpelling(name, 1);
  if (!op) return std::nullopt;
  const double args[] = {x};
  std::optional<double> result = ir::EvalScalar(*op, args);
  if (!result && *op == ir::OpKind::Log) *error = "`log` of a number that is not positive";
  if (!result && *op == ir::OpKind::Sqrt) *error = "`sqrt` of a negative number";
  return result;
}

ValueRef MathUnary(Sema& sema, const CallSite& site) {
  ValueRef x = Arg(site, "x");
  if (x->is_error()) return x;
  if (site.name == "detach" && !InContext(site, DataContext::Kind::Objective)) {
    return NotHere(sema, site, "in an objective");
  }
  if (x->is_unknown()) return values::Unknown(types::Float(), site.span);
  if (const auto* term = x->As<TermVal>()) {
    return sema.TermValue(Node(sema, TermOp::Math, site.name, ScalarType::Float, term->term->level, term->term->item,
                               {term->term}, site.span),
                          site.span);
  }
  std::string error;
  auto result = ApplyMath(site.name, *x->AsNumber(), &error);
  if (!result || !std::isfinite(*result)) {
    sema.Report(DiagnosticKind::ArithmeticError, site.span,
                error.empty() ? "`" + site.name + "` gives a result that is not a finite number" : error);
    return values::Error(site.span);
  }
  return values::Float(*result, site.span);
}

ValueRef Clamp(Sema& sema, const CallSite& site) {
  ValueRef x = Arg(site, "x");
  ValueRef low = Arg(site, "low");
  ValueRef high = Arg(site, "high");
  if (x->is_error() || low->is_error() || high->is_error()) return values::Error(site.span);
  if (x->As<TermVal>() || low->As<TermVal>() || high->As<TermVal>()) {
    std::vector<TermRef> args = {sema.ToTerm(x, site.span), sema.ToTerm(low, site.span), sema.ToTerm(high, site.span)};
    auto level = sema.CombineLevels(args, site.span, "clamp");
    if (!level) return values::Error(site.span);
    return sema.TermValue(Node(sema, TermOp::Math, "clamp", ScalarType::Float, level->first, level->second,
                               std::move(args), site.span),
                          site.span);
  }
  if (!x->is_known() || !low->is_known() || !high->is_known()) return values::Unknown(types::Float(), site.span);
  const double clamp_args[] = {*x->AsNumber(), *low->AsNumber(), *high->AsNumber()};
  return values::Float(*ir::EvalScalar(ir::OpKind::Clamp, clamp_args), site.span);
}

/// min, max, sum, mean, count: elementwise (two numbers), over a list, over a group (objectives), or over
/// the pool responses sharing a scope (`max(reward) over source`, in rules and weightings).
ValueRef Reduction(Sema& sema, const CallSite& site) {
  const Builtin& builtin = *FindBuiltin(sema, site.name);
  bool elementwise_allowed = site.name == "min" || site.name == "max";
  size_t min_args = site.name == "count" ? 0 : 1;
  size_t max_args = elementwise_allowed ? 2 : 1;
  if (site.name == "count" && !site.over) {
    sema.Report(DiagnosticKind::NotInThisContext, site.span, "`count` counts responses over a scope")
        .Help("write `count() over source` or `count() over prompt`");
    return values::Error(site.span);
  }
  auto args = PositionalArgs(sema, site, min_args, max_args);
  if (!args) return values::Error(site.span);
  if (args->size() == 2) {
    if (site.over) {
      sema.Report(DiagnosticKind::NotInThisContext, site.over->span,
                  "`" + site.name + "(a, b)` compares two values; `over` needs one");
      return values::Error(site.span);
    }
    std::vector<ValueRef> operands;
    for (size_t i = 0; i < 2; ++i) {
      operands.push_back(sema.Coerce((*args)[i], types::Float(), "argument of `" + site.name + "`",
                                     site.call->args[i].value->span));
      if (operands.back()->is_error()) return values::Error(site.span);
    }
    if (operands[0]->As<TermVal>() || operands[1]->As<TermVal>()) {
      std::vector<TermRef> terms = {sema.ToTerm(operands[0], site.span), sema.ToTerm(operands[1], site.span)};
      auto level = sema.CombineLevels(terms, site.span, "take the " + site.name + " of");
      if (!level) return values::Error(site.span);
      return sema.TermValue(Node(sema, TermOp::Math, site.name, ScalarType::Float, level->first, level->second,
                                 std::move(terms), site.span),
                            site.span);
    }
    if (!operands[0]->is_known() || !operands[1]->is_known()) return values::Unknown(types::Float(), site.span);
    const double pair[] = {*operands[0]->AsNumber(), *operands[1]->AsNumber()};
    return values::Float(*ir::EvalScalar(site.name == "min" ? ir::OpKind::Min : ir::OpKind::Max, pair), site.span);
  }
  ValueRef x = args->empty() ? values::Float(1.0, site.span) : (*args)[0];
  SourceSpan x_span = args->empty() ? site.span : site.call->args[0].value->span;
  if (x->type->kind == TypeKind::List && !site.over) {
    const auto* list = x->As<ListVal>();
    if (!IsNumeric(*x->type->element) && x->type->element->kind != TypeKind::Error) {
      sema.Report(DiagnosticKind::TypeMismatch, x_span, "`" + site.name + "` needs a list of numbers");
      return values::Error(site.span);
    }
    if (list == nullptr) return values::Unknown(types::Float(), site.span);
    if (list->elements.empty()) {
      sema.Report(DiagnosticKind::ArithmeticError, x_span, "`" + site.name + "` of an empty list");
      return values::Error(site.span);
    }
    double acc = site.name == "min" ? INFINITY : site.name == "max" ? -INFINITY : 0;
    for (const ValueRef& element : list->elements) {
      double v = *element->AsNumber();
      acc = site.name == "min" ? std::min(acc, v) : site.name == "max" ? std::max(acc, v) : acc + v;
    }
    if (site.name == "mean") acc /= static_cast<double>(list->elements.size());
    return values::Float(acc, site.span);
  }
  x = sema.Coerce(x, types::Float(), "argument of `" + site.name + "`", x_span);
  if (x->is_error()) return x;
  if (site.over) {
    if (!InContext(site, DataContext::Kind::Response) && !InContext(site, DataContext::Kind::Weight) &&
        !InContext(site, DataContext::Kind::Pair)) {
      return NotHere(sema, site, "over a scope in a selection, pairing, grouping or weighting");
    }
    auto scope = ScopeOf(sema, site, builtin, "prompt");
    if (!scope) return values::Error(site.span);
    TermRef arg = sema.ToTerm(x, x_span);
    bool uses_roles = false;
    bool uses_normalisers = false;
    ForEachTerm(arg, [&](const Term& node) {
      if (!node.ref.empty()) uses_roles = true;
      if (node.op == TermOp::Normalize) uses_normalisers = true;
    });
    if (uses_roles || uses_normalisers) {
      sema.Report(DiagnosticKind::LevelMismatch, x_span,
                  "an aggregate over " + *scope + " reads each response of the " + *scope +
                      (uses_roles ? ", so it cannot refer to a role" : ", so it cannot contain a normalisation"))
          .Help("aggregate response fields, as in `max(reward) over source`");
      return values::Error(site.span);
    }
    ItemKind item = site.context->kind == DataContext::Kind::Weight ? site.context->item : ItemKind::Response;
    if (site.context->kind == DataContext::Kind::Pair) item = ItemKind::Pair;
    TermRef node = Node(sema, TermOp::Aggregate, site.name, ScalarType::Float, Level::Item, item, {arg}, site.span);
    auto with_scope = std::make_shared<Term>(*node);
    with_scope->scope = *scope;
    if (site.name == "count") with_scope->args.clear();
    return sema.TermValue(with_scope, site.span);
  }
  if (site.name == "count") return values::Error(site.span);
  if (!InContext(site, DataContext::Kind::Objective)) {
    if (x->As<TermVal>() != nullptr) {
      sema.Report(DiagnosticKind::NotInThisContext, site.span,
                  "`" + site.name + "` of a response field needs a scope here")
          .Help("write `" + site.name + "(...) over source` or `over prompt`");
      return values::Error(site.span);
    }
    sema.Report(DiagnosticKind::TypeMismatch, x_span,
                "`" + site.name + "` of one number; it takes a list, two numbers, or a value over a scope");
    return values::Error(site.span);
  }
  if (x->is_unknown()) return values::Unknown(types::Float(), site.span);
  TermRef arg = sema.ToTerm(x, x_span);
  if (arg->level != Level::Item) {
    std::string why = arg->level == Level::Group ? "it is already one value per group" : "it is the same for every member";
    sema.Report(DiagnosticKind::InvalidReduction, x_span, "nothing to reduce with `" + site.name + "`: " + why)
        .Help("`" + site.name + "` reduces per-response or per-pair values over a group");
    return values::Error(site.span);
  }
  return sema.TermValue(Node(sema, TermOp::Reduce, site.name, ScalarType::Float, Level::Group, arg->item, {arg}, site.span),
                        site.span);
}

ValueRef LooMean(Sema& sema, const CallSite& site) {
  if (!InContext(site, DataContext::Kind::Objective)) return NotHere(sema, site, "in an objective");
  ValueRef x = Arg(site, "x");
  if (x->is_error()) return x;
  if (x->is_unknown()) return values::Unknown(types::Float(), site.span);
  TermRef arg = sema.ToTerm(x, site.span);
  if (arg->level != Level::Item) {
    sema.Report(DiagnosticKind::InvalidReduction, ArgSpan(site, "x"),
                "`loo_mean` needs one value per member of a group, got " +
                    std::string(LevelName(arg->level, arg->item)) + " values")
        .Help("as in `loo_mean(reward(y))`");
    return values::Error(site.span);
  }
  return sema.TermValue(Node(sema, TermOp::LooMean, "loo_mean", ScalarType::Float, Level::Item, arg->item, {arg},
                             site.span),
                        site.span);
}

// ---------------------------------------------------------------------------------------------------------
// Weight normalisations

/// Whether `term` is the same for every item of a source: built from constants and aggregates.
bool IsPerSource(const Term& term) {
  if (term.op == TermOp::Aggregate) return term.scope == "source" || term.scope == "prompt";
  if (term.op == TermOp::Field) return term.name == "source";
  if (term.op == TermOp::Const) return true;
  if (term.op == TermOp::Weight || term.op == TermOp::Logp || term.op == TermOp::RefLogp || term.op == TermOp::Normalize) {
    return false;
  }
  for (const TermRef& arg : term.args) {
    if (!IsPerSource(*arg)) return false;
  }
  return true;
}

ValueRef Normalisation(Sema& sema, const CallSite& site) {
  if (!InContext(site, DataContext::Kind::Weight)) return NotHere(sema, site, "in a weighting");
  const Builtin& builtin = *FindBuiltin(sema, site.name);
  auto scope = ScopeOf(sema, site, builtin, "prompt");
  if (!scope) return values::Error(site.span);
  TermRef arg;
  if (site.name != "uniform") {
    ValueRef x = Arg(site, "x");
    if (x->is_error()) return x;
    arg = sema.ToTerm(x, ArgSpan(site, "x"));
    if (arg->level == Level::Pool) {
      sema.Report(DiagnosticKind::LevelMismatch, ArgSpan(site, "x"),
                  "`" + site.name + "` normalises one value per item, but this is one value per response of the pool")
          .Help("the items here are pairs: aggregate first, as in `max(reward) over source`, or use a role, "
                "as in `reward(chosen)`");
      return values::Error(site.span);
    }
    if (*scope == "sources" && !IsPerSource(*arg)) {
      sema.Report(DiagnosticKind::LevelMismatch, ArgSpan(site, "x"),
                  "`" + site.name + "(...) over sources` needs one value per source, but this varies within a source")
          .Help("aggregate over the source first, as in `max(reward) over source`");
      return values::Error(site.span);
    }
  }
  Term term;
  term.op = TermOp::Normalize;
  term.name = site.name;
  term.scope = *scope;
  term.type = ScalarType::Float;
  term.level = Level::Item;
  term.item = site.context->item;
  if (arg) term.args = {arg};
  term.span = site.span;
  return sema.TermValue(sema.MakeTerm(std::move(term)), site.span);
}

// ---------------------------------------------------------------------------------------------------------
// The table

std::vector<Builtin> MakeBuiltins() {
  TypeRef str = types::String();
  TypeRef integer = types::Int();
  TypeRef real = types::Float();
  TypeRef boolean = types::Bool();
  TypeRef model = types::Opaque(TypeKind::Model);
  TypeRef dataset = types::Opaque(TypeKind::Dataset);
  std::vector<Builtin> b;
  auto add = [&](std::string name, std::vector<ParamSpec> params, BuiltinImpl impl) -> Builtin& {
    Builtin builtin;
    builtin.name = std::move(name);
    builtin.params = std::move(params);
    builtin.impl = impl;
    b.push_back(std::move(builtin));
    return b.back();
  };

  // Models, data, training and evaluation settings.
  add("hf_model", {Param("path", str), Param("chat", types::Enum(EnumKind::ChatTemplate), EnumV(EnumKind::ChatTemplate, "auto"))},
      HfModel);
  add("new_model",
      {Param("hidden_size", integer, nullptr, AtLeast(1)), Param("intermediate_size", integer, nullptr, AtLeast(1)),
       Param("num_layers", integer, nullptr, AtLeast(1)), Param("num_heads", integer, nullptr, AtLeast(1)),
       OptionalParam("num_kv_heads", integer, AtLeast(1)), OptionalParam("vocab_size", integer, AtLeast(1)),
       Param("max_position", integer, IntV(2048), AtLeast(1)), Param("rope_theta", real, FloatV(10000.0), Greater(0)),
       Param("rms_norm_eps", real, FloatV(1e-5), Greater(0)), Param("tie_embeddings", boolean, BoolV(true)),
       Param("architecture", str, Str("llama")), Param("tokenizer", str, Str("byte")),
       Param("chat", types::Enum(EnumKind::ChatTemplate), EnumV(EnumKind::ChatTemplate, "plain")),
       Param("seed", integer, IntV(0))},
      NewModel);
  add("jsonl",
      {Param("path", str), Param("id", str, Str("id")), Param("prompt", str, Str("prompt")),
       Param("messages", str, Str("messages")), Param("responses", str, Str("responses")),
       Param("source", str, Str("source")), Param("text", str, Str("text")), Param("reward", str, Str("reward")),
       Param("gold", str, Str("gold")), Param("family", str, Str("family")),
       Param("bad_lines", types::Enum(EnumKind::BadLines), EnumV(EnumKind::BadLines, "stop")),
       OptionalParam("limit", integer, AtLeast(1))},
      Jsonl);
  // Source models: sampling and scoring (sampling.cpp). `n` none: the length of `seeds`, else 5; `seed` none:
  // the experiment's. A source's record in `models` overrides the rows from `n` to `seeds`.
  TypeRef reward_model = types::Opaque(TypeKind::RewardModel);
  ParamSpec models = Param("models", types::Record({}));
  models.any_record = true;
  add("sample",
      {Param("prompts", dataset), models, OptionalParam("n", integer, AtLeast(1)),
       Param("temperature", real, FloatV(1.0), AtLeast(0)), Param("top_p", real, FloatV(1.0), Between(0, 1, false, true)),
       OptionalParam("top_k", integer, AtLeast(1)), Param("repetition_penalty", real, FloatV(1.0), Greater(0)),
       Param("max_new_tokens", integer, IntV(256), AtLeast(1)), OptionalParam("seed", integer),
       OptionalParam("seeds", types::List(integer)), Param("keep_responses", boolean, BoolV(true)),
       Param("drop_identical", boolean, BoolV(false)), Param("batch_tokens", integer, IntV(16384), AtLeast(1))},
      SampleBuiltin);
  add("score",
      {Param("data", dataset), Param("by", reward_model), Param("keep_existing", boolean, BoolV(false)),
       Param("batch_tokens", integer, IntV(16384), AtLeast(1))},
      ScoreBuiltin);
  add("reward_model",
      {Param("path", str), Param("chat", types::Enum(EnumKind::ChatTemplate), EnumV(EnumKind::ChatTemplate, "auto"))},
      ScorerBuiltin);
  add("gold_reward", {Param("noise", real, FloatV(0.1), AtLeast(0)), Param("seed", integer, IntV(0))}, ScorerBuiltin);
  add("split", {}, Split).custom_arguments = true;
  add("keep_sources", {Param("data", dataset), Param("sources", types::List(str))}, KeepSources);
  add("take", {}, Take).custom_arguments = true;
  add("adamw",
      {Param("lr", real, nullptr, Greater(0)),
       Param("betas", types::List(real), values::Make(types::List(real), SourceSpan{}, ListVal{{FloatV(0.9), FloatV(0.999)}}),
             Between(0, 1, true, false)),
       Param("eps", real, FloatV(1e-8), Greater(0)), Param("weight_decay", real, FloatV(0.0), AtLeast(0)),
       Param("warmup", real, FloatV(0.1), Between(0, 1, true, false)),
       Param("schedule", types::Enum(EnumKind::Schedule), EnumV(EnumKind::Schedule, "cosine")),
       Param("min_lr_ratio", real, FloatV(0.0), Between(0, 1, true, true))},
      AdamW);
  add("evaluate",
      {Param("data", dataset),
       Param("models", types::List(model), values::Make(types::List(model), SourceSpan{}, ListVal{})),
       Param("max_new_tokens", integer, IntV(128), AtLeast(1)), Param("batch", integer, IntV(16), AtLeast(1))},
      Evaluate);
  add("grid", {Param("path", str)}, Grid);

  // Selections, pairings, roles.
  add("top_k", {Param("k", integer, nullptr, AtLeast(1)), ResponseParam("by", real, CurrentReward())}, TopK).scopes = {
      "prompt", "source"};
  Builtin& best = add("best", {}, Best);
  best.is_constant = true;
  best.scopes = {"prompt", "source"};
  Builtin& all = add("all", {}, All);
  all.is_constant = true;
  all.scopes = {"prompt", "source"};
  add("argmax", {ResponseParam("score", real)}, Argmax);
  add("argmin", {ResponseParam("score", real)}, Argmin);
  add("all_pairs", {ResponseParam("by", real, CurrentReward()), Param("min_gap", real, FloatV(0.0), AtLeast(0))},
      AllPairs)
      .scopes = {"prompt", "source"};
  add("across_sources", {ResponseParam("by", real, CurrentReward()), Param("min_gap", real, FloatV(0.0), AtLeast(0))},
      AcrossSources);

  // Fields of responses and objective primitives.
  for (const char* field : {"reward", "len", "source", "index"}) add(field, {}, ResponseField).custom_arguments = true;
  add("logp", {}, Logp).custom_arguments = true;
  add("ref_logp", {}, RefLogp).custom_arguments = true;
  add("weight", {}, WeightPrimitive).is_constant = true;
  add("progress", {}, ProgressPrimitive).is_constant = true;

  // Math.
  for (const char* name : {"log", "exp", "sigmoid", "log_sigmoid", "softplus", "relu", "abs", "sqrt", "detach"}) {
    add(name, {NumberParam("x")}, MathUnary);
  }
  add("clamp", {NumberParam("x"), NumberParam("low"), NumberParam("high")}, Clamp);
  for (const char* name : {"min", "max", "sum", "mean", "count"}) {
    Builtin& reduction = add(name, {}, Reduction);
    reduction.custom_arguments = true;
    reduction.scopes = {"prompt", "source"};
  }
  add("loo_mean", {NumberParam("x")}, LooMean);

  // Weight normalisations.
  for (const char* name : {"softmax", "normalize", "rank"}) {
    add(name, {NumberParam("x")}, Normalisation).scopes = {"prompt", "source", "sources"};
  }
  Builtin& uniform = add("uniform", {}, Normalisation);
  uniform.is_constant = true;
  uniform.scopes = {"prompt", "source", "sources"};

  for (Builtin& builtin : b) {
    std::string signature = builtin.name + "(";
    for (size_t i = 0; i < builtin.params.size(); ++i) {
      const ParamSpec& param = builtin.params[i];
      if (i > 0) signature += ", ";
      signature += param.name + ": " + ToString(param.type);
      if (param.range) signature += " " + param.range->ToString();
      if (param.default_value) signature += " = " + ToString(param.default_value);
      if (param.any_record) signature = signature.substr(0, signature.size() - 2) + "record";
    }
    builtin.signature = signature + ")";
  }
  return b;
}

}  // namespace

ScopeRef Sema::MakeBuiltinScope() {
  builtins_ = MakeBuiltins();
  ScopeRef scope = scopes_.New(nullptr);
  for (const Builtin& builtin : builtins_) {
    Binding binding;
    binding.name = builtin.name;
    binding.kind = BindingKind::Builtin;
    binding.value = values::Make(types::Opaque(TypeKind::Function), SourceSpan{}, BuiltinVal{&builtin});
    scope->Define(std::move(binding));
  }
  for (const EnumInfo& info : AllEnums()) {
    for (size_t i = 0; i < info.values.size(); ++i) {
      Binding binding;
      binding.name = std::string(info.values[i]);
      binding.kind = BindingKind::Builtin;
      binding.value = values::Enum(info.kind, i, SourceSpan{});
      scope->Define(std::move(binding));  // `auto` appears in several enums; the first (precision) wins
    }
  }
  // The root of every stage template chain.
  Binding train;
  train.name = "train";
  train.kind = BindingKind::Builtin;
  train.value = values::Make(types::Opaque(TypeKind::Function), SourceSpan{}, DeclVal{DeclVal::Kind::StageTemplate, nullptr, nullptr, "train", SourceSpan{}});
  scope->Define(std::move(train));
  return scope;
}

ValueRef Sema::CallBuiltin(const Builtin& builtin, CallSite site) {
  if (site.over && builtin.scopes.empty()) {
    Report(DiagnosticKind::NotInThisContext, site.over->span, "`" + builtin.name + "` cannot be followed by `over`")
        .Help("`over` follows an aggregation (`max(reward) over source`), a normalisation "
              "(`softmax(reward) over prompt`) or a selection (`top_k(2) over source`)");
    return values::Error(site.span);
  }
  return builtin.impl(*this, site);
}

}  // namespace fusec::sema
