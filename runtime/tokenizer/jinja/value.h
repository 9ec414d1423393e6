// The values a template computes with: Python's, as jinja2 sees them. JSON alone is not enough: jinja2
// has Undefined (a missing key prints as "" but fails when called or indexed), tuples, namespaces, macros and
// bound methods, ints apart from floats (`1 / 2` is 0.5, `7 // 2` is 3), and dicts that keep insertion
// order (a tool's JSON schema is printed in the order it was written). Lists and dicts are immutable once
// built (the sandbox HF renders in refuses `append`), so they are shared, not copied; a namespace is the only
// mutable value.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace fusec::rt::jinja {

/// What the interpreter throws internally; jinja.cpp turns it into a TemplateError with the line.
struct Failure {
  int line = 0;  // 0: not known where it was thrown, the caller fills it in
  std::string message;
  bool raised = false;  // raise_exception()
};
[[noreturn]] void Fail(int line, std::string message);

enum class ValueKind : uint8_t { Undefined, None, Bool, Int, Float, String, List, Dict, Namespace, Callable };

struct Value;
struct ListData;
struct DictData;
struct NamespaceData;
struct CallableData;

struct Value {
  ValueKind kind = ValueKind::Undefined;
  bool boolean = false;
  int64_t integer = 0;
  double number = 0;
  std::string text;  // String; for Undefined, the name that was looked up (for error messages)
  std::shared_ptr<const ListData> list;
  std::shared_ptr<const DictData> dict;
  std::shared_ptr<NamespaceData> ns;
  std::shared_ptr<const CallableData> callable;

  static Value Undefined(std::string name = "");
  static Value None();
  static Value Bool(bool b);
  static Value Int(int64_t i);
  static Value Float(double f);
  static Value String(std::string s);
  static Value List(std::vector<Value> items, bool is_tuple = false);
  static Value Dict(std::vector<std::pair<std::string, Value>> entries);

  bool is_undefined() const { return kind == ValueKind::Undefined; }
  bool is_none() const { return kind == ValueKind::None; }
  bool is_string() const { return kind == ValueKind::String; }
  bool is_number() const { return kind == ValueKind::Int || kind == ValueKind::Float || kind == ValueKind::Bool; }
  bool is_list() const { return kind == ValueKind::List; }
  bool is_dict() const { return kind == ValueKind::Dict; }
  const std::vector<Value>& items() const;  // List only
};

/// How deeply lists and dicts may nest (a loop can nest them without bound: `set ns.x = [ns.x]`), so that
/// printing, comparing and destroying them cannot overflow the stack.
inline constexpr int kMaxValueDepth = 512;

struct ListData {
  std::vector<Value> items;
  bool is_tuple = false;
  int depth = 1;  // 1 + the deepest item's
};

struct DictData {
  std::vector<std::pair<std::string, Value>> entries;  // insertion order, unique keys
  std::unordered_map<std::string, size_t> index;       // built for larger dicts only
  int depth = 1;
  const Value* Find(std::string_view key) const;
};

struct NamespaceData {
  std::vector<std::pair<std::string, Value>> attributes;
  const Value* Find(std::string_view key) const;
  void Set(const std::string& key, Value value);
};

class Evaluator;
struct CallArgs {
  std::vector<Value> positional;
  std::vector<std::pair<std::string, Value>> keyword;
  int line = 0;
};

struct CallableData {
  std::string name;  // for messages: `range`, `caller`, `startswith` of a string
  std::function<Value(Evaluator&, CallArgs&)> call;
};

/// Python's truth value (undefined is false, as jinja2's Undefined is).
bool Truthy(const Value& value);
/// Python's str(): what `{{ value }}` prints (undefined prints nothing, none prints `None`).
std::string ToStr(const Value& value);
/// Python's repr(), for items of printed lists and dicts.
std::string Repr(const Value& value);
/// Python's float repr: 1.0, 0.1, 1e+16, 1e-05, inf, nan.
std::string FloatRepr(double number);
/// Python's ==.
bool Equal(const Value& a, const Value& b);
/// Python's <, for sorting and comparisons: -1, 0, 1; fails (at `line`) on types Python cannot order.
int Compare(const Value& a, const Value& b, int line);
/// The type name Python would give, for messages: str, int, list, dict, undefined.
std::string_view TypeName(const Value& value);

/// json.dumps(value, ensure_ascii, indent, separators, sort_keys) as Hugging Face's `tojson` filter calls it.
struct JsonDumpOptions {
  bool ensure_ascii = false;
  std::optional<std::string> indent;  // nullopt: one line
  std::string item_separator = ", ";
  std::string key_separator = ": ";
  bool sort_keys = false;
};
std::string DumpJson(const Value& value, const JsonDumpOptions& options, int line);

}  // namespace fusec::rt::jinja
