#include "compiler/sema/value.h"

#include "compiler/sema/checked.h"

namespace fusec::sema {

std::optional<double> Value::AsNumber() const {
  if (const auto* i = As<int64_t>()) return static_cast<double>(*i);
  if (const auto* f = As<double>()) return *f;
  return std::nullopt;
}

namespace values {
ValueRef Make(TypeRef type, SourceSpan span, decltype(Value::data) data) {
  return std::make_shared<Value>(Value{std::move(type), span, std::move(data)});
}
ValueRef Error(SourceSpan span) { return Make(types::Error(), span, ErrorVal{}); }
ValueRef Unknown(TypeRef type, SourceSpan span) { return Make(std::move(type), span, UnknownVal{}); }
ValueRef None(SourceSpan span) { return Make(types::None(), span, NoneVal{}); }
ValueRef Int(int64_t value, SourceSpan span) { return Make(types::Int(), span, value); }
ValueRef Float(double value, SourceSpan span) { return Make(types::Float(), span, value); }
ValueRef Bool(bool value, SourceSpan span) { return Make(types::Bool(), span, value); }
ValueRef String(std::string value, SourceSpan span) { return Make(types::String(), span, std::move(value)); }
ValueRef Enum(EnumKind kind, size_t index, SourceSpan span) { return Make(types::Enum(kind), span, EnumVal{index}); }
ValueRef WithSpan(const ValueRef& value, SourceSpan span) {
  if (value->span == span) return value;
  auto copy = std::make_shared<Value>(*value);
  copy->span = span;
  return copy;
}
}  // namespace values

namespace {

std::string QuoteString(const std::string& text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\t':
        out += "\\t";
        break;
      case '\r':
        out += "\\r";
        break;
      default:
        out.push_back(c);
    }
  }
  return out + "\"";
}

/// Longest text ToString() prints for one value. Values share their parts, so a few `let`s can build a
/// list of 2^40 elements in little memory (`let b = [a, a]`, ...): printing it whole would not end.
constexpr size_t kMaxValueTextBytes = 64 * 1024;

/// Appends `text` of one part, or `...` once `out` is full; returns whether there is room for more.
bool AppendBounded(std::string& out, const ValueRef& part) {
  if (out.size() >= kMaxValueTextBytes) {
    out += "...";
    return false;
  }
  out += ToString(part);
  return true;
}

std::string JoinNamed(const NamedValues& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) {
    if (i > 0) out += ", ";
    out += values[i].first + ": ";
    if (!AppendBounded(out, values[i].second)) break;
  }
  return out;
}

}  // namespace

std::string ToString(const Value& value) {
  struct Printer {
    const Value& value;
    std::string operator()(const ErrorVal&) const { return "<error>"; }
    std::string operator()(const UnknownVal&) const { return "<" + sema::ToString(value.type) + ">"; }
    std::string operator()(const NoneVal&) const { return "none"; }
    std::string operator()(int64_t v) const { return std::to_string(v); }
    std::string operator()(double v) const { return FormatFloat(v); }
    std::string operator()(bool v) const { return v ? "true" : "false"; }
    std::string operator()(const std::string& v) const { return QuoteString(v); }
    std::string operator()(const ListVal& v) const {
      std::string out = "[";
      for (size_t i = 0; i < v.elements.size(); ++i) {
        if (i > 0) out += ", ";
        if (!AppendBounded(out, v.elements[i])) break;
      }
      return out + "]";
    }
    std::string operator()(const RecordVal& v) const { return "{" + JoinNamed(v.fields) + "}"; }
    std::string operator()(const EnumVal& v) const {
      return std::string(GetEnumInfo(value.type->enum_kind).values[v.index]);
    }
    std::string operator()(const ConstructedVal& v) const {
      if (v.constructor == "split_part") {
        ValueRef split = FindNamed(v.args, "split");
        ValueRef part = FindNamed(v.args, "part");
        const std::string* part_name = part ? part->As<std::string>() : nullptr;
        return sema::ToString(split) + "." + (part_name ? *part_name : "?");
      }
      return v.constructor + "(" + JoinNamed(v.args) + ")";
    }
    std::string operator()(const StageModelVal& v) const { return v.stage; }
    std::string operator()(const TermVal& v) const { return sema::ToString(v.term); }
    std::string operator()(const ResponseVal& v) const { return v.name; }
    std::string operator()(const FunctionVal&) const { return "<function>"; }
    std::string operator()(const BuiltinVal&) const { return "<builtin>"; }
    std::string operator()(const DeclVal& v) const { return v.name; }
    std::string operator()(const ObjectiveVal& v) const {
      return v.objective ? v.objective->name + "(" + JoinNamed(v.objective->args) + ")" : "<objective>";
    }
    std::string operator()(const WeightingVal& v) const { return v.description; }
    std::string operator()(const SelectionVal& v) const {
      return v.selection ? v.selection->description : "<selection>";
    }
    std::string operator()(const PairingVal& v) const { return v.pairing ? v.pairing->description : "<pairing>"; }
    std::string operator()(const GroupingVal& v) const {
      return v.grouping ? v.grouping->description : "<grouping>";
    }
    std::string operator()(const RoleSelectorVal& v) const {
      if (!v.selector) return "<role>";
      std::string out = std::string(v.selector->argmax ? "argmax(" : "argmin(") + sema::ToString(v.selector->score) + ")";
      if (v.selector->where) out += " where " + sema::ToString(v.selector->where);
      return out;
    }
    std::string operator()(const ModuleVal&) const { return "<module>"; }
    std::string operator()(const GridVal& v) const {
      return "<grid of " + std::to_string(v.points.size()) + " points>";
    }
  };
  return std::visit(Printer{value}, value.data);
}

std::string DescribeKind(const Value& value) {
  if (const auto* decl = value.As<DeclVal>()) {
    switch (decl->kind) {
      case DeclVal::Kind::Objective:
        return "an objective";
      case DeclVal::Kind::Weighting:
        return "a weighting";
      case DeclVal::Kind::StageTemplate:
        return "a stage kind";
      case DeclVal::Kind::ExperimentTemplate:
        return "an experiment template";
    }
  }
  if (value.As<BuiltinVal>() != nullptr) return "a builtin function";
  if (value.As<FunctionVal>() != nullptr) return "a function";
  if (value.As<ModuleVal>() != nullptr) return "a module";
  return "a value of type `" + ToString(value.type) + "`";
}

ValueRef FindNamed(const NamedValues& values, std::string_view name) {
  for (const auto& [key, value] : values) {
    if (key == name) return value;
  }
  return nullptr;
}

const char* UnitSyntax(ObjectiveUnit unit) {
  switch (unit) {
    case ObjectiveUnit::Response:
      return "per response";
    case ObjectiveUnit::Pair:
      return "per pair";
    case ObjectiveUnit::GroupOfResponses:
      return "per group of response";
    case ObjectiveUnit::GroupOfPairs:
      return "per group of pair";
  }
  return "?";
}

const char* UnitName(ObjectiveUnit unit) {
  switch (unit) {
    case ObjectiveUnit::Response:
      return "per response";
    case ObjectiveUnit::Pair:
      return "per pair";
    case ObjectiveUnit::GroupOfResponses:
      return "per group of responses";
    case ObjectiveUnit::GroupOfPairs:
      return "per group of pairs";
  }
  return "?";
}

}  // namespace fusec::sema
