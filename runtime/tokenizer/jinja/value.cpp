#include "runtime/tokenizer/jinja/value.h"

#include <algorithm>
#include <charconv>
#include <cmath>

#include "runtime/tokenizer/jinja/pystr.h"

namespace fusec::rt::jinja {
namespace {

constexpr size_t kIndexedDictSize = 8;  // smaller dicts are searched in order

int Nesting(const Value& v) {
  return v.kind == ValueKind::List ? v.list->depth : v.kind == ValueKind::Dict ? v.dict->depth : 0;
}

void CheckDepth(int depth) {
  if (depth > kMaxValueDepth) Fail(0, "a list or dict nests deeper than " + std::to_string(kMaxValueDepth) + " levels");
}

std::string StrAt(const Value& v, int depth);
std::string ReprAt(const Value& v, int depth) {
  if (v.kind == ValueKind::String) return pystr::Repr(v.text);
  if (v.kind == ValueKind::Undefined) return "";
  return StrAt(v, depth);
}

int Sign(double d) { return d < 0 ? -1 : d > 0 ? 1 : 0; }

double AsDouble(const Value& v) {
  return v.kind == ValueKind::Float  ? v.number
         : v.kind == ValueKind::Bool ? (v.boolean ? 1 : 0)
                                     : static_cast<double>(v.integer);
}
int64_t AsInt(const Value& v) { return v.kind == ValueKind::Bool ? (v.boolean ? 1 : 0) : v.integer; }

void AppendJsonString(std::string_view text, bool ensure_ascii, std::string* out) {
  static const char* kHex = "0123456789abcdef";
  auto append_u = [&](uint32_t unit) {
    *out += "\\u";
    for (int shift = 12; shift >= 0; shift -= 4) out->push_back(kHex[(unit >> shift) & 0xF]);
  };
  out->push_back('"');
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = pos;
    uint32_t cp = pystr::NextCodePoint(text, &pos);
    switch (cp) {
      case '"':
        *out += "\\\"";
        continue;
      case '\\':
        *out += "\\\\";
        continue;
      case '\n':
        *out += "\\n";
        continue;
      case '\r':
        *out += "\\r";
        continue;
      case '\t':
        *out += "\\t";
        continue;
      case '\b':
        *out += "\\b";
        continue;
      case '\f':
        *out += "\\f";
        continue;
      default:
        break;
    }
    if (cp < 0x20) {
      append_u(cp);
    } else if (cp >= 0x80 && ensure_ascii) {
      if (cp >= 0x10000) {
        uint32_t v = cp - 0x10000;
        append_u(0xD800 + (v >> 10));
        append_u(0xDC00 + (v & 0x3FF));
      } else {
        append_u(cp);
      }
    } else {
      out->append(text.substr(start, pos - start));
    }
  }
  out->push_back('"');
}

void Dump(const Value& v, const JsonDumpOptions& o, int line, int depth, std::string* out) {
  if (depth > 512) Fail(line, "`tojson`: the value is nested too deeply");
  auto newline = [&](int level) {
    out->push_back('\n');
    for (int k = 0; k < level; ++k) *out += *o.indent;
  };
  switch (v.kind) {
    case ValueKind::None:
      *out += "null";
      return;
    case ValueKind::Bool:
      *out += v.boolean ? "true" : "false";
      return;
    case ValueKind::Int:
      *out += std::to_string(v.integer);
      return;
    case ValueKind::Float:
      if (std::isnan(v.number))
        *out += "NaN";
      else if (std::isinf(v.number))
        *out += v.number > 0 ? "Infinity" : "-Infinity";
      else
        *out += FloatRepr(v.number);
      return;
    case ValueKind::String:
      AppendJsonString(v.text, o.ensure_ascii, out);
      return;
    case ValueKind::List: {
      if (v.list->items.empty()) {
        *out += "[]";
        return;
      }
      out->push_back('[');
      bool first = true;
      for (const Value& item : v.list->items) {
        if (!first) *out += o.item_separator;
        first = false;
        if (o.indent) newline(depth + 1);
        Dump(item, o, line, depth + 1, out);
      }
      if (o.indent) newline(depth);
      out->push_back(']');
      return;
    }
    case ValueKind::Dict: {
      if (v.dict->entries.empty()) {
        *out += "{}";
        return;
      }
      std::vector<const std::pair<std::string, Value>*> entries;
      for (const auto& e : v.dict->entries) entries.push_back(&e);
      if (o.sort_keys)
        std::stable_sort(entries.begin(), entries.end(), [](auto* a, auto* b) { return a->first < b->first; });
      out->push_back('{');
      bool first = true;
      for (const auto* e : entries) {
        if (!first) *out += o.item_separator;
        first = false;
        if (o.indent) newline(depth + 1);
        AppendJsonString(e->first, o.ensure_ascii, out);
        *out += o.key_separator;
        Dump(e->second, o, line, depth + 1, out);
      }
      if (o.indent) newline(depth);
      out->push_back('}');
      return;
    }
    default:
      Fail(line, "`tojson`: object of type " + std::string(TypeName(v)) + " is not JSON serializable");
  }
}

}  // namespace

void Fail(int line, std::string message) { throw Failure{line, std::move(message), false}; }

Value Value::Undefined(std::string name) {
  Value v;
  v.text = std::move(name);
  return v;
}
Value Value::None() {
  Value v;
  v.kind = ValueKind::None;
  return v;
}
Value Value::Bool(bool b) {
  Value v;
  v.kind = ValueKind::Bool;
  v.boolean = b;
  return v;
}
Value Value::Int(int64_t i) {
  Value v;
  v.kind = ValueKind::Int;
  v.integer = i;
  return v;
}
Value Value::Float(double f) {
  Value v;
  v.kind = ValueKind::Float;
  v.number = f;
  return v;
}
Value Value::String(std::string s) {
  Value v;
  v.kind = ValueKind::String;
  v.text = std::move(s);
  return v;
}
Value Value::List(std::vector<Value> items, bool is_tuple) {
  Value v;
  v.kind = ValueKind::List;
  auto data = std::make_shared<ListData>();
  for (const Value& item : items) data->depth = std::max(data->depth, Nesting(item) + 1);
  CheckDepth(data->depth);
  data->items = std::move(items);
  data->is_tuple = is_tuple;
  v.list = std::move(data);
  return v;
}
Value Value::Dict(std::vector<std::pair<std::string, Value>> entries) {
  Value v;
  v.kind = ValueKind::Dict;
  auto data = std::make_shared<DictData>();
  for (const auto& entry : entries) data->depth = std::max(data->depth, Nesting(entry.second) + 1);
  CheckDepth(data->depth);
  // Later duplicates replace earlier ones in place, as in a Python dict display.
  for (auto& [key, value] : entries) {
    bool replaced = false;
    if (data->entries.size() < kIndexedDictSize) {
      for (auto& e : data->entries)
        if (e.first == key) {
          e.second = std::move(value);
          replaced = true;
          break;
        }
    } else {
      if (data->index.empty())
        for (size_t k = 0; k < data->entries.size(); ++k) data->index.emplace(data->entries[k].first, k);
      auto it = data->index.find(key);
      if (it != data->index.end()) {
        data->entries[it->second].second = std::move(value);
        replaced = true;
      } else {
        data->index.emplace(key, data->entries.size());
      }
    }
    if (!replaced) data->entries.emplace_back(std::move(key), std::move(value));
  }
  v.dict = std::move(data);
  return v;
}

const std::vector<Value>& Value::items() const { return list->items; }

const Value* DictData::Find(std::string_view key) const {
  if (!index.empty()) {
    auto it = index.find(std::string(key));
    return it == index.end() ? nullptr : &entries[it->second].second;
  }
  for (const auto& e : entries)
    if (e.first == key) return &e.second;
  return nullptr;
}

const Value* NamespaceData::Find(std::string_view key) const {
  for (const auto& a : attributes)
    if (a.first == key) return &a.second;
  return nullptr;
}
void NamespaceData::Set(const std::string& key, Value value) {
  for (auto& a : attributes)
    if (a.first == key) {
      a.second = std::move(value);
      return;
    }
  attributes.emplace_back(key, std::move(value));
}

bool Truthy(const Value& v) {
  switch (v.kind) {
    case ValueKind::Undefined:
    case ValueKind::None:
      return false;
    case ValueKind::Bool:
      return v.boolean;
    case ValueKind::Int:
      return v.integer != 0;
    case ValueKind::Float:
      return v.number != 0;
    case ValueKind::String:
      return !v.text.empty();
    case ValueKind::List:
      return !v.list->items.empty();
    case ValueKind::Dict:
      return !v.dict->entries.empty();
    default:
      return true;
  }
}

std::string FloatRepr(double d) {
  if (std::isnan(d)) return "nan";
  if (std::isinf(d)) return d > 0 ? "inf" : "-inf";
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof buf, d, std::chars_format::scientific);
  std::string sci(buf, result.ptr);  // -d.ddde+XX, shortest round trip
  bool negative = sci[0] == '-';
  if (negative) sci.erase(0, 1);
  size_t e = sci.find('e');
  int exponent = std::stoi(sci.substr(e + 1));
  std::string digits;
  for (size_t k = 0; k < e; ++k)
    if (sci[k] != '.') digits.push_back(sci[k]);
  std::string out = negative ? "-" : "";
  if (exponent >= -4 && exponent < 16) {
    if (exponent < 0) {
      out += "0." + std::string(static_cast<size_t>(-exponent - 1), '0') + digits;
    } else if (static_cast<size_t>(exponent) + 1 >= digits.size()) {
      out += digits + std::string(static_cast<size_t>(exponent) + 1 - digits.size(), '0') + ".0";
    } else {
      out +=
          digits.substr(0, static_cast<size_t>(exponent) + 1) + "." + digits.substr(static_cast<size_t>(exponent) + 1);
    }
    return out;
  }
  out += digits.substr(0, 1);
  if (digits.size() > 1) out += "." + digits.substr(1);
  std::string exp_text = std::to_string(std::abs(exponent));
  if (exp_text.size() < 2) exp_text = "0" + exp_text;
  out += std::string("e") + (exponent < 0 ? "-" : "+") + exp_text;
  return out;
}

std::string Repr(const Value& v) { return ReprAt(v, 0); }
std::string ToStr(const Value& v) { return StrAt(v, 0); }

namespace {

std::string StrAt(const Value& v, int depth) {
  // Namespaces can hold themselves (`set ns.me = [ns]`): the depth bounds that too.
  if (depth > kMaxValueDepth) Fail(0, "the value nests too deeply to print");
  switch (v.kind) {
    case ValueKind::Undefined:
      return "";
    case ValueKind::None:
      return "None";
    case ValueKind::Bool:
      return v.boolean ? "True" : "False";
    case ValueKind::Int:
      return std::to_string(v.integer);
    case ValueKind::Float:
      return FloatRepr(v.number);
    case ValueKind::String:
      return v.text;
    case ValueKind::List: {
      std::string out = v.list->is_tuple ? "(" : "[";
      for (size_t k = 0; k < v.list->items.size(); ++k) {
        if (k) out += ", ";
        out += ReprAt(v.list->items[k], depth + 1);
      }
      if (v.list->is_tuple && v.list->items.size() == 1) out += ",";
      out += v.list->is_tuple ? ")" : "]";
      return out;
    }
    case ValueKind::Dict: {
      std::string out = "{";
      bool first = true;
      for (const auto& [key, value] : v.dict->entries) {
        if (!first) out += ", ";
        first = false;
        out += pystr::Repr(key) + ": " + ReprAt(value, depth + 1);
      }
      return out + "}";
    }
    case ValueKind::Namespace: {
      std::string out = "<Namespace {";
      bool first = true;
      for (const auto& [key, value] : v.ns->attributes) {
        if (!first) out += ", ";
        first = false;
        out += pystr::Repr(key) + ": " + ReprAt(value, depth + 1);
      }
      return out + "}>";
    }
    case ValueKind::Callable:
      return "<function " + v.callable->name + ">";
  }
  return "";
}

}  // namespace

std::string_view TypeName(const Value& v) {
  switch (v.kind) {
    case ValueKind::Undefined:
      return "undefined";
    case ValueKind::None:
      return "NoneType";
    case ValueKind::Bool:
      return "bool";
    case ValueKind::Int:
      return "int";
    case ValueKind::Float:
      return "float";
    case ValueKind::String:
      return "str";
    case ValueKind::List:
      return v.list->is_tuple ? "tuple" : "list";
    case ValueKind::Dict:
      return "dict";
    case ValueKind::Namespace:
      return "namespace";
    case ValueKind::Callable:
      return "function";
  }
  return "?";
}

bool Equal(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == ValueKind::Float || b.kind == ValueKind::Float) return AsDouble(a) == AsDouble(b);
    return AsInt(a) == AsInt(b);
  }
  if (a.kind != b.kind) return false;
  switch (a.kind) {
    case ValueKind::Undefined:
    case ValueKind::None:
      return true;
    case ValueKind::String:
      return a.text == b.text;
    case ValueKind::List: {
      if (a.list == b.list) return true;
      if (a.list->is_tuple != b.list->is_tuple || a.list->items.size() != b.list->items.size()) return false;
      for (size_t k = 0; k < a.list->items.size(); ++k)
        if (!Equal(a.list->items[k], b.list->items[k])) return false;
      return true;
    }
    case ValueKind::Dict: {
      if (a.dict == b.dict) return true;
      if (a.dict->entries.size() != b.dict->entries.size()) return false;
      for (const auto& [key, value] : a.dict->entries) {
        const Value* other = b.dict->Find(key);
        if (!other || !Equal(value, *other)) return false;
      }
      return true;
    }
    case ValueKind::Namespace:
      return a.ns == b.ns;
    case ValueKind::Callable:
      return a.callable == b.callable;
    default:
      return false;
  }
}

int Compare(const Value& a, const Value& b, int line) {
  if (a.is_number() && b.is_number()) {
    if (a.kind == ValueKind::Float || b.kind == ValueKind::Float) return Sign(AsDouble(a) - AsDouble(b));
    int64_t x = AsInt(a), y = AsInt(b);
    return x < y ? -1 : x > y ? 1 : 0;
  }
  if (a.is_string() && b.is_string()) {
    int c = a.text.compare(b.text);  // UTF-8 byte order is code point order
    return c < 0 ? -1 : c > 0 ? 1 : 0;
  }
  if (a.is_list() && b.is_list() && a.list->is_tuple == b.list->is_tuple) {
    const auto& x = a.list->items;
    const auto& y = b.list->items;
    for (size_t k = 0; k < x.size() && k < y.size(); ++k) {
      if (Equal(x[k], y[k])) continue;
      return Compare(x[k], y[k], line);
    }
    return x.size() < y.size() ? -1 : x.size() > y.size() ? 1 : 0;
  }
  Fail(line, "cannot compare " + std::string(TypeName(a)) + " with " + std::string(TypeName(b)));
}

std::string DumpJson(const Value& value, const JsonDumpOptions& options, int line) {
  std::string out;
  Dump(value, options, line, 0, &out);
  return out;
}

}  // namespace fusec::rt::jinja
