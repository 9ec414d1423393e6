#include "runtime/tokenizer/precompiled_normalizer.h"

#include <unicode/brkiter.h>
#include <unicode/utext.h>

#include <cstring>
#include <memory>
#include <nlohmann/json.hpp>

#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

// darts-clone's unit layout (darts.h, DoubleArrayUnit), as spm_precompiled reads it.
bool HasLeaf(uint32_t unit) { return ((unit >> 8) & 1) == 1; }
uint32_t Value(uint32_t unit) { return unit & ((1U << 31) - 1); }
uint32_t Label(uint32_t unit) { return unit & ((1U << 31) | 0xFF); }
uint32_t Offset(uint32_t unit) { return (unit >> 10) << ((unit & (1U << 9)) >> 6); }

/// The length of the UTF-8 character at `text[pos]`; 1 for a byte that starts no valid sequence.
size_t CharLength(std::string_view text, size_t pos) {
  size_t next = pos;
  const uint32_t cp = DecodeUtf8(text, next);
  (void)cp;
  return next - pos;
}

/// The extended grapheme clusters' ends in `text` (byte offsets), by ICU's character break iterator; each
/// character on its own when ICU cannot be used.
std::vector<size_t> ClusterEnds(std::string_view text) {
  std::vector<size_t> ends;
  UErrorCode status = U_ZERO_ERROR;
  thread_local std::unique_ptr<icu::BreakIterator> iterator(
      icu::BreakIterator::createCharacterInstance(icu::Locale::getRoot(), status));
  UText* utext = nullptr;
  if (iterator != nullptr && U_SUCCESS(status)) {
    utext = utext_openUTF8(nullptr, text.data(), static_cast<int64_t>(text.size()), &status);
  }
  if (utext != nullptr && U_SUCCESS(status)) {
    iterator->setText(utext, status);
    if (U_SUCCESS(status)) {
      for (int32_t end = iterator->next(); end != icu::BreakIterator::DONE; end = iterator->next()) {
        ends.push_back(static_cast<size_t>(end));
      }
    }
    utext_close(utext);
  }
  if (ends.empty() || ends.back() != text.size()) {
    ends.clear();
    for (size_t pos = 0; pos < text.size(); pos += CharLength(text, pos)) ends.push_back(pos + CharLength(text, pos));
  }
  return ends;
}

}  // namespace

std::optional<std::string> DecodeBase64(std::string_view text) {
  auto sextet = [](char c) -> int {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
  };
  if (text.size() % 4 != 0) return std::nullopt;
  std::string out;
  out.reserve(text.size() / 4 * 3);
  for (size_t i = 0; i < text.size(); i += 4) {
    const bool last = i + 4 == text.size();
    const int padding = last ? (text[i + 3] == '=') + (text[i + 2] == '=' && text[i + 3] == '=') : 0;
    uint32_t bits = 0;
    for (int k = 0; k < 4; ++k) {
      const int value = k >= 4 - padding ? 0 : sextet(text[i + static_cast<size_t>(k)]);
      if (value < 0) return std::nullopt;
      bits = (bits << 6) | static_cast<uint32_t>(value);
    }
    out += static_cast<char>((bits >> 16) & 0xFF);
    if (padding < 2) out += static_cast<char>((bits >> 8) & 0xFF);
    if (padding < 1) out += static_cast<char>(bits & 0xFF);
  }
  return out;
}

std::optional<PrecompiledNormalizer> PrecompiledNormalizer::FromJson(const nlohmann::json& normalizer,
                                                                     const std::string& path, std::string* error) {
  auto fail = [&](const std::string& what) -> std::optional<PrecompiledNormalizer> {
    *error = what;
    return std::nullopt;
  };
  if (!normalizer.is_object()) return fail(path + " must be an object");
  if (auto type = normalizer.find("type");
      type != normalizer.end() && type->is_string() && type->get<std::string>() != "Precompiled") {
    return fail(path + ".type must be \"Precompiled\"");
  }
  auto charsmap = normalizer.find("precompiled_charsmap");
  if (charsmap == normalizer.end() || !charsmap->is_string()) {
    return fail(path + ".precompiled_charsmap must be a base64 string");
  }
  std::optional<std::string> bytes = DecodeBase64(charsmap->get_ref<const std::string&>());
  if (!bytes) return fail(path + ".precompiled_charsmap is not valid base64");
  return FromCharsMap(*bytes, path + ".precompiled_charsmap", error);
}

std::optional<PrecompiledNormalizer> PrecompiledNormalizer::FromCharsMap(std::string_view charsmap,
                                                                         const std::string& path, std::string* error) {
  auto fail = [&](const std::string& what) -> std::optional<PrecompiledNormalizer> {
    *error = what;
    return std::nullopt;
  };
  if (charsmap.size() < 4)
    return fail(path + " is " + std::to_string(charsmap.size()) + " bytes, too short for a charsmap");
  uint32_t trie_size = 0;
  for (int k = 3; k >= 0; --k) trie_size = (trie_size << 8) | static_cast<uint8_t>(charsmap[static_cast<size_t>(k)]);
  if (trie_size % 4 != 0 || trie_size > charsmap.size() - 4) {
    return fail(path + " says its trie has " + std::to_string(trie_size) + " bytes, but " +
                std::to_string(charsmap.size() - 4) + " follow (and it must be a multiple of 4)");
  }
  PrecompiledNormalizer result;
  result.units_.resize(trie_size / 4);
  for (size_t i = 0; i < result.units_.size(); ++i) {
    const auto* unit = reinterpret_cast<const uint8_t*>(charsmap.data()) + 4 + 4 * i;
    result.units_[i] = static_cast<uint32_t>(unit[0]) | static_cast<uint32_t>(unit[1]) << 8 |
                       static_cast<uint32_t>(unit[2]) << 16 | static_cast<uint32_t>(unit[3]) << 24;
  }
  result.normalized_ = std::string(charsmap.substr(4 + trie_size));
  if (!IsValidUtf8(result.normalized_)) return fail(path + "'s normalized strings are not valid UTF-8");
  return result;
}

std::optional<std::string_view> PrecompiledNormalizer::Transform(std::string_view chunk) const {
  // darts-clone's commonPrefixSearch, stopped at the first result (spm_precompiled takes results[0]).
  if (units_.empty()) return std::nullopt;
  size_t node = Offset(units_[0]);
  for (char byte : chunk) {
    const auto c = static_cast<uint8_t>(byte);
    if (c == 0) break;
    node ^= c;
    if (node >= units_.size()) return std::nullopt;
    const uint32_t unit = units_[node];
    if (Label(unit) != c) return std::nullopt;
    node ^= Offset(unit);
    if (node >= units_.size()) return std::nullopt;
    if (HasLeaf(unit)) {
      const size_t begin = Value(units_[node]);
      if (begin > normalized_.size()) return std::nullopt;
      if (begin < normalized_.size() && (static_cast<uint8_t>(normalized_[begin]) & 0xC0) == 0x80) return std::nullopt;
      size_t end = normalized_.find('\0', begin);
      if (end == std::string::npos) end = normalized_.size();
      return std::string_view(normalized_).substr(begin, end - begin);
    }
  }
  return std::nullopt;
}

std::string PrecompiledNormalizer::Normalize(std::string_view text) const {
  std::string out;
  out.reserve(text.size());
  size_t begin = 0;
  for (size_t end : ClusterEnds(text)) {
    const std::string_view cluster = text.substr(begin, end - begin);
    begin = end;
    if (cluster.size() < 6) {
      if (auto normalized = Transform(cluster)) {
        out += *normalized;
        continue;
      }
    }
    for (size_t pos = 0; pos < cluster.size();) {
      const size_t length = CharLength(cluster, pos);
      const std::string_view part = cluster.substr(pos, length);
      if (auto normalized = Transform(part)) {
        out += *normalized;
      } else {
        out += part;
      }
      pos += length;
    }
  }
  return out;
}

}  // namespace fusec::rt
