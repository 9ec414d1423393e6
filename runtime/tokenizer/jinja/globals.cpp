// The globals of Hugging Face's chat-template environment: jinja2's range, namespace and dict, and the
// raise_exception and strftime_now that transformers adds.
#include <ctime>

#include "runtime/tokenizer/jinja/builtins.h"
#include "runtime/tokenizer/jinja/evaluator.h"

namespace fusec::rt::jinja {
namespace {

Value Function(std::string name, std::function<Value(Evaluator&, CallArgs&)> call) {
  auto data = std::make_shared<CallableData>();
  data->name = std::move(name);
  data->call = std::move(call);
  Value v;
  v.kind = ValueKind::Callable;
  v.callable = std::move(data);
  return v;
}

Value Range(Evaluator& ev, CallArgs& a) {
  if (!a.keyword.empty()) Fail(a.line, "`range` takes no keyword arguments");
  if (a.positional.empty() || a.positional.size() > 3) Fail(a.line, "`range` takes 1 to 3 arguments");
  int64_t start = 0, stop = 0, step = 1;
  if (a.positional.size() == 1) {
    stop = ExpectInt(a.positional[0], "`range`'s stop", a.line);
  } else {
    start = ExpectInt(a.positional[0], "`range`'s start", a.line);
    stop = ExpectInt(a.positional[1], "`range`'s stop", a.line);
    if (a.positional.size() == 3) step = ExpectInt(a.positional[2], "`range`'s step", a.line);
  }
  if (step == 0) Fail(a.line, "`range`'s step must not be zero");
  // The count in floating point first: start, stop and step can be anywhere in int64.
  double count = step > 0 ? (static_cast<double>(stop) - static_cast<double>(start)) / static_cast<double>(step)
                          : (static_cast<double>(start) - static_cast<double>(stop)) / static_cast<double>(-step);
  // jinja2's sandbox (which Hugging Face renders in) refuses ranges of more than MAX_RANGE items.
  constexpr double kMaxRange = 100000;
  if (count > kMaxRange)
    Fail(a.line, "`range` of " + std::to_string(static_cast<int64_t>(count)) +
                     " items is too large (the sandbox allows 100000)");
  std::vector<Value> items;
  for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) {
    ev.CountIterations(1, a.line);
    items.push_back(Value::Int(i));
    if ((step > 0 && i > INT64_MAX - step) || (step < 0 && i < INT64_MIN - step)) break;
  }
  return Value::List(std::move(items));
}

/// dict(**kwargs) / dict(mapping, **kwargs), and namespace() over the same arguments.
std::vector<std::pair<std::string, Value>> DictArgs(CallArgs& a, std::string_view function) {
  std::vector<std::pair<std::string, Value>> entries;
  if (a.positional.size() > 1) Fail(a.line, "`" + std::string(function) + "` takes at most one positional argument");
  if (a.positional.size() == 1) {
    const Value& source = a.positional[0];
    if (!source.is_dict())
      Fail(a.line, "`" + std::string(function) + "` needs a mapping, not " + std::string(TypeName(source)));
    entries = source.dict->entries;
  }
  for (auto& kw : a.keyword) entries.push_back(std::move(kw));
  return entries;
}

Value Namespace(Evaluator& ev, CallArgs& a) {
  auto data = std::make_shared<NamespaceData>();
  ev.TrackNamespace(data);
  for (auto& [key, value] : DictArgs(a, "namespace")) data->Set(key, std::move(value));
  Value v;
  v.kind = ValueKind::Namespace;
  v.ns = std::move(data);
  return v;
}

Value DictGlobal(Evaluator&, CallArgs& a) { return Value::Dict(DictArgs(a, "dict")); }

Value RaiseException(Evaluator&, CallArgs& a) {
  ArgReader r(a, "raise_exception");
  Value message = r.Take("message", Value::String(""));
  r.Finish();
  throw Failure{a.line, ToStr(message), /*raised=*/true};
}

/// datetime.now().strftime(format): local time, at the clock the render was given.
Value StrftimeNow(Evaluator& ev, CallArgs& a) {
  ArgReader r(a, "strftime_now");
  std::string format = ExpectString(r.Required("format"), "`strftime_now`'s format", a.line);
  r.Finish();
  if (format.empty()) return Value::String("");
  std::time_t now = ev.now();
  std::tm local{};
  localtime_r(&now, &local);
  std::string buffer(format.size() * 8 + 64, '\0');
  for (int attempt = 0; attempt < 4; ++attempt) {
    size_t n = std::strftime(buffer.data(), buffer.size(), format.c_str(), &local);
    if (n > 0) return Value::String(buffer.substr(0, n));
    buffer.resize(buffer.size() * 4);
  }
  return Value::String("");
}

}  // namespace

std::vector<std::pair<std::string, Value>> Globals() {
  return {
      {"range", Function("range", Range)},
      {"namespace", Function("namespace", Namespace)},
      {"dict", Function("dict", DictGlobal)},
      {"raise_exception", Function("raise_exception", RaiseException)},
      {"strftime_now", Function("strftime_now", StrftimeNow)},
  };
}

}  // namespace fusec::rt::jinja
