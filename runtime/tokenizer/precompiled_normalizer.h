// Hugging Face's `Precompiled` normalizer: the normalization rules a SentencePiece model carries (T5, mT5,
// XLM-R, ALBERT ship `{"type":"Precompiled","precompiled_charsmap": base64}`), applied as `tokenizers` applies
// them (normalizers/precompiled.rs over the spm_precompiled crate).
//
// The charsmap is SentencePiece's compiled rule set: a little-endian u32 byte size, a darts-clone double-array
// trie of that size mapping each rule's source to an offset, then the NUL-separated normalized strings. Text
// is read one extended grapheme cluster at a time (ICU's character break iterator): a cluster shorter than 6
// bytes is replaced whole by the rule of the first (shortest) source that is a prefix of it, if any;
// otherwise each character by its own rule, or kept. This is not SentencePiece's own longest-match loop, and
// the two differ on a few clusters (a rule for the first character of a longer cluster drops the rest); the
// point is Hugging Face's ids. A charsmap whose trie or offsets point outside it reads as having no rule
// there, never past its end.
#pragma once

#include <cstdint>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusec::rt {

class PrecompiledNormalizer {
 public:
  /// `normalizer` is {"type":"Precompiled","precompiled_charsmap": base64}; `path` its JSON path for errors.
  static std::optional<PrecompiledNormalizer> FromJson(const nlohmann::json& normalizer, const std::string& path,
                                                       std::string* error);
  /// From the decoded charsmap bytes.
  static std::optional<PrecompiledNormalizer> FromCharsMap(std::string_view charsmap, const std::string& path,
                                                           std::string* error);

  std::string Normalize(std::string_view text) const;
  /// The normalized text of the first rule whose source is a prefix of `chunk` (spm_precompiled's
  /// `transform`), or nullopt when none is.
  std::optional<std::string_view> Transform(std::string_view chunk) const;

 private:
  PrecompiledNormalizer() = default;
  std::vector<uint32_t> units_;  // the darts-clone double array
  std::string normalized_;       // NUL-separated normalized strings
};

/// Standard base64 (RFC 4648, with padding) decoded; nullopt when `text` is not that.
std::optional<std::string> DecodeBase64(std::string_view text);

}  // namespace fusec::rt
