#include "runtime/tokenizer/json_fields.h"

#include <algorithm>

#include "runtime/support/text.h"

namespace fusec::rt::tok {

void Refuse(const std::string& message) { throw TokenizerJsonError{message}; }

std::string Shown(const Json& value) {
  std::string text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

void Malformed(const std::string& path, const std::string& expected, const Json& value) {
  throw TokenizerJsonError{"`" + path + "` must be " + expected + ", not " + Shown(value)};
}

std::string Indexed(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

const Json* Field(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string StringField(const Json& object, const char* key, const std::string& path, std::string fallback) {
  const Json* value = Field(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_string()) Malformed(path, "a string", *value);
  return value->get<std::string>();
}

bool BoolField(const Json& object, const char* key, const std::string& path, bool fallback) {
  const Json* value = Field(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) Malformed(path, "true or false", *value);
  return value->get<bool>();
}

int64_t IntField(const Json& object, const char* key, const std::string& path, int64_t fallback) {
  const Json* value = Field(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_number_integer() || value->get<int64_t>() < 0 || value->get<int64_t>() > 1'000'000) {
    Malformed(path, "an integer from 0 to 1000000", *value);
  }
  return value->get<int64_t>();
}

const Json& ObjectField(const Json& object, const char* key, const std::string& path) {
  static const Json kEmpty = Json::object();
  const Json* value = Field(object, key);
  if (value == nullptr) return kEmpty;
  if (!value->is_object()) Malformed(path, "an object", *value);
  return *value;
}

const Json& ListField(const Json& object, const char* key, const std::string& path) {
  static const Json kEmpty = Json::array();
  const Json* value = Field(object, key);
  if (value == nullptr) return kEmpty;
  if (!value->is_array()) Malformed(path, "a list", *value);
  return *value;
}

uint32_t CharField(const Json& object, const char* key, const std::string& path, uint32_t fallback) {
  const Json* value = Field(object, key);
  if (value == nullptr) return fallback;
  if (value->is_string()) {
    const std::string text = value->get<std::string>();
    size_t i = 0;
    if (!text.empty() && IsValidUtf8(text)) {
      uint32_t cp = DecodeUtf8(text, i);
      if (i == text.size()) return cp;
    }
  }
  Malformed(path, "one character", *value);
}

int32_t TokenIdValue(const Json& value, const std::string& path) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxTokenId) {
    Malformed(path, "a token id (an integer from 0 to " + std::to_string(kMaxTokenId) + ")", value);
  }
  return value.get<int32_t>();
}

std::string ComponentType(const Json& component, const std::string& path) {
  if (!component.is_object()) Malformed(path, "an object", component);
  const Json* type = Field(component, "type");
  if (type == nullptr) Refuse("`" + path + "` has no `type`");
  if (!type->is_string()) Malformed(path + ".type", "a string", *type);
  return type->get<std::string>();
}

size_t Utf8Length(std::string_view text, size_t i) {
  auto c = static_cast<unsigned char>(text[i]);
  size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  return std::min(length, text.size() - i);
}

}  // namespace fusec::rt::tok
