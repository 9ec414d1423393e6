// jinja2's tests (jinja2/tests.py): `x is defined`, `x is not none`, `n is divisibleby 3`.
#include <cmath>

#include "runtime/tokenizer/jinja/builtins.h"
#include "runtime/tokenizer/jinja/evaluator.h"
#include "runtime/tokenizer/jinja/pystr.h"

namespace fusec::rt::jinja {
namespace {

template <bool (*F)(const Value&)>
bool Unary(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "test").Finish();
  return F(v);
}

bool IsDefined(const Value& v) { return !v.is_undefined(); }
bool IsUndefined(const Value& v) { return v.is_undefined(); }
bool IsNone(const Value& v) { return v.is_none(); }
bool IsString(const Value& v) { return v.is_string(); }
bool IsNumber(const Value& v) { return v.is_number(); }  // bool is a Number in Python
bool IsInteger(const Value& v) { return v.kind == ValueKind::Int; }
bool IsFloat(const Value& v) { return v.kind == ValueKind::Float; }
bool IsBoolean(const Value& v) { return v.kind == ValueKind::Bool; }
bool IsMapping(const Value& v) { return v.is_dict(); }
// Undefined is iterable (and a sequence: it has __len__ and __getitem__) in jinja2.
bool IsIterable(const Value& v) { return v.is_string() || v.is_list() || v.is_dict() || v.is_undefined(); }
bool IsSequence(const Value& v) { return IsIterable(v); }
bool IsTrue(const Value& v) { return v.kind == ValueKind::Bool && v.boolean; }
bool IsFalse(const Value& v) { return v.kind == ValueKind::Bool && !v.boolean; }
bool IsCallable(const Value& v) { return v.kind == ValueKind::Callable; }
bool IsLowerText(const Value& v) { return v.is_string() && pystr::IsLower(v.text); }
bool IsUpperText(const Value& v) { return v.is_string() && pystr::IsUpper(v.text); }

int64_t IntOperand(const Value& v, std::string_view test, int line) {
  if (v.kind == ValueKind::Float && std::floor(v.number) == v.number) return static_cast<int64_t>(v.number);
  return ExpectInt(v, "the operand of `" + std::string(test) + "`", line);
}

bool Odd(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "odd").Finish();
  return IntOperand(v, "odd", a.line) % 2 != 0;
}
bool Even(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "even").Finish();
  return IntOperand(v, "even", a.line) % 2 == 0;
}
bool DivisibleBy(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "divisibleby");
  int64_t n = IntOperand(r.Required("num"), "divisibleby", a.line);
  r.Finish();
  if (n == 0) Fail(a.line, "`divisibleby 0`: division by zero");
  return IntOperand(v, "divisibleby", a.line) % n == 0;
}

template <int kWhich>  // 0 ==, 1 !=, 2 <, 3 <=, 4 >, 5 >=
bool Comparison(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "comparison test");
  Value other = r.Required("other");
  r.Finish();
  if (kWhich == 0) return Equal(v, other);
  if (kWhich == 1) return !Equal(v, other);
  int c = Compare(v, other, a.line);
  return kWhich == 2 ? c < 0 : kWhich == 3 ? c <= 0 : kWhich == 4 ? c > 0 : c >= 0;
}

bool In(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "in");
  Value seq = r.Required("seq");
  r.Finish();
  return Contains(seq, v, a.line);
}

bool SameAs(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "sameas");
  Value other = r.Required("other");
  r.Finish();
  if (v.kind != other.kind) return false;
  switch (v.kind) {
    case ValueKind::None:
    case ValueKind::Undefined:
      return true;
    case ValueKind::Bool:
      return v.boolean == other.boolean;
    case ValueKind::List:
      return v.list == other.list;
    case ValueKind::Dict:
      return v.dict == other.dict;
    case ValueKind::Namespace:
      return v.ns == other.ns;
    default:
      return Equal(v, other);  // small ints and interned strings are the same object in CPython
  }
}

bool FilterExists(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "filter").Finish();
  return v.is_string() && FindFilter(v.text) != nullptr;
}
bool TestExists(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "test").Finish();
  return v.is_string() && FindTest(v.text) != nullptr;
}

constexpr TestSpec kTests[] = {
    {"boolean", Unary<IsBoolean>},
    {"callable", Unary<IsCallable>},
    {"defined", Unary<IsDefined>},
    {"divisibleby", DivisibleBy},
    {"eq", Comparison<0>},
    {"equalto", Comparison<0>},
    {"==", Comparison<0>},
    {"even", Even},
    {"false", Unary<IsFalse>},
    {"filter", FilterExists},
    {"float", Unary<IsFloat>},
    {"ge", Comparison<5>},
    {">=", Comparison<5>},
    {"gt", Comparison<4>},
    {"greaterthan", Comparison<4>},
    {">", Comparison<4>},
    {"in", In},
    {"integer", Unary<IsInteger>},
    {"iterable", Unary<IsIterable>},
    {"le", Comparison<3>},
    {"<=", Comparison<3>},
    {"lower", Unary<IsLowerText>},
    {"lt", Comparison<2>},
    {"lessthan", Comparison<2>},
    {"<", Comparison<2>},
    {"mapping", Unary<IsMapping>},
    {"ne", Comparison<1>},
    {"!=", Comparison<1>},
    {"none", Unary<IsNone>},
    {"number", Unary<IsNumber>},
    {"odd", Odd},
    {"sameas", SameAs},
    {"sequence", Unary<IsSequence>},
    {"string", Unary<IsString>},
    {"test", TestExists},
    {"true", Unary<IsTrue>},
    {"undefined", Unary<IsUndefined>},
    {"upper", Unary<IsUpperText>},
};

}  // namespace

const TestSpec* FindTest(std::string_view name) {
  for (const TestSpec& t : kTests)
    if (t.name == name) return &t;
  return nullptr;
}

std::vector<std::string_view> TestNames() {
  std::vector<std::string_view> names;
  for (const TestSpec& t : kTests) names.push_back(t.name);
  return names;
}

}  // namespace fusec::rt::jinja
