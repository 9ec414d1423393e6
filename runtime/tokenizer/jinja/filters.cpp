// jinja2's filters (jinja2/filters.py) that chat templates use, with Hugging Face's `tojson`.
#include <algorithm>
#include <cmath>
#include <cstdlib>

#include "runtime/tokenizer/jinja/builtins.h"
#include "runtime/tokenizer/jinja/evaluator.h"
#include "runtime/tokenizer/jinja/pystr.h"

namespace fusec::rt::jinja {
namespace {

std::optional<std::string> OptionalString(const Value& v, std::string_view what, int line) {
  if (v.is_none() || v.is_undefined()) return std::nullopt;
  return ExpectString(v, what, line);
}

/// jinja2's make_attrgetter: `a.b.0` looks up each part as `obj[part]` (then as an attribute).
Value GetPath(Evaluator& ev, const Value& object, const Value& path, int line) {
  if (!path.is_string()) return ev.GetItem(object, path, line);
  Value current = object;
  size_t start = 0;
  while (true) {
    size_t dot = path.text.find('.', start);
    std::string part = path.text.substr(start, dot == std::string::npos ? std::string::npos : dot - start);
    bool numeric = !part.empty() && std::all_of(part.begin(), part.end(), [](char c) { return c >= '0' && c <= '9'; });
    current =
        ev.GetItem(current, numeric ? Value::Int(std::strtoll(part.c_str(), nullptr, 10)) : Value::String(part), line);
    if (dot == std::string::npos) return current;
    start = dot + 1;
  }
}

/// The sort key of jinja2's sort/unique/min/max/dictsort: strings lower-cased unless case-sensitive.
Value SortKey(const Value& v, bool case_sensitive) {
  if (!case_sensitive && v.is_string()) return Value::String(pystr::Lower(v.text));
  return v;
}

Value Trim(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "trim");
  std::optional<std::string> chars = OptionalString(r.Take("chars", Value::None()), "`trim`'s chars", a.line);
  r.Finish();
  return Value::String(pystr::Strip(ToStr(v), chars, pystr::StripSide::Both));
}

Value ToJson(Evaluator&, const Value& v, CallArgs& a) {
  // Hugging Face's override: tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False).
  ArgReader r(a, "tojson");
  JsonDumpOptions o;
  o.ensure_ascii = Truthy(r.Take("ensure_ascii", Value::Bool(false)));
  Value indent = r.Take("indent", Value::None());
  Value separators = r.Take("separators", Value::None());
  o.sort_keys = Truthy(r.Take("sort_keys", Value::Bool(false)));
  r.Finish();
  if (indent.is_string()) {
    o.indent = indent.text;
  } else if (!indent.is_none()) {
    int64_t n = ExpectInt(indent, "`tojson`'s indent", a.line);
    o.indent = std::string(static_cast<size_t>(std::clamp<int64_t>(n, 0, 64)), ' ');
  }
  if (o.indent) o.item_separator = ",";
  if (!separators.is_none()) {
    if (!separators.is_list() || separators.items().size() != 2)
      Fail(a.line, "`tojson`'s separators must be a pair of strings");
    o.item_separator = ExpectString(separators.items()[0], "a separator", a.line);
    o.key_separator = ExpectString(separators.items()[1], "a separator", a.line);
  }
  return Value::String(DumpJson(v, o, a.line));
}

Value LengthFilter(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "length").Finish();
  return Value::Int(Length(v, a.line));
}

template <std::string (*F)(std::string_view)>
Value StringMap(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "filter").Finish();
  return Value::String(F(ToStr(v)));
}

Value Default(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "default");
  Value fallback = r.Take("default_value", Value::String(""));
  bool boolean = Truthy(r.Take("boolean", Value::Bool(false)));
  r.Finish();
  if (v.is_undefined() || (boolean && !Truthy(v))) return fallback;
  return v;
}

Value First(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "first").Finish();
  std::vector<Value> items = Iterate(v, a.line);
  return items.empty() ? Value::Undefined("first item") : items.front();
}

Value Last(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "last").Finish();
  std::vector<Value> items = Iterate(v, a.line);
  return items.empty() ? Value::Undefined("last item") : items.back();
}

Value Join(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "join");
  std::string separator = ExpectString(r.Take("d", Value::String("")), "`join`'s separator", a.line);
  Value attribute = r.Take("attribute", Value::None());
  r.Finish();
  std::string out;
  bool first = true;
  for (const Value& item : Iterate(v, a.line)) {
    if (!first) out += separator;
    first = false;
    out += ToStr(attribute.is_none() ? item : GetPath(ev, item, attribute, a.line));
    ev.CheckSize(out.size(), a.line);
  }
  return Value::String(std::move(out));
}

Value ListFilter(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "list").Finish();
  return Value::List(Iterate(v, a.line));
}

Value StringFilter(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "string").Finish();
  return Value::String(ToStr(v));
}

/// Python's int(text, base): surrounding whitespace, a sign, underscores between digits.
std::optional<int64_t> ParseInt(const std::string& raw, int64_t base) {
  std::string text = pystr::Strip(raw, std::nullopt, pystr::StripSide::Both);
  if (text.empty() || base < 2 || base > 36) return std::nullopt;
  std::string digits;
  for (size_t k = 0; k < text.size(); ++k) {
    if (text[k] == '_') {
      if (k == 0 || k + 1 == text.size() || text[k - 1] == '_') return std::nullopt;
      continue;
    }
    digits.push_back(text[k]);
  }
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(digits.c_str(), &end, static_cast<int>(base));
  if (errno != 0 || end != digits.c_str() + digits.size() || digits == "+" || digits == "-") return std::nullopt;
  return value;
}

std::optional<double> ParseFloat(const std::string& raw) {
  std::string text = pystr::Strip(raw, std::nullopt, pystr::StripSide::Both);
  if (text.empty()) return std::nullopt;
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (end != text.c_str() + text.size()) return std::nullopt;
  return value;
}

Value IntFilter(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "int");
  Value fallback = r.Take("default", Value::Int(0));
  int64_t base = ExpectInt(r.Take("base", Value::Int(10)), "`int`'s base", a.line);
  r.Finish();
  switch (v.kind) {
    case ValueKind::Int:
      return v;
    case ValueKind::Bool:
      return Value::Int(v.boolean ? 1 : 0);
    case ValueKind::Float:
      if (std::isfinite(v.number) && std::abs(v.number) < 9.2e18) return Value::Int(static_cast<int64_t>(v.number));
      return fallback;
    case ValueKind::String: {
      if (auto i = ParseInt(v.text, base)) return Value::Int(*i);
      auto f = ParseFloat(v.text);
      if (f && std::isfinite(*f) && std::abs(*f) < 9.2e18) return Value::Int(static_cast<int64_t>(*f));
      return fallback;
    }
    default:
      return fallback;
  }
}

Value FloatFilter(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "float");
  Value fallback = r.Take("default", Value::Float(0.0));
  r.Finish();
  switch (v.kind) {
    case ValueKind::Int:
      return Value::Float(static_cast<double>(v.integer));
    case ValueKind::Bool:
      return Value::Float(v.boolean ? 1.0 : 0.0);
    case ValueKind::Float:
      return v;
    case ValueKind::String: {
      auto f = ParseFloat(v.text);
      return f ? Value::Float(*f) : fallback;
    }
    default:
      return fallback;
  }
}

Value Abs(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "abs").Finish();
  if (v.kind == ValueKind::Int) {
    if (v.integer == INT64_MIN) Fail(a.line, "integer overflow in `abs`");
    return Value::Int(std::abs(v.integer));
  }
  if (v.kind == ValueKind::Bool) return Value::Int(v.boolean ? 1 : 0);
  if (v.kind == ValueKind::Float) return Value::Float(std::fabs(v.number));
  Fail(a.line, "bad operand type for `abs`: " + std::string(TypeName(v)));
}

Value ReplaceFilter(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "replace");
  std::string old_text = ToStr(r.Required("old"));
  std::string new_text = ToStr(r.Required("new"));
  Value count = r.Take("count", Value::None());
  r.Finish();
  std::string out =
      pystr::Replace(ToStr(v), old_text, new_text, count.is_none() ? -1 : ExpectInt(count, "count", a.line));
  ev.CheckSize(out.size(), a.line);
  return Value::String(std::move(out));
}

Value Reverse(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "reverse").Finish();
  std::vector<Value> items = Iterate(v, a.line);
  std::reverse(items.begin(), items.end());
  if (v.is_string()) {
    std::string out;
    for (const Value& c : items) out += c.text;
    return Value::String(std::move(out));
  }
  return Value::List(std::move(items));
}

Value Sort(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "sort");
  bool reverse = Truthy(r.Take("reverse", Value::Bool(false)));
  bool case_sensitive = Truthy(r.Take("case_sensitive", Value::Bool(false)));
  Value attribute = r.Take("attribute", Value::None());
  r.Finish();
  std::vector<Value> items = Iterate(v, a.line);
  std::vector<std::pair<Value, size_t>> keyed;
  for (size_t k = 0; k < items.size(); ++k)
    keyed.emplace_back(
        SortKey(attribute.is_none() ? items[k] : GetPath(ev, items[k], attribute, a.line), case_sensitive), k);
  int line = a.line;
  std::stable_sort(keyed.begin(), keyed.end(), [&](const auto& x, const auto& y) {
    int c = Compare(x.first, y.first, line);
    return reverse ? c > 0 : c < 0;
  });
  std::vector<Value> sorted;
  for (const auto& [key, k] : keyed) sorted.push_back(items[k]);
  return Value::List(std::move(sorted));
}

Value Unique(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "unique");
  bool case_sensitive = Truthy(r.Take("case_sensitive", Value::Bool(false)));
  Value attribute = r.Take("attribute", Value::None());
  r.Finish();
  std::vector<Value> out, seen;
  for (const Value& item : Iterate(v, a.line)) {
    Value key = SortKey(attribute.is_none() ? item : GetPath(ev, item, attribute, a.line), case_sensitive);
    if (std::any_of(seen.begin(), seen.end(), [&](const Value& s) { return Equal(s, key); })) continue;
    seen.push_back(key);
    out.push_back(item);
  }
  return Value::List(std::move(out));
}

Value MinMax(Evaluator& ev, const Value& v, CallArgs& a, bool max) {
  ArgReader r(a, max ? "max" : "min");
  bool case_sensitive = Truthy(r.Take("case_sensitive", Value::Bool(false)));
  Value attribute = r.Take("attribute", Value::None());
  r.Finish();
  std::optional<Value> best, best_key;
  for (const Value& item : Iterate(v, a.line)) {
    Value key = SortKey(attribute.is_none() ? item : GetPath(ev, item, attribute, a.line), case_sensitive);
    if (!best || (max ? Compare(key, *best_key, a.line) > 0 : Compare(key, *best_key, a.line) < 0)) {
      best = item;
      best_key = key;
    }
  }
  return best ? *best : Value::Undefined("no item, the sequence was empty");
}
Value Min(Evaluator& ev, const Value& v, CallArgs& a) { return MinMax(ev, v, a, false); }
Value Max(Evaluator& ev, const Value& v, CallArgs& a) { return MinMax(ev, v, a, true); }

Value Sum(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "sum");
  Value attribute = r.Take("attribute", Value::None());
  Value total = r.Take("start", Value::Int(0));
  r.Finish();
  for (const Value& item : Iterate(v, a.line)) {
    Value x = attribute.is_none() ? item : GetPath(ev, item, attribute, a.line);
    if (!x.is_number() || !total.is_number()) Fail(a.line, "`sum` needs numbers, not " + std::string(TypeName(x)));
    if (x.kind == ValueKind::Float || total.kind == ValueKind::Float) {
      auto d = [](const Value& n) {
        return n.kind == ValueKind::Float ? n.number : static_cast<double>(ExpectInt(n, "", 0));
      };
      total = Value::Float(d(total) + d(x));
    } else {
      int64_t out = 0;
      if (__builtin_add_overflow(ExpectInt(total, "", 0), ExpectInt(x, "", 0), &out))
        Fail(a.line, "integer overflow in `sum`");
      total = Value::Int(out);
    }
  }
  return total;
}

Value Round(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "round");
  int64_t precision = ExpectInt(r.Take("precision", Value::Int(0)), "`round`'s precision", a.line);
  std::string method = ExpectString(r.Take("method", Value::String("common")), "`round`'s method", a.line);
  r.Finish();
  if (!v.is_number()) Fail(a.line, "`round` needs a number, not " + std::string(TypeName(v)));
  double x = v.kind == ValueKind::Float ? v.number : static_cast<double>(ExpectInt(v, "", 0));
  double scale = std::pow(10.0, static_cast<double>(std::clamp<int64_t>(precision, -300, 300)));
  double scaled = x * scale;
  if (method == "common")
    scaled = std::nearbyint(scaled);  // Python's round(): half to even
  else if (method == "ceil")
    scaled = std::ceil(scaled);
  else if (method == "floor")
    scaled = std::floor(scaled);
  else
    Fail(a.line, "`round`'s method must be common, ceil or floor");
  return Value::Float(scaled / scale);
}

Value Indent(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "indent");
  Value width = r.Take("width", Value::Int(4));
  bool first = Truthy(r.Take("first", Value::Bool(false)));
  bool blank = Truthy(r.Take("blank", Value::Bool(false)));
  r.Finish();
  std::string indention =
      width.is_string()
          ? width.text
          : std::string(static_cast<size_t>(std::clamp<int64_t>(ExpectInt(width, "width", a.line), 0, 1024)), ' ');
  std::vector<std::string> lines = pystr::SplitLines(ToStr(v) + "\n", false);
  std::string out;
  for (size_t k = 0; k < lines.size(); ++k) {
    if (k > 0) out += "\n";
    if (k > 0 && (blank || !lines[k].empty())) out += indention;
    out += lines[k];
    ev.CheckSize(out.size(), a.line);
  }
  if (first) out = indention + out;
  return Value::String(std::move(out));
}

Value Items(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "items").Finish();
  if (v.is_undefined()) return Value::List({});
  if (!v.is_dict()) Fail(a.line, "`items` needs a mapping, not " + std::string(TypeName(v)));
  std::vector<Value> pairs;
  for (const auto& [key, value] : v.dict->entries) pairs.push_back(Value::List({Value::String(key), value}, true));
  return Value::List(std::move(pairs));
}

Value DictSort(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader r(a, "dictsort");
  bool case_sensitive = Truthy(r.Take("case_sensitive", Value::Bool(false)));
  std::string by = ExpectString(r.Take("by", Value::String("key")), "`dictsort`'s by", a.line);
  bool reverse = Truthy(r.Take("reverse", Value::Bool(false)));
  r.Finish();
  if (!v.is_dict()) Fail(a.line, "`dictsort` needs a mapping, not " + std::string(TypeName(v)));
  if (by != "key" && by != "value") Fail(a.line, "`dictsort`'s by must be 'key' or 'value'");
  std::vector<Value> pairs;
  for (const auto& [key, value] : v.dict->entries) pairs.push_back(Value::List({Value::String(key), value}, true));
  size_t index = by == "key" ? 0 : 1;
  int line = a.line;
  std::stable_sort(pairs.begin(), pairs.end(), [&](const Value& x, const Value& y) {
    int c = Compare(SortKey(x.items()[index], case_sensitive), SortKey(y.items()[index], case_sensitive), line);
    return reverse ? c > 0 : c < 0;
  });
  return Value::List(std::move(pairs));
}

/// select/reject/selectattr/rejectattr: the items for which the test (or truthiness) holds, or not.
Value SelectOrReject(Evaluator& ev, const Value& v, CallArgs& a, bool by_attribute, bool select) {
  Value attribute;
  if (by_attribute) {
    if (a.positional.empty()) Fail(a.line, "`selectattr`/`rejectattr` need an attribute");
    attribute = a.positional.front();
    a.positional.erase(a.positional.begin());
  }
  const TestSpec* test = nullptr;
  if (!a.positional.empty()) {
    const std::string& name = ExpectString(a.positional.front(), "the test's name", a.line);
    test = FindTest(name);
    if (!test) Fail(a.line, "test `" + name + "` is not supported");
    a.positional.erase(a.positional.begin());
  }
  std::vector<Value> out;
  for (const Value& item : Iterate(v, a.line)) {
    Value subject = by_attribute ? GetPath(ev, item, attribute, a.line) : item;
    bool holds;
    if (test) {
      CallArgs copy = a;
      holds = ev.ApplyTest(*test, subject, copy, a.line);
    } else {
      holds = Truthy(subject);
    }
    if (holds == select) out.push_back(item);
  }
  return Value::List(std::move(out));
}
Value Select(Evaluator& ev, const Value& v, CallArgs& a) { return SelectOrReject(ev, v, a, false, true); }
Value Reject(Evaluator& ev, const Value& v, CallArgs& a) { return SelectOrReject(ev, v, a, false, false); }
Value SelectAttr(Evaluator& ev, const Value& v, CallArgs& a) { return SelectOrReject(ev, v, a, true, true); }
Value RejectAttr(Evaluator& ev, const Value& v, CallArgs& a) { return SelectOrReject(ev, v, a, true, false); }

Value Map(Evaluator& ev, const Value& v, CallArgs& a) {
  std::vector<Value> out;
  std::vector<Value> items = Iterate(v, a.line);
  bool by_attribute = a.positional.empty();
  if (by_attribute) {
    ArgReader r(a, "map");
    Value attribute = r.Required("attribute");
    std::optional<Value> fallback = r.Take("default");
    r.Finish();
    for (const Value& item : items) {
      Value x = GetPath(ev, item, attribute, a.line);
      out.push_back(x.is_undefined() && fallback ? *fallback : x);
    }
    return Value::List(std::move(out));
  }
  const std::string& name = ExpectString(a.positional.front(), "the filter's name", a.line);
  const FilterSpec* filter = FindFilter(name);
  if (!filter) Fail(a.line, "filter `" + name + "` is not supported");
  a.positional.erase(a.positional.begin());
  for (const Value& item : items) {
    CallArgs copy = a;
    out.push_back(ev.ApplyFilter(*filter, item, copy, a.line));
  }
  return Value::List(std::move(out));
}

Value Safe(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "safe").Finish();
  return v.is_string() ? v : Value::String(ToStr(v));
}

Value Escape(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "escape").Finish();
  std::string out;
  for (char c : ToStr(v)) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&#34;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out.push_back(c);
    }
  }
  return Value::String(std::move(out));
}

Value Attr(Evaluator& ev, const Value& v, CallArgs& a) {
  ArgReader r(a, "attr");
  std::string name = ExpectString(r.Required("name"), "`attr`'s name", a.line);
  r.Finish();
  return ev.GetAttr(v, name, a.line);
}

Value WordCount(Evaluator&, const Value& v, CallArgs& a) {
  ArgReader(a, "wordcount").Finish();
  auto words = pystr::Split(ToStr(v), std::nullopt, -1, false);
  return Value::Int(static_cast<int64_t>(words ? words->size() : 0));
}

constexpr FilterSpec kFilters[] = {
    {"abs", Abs},
    {"attr", Attr},
    {"capitalize", StringMap<pystr::Capitalize>},
    {"count", LengthFilter},
    {"d", Default},
    {"default", Default},
    {"dictsort", DictSort},
    {"e", Escape},
    {"escape", Escape},
    {"first", First},
    {"float", FloatFilter},
    {"indent", Indent},
    {"int", IntFilter},
    {"items", Items},
    {"join", Join},
    {"last", Last},
    {"length", LengthFilter},
    {"list", ListFilter},
    {"lower", StringMap<pystr::Lower>},
    {"map", Map},
    {"max", Max},
    {"min", Min},
    {"reject", Reject},
    {"rejectattr", RejectAttr},
    {"replace", ReplaceFilter},
    {"reverse", Reverse},
    {"round", Round},
    {"safe", Safe},
    {"select", Select},
    {"selectattr", SelectAttr},
    {"sort", Sort},
    {"string", StringFilter},
    {"sum", Sum},
    {"title", StringMap<pystr::TitleFilter>},
    {"tojson", ToJson},
    {"trim", Trim},
    {"unique", Unique},
    {"upper", StringMap<pystr::Upper>},
    {"wordcount", WordCount},
};

}  // namespace

const FilterSpec* FindFilter(std::string_view name) {
  for (const FilterSpec& f : kFilters)
    if (f.name == name) return &f;
  return nullptr;
}

std::vector<std::string_view> FilterNames() {
  std::vector<std::string_view> names;
  for (const FilterSpec& f : kFilters) names.push_back(f.name);
  return names;
}

}  // namespace fusec::rt::jinja
