// Typed reads of tokenizer.json's fields, shared by the pipeline's components (normalizers, pre-tokenizers,
// the model, post-processors, decoders), so that every component names a bad field by its JSON path in the
// same words (`` `model.merges[3]` must be two tokens, not 7 ``).
//
// A read that fails throws TokenizerJsonError; Tokenizer::FromJson catches it and returns its message. The
// same error carries a refusal (`normalizer `Precompiled` is not supported`): a component that is not
// implemented is never skipped, because tokenizing without it would give other ids silently.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace fusec::rt::tok {

using Json = nlohmann::json;

/// A field of tokenizer.json or tokenizer_config.json that is malformed or asks for what is not implemented.
struct TokenizerJsonError {
  std::string message;
};

[[noreturn]] void Refuse(const std::string& message);

/// A JSON value as an error message shows it: its text, cut short when long.
std::string Shown(const Json& value);

[[noreturn]] void Malformed(const std::string& path, const std::string& expected, const Json& value);

/// `path[index]`.
std::string Indexed(const std::string& path, size_t index);

/// The field `key` of `object`; nullptr when it is absent or null.
const Json* Field(const Json& object, const char* key);

std::string StringField(const Json& object, const char* key, const std::string& path, std::string fallback);
bool BoolField(const Json& object, const char* key, const std::string& path, bool fallback);
int64_t IntField(const Json& object, const char* key, const std::string& path, int64_t fallback);
/// An object-valued field; an empty object when absent.
const Json& ObjectField(const Json& object, const char* key, const std::string& path);
/// A list-valued field; an empty list when absent.
const Json& ListField(const Json& object, const char* key, const std::string& path);
/// A field that must be one character (Metaspace's `replacement`).
uint32_t CharField(const Json& object, const char* key, const std::string& path, uint32_t fallback);

/// Token ids are bounded so that the id-to-token table stays a plausible size.
constexpr int64_t kMaxTokenId = 10'000'000;

int32_t TokenIdValue(const Json& value, const std::string& path);

/// A component object's `type`, which must be a string.
std::string ComponentType(const Json& component, const std::string& path);

/// The length of the UTF-8 sequence starting at `text[i]` (1 for invalid lead bytes).
size_t Utf8Length(std::string_view text, size_t i);

}  // namespace fusec::rt::tok
