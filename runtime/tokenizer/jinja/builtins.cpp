#include "runtime/tokenizer/jinja/builtins.h"

#include "runtime/tokenizer/jinja/pystr.h"

namespace fusec::rt::jinja {

std::optional<Value> ArgReader::Take(std::string_view name) {
  for (auto it = args_.keyword.begin(); it != args_.keyword.end(); ++it)
    if (it->first == name) {
      Value v = std::move(it->second);
      args_.keyword.erase(it);
      return v;
    }
  if (next_positional_ < args_.positional.size()) return std::move(args_.positional[next_positional_++]);
  return std::nullopt;
}

Value ArgReader::Take(std::string_view name, Value fallback) {
  std::optional<Value> v = Take(name);
  return v ? std::move(*v) : std::move(fallback);
}

Value ArgReader::Required(std::string_view name) {
  std::optional<Value> v = Take(name);
  if (!v) Fail(args_.line, "`" + std::string(function_) + "` needs its argument `" + std::string(name) + "`");
  return std::move(*v);
}

std::vector<Value> ArgReader::Rest() {
  std::vector<Value> rest(args_.positional.begin() + static_cast<std::ptrdiff_t>(next_positional_),
                          args_.positional.end());
  next_positional_ = args_.positional.size();
  return rest;
}

void ArgReader::Finish() {
  if (!args_.keyword.empty())
    Fail(args_.line, "`" + std::string(function_) + "` got an unexpected argument `" + args_.keyword[0].first + "`");
  if (next_positional_ < args_.positional.size())
    Fail(args_.line, "`" + std::string(function_) + "` got too many arguments");
}

std::vector<Value> Iterate(const Value& v, int line) {
  switch (v.kind) {
    case ValueKind::Undefined:
      return {};
    case ValueKind::List:
      return v.list->items;
    case ValueKind::Dict: {
      std::vector<Value> keys;
      keys.reserve(v.dict->entries.size());
      for (const auto& e : v.dict->entries) keys.push_back(Value::String(e.first));
      return keys;
    }
    case ValueKind::String: {
      std::vector<Value> chars;
      std::vector<size_t> offsets = pystr::CodePointOffsets(v.text);
      chars.reserve(offsets.size());
      for (size_t k = 0; k + 1 < offsets.size(); ++k)
        chars.push_back(Value::String(v.text.substr(offsets[k], offsets[k + 1] - offsets[k])));
      return chars;
    }
    default:
      Fail(line, "`" + std::string(TypeName(v)) + "` object is not iterable");
  }
}

int64_t Length(const Value& v, int line) {
  switch (v.kind) {
    case ValueKind::Undefined:
      return 0;
    case ValueKind::String:
      return static_cast<int64_t>(pystr::CodePointCount(v.text));
    case ValueKind::List:
      return static_cast<int64_t>(v.list->items.size());
    case ValueKind::Dict:
      return static_cast<int64_t>(v.dict->entries.size());
    default:
      Fail(line, "object of type `" + std::string(TypeName(v)) + "` has no length");
  }
}

const std::string& ExpectString(const Value& v, std::string_view what, int line) {
  if (!v.is_string()) Fail(line, std::string(what) + " must be a string, not " + std::string(TypeName(v)));
  return v.text;
}

int64_t ExpectInt(const Value& v, std::string_view what, int line) {
  if (v.kind == ValueKind::Int) return v.integer;
  if (v.kind == ValueKind::Bool) return v.boolean ? 1 : 0;
  Fail(line, std::string(what) + " must be an integer, not " + std::string(TypeName(v)));
}

bool Contains(const Value& container, const Value& item, int line) {
  switch (container.kind) {
    case ValueKind::Undefined:
      return false;
    case ValueKind::String:
      if (!item.is_string())
        Fail(line, "`in <string>` requires a string on the left, not " + std::string(TypeName(item)));
      return container.text.find(item.text) != std::string::npos;
    case ValueKind::List:
      for (const Value& v : container.list->items)
        if (Equal(v, item)) return true;
      return false;
    case ValueKind::Dict:
      return item.is_string() && container.dict->Find(item.text) != nullptr;
    default:
      Fail(line, "argument of type `" + std::string(TypeName(container)) + "` is not iterable");
  }
}

}  // namespace fusec::rt::jinja
