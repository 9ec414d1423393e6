// Small text helpers the runtime's text code shares: UTF-8 decoding and encoding, and reading or writing a
// small file (a config, a tokenizer) whole.
//
// UTF-8 is decoded strictly (overlong forms, surrogates and code points past U+10FFFF are invalid), because
// the regex matcher the tokenizer uses is run without re-validating its input: whatever reaches it must be
// valid UTF-8.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace fusec::rt {

/// Decodes the code point at `text[i]` and advances `i` past it; an invalid sequence gives U+FFFD and
/// advances one byte.
uint32_t DecodeUtf8(std::string_view text, size_t& i);
/// Appends the UTF-8 encoding of a code point.
void AppendUtf8(std::string& out, uint32_t cp);
bool IsValidUtf8(std::string_view text);
/// `bytes` with each invalid sequence replaced by U+FFFD (Rust's from_utf8_lossy, as Hugging Face decodes).
std::string LossyUtf8(std::string_view bytes);
/// The UTF-8 sequence at `text[pos]` (pos < size): `valid`, how many of its bytes can still be completed
/// (Unicode's maximal subpart, at least 1), and whether they are a whole character (then `valid` is its length).
struct Utf8Prefix {
  size_t valid;
  bool complete;
};
Utf8Prefix Utf8PrefixAt(std::string_view text, size_t pos);

/// Python's str.strip() over UTF-8 text: without the white space Python recognises at either end. Jinja's
/// `trim` filter in Hugging Face chat templates runs on Python strings; evaluation compares answers trimmed.
std::string TrimPythonSpace(std::string_view text);

/// 1 - Levenshtein(a, b) / max(length of a, length of b, 1), over code points: 1 for equal texts, 0 for texts
/// with nothing in common. fusion-mini's true score, and evaluation's score against gold answers.
double EditSimilarity(std::string_view a, std::string_view b);

/// The contents of a file, or nullopt when it cannot be read.
std::optional<std::string> ReadWholeFile(const std::string& path);
/// Writes `text` as the whole file; false when it cannot (a full disk, a missing directory).
bool WriteWholeFile(const std::string& path, std::string_view text);

}  // namespace fusec::rt
