// Python's str methods on UTF-8 text, as jinja2 runs them: chat templates are Python code in disguise, and
// `strip`, `split`, `title` or a slice `[::-1]` must give what CPython gives, counted in code points (not
// bytes). Invalid UTF-8 never crashes: each stray byte counts as one code point and is kept as it is.
// Case mapping uses the C library's Unicode tables (C.UTF-8), one code point to one (no `ß` -> `SS`).
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusec::rt::jinja::pystr {

/// The byte offset of each code point of `text`, and text.size() at the end (so `size() - 1` code points).
std::vector<size_t> CodePointOffsets(std::string_view text);
size_t CodePointCount(std::string_view text);
/// Decodes the code point at `*pos` and advances; a stray byte decodes as itself (0x80..0xFF).
uint32_t NextCodePoint(std::string_view text, size_t* pos);
void AppendUtf8(uint32_t code_point, std::string* out);

/// str.isspace() of one code point (the set `strip()`, `split()` and jinja2's `\s` use).
bool IsSpace(uint32_t cp);

std::string Upper(std::string_view text);
std::string Lower(std::string_view text);
std::string Capitalize(std::string_view text);   // str.capitalize(): first upper, the rest lower
std::string TitleMethod(std::string_view text);  // str.title()
std::string TitleFilter(std::string_view text);  // jinja2's `title` filter (words split at [-\s({\[<]+)

enum class StripSide { Both, Left, Right };
/// str.strip / lstrip / rstrip; `chars` nullopt strips whitespace.
std::string Strip(std::string_view text, const std::optional<std::string>& chars, StripSide side);

/// str.split(sep, maxsplit) / rsplit; `sep` nullopt splits on whitespace runs. An empty `sep` is a
/// ValueError in Python: returns nullopt.
std::optional<std::vector<std::string>> Split(std::string_view text, const std::optional<std::string>& sep,
                                              int64_t maxsplit, bool from_right);
std::vector<std::string> SplitLines(std::string_view text, bool keep_ends);

/// str.replace(old, new, count); count < 0 replaces all.
std::string Replace(std::string_view text, std::string_view old_text, std::string_view new_text, int64_t count);
/// str.find / rfind in code points; -1 when absent.
int64_t Find(std::string_view text, std::string_view needle, bool from_right);
int64_t Count(std::string_view text, std::string_view needle);

bool IsDigit(std::string_view text);
bool IsAlpha(std::string_view text);
bool IsAlnum(std::string_view text);
bool IsSpaceText(std::string_view text);
bool IsLower(std::string_view text);
bool IsUpper(std::string_view text);

/// Python's repr() of a str: single quotes unless the text holds ' and no ", escapes \\ \n \r \t and controls.
std::string Repr(std::string_view text);

}  // namespace fusec::rt::jinja::pystr
