// What a Split pre-tokenizer, a Replace normalizer and a Replace decoder look for: `{"String": "..."}` (a
// literal) or `{"Regex": "..."}` (Hugging Face compiles it with Oniguruma; PCRE2 here, whose Unicode classes
// and look-ahead agree on the patterns real tokenizers use). Also the one-character predicates of the Digits,
// Punctuation and Metaspace pre-tokenizers, as regexes of one character.
//
// A compiled PCRE2 pattern is shared; match data is made per call, so one pattern serves several threads.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "runtime/tokenizer/json_fields.h"

namespace fusec::rt::tok {

class Regex;

class Pattern {
 public:
  /// `{"String": s}` or `{"Regex": r}` at `path`.
  static Pattern FromJson(const Json& pattern, const std::string& path);
  static Pattern Literal(std::string text);
  /// A regex (throws TokenizerJsonError naming `path` when it does not compile).
  static Pattern FromRegex(const std::string& regex, const std::string& path);

  /// Byte ranges of all non-overlapping, non-empty matches, left to right.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const;
  /// `text` with every match replaced by `content`.
  std::string ReplaceAll(std::string_view text, std::string_view content) const;

 private:
  std::string literal_;
  std::shared_ptr<const Regex> regex_;
};

/// GPT-2's pre-tokenizer pattern, used by ByteLevel with `use_regex`.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

}  // namespace fusec::rt::tok
