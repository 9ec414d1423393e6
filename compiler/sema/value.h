// Values: what .fuse expressions evaluate to at check time.
//
// Sema is a partial evaluator. Everything an experiment states is known before training (hyperparameters,
// paths, model and dataset constructors, rules), so it is computed here and checked against types and
// ranges; only what depends on the data is left symbolic, as a Term inside the value. Every value remembers
// the span where it was written, so a bad value is reported where the user typed it (a sweep grid entry, a
// template argument), not where it was finally used.
//
// Two special values keep checking going after a problem: Error (already reported; everything derived from
// it is silently Error too, so one mistake gives one message) and Unknown (a template parameter checked
// without an argument: type known, value not, so range checks skip it).
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "compiler/sema/term.h"
#include "compiler/sema/types.h"
#include "compiler/source/source.h"

namespace fusec::ast {
struct Expr;
struct LetDecl;
struct ObjectiveDecl;
struct WeightingDecl;
struct StageTemplateDecl;
struct ExperimentDecl;
}  // namespace fusec::ast

namespace fusec::sema {

class Scope;
/// Scopes are owned by their ScopeArena (one per check run, held by the checker); values and bindings point
/// at them without owning, which keeps the closures of functions and declarations free of reference cycles.
using ScopeRef = Scope*;
struct Value;
using ValueRef = std::shared_ptr<const Value>;
using NamedValues = std::vector<std::pair<std::string, ValueRef>>;
struct Builtin;
struct CheckedObjective;
struct CheckedSelection;
struct CheckedPairing;
struct CheckedGrouping;
struct RoleSelector;
struct ModuleInfo;

struct ErrorVal {};
struct UnknownVal {};
struct NoneVal {};
struct ListVal {
  std::vector<ValueRef> elements;
};
struct RecordVal {
  NamedValues fields;
};
struct EnumVal {
  size_t index;
};
/// A value built by a builtin constructor and kept as its arguments: `hf_model(...)`, `jsonl(...)`,
/// `adamw(...)`, `evaluate(...)`, and the parts of a `split(...)` (constructor `split_part`).
struct ConstructedVal {
  std::string constructor;
  NamedValues args;
};
/// The model a stage produces (`init = sft`).
struct StageModelVal {
  std::string stage;
};
/// A data-dependent number or bool.
struct TermVal {
  TermRef term;
};
/// A response inside an objective or a rule: `y`, `chosen`. `item` says whether it is one value per
/// response (y) or per pair (a role).
struct ResponseVal {
  std::string name;
  ItemKind item;
};
/// A user function (`let h(y) = ...`), inlined at each call.
struct FunctionVal {
  const ast::LetDecl* decl;
  ScopeRef env = nullptr;
};
struct BuiltinVal {
  const Builtin* builtin;
};
/// A declaration that is called to make a value: objective, weighting, stage or experiment template.
struct DeclVal {
  enum class Kind : uint8_t { Objective, Weighting, StageTemplate, ExperimentTemplate };
  Kind kind;
  const void* decl;  // the ast::*Decl of `kind`
  ScopeRef env = nullptr;      // the module scope it was declared in
  std::string name;
  SourceSpan name_span;
};
struct ObjectiveVal {
  std::shared_ptr<const CheckedObjective> objective;
};
/// A weighting is elaborated only inside a stage, because what `reward` means there depends on the stage's
/// items (responses or pairs); until then it is a closure.
struct WeightingVal {
  const ast::Expr* expr = nullptr;  // an inline expression, or
  const ast::WeightingDecl* decl = nullptr;  // a declared weighting with its arguments
  NamedValues args;
  ScopeRef env = nullptr;
  std::string description;  // `softmax_over_sources(tau: 1.0)` or the expression's text
};
struct SelectionVal {
  std::shared_ptr<const CheckedSelection> selection;
};
struct PairingVal {
  std::shared_ptr<const CheckedPairing> pairing;
};
struct GroupingVal {
  std::shared_ptr<const CheckedGrouping> grouping;
};
struct RoleSelectorVal {
  std::shared_ptr<const RoleSelector> selector;
};
struct ModuleVal {
  const ModuleInfo* module;
};
/// Sweep points read from a TOML file by `grid("file.toml")`: one list of named values per point.
struct GridVal {
  std::vector<NamedValues> points;
  std::map<std::string, SourceSpan> key_spans;  // where each parameter is named in the file
};

struct Value {
  TypeRef type;
  SourceSpan span;  // where the value was written
  std::variant<ErrorVal, UnknownVal, NoneVal, int64_t, double, bool, std::string, ListVal, RecordVal, EnumVal,
               ConstructedVal, StageModelVal, TermVal, ResponseVal, FunctionVal, BuiltinVal, DeclVal,
               ObjectiveVal, WeightingVal, SelectionVal, PairingVal, GroupingVal, RoleSelectorVal, ModuleVal,
               GridVal>
      data;

  bool is_error() const { return std::holds_alternative<ErrorVal>(data); }
  bool is_unknown() const { return std::holds_alternative<UnknownVal>(data); }
  bool is_none() const { return std::holds_alternative<NoneVal>(data); }
  /// A plain constant: not Error, Unknown or a Term.
  bool is_known() const { return !is_error() && !is_unknown() && !std::holds_alternative<TermVal>(data); }
  template <typename T>
  const T* As() const {
    return std::get_if<T>(&data);
  }
  /// The number of an Int or Float value.
  std::optional<double> AsNumber() const;
};

namespace values {
ValueRef Error(SourceSpan span = {});
ValueRef Unknown(TypeRef type, SourceSpan span);
ValueRef None(SourceSpan span);
ValueRef Int(int64_t value, SourceSpan span);
ValueRef Float(double value, SourceSpan span);
ValueRef Bool(bool value, SourceSpan span);
ValueRef String(std::string value, SourceSpan span);
ValueRef Enum(EnumKind kind, size_t index, SourceSpan span);
ValueRef Make(TypeRef type, SourceSpan span, decltype(Value::data) data);
/// The same value, remembered as written at `span` (for values that pass through a name).
ValueRef WithSpan(const ValueRef& value, SourceSpan span);
}  // namespace values

/// .fuse-like text of a value: `adamw(lr: 5e-06, ...)`, `[0.1, 1.0]`, `sft` (a stage's model).
std::string ToString(const Value& value);
inline std::string ToString(const ValueRef& value) { return value ? ToString(*value) : "<none>"; }

/// "an objective", "a weighting", "a value of type `int`": what a value is, for messages.
std::string DescribeKind(const Value& value);

/// Looks up a named argument of a ConstructedVal or a field of a RecordVal.
ValueRef FindNamed(const NamedValues& values, std::string_view name);

}  // namespace fusec::sema
