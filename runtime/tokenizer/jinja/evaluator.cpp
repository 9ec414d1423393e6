#include "runtime/tokenizer/jinja/evaluator.h"

#include <cmath>

#include "runtime/tokenizer/jinja/pystr.h"

namespace fusec::rt::jinja {
namespace {

constexpr size_t kTemplateFrame = 2;  // frames_[0] globals, [1] the context, [2] the template's own sets

[[noreturn]] void FailUndefined(const Value& v, int line) {
  Fail(line, v.text.empty() ? "a value is undefined" : "`" + v.text + "` is undefined");
}

double AsDouble(const Value& v) {
  return v.kind == ValueKind::Float  ? v.number
         : v.kind == ValueKind::Bool ? (v.boolean ? 1 : 0)
                                     : static_cast<double>(v.integer);
}
int64_t AsInt(const Value& v) { return v.kind == ValueKind::Bool ? (v.boolean ? 1 : 0) : v.integer; }
bool IsIntLike(const Value& v) { return v.kind == ValueKind::Int || v.kind == ValueKind::Bool; }

/// Python's slice.indices(length): the positions a[start:stop:step] visits.
std::vector<int64_t> SliceIndices(int64_t length, std::optional<int64_t> start, std::optional<int64_t> stop,
                                  int64_t step) {
  int64_t lo, hi;
  if (step > 0) {
    auto clamp = [&](int64_t i) { return i < 0 ? std::max<int64_t>(i + length, 0) : std::min(i, length); };
    lo = start ? clamp(*start) : 0;
    hi = stop ? clamp(*stop) : length;
  } else {
    auto clamp = [&](int64_t i) { return i < 0 ? std::max<int64_t>(i + length, -1) : std::min(i, length - 1); };
    lo = start ? clamp(*start) : length - 1;
    hi = stop ? clamp(*stop) : -1;
  }
  std::vector<int64_t> out;
  for (int64_t i = lo; step > 0 ? i < hi : i > hi; i += step) out.push_back(i);
  return out;
}

}  // namespace

Evaluator::Evaluator(std::vector<std::pair<std::string, Value>> context, std::time_t now, const RenderLimits& limits)
    : now_(now), limits_(limits) {
  frames_.push_back(Globals());
  frames_.push_back(std::move(context));
  frames_.emplace_back();
}

Evaluator::~Evaluator() {
  for (const auto& ns : namespaces_) ns->attributes.clear();
}

std::string Evaluator::Render(const Body& body) {
  outputs_ = {&result_};
  try {
    Exec(body);
  } catch (Failure& f) {
    if (f.line <= 0) f.line = line_;  // thrown by a value, which knows no line: the statement's
    throw;
  }
  return std::move(result_);
}

void Evaluator::CountIterations(int64_t n, int line) {
  iterations_ += n;
  if (iterations_ > limits_.max_iterations)
    Fail(line, "the template ran more than " + std::to_string(limits_.max_iterations) + " loop iterations");
}

void Evaluator::CheckSize(size_t size, int line) const {
  if (size > limits_.max_output_bytes)
    Fail(line, "the output exceeds " + std::to_string(limits_.max_output_bytes) + " bytes");
}

void Evaluator::Write(std::string_view text) {
  std::string* out = outputs_.back();
  out->append(text);
  CheckSize(out->size(), line_);
}

std::string Evaluator::Capture(const Body& body) {
  std::string text;
  outputs_.push_back(&text);
  try {
    Exec(body);
  } catch (...) {
    outputs_.pop_back();
    throw;
  }
  outputs_.pop_back();
  return text;
}

// ---- scopes

Value Evaluator::Lookup(const std::string& name) const {
  auto find = [&](const Frame& frame) -> const Value* {
    for (auto it = frame.rbegin(); it != frame.rend(); ++it)
      if (it->first == name) return &it->second;
    return nullptr;
  };
  for (size_t k = frames_.size(); k-- > floor_;)
    if (const Value* v = find(frames_[k])) return *v;
  if (floor_ > 0)
    for (size_t k = std::min(floor_, kTemplateFrame + 1); k-- > 0;)
      if (const Value* v = find(frames_[k])) return *v;
  return Value::Undefined(name);
}

void Evaluator::Define(const std::string& name, Value value) {
  Frame& frame = frames_.back();
  for (auto& [key, existing] : frame)
    if (key == name) {
      existing = std::move(value);
      return;
    }
  frame.emplace_back(name, std::move(value));
}

void Evaluator::Assign(const std::vector<std::string>& targets, bool unpack, const Value& value, int line) {
  if (!unpack) {
    Define(targets[0], value);
    return;
  }
  std::vector<Value> items = Iterate(value, line);
  if (items.size() != targets.size())
    Fail(line, std::string(items.size() < targets.size() ? "not enough" : "too many") + " values to unpack (expected " +
                   std::to_string(targets.size()) + ", got " + std::to_string(items.size()) + ")");
  for (size_t k = 0; k < targets.size(); ++k) Define(targets[k], items[k]);
}

// ---- statements

Evaluator::Flow Evaluator::Exec(const Body& body) {
  for (const StmtPtr& stmt : body) {
    Flow flow = ExecStmt(*stmt);
    if (flow != Flow::Normal) return flow;
  }
  return Flow::Normal;
}

Evaluator::Flow Evaluator::ExecStmt(const Stmt& s) {
  line_ = s.line;
  switch (s.kind) {
    case StmtKind::Text:
      Write(s.text);
      return Flow::Normal;
    case StmtKind::Output:
      Write(ToStr(Eval(*s.expr)));
      return Flow::Normal;
    case StmtKind::If:
      for (const auto& [condition, body] : s.branches)
        if (Truthy(Eval(*condition))) return Exec(body);
      return Exec(s.else_body);
    case StmtKind::For:
      return ExecFor(s);
    case StmtKind::Set:
      ExecSet(s);
      return Flow::Normal;
    case StmtKind::SetBlock: {
      Value text = Value::String(Capture(s.body));
      if (s.expr) text = ApplyFilterChain(*s.expr, text);
      Define(s.targets[0], text);
      return Flow::Normal;
    }
    case StmtKind::Macro:
      Define(s.name, MakeMacro(s.body, s.params, s.name));
      return Flow::Normal;
    case StmtKind::CallBlock: {
      const Expr& call = *s.expr;
      Value callee = Eval(*call.children[0]);
      CallArgs args;
      EvalArgs(call, 1, &args);
      args.keyword.emplace_back("caller", MakeMacro(s.body, s.params, "caller"));
      Write(ToStr(Call(callee, args, s.line)));
      return Flow::Normal;
    }
    case StmtKind::FilterBlock:
      Write(ToStr(ApplyFilterChain(*s.expr, Value::String(Capture(s.body)))));
      return Flow::Normal;
    case StmtKind::Break:
      return Flow::Break;
    case StmtKind::Continue:
      return Flow::Continue;
    case StmtKind::Generation:
      return Exec(s.body);
  }
  return Flow::Normal;
}

Evaluator::Flow Evaluator::ExecFor(const Stmt& s) {
  std::vector<Value> items = Iterate(Eval(*s.expr), s.line);
  frames_.emplace_back();
  struct PopFrame {
    Evaluator* ev;
    ~PopFrame() { ev->frames_.pop_back(); }
  } pop{this};
  if (s.condition) {  // `for x in xs if cond`: the loop (and loop.length) sees only the items that pass
    std::vector<Value> kept;
    for (Value& item : items) {
      CountIterations(1, s.line);
      Assign(s.targets, s.unpack, item, s.line);
      if (Truthy(Eval(*s.condition))) kept.push_back(std::move(item));
    }
    items = std::move(kept);
  }
  if (items.empty()) return Exec(s.else_body);
  int64_t length = static_cast<int64_t>(items.size());
  auto position = std::make_shared<int64_t>(0);  // loop.cycle reads the current iteration
  auto cycle = std::make_shared<CallableData>();
  cycle->name = "loop.cycle";
  cycle->call = [position](Evaluator&, CallArgs& a) {
    if (a.positional.empty()) Fail(a.line, "`loop.cycle` needs at least one value");
    return a.positional[static_cast<size_t>(*position) % a.positional.size()];
  };
  Value cycle_value;
  cycle_value.kind = ValueKind::Callable;
  cycle_value.callable = std::move(cycle);
  for (int64_t k = 0; k < length; ++k) {
    CountIterations(1, s.line);
    *position = k;
    frames_.back().clear();  // each iteration starts from the outer scope again, as in jinja2
    const Value& item = items[static_cast<size_t>(k)];
    std::vector<std::pair<std::string, Value>> loop = {
        {"index", Value::Int(k + 1)},
        {"index0", Value::Int(k)},
        {"revindex", Value::Int(length - k)},
        {"revindex0", Value::Int(length - k - 1)},
        {"first", Value::Bool(k == 0)},
        {"last", Value::Bool(k == length - 1)},
        {"length", Value::Int(length)},
        {"depth", Value::Int(1)},
        {"depth0", Value::Int(0)},
        {"cycle", cycle_value},
    };
    if (k > 0) loop.emplace_back("previtem", items[static_cast<size_t>(k - 1)]);
    if (k + 1 < length) loop.emplace_back("nextitem", items[static_cast<size_t>(k + 1)]);
    Define("loop", Value::Dict(std::move(loop)));
    Assign(s.targets, s.unpack, item, s.line);
    Flow flow = Exec(s.body);
    if (flow == Flow::Break) break;
  }
  return Flow::Normal;
}

void Evaluator::ExecSet(const Stmt& s) {
  Value value = Eval(*s.expr);
  if (s.attribute.empty()) {
    Assign(s.targets, s.unpack, value, s.line);
    return;
  }
  Value target = Lookup(s.targets[0]);
  if (target.kind != ValueKind::Namespace)
    Fail(s.line, "cannot assign attribute `" + s.attribute + "` of `" + s.targets[0] + "`, which is not a namespace");
  target.ns->Set(s.attribute, std::move(value));
}

Value Evaluator::MakeMacro(const Body& body, const std::vector<MacroParam>& params, const std::string& name) {
  auto data = std::make_shared<CallableData>();
  data->name = name;
  const Body* body_ptr = &body;
  const std::vector<MacroParam>* params_ptr = &params;
  data->call = [body_ptr, params_ptr, name](Evaluator& ev, CallArgs& args) {
    return ev.InvokeMacro(*body_ptr, *params_ptr, name, args, args.line);
  };
  Value v;
  v.kind = ValueKind::Callable;
  v.callable = std::move(data);
  return v;
}

Value Evaluator::InvokeMacro(const Body& body, const std::vector<MacroParam>& params, const std::string& name,
                             CallArgs& args, int line) {
  if (call_depth_ >= limits_.max_call_depth)
    Fail(line, "macro calls nest deeper than " + std::to_string(limits_.max_call_depth));
  if (args.positional.size() > params.size())
    Fail(line, "macro `" + name + "` takes " + std::to_string(params.size()) + " arguments, " +
                   std::to_string(args.positional.size()) + " given");
  Frame frame;
  for (auto& [key, value] : args.keyword) {
    bool known = key == "caller";
    for (const MacroParam& p : params) known = known || p.name == key;
    if (!known) Fail(line, "macro `" + name + "` has no parameter `" + key + "`");
  }
  size_t saved_floor = floor_;
  int saved_line = line_;
  frames_.push_back(std::move(frame));
  floor_ = frames_.size() - 1;
  ++call_depth_;
  struct Restore {
    Evaluator* ev;
    size_t floor;
    int line;
    ~Restore() {
      ev->frames_.pop_back();
      ev->floor_ = floor;
      ev->line_ = line;
      --ev->call_depth_;
    }
  } restore{this, saved_floor, saved_line};
  for (size_t k = 0; k < params.size(); ++k) {
    const MacroParam& p = params[k];
    std::optional<Value> value;
    if (k < args.positional.size()) value = args.positional[k];
    for (auto& [key, v] : args.keyword)
      if (key == p.name) {
        if (value) Fail(line, "macro `" + name + "` got two values for `" + p.name + "`");
        value = v;
      }
    if (!value) value = p.default_value ? Eval(*p.default_value) : Value::Undefined(p.name);
    Define(p.name, *value);
  }
  for (auto& [key, v] : args.keyword)
    if (key == "caller") Define("caller", v);
  return Value::String(Capture(body));
}

// ---- expressions

void Evaluator::EvalArgs(const Expr& e, size_t first, CallArgs* args) {
  args->line = e.line;
  for (size_t k = first; k < e.children.size(); ++k) args->positional.push_back(Eval(*e.children[k]));
  for (const auto& [name, value] : e.keyword) args->keyword.emplace_back(name, Eval(*value));
}

Value Evaluator::ApplyFilter(const FilterSpec& filter, const Value& operand, CallArgs& args, int line) {
  args.line = line;
  return filter.fn(*this, operand, args);
}

bool Evaluator::ApplyTest(const TestSpec& test, const Value& operand, CallArgs& args, int line) {
  args.line = line;
  return test.fn(*this, operand, args);
}

Value Evaluator::ApplyFilterChain(const Expr& filter, const Value& body_text) {
  const std::string* saved = filter_body_;
  filter_body_ = &body_text.text;
  Value result;
  try {
    result = Eval(filter);
  } catch (...) {
    filter_body_ = saved;
    throw;
  }
  filter_body_ = saved;
  return result;
}

Value Evaluator::Call(const Value& callee, CallArgs& args, int line) {
  args.line = line;
  if (callee.kind == ValueKind::Callable) return callee.callable->call(*this, args);
  if (callee.is_undefined()) FailUndefined(callee, line);
  Fail(line, "`" + std::string(TypeName(callee)) + "` object is not callable");
}

Value Evaluator::GetAttr(const Value& object, std::string_view name, int line) {
  switch (object.kind) {
    case ValueKind::Undefined:
      FailUndefined(object, line);
    case ValueKind::Dict: {
      if (auto method = FindMethod(object, name)) return *method;
      if (const Value* v = object.dict->Find(name)) return *v;
      return Value::Undefined("'dict object' has no attribute '" + std::string(name) + "'");
    }
    case ValueKind::Namespace:
      if (const Value* v = object.ns->Find(name)) return *v;
      return Value::Undefined("namespace has no attribute '" + std::string(name) + "'");
    case ValueKind::String:
    case ValueKind::List:
      if (auto method = FindMethod(object, name)) return *method;
      break;
    default:
      break;
  }
  return Value::Undefined("'" + std::string(TypeName(object)) + " object' has no attribute '" + std::string(name) +
                          "'");
}

Value Evaluator::GetItem(const Value& object, const Value& key, int line) {
  switch (object.kind) {
    case ValueKind::Undefined:
      FailUndefined(object, line);
    case ValueKind::Dict:
      if (key.is_string()) {
        if (const Value* v = object.dict->Find(key.text)) return *v;
        if (auto method = FindMethod(object, key.text)) return *method;
      }
      return Value::Undefined("'dict object' has no attribute '" + ToStr(key) + "'");
    case ValueKind::Namespace:
      if (key.is_string()) return GetAttr(object, key.text, line);
      break;
    case ValueKind::List:
      if (IsIntLike(key)) {
        int64_t n = static_cast<int64_t>(object.items().size());
        int64_t i = AsInt(key);
        if (i < 0) i += n;
        if (i >= 0 && i < n) return object.items()[static_cast<size_t>(i)];
        return Value::Undefined("list index out of range");
      }
      if (key.is_string()) return GetAttr(object, key.text, line);
      break;
    case ValueKind::String:
      if (IsIntLike(key)) {
        std::vector<size_t> offsets = pystr::CodePointOffsets(object.text);
        int64_t n = static_cast<int64_t>(offsets.size()) - 1;
        int64_t i = AsInt(key);
        if (i < 0) i += n;
        if (i >= 0 && i < n)
          return Value::String(object.text.substr(
              offsets[static_cast<size_t>(i)], offsets[static_cast<size_t>(i) + 1] - offsets[static_cast<size_t>(i)]));
        return Value::Undefined("string index out of range");
      }
      if (key.is_string()) return GetAttr(object, key.text, line);
      break;
    default:
      break;
  }
  return Value::Undefined("'" + std::string(TypeName(object)) + " object' has no item " + Repr(key));
}

Value Evaluator::EvalSlice(const Value& object, const Expr& e) {
  if (object.is_undefined()) FailUndefined(object, e.line);
  auto bound = [&](const ExprPtr& part) -> std::optional<Value> {
    if (!part) return std::nullopt;
    Value v = Eval(*part);
    if (v.is_none()) return std::nullopt;
    return v;
  };
  std::optional<Value> start = bound(e.children[1]), stop = bound(e.children[2]), step = bound(e.children[3]);
  for (const auto* b : {&start, &stop, &step})
    if (*b && !IsIntLike(**b)) return Value::Undefined("slice indices must be integers");
  int64_t step_n = step ? AsInt(*step) : 1;
  if (step_n == 0) Fail(e.line, "slice step cannot be zero");
  auto as_opt = [](const std::optional<Value>& v) -> std::optional<int64_t> {
    if (!v) return std::nullopt;
    return AsInt(*v);
  };
  if (object.is_string()) {
    std::vector<size_t> offsets = pystr::CodePointOffsets(object.text);
    std::string out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(offsets.size()) - 1, as_opt(start), as_opt(stop), step_n))
      out.append(object.text, offsets[static_cast<size_t>(i)],
                 offsets[static_cast<size_t>(i) + 1] - offsets[static_cast<size_t>(i)]);
    return Value::String(std::move(out));
  }
  if (object.is_list()) {
    std::vector<Value> out;
    for (int64_t i : SliceIndices(static_cast<int64_t>(object.items().size()), as_opt(start), as_opt(stop), step_n))
      out.push_back(object.items()[static_cast<size_t>(i)]);
    return Value::List(std::move(out), object.list->is_tuple);
  }
  return Value::Undefined("'" + std::string(TypeName(object)) + " object' is not subscriptable");
}

Value Evaluator::EvalBinary(const std::string& op, const Value& a, const Value& b, int line) {
  if (op == "~") {
    std::string out = ToStr(a) + ToStr(b);
    CheckSize(out.size(), line);
    return Value::String(std::move(out));
  }
  if (a.is_undefined()) FailUndefined(a, line);
  if (b.is_undefined()) FailUndefined(b, line);
  auto unsupported = [&]() -> Value {
    Fail(line, "unsupported operand types for `" + op + "`: " + std::string(TypeName(a)) + " and " +
                   std::string(TypeName(b)));
  };
  if (a.is_number() && b.is_number()) {
    bool ints = IsIntLike(a) && IsIntLike(b);
    if (ints) {
      int64_t x = AsInt(a), y = AsInt(b), r = 0;
      if (op == "+") {
        if (__builtin_add_overflow(x, y, &r)) Fail(line, "integer overflow");
        return Value::Int(r);
      }
      if (op == "-") {
        if (__builtin_sub_overflow(x, y, &r)) Fail(line, "integer overflow");
        return Value::Int(r);
      }
      if (op == "*") {
        if (__builtin_mul_overflow(x, y, &r)) Fail(line, "integer overflow");
        return Value::Int(r);
      }
      if (op == "//" || op == "%") {
        if (y == 0) Fail(line, "integer division or modulo by zero");
        if (x == INT64_MIN && y == -1) Fail(line, "integer overflow");
        int64_t q = x / y, m = x % y;
        if (m != 0 && ((m < 0) != (y < 0))) {
          --q;
          m += y;
        }
        return Value::Int(op == "//" ? q : m);
      }
      if (op == "**" && y >= 0) {
        int64_t result = 1;
        for (int64_t k = 0; k < y; ++k) {
          if (__builtin_mul_overflow(result, x, &result)) Fail(line, "integer overflow");
          if (result == 0 || result == 1) break;
          if (result == -1) {
            result = ((y - k - 1) % 2 == 0) ? -1 : 1;
            break;
          }
        }
        return Value::Int(result);
      }
    }
    double x = AsDouble(a), y = AsDouble(b);
    if (op == "+") return Value::Float(x + y);
    if (op == "-") return Value::Float(x - y);
    if (op == "*") return Value::Float(x * y);
    if (op == "/") {
      if (y == 0) Fail(line, "division by zero");
      return Value::Float(x / y);
    }
    if (op == "//") {
      if (y == 0) Fail(line, "float floor division by zero");
      return Value::Float(std::floor(x / y));
    }
    if (op == "%") {
      if (y == 0) Fail(line, "float modulo by zero");
      double m = std::fmod(x, y);
      if (m != 0 && ((m < 0) != (y < 0))) m += y;
      return Value::Float(m);
    }
    if (op == "**") {
      if (x == 0 && y < 0) Fail(line, "zero to a negative power");
      return Value::Float(std::pow(x, y));
    }
    return unsupported();
  }
  if (op == "+") {
    if (a.is_string() && b.is_string()) {
      CheckSize(a.text.size() + b.text.size(), line);
      return Value::String(a.text + b.text);
    }
    if (a.is_list() && b.is_list() && a.list->is_tuple == b.list->is_tuple) {
      CheckSize((a.items().size() + b.items().size()) * sizeof(Value), line);
      std::vector<Value> items = a.items();
      items.insert(items.end(), b.items().begin(), b.items().end());
      return Value::List(std::move(items), a.list->is_tuple);
    }
    return unsupported();
  }
  if (op == "*") {  // sequence repetition
    const Value& seq = IsIntLike(a) ? b : a;
    const Value& count = IsIntLike(a) ? a : b;
    if (!IsIntLike(count) || !(seq.is_string() || seq.is_list())) return unsupported();
    int64_t n = std::max<int64_t>(AsInt(count), 0);
    size_t unit = seq.is_string() ? seq.text.size() : seq.items().size() * sizeof(Value);
    if (unit > 0 && static_cast<uint64_t>(n) > limits_.max_output_bytes / unit)
      CheckSize(limits_.max_output_bytes + 1, line);
    if (seq.is_string()) {
      std::string out;
      out.reserve(unit * static_cast<size_t>(n));
      for (int64_t k = 0; k < n; ++k) out += seq.text;
      return Value::String(std::move(out));
    }
    std::vector<Value> items;
    for (int64_t k = 0; k < n; ++k) items.insert(items.end(), seq.items().begin(), seq.items().end());
    return Value::List(std::move(items), seq.list->is_tuple);
  }
  if (op == "%" && a.is_string()) Fail(line, "`%` string formatting is not supported");
  return unsupported();
}

Value Evaluator::EvalCompare(const Expr& e) {
  Value left = Eval(*e.children[0]);
  for (size_t k = 0; k < e.ops.size(); ++k) {
    Value right = Eval(*e.children[k + 1]);
    const std::string& op = e.ops[k];
    bool holds;
    if (op == "==")
      holds = Equal(left, right);
    else if (op == "!=")
      holds = !Equal(left, right);
    else if (op == "in")
      holds = Contains(right, left, e.line);
    else if (op == "notin")
      holds = !Contains(right, left, e.line);
    else {
      if (left.is_undefined()) FailUndefined(left, e.line);
      if (right.is_undefined()) FailUndefined(right, e.line);
      int c = Compare(left, right, e.line);
      holds = op == "<" ? c < 0 : op == "<=" ? c <= 0 : op == ">" ? c > 0 : c >= 0;
    }
    if (!holds) return Value::Bool(false);
    left = std::move(right);
  }
  return Value::Bool(true);
}

Value Evaluator::Eval(const Expr& e) {
  switch (e.kind) {
    case ExprKind::Literal:
      if (e.name == "__body__") return Value::String(filter_body_ ? *filter_body_ : std::string());
      return e.value;
    case ExprKind::Name:
      return Lookup(e.name);
    case ExprKind::List:
    case ExprKind::Tuple: {
      std::vector<Value> items;
      items.reserve(e.children.size());
      for (const ExprPtr& c : e.children) items.push_back(Eval(*c));
      return Value::List(std::move(items), e.kind == ExprKind::Tuple);
    }
    case ExprKind::Dict: {
      std::vector<std::pair<std::string, Value>> entries;
      for (size_t k = 0; k + 1 < e.children.size(); k += 2) {
        Value key = Eval(*e.children[k]);
        if (!key.is_string()) Fail(e.line, "dict keys must be strings here, not " + std::string(TypeName(key)));
        entries.emplace_back(std::move(key.text), Eval(*e.children[k + 1]));
      }
      return Value::Dict(std::move(entries));
    }
    case ExprKind::GetAttr:
      return GetAttr(Eval(*e.children[0]), e.name, e.line);
    case ExprKind::GetItem: {
      Value object = Eval(*e.children[0]);
      return GetItem(object, Eval(*e.children[1]), e.line);
    }
    case ExprKind::Slice:
      return EvalSlice(Eval(*e.children[0]), e);
    case ExprKind::Call: {
      Value callee = Eval(*e.children[0]);
      CallArgs args;
      EvalArgs(e, 1, &args);
      return Call(callee, args, e.line);
    }
    case ExprKind::Filter: {
      Value operand = Eval(*e.children[0]);
      CallArgs args;
      EvalArgs(e, 1, &args);
      return ApplyFilter(*e.filter, operand, args, e.line);
    }
    case ExprKind::Test: {
      Value operand = Eval(*e.children[0]);
      CallArgs args;
      EvalArgs(e, 1, &args);
      return Value::Bool(ApplyTest(*e.test, operand, args, e.line) != e.negated);
    }
    case ExprKind::Negate:
    case ExprKind::Plus: {
      Value v = Eval(*e.children[0]);
      if (v.is_undefined()) FailUndefined(v, e.line);
      if (!v.is_number()) Fail(e.line, "bad operand type for unary `-`: " + std::string(TypeName(v)));
      if (e.kind == ExprKind::Plus) return IsIntLike(v) ? Value::Int(AsInt(v)) : v;
      if (IsIntLike(v)) {
        if (AsInt(v) == INT64_MIN) Fail(e.line, "integer overflow");
        return Value::Int(-AsInt(v));
      }
      return Value::Float(-v.number);
    }
    case ExprKind::Not:
      return Value::Bool(!Truthy(Eval(*e.children[0])));
    case ExprKind::Binary: {
      Value a = Eval(*e.children[0]);
      return EvalBinary(e.name, a, Eval(*e.children[1]), e.line);
    }
    case ExprKind::And: {
      Value a = Eval(*e.children[0]);
      return Truthy(a) ? Eval(*e.children[1]) : a;
    }
    case ExprKind::Or: {
      Value a = Eval(*e.children[0]);
      return Truthy(a) ? a : Eval(*e.children[1]);
    }
    case ExprKind::Compare:
      return EvalCompare(e);
    case ExprKind::Conditional:
      if (Truthy(Eval(*e.children[0]))) return Eval(*e.children[1]);
      return e.children[2] ? Eval(*e.children[2]) : Value::Undefined("the conditional's else");
  }
  return Value::Undefined();
}

}  // namespace fusec::rt::jinja
