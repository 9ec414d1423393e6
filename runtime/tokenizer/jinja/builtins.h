// What a template can call: jinja2's filters and tests, Python's str/dict/list methods and Hugging Face's
// globals, each a small function over values, found by name in one table per family. The parser looks filters
// and tests up while parsing, so a template that uses one this interpreter lacks is refused when it loads;
// methods depend on the value and are looked up when rendering.
#pragma once

#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/tokenizer/jinja/value.h"

namespace fusec::rt::jinja {

class Evaluator;

using FilterFn = Value (*)(Evaluator& ev, const Value& operand, CallArgs& args);
using TestFn = bool (*)(Evaluator& ev, const Value& operand, CallArgs& args);

struct FilterSpec {
  std::string_view name;
  FilterFn fn;
};
struct TestSpec {
  std::string_view name;
  TestFn fn;
};

const FilterSpec* FindFilter(std::string_view name);
const TestSpec* FindTest(std::string_view name);
std::vector<std::string_view> FilterNames();
std::vector<std::string_view> TestNames();

/// `receiver.name` as a bound method, when `receiver`'s Python type has that method: nullopt when it has
/// none (the attribute is then a key lookup or undefined, as in jinja2). A method Python has but this
/// interpreter does not, or that the sandbox forbids (`append`: lists are immutable there), is a callable
/// that fails (at the call's line) with that reason.
std::optional<Value> FindMethod(const Value& receiver, std::string_view name);
/// "str: capitalize, ...", for the README.
std::vector<std::pair<std::string_view, std::vector<std::string_view>>> MethodNames();

/// The globals of Hugging Face's environment: range, namespace, dict, raise_exception, strftime_now, cycler,
/// joiner; the context's own keys shadow them.
std::vector<std::pair<std::string, Value>> Globals();

/// Reads a call's arguments the way a Python signature binds them. Each Take consumes one parameter, by
/// position or by keyword; Finish fails on arguments no parameter took.
class ArgReader {
 public:
  ArgReader(CallArgs& args, std::string_view function) : args_(args), function_(function) {}
  std::optional<Value> Take(std::string_view name);
  Value Take(std::string_view name, Value fallback);
  Value Required(std::string_view name);
  /// The positional arguments not taken yet (*args).
  std::vector<Value> Rest();
  void Finish();

 private:
  CallArgs& args_;
  std::string_view function_;
  size_t next_positional_ = 0;
};

/// Helpers the builtins share.
std::vector<Value> Iterate(const Value& value, int line);  // list items, dict keys, str code points
int64_t Length(const Value& value, int line);
const std::string& ExpectString(const Value& value, std::string_view what, int line);
int64_t ExpectInt(const Value& value, std::string_view what, int line);
bool Contains(const Value& container, const Value& item, int line);  // Python's `in`

}  // namespace fusec::rt::jinja
