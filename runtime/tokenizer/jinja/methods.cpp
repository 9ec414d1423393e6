// Python's methods on str, dict and list that chat templates call (`content.strip()`, `d.items()`),
// bound to their receiver when the attribute is looked up, as in Python.
#include <algorithm>

#include "runtime/tokenizer/jinja/builtins.h"
#include "runtime/tokenizer/jinja/evaluator.h"
#include "runtime/tokenizer/jinja/pystr.h"

namespace fusec::rt::jinja {
namespace {

using Method = Value (*)(Evaluator& ev, const Value& self, CallArgs& args);
struct MethodSpec {
  std::string_view name;
  Method fn;  // null: Python has it, this interpreter does not
};

std::optional<std::string> OptionalChars(ArgReader& r, int line) {
  Value chars = r.Take("chars", Value::None());
  if (chars.is_none()) return std::nullopt;
  return ExpectString(chars, "the characters to strip", line);
}

template <pystr::StripSide kSide>
Value StripMethod(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, "strip");
  std::optional<std::string> chars = OptionalChars(r, a.line);
  r.Finish();
  return Value::String(pystr::Strip(self.text, chars, kSide));
}

template <bool kEnd>
Value StartsOrEndsWith(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, kEnd ? "endswith" : "startswith");
  Value affix = r.Required(kEnd ? "suffix" : "prefix");
  r.Finish();
  auto matches = [&](const Value& v) {
    const std::string& s = ExpectString(v, kEnd ? "`endswith`'s suffix" : "`startswith`'s prefix", a.line);
    if (s.size() > self.text.size()) return false;
    return kEnd ? self.text.compare(self.text.size() - s.size(), s.size(), s) == 0
                : self.text.compare(0, s.size(), s) == 0;
  };
  if (affix.is_list() && affix.list->is_tuple)
    return Value::Bool(std::any_of(affix.items().begin(), affix.items().end(), matches));
  if (!affix.is_string())
    Fail(a.line, std::string(kEnd ? "`endswith`" : "`startswith`") + " needs a string or a tuple of strings");
  return Value::Bool(matches(affix));
}

template <bool kRight>
Value SplitMethod(Evaluator& ev, const Value& self, CallArgs& a) {
  ArgReader r(a, kRight ? "rsplit" : "split");
  Value sep = r.Take("sep", Value::None());
  int64_t maxsplit = ExpectInt(r.Take("maxsplit", Value::Int(-1)), "maxsplit", a.line);
  r.Finish();
  std::optional<std::string> separator;
  if (!sep.is_none()) separator = ExpectString(sep, "the separator", a.line);
  auto parts = pystr::Split(self.text, separator, maxsplit, kRight);
  if (!parts) Fail(a.line, "empty separator");
  ev.CountIterations(static_cast<int64_t>(parts->size()), a.line);
  std::vector<Value> out;
  out.reserve(parts->size());
  for (std::string& p : *parts) out.push_back(Value::String(std::move(p)));
  return Value::List(std::move(out));
}

Value SplitLinesMethod(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, "splitlines");
  bool keep = Truthy(r.Take("keepends", Value::Bool(false)));
  r.Finish();
  std::vector<Value> out;
  for (std::string& line : pystr::SplitLines(self.text, keep)) out.push_back(Value::String(std::move(line)));
  return Value::List(std::move(out));
}

template <std::string (*F)(std::string_view)>
Value StringMapMethod(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader(a, "method").Finish();
  return Value::String(F(self.text));
}

template <bool (*F)(std::string_view)>
Value StringPredicate(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader(a, "method").Finish();
  return Value::Bool(F(self.text));
}

Value ReplaceMethod(Evaluator& ev, const Value& self, CallArgs& a) {
  ArgReader r(a, "replace");
  std::string old_text = ExpectString(r.Required("old"), "`replace`'s old", a.line);
  std::string new_text = ExpectString(r.Required("new"), "`replace`'s new", a.line);
  int64_t count = ExpectInt(r.Take("count", Value::Int(-1)), "`replace`'s count", a.line);
  r.Finish();
  std::string out = pystr::Replace(self.text, old_text, new_text, count);
  ev.CheckSize(out.size(), a.line);
  return Value::String(std::move(out));
}

template <bool kRight, bool kIndex>
Value FindSubstring(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, "find");
  std::string needle = ExpectString(r.Required("sub"), "the substring", a.line);
  r.Finish();
  int64_t at = pystr::Find(self.text, needle, kRight);
  if (kIndex && at < 0) Fail(a.line, "substring not found");
  return Value::Int(at);
}

Value CountMethod(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, "count");
  Value x = r.Required("x");
  r.Finish();
  if (self.is_string()) return Value::Int(pystr::Count(self.text, ExpectString(x, "the substring", a.line)));
  int64_t n = 0;
  for (const Value& item : self.items()) n += Equal(item, x) ? 1 : 0;
  return Value::Int(n);
}

Value JoinMethod(Evaluator& ev, const Value& self, CallArgs& a) {
  ArgReader r(a, "join");
  Value iterable = r.Required("iterable");
  r.Finish();
  std::string out;
  bool first = true;
  for (const Value& item : Iterate(iterable, a.line)) {
    if (!first) out += self.text;
    first = false;
    out += ExpectString(item, "each item `join`s", a.line);
    ev.CheckSize(out.size(), a.line);
  }
  return Value::String(std::move(out));
}

template <bool kSuffix>
Value RemoveAffix(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, kSuffix ? "removesuffix" : "removeprefix");
  std::string affix = ExpectString(r.Required(kSuffix ? "suffix" : "prefix"), "the affix", a.line);
  r.Finish();
  if (affix.size() <= self.text.size()) {
    if (kSuffix && self.text.compare(self.text.size() - affix.size(), affix.size(), affix) == 0)
      return Value::String(self.text.substr(0, self.text.size() - affix.size()));
    if (!kSuffix && self.text.compare(0, affix.size(), affix) == 0)
      return Value::String(self.text.substr(affix.size()));
  }
  return self;
}

/// str.format with `{}`, `{0}` and `{name}` fields (no format specs).
Value FormatMethod(Evaluator& ev, const Value& self, CallArgs& a) {
  std::string out;
  size_t auto_index = 0;
  const std::string& f = self.text;
  for (size_t k = 0; k < f.size(); ++k) {
    char c = f[k];
    if (c == '}') {
      if (k + 1 < f.size() && f[k + 1] == '}')
        ++k;
      else
        Fail(a.line, "single `}` in a format string");
      out.push_back('}');
      continue;
    }
    if (c != '{') {
      out.push_back(c);
      continue;
    }
    if (k + 1 < f.size() && f[k + 1] == '{') {
      out.push_back('{');
      ++k;
      continue;
    }
    size_t close = f.find('}', k);
    if (close == std::string::npos) Fail(a.line, "single `{` in a format string");
    std::string field = f.substr(k + 1, close - k - 1);
    if (field.find_first_of(":!.[") != std::string::npos) Fail(a.line, "format specs in `format` are not supported");
    const Value* value = nullptr;
    if (field.empty() || std::all_of(field.begin(), field.end(), [](char d) { return d >= '0' && d <= '9'; })) {
      size_t index = field.empty() ? auto_index++ : std::stoul(field);
      if (index >= a.positional.size())
        Fail(a.line, "`format`: replacement index " + std::to_string(index) + " out of range");
      value = &a.positional[index];
    } else {
      for (const auto& [name, v] : a.keyword)
        if (name == field) value = &v;
      if (!value) Fail(a.line, "`format`: no argument `" + field + "`");
    }
    out += ToStr(*value);
    ev.CheckSize(out.size(), a.line);
    k = close;
  }
  return Value::String(std::move(out));
}

Value DictGet(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, "get");
  Value key = r.Required("key");
  Value fallback = r.Take("default", Value::None());
  r.Finish();
  if (!key.is_string()) return fallback;
  const Value* found = self.dict->Find(key.text);
  return found ? *found : fallback;
}

Value DictItems(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader(a, "items").Finish();
  std::vector<Value> pairs;
  pairs.reserve(self.dict->entries.size());
  for (const auto& [key, value] : self.dict->entries) pairs.push_back(Value::List({Value::String(key), value}, true));
  return Value::List(std::move(pairs));
}
Value DictKeys(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader(a, "keys").Finish();
  return Value::List(Iterate(self, a.line));
}
Value DictValues(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader(a, "values").Finish();
  std::vector<Value> values;
  for (const auto& e : self.dict->entries) values.push_back(e.second);
  return Value::List(std::move(values));
}
Value Copy(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader(a, "copy").Finish();
  return self;  // immutable: a copy is the same value
}
Value ListIndex(Evaluator&, const Value& self, CallArgs& a) {
  ArgReader r(a, "index");
  Value x = r.Required("x");
  r.Finish();
  for (size_t k = 0; k < self.items().size(); ++k)
    if (Equal(self.items()[k], x)) return Value::Int(static_cast<int64_t>(k));
  Fail(a.line, "`index`: the value is not in the list");
}

constexpr MethodSpec kStringMethods[] = {
    {"capitalize", StringMapMethod<pystr::Capitalize>},
    {"casefold", StringMapMethod<pystr::Lower>},
    {"center", nullptr},
    {"count", CountMethod},
    {"encode", nullptr},
    {"endswith", StartsOrEndsWith<true>},
    {"expandtabs", nullptr},
    {"find", FindSubstring<false, false>},
    {"format", FormatMethod},
    {"format_map", nullptr},
    {"index", FindSubstring<false, true>},
    {"isalnum", StringPredicate<pystr::IsAlnum>},
    {"isalpha", StringPredicate<pystr::IsAlpha>},
    {"isascii", nullptr},
    {"isdecimal", StringPredicate<pystr::IsDigit>},
    {"isdigit", StringPredicate<pystr::IsDigit>},
    {"isidentifier", nullptr},
    {"islower", StringPredicate<pystr::IsLower>},
    {"isnumeric", StringPredicate<pystr::IsDigit>},
    {"isprintable", nullptr},
    {"isspace", StringPredicate<pystr::IsSpaceText>},
    {"istitle", nullptr},
    {"isupper", StringPredicate<pystr::IsUpper>},
    {"join", JoinMethod},
    {"ljust", nullptr},
    {"lower", StringMapMethod<pystr::Lower>},
    {"lstrip", StripMethod<pystr::StripSide::Left>},
    {"maketrans", nullptr},
    {"partition", nullptr},
    {"removeprefix", RemoveAffix<false>},
    {"removesuffix", RemoveAffix<true>},
    {"replace", ReplaceMethod},
    {"rfind", FindSubstring<true, false>},
    {"rindex", FindSubstring<true, true>},
    {"rjust", nullptr},
    {"rpartition", nullptr},
    {"rsplit", SplitMethod<true>},
    {"rstrip", StripMethod<pystr::StripSide::Right>},
    {"split", SplitMethod<false>},
    {"splitlines", SplitLinesMethod},
    {"startswith", StartsOrEndsWith<false>},
    {"strip", StripMethod<pystr::StripSide::Both>},
    {"swapcase", nullptr},
    {"title", StringMapMethod<pystr::TitleMethod>},
    {"translate", nullptr},
    {"upper", StringMapMethod<pystr::Upper>},
    {"zfill", nullptr},
};

constexpr MethodSpec kDictMethods[] = {
    {"clear", nullptr},      {"copy", Copy},      {"fromkeys", nullptr},  {"get", DictGet},
    {"items", DictItems},    {"keys", DictKeys},  {"pop", nullptr},       {"popitem", nullptr},
    {"setdefault", nullptr}, {"update", nullptr}, {"values", DictValues},
};

constexpr MethodSpec kListMethods[] = {
    {"append", nullptr}, {"clear", nullptr},   {"copy", Copy},      {"count", CountMethod},
    {"extend", nullptr}, {"index", ListIndex}, {"insert", nullptr}, {"pop", nullptr},
    {"remove", nullptr}, {"reverse", nullptr}, {"sort", nullptr},
};

/// The methods that would change a list or dict: the sandbox Hugging Face renders in refuses them.
bool Mutates(std::string_view name) {
  for (std::string_view m :
       {"append", "clear", "extend", "insert", "pop", "remove", "reverse", "sort", "popitem", "setdefault", "update"})
    if (m == name) return true;
  return false;
}

template <size_t N>
const MethodSpec* Lookup(const MethodSpec (&table)[N], std::string_view name) {
  for (const MethodSpec& m : table)
    if (m.name == name) return &m;
  return nullptr;
}

}  // namespace

std::optional<Value> FindMethod(const Value& receiver, std::string_view name) {
  const MethodSpec* spec = nullptr;
  std::string_view type;
  if (receiver.is_string()) {
    spec = Lookup(kStringMethods, name);
    type = "str";
  } else if (receiver.is_dict()) {
    spec = Lookup(kDictMethods, name);
    type = "dict";
  } else if (receiver.is_list()) {
    spec = Lookup(kListMethods, name);
    type = receiver.list->is_tuple ? "tuple" : "list";
    if (receiver.list->is_tuple && spec && spec->fn != CountMethod && spec->fn != ListIndex) spec = nullptr;
  }
  if (!spec) return std::nullopt;
  if (!spec->fn) {  // the attribute exists in Python (`is defined` holds); calling it fails
    std::string message = Mutates(name)
                              ? "`" + std::string(name) + "` would modify an immutable " + std::string(type) +
                                    " (Hugging Face renders templates in jinja2's immutable sandbox)"
                              : "method `" + std::string(name) + "` of " + std::string(type) + " is not supported";
    auto data = std::make_shared<CallableData>();
    data->name = std::string(name);
    data->call = [message](Evaluator&, CallArgs& args) -> Value { Fail(args.line, message); };
    Value v;
    v.kind = ValueKind::Callable;
    v.callable = std::move(data);
    return v;
  }
  auto data = std::make_shared<CallableData>();
  data->name = std::string(name);
  Method fn = spec->fn;
  data->call = [fn, receiver](Evaluator& ev, CallArgs& args) { return fn(ev, receiver, args); };
  Value v;
  v.kind = ValueKind::Callable;
  v.callable = std::move(data);
  return v;
}

std::vector<std::pair<std::string_view, std::vector<std::string_view>>> MethodNames() {
  std::vector<std::pair<std::string_view, std::vector<std::string_view>>> out;
  auto add = [&](std::string_view type, const auto& table) {
    std::vector<std::string_view> names;
    for (const MethodSpec& m : table)
      if (m.fn) names.push_back(m.name);
    out.emplace_back(type, names);
  };
  add("str", kStringMethods);
  add("dict", kDictMethods);
  add("list", kListMethods);
  return out;
}

}  // namespace fusec::rt::jinja
