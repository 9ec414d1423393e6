// Guards the runtime's readers put in front of a JSON parser: a bound on nesting, and the UTF-8 byte-order mark.
//
// nlohmann's parser is iterative, but copying, comparing or dumping the value it builds recurses once per level,
// so a hostile `config.json` nested 200,000 deep overflows the stack after parsing succeeded. Rather than audit
// every use of a parsed value, each reader measures the nesting first, on the raw text, in one linear pass that
// allocates nothing, and refuses a file deeper than any real one (Hugging Face files nest a handful of levels)
// with an error that names the file. simdjson (the JSONL reader) has its own depth limit and needs only the BOM.
#pragma once

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace fusec::rt {

/// Arrays and objects nested deeper than this are refused before parsing.
inline constexpr size_t kMaxJsonNesting = 128;
static_assert(kMaxJsonNesting >= 16, "real tokenizer.json and config.json files nest up to about 8 levels");

/// nullopt when `text` nests arrays and objects at most `max_nesting` deep (brackets inside strings do not
/// count); else what is wrong, e.g. "nests arrays and objects more than 128 deep (at byte 129)". Malformed JSON
/// is left to the parser.
std::optional<std::string> JsonNestingError(std::string_view text, size_t max_nesting = kMaxJsonNesting);

/// `text` without a leading UTF-8 byte-order mark (EF BB BF), which editors on Windows write.
std::string_view WithoutUtf8Bom(std::string_view text);

}  // namespace fusec::rt
