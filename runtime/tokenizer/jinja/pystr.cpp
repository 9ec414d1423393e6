#include "runtime/tokenizer/jinja/pystr.h"

#include <locale.h>
#include <wctype.h>

#include <algorithm>

namespace fusec::rt::jinja::pystr {
namespace {

/// The C library's Unicode character tables, independent of the process's locale.
locale_t Utf8Locale() {
  static locale_t locale = [] {
    locale_t l = newlocale(LC_CTYPE_MASK, "C.UTF-8", static_cast<locale_t>(nullptr));
    return l ? l : newlocale(LC_CTYPE_MASK, "C", static_cast<locale_t>(nullptr));
  }();
  return locale;
}

uint32_t ToUpper(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') ? cp - 32 : cp;
  return static_cast<uint32_t>(towupper_l(static_cast<wint_t>(cp), Utf8Locale()));
}
uint32_t ToLower(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'A' && cp <= 'Z') ? cp + 32 : cp;
  return static_cast<uint32_t>(towlower_l(static_cast<wint_t>(cp), Utf8Locale()));
}
bool IsAlphaCp(uint32_t cp) {
  if (cp < 0x80) return (cp >= 'a' && cp <= 'z') || (cp >= 'A' && cp <= 'Z');
  return iswalpha_l(static_cast<wint_t>(cp), Utf8Locale()) != 0;
}
bool IsDigitCp(uint32_t cp) { return cp >= '0' && cp <= '9'; }
bool IsCased(uint32_t cp) { return ToUpper(cp) != cp || ToLower(cp) != cp; }
bool IsLowerCp(uint32_t cp) { return ToUpper(cp) != cp; }
bool IsUpperCp(uint32_t cp) { return ToLower(cp) != cp; }

template <typename Map>
std::string MapCodePoints(std::string_view text, Map map) {
  std::string out;
  out.reserve(text.size());
  size_t pos = 0;
  while (pos < text.size()) {
    size_t start = pos;
    uint32_t cp = NextCodePoint(text, &pos);
    if (cp >= 0x80 && pos - start == 1) {  // a stray byte stays as it is
      out.push_back(text[start]);
      continue;
    }
    AppendUtf8(map(cp), &out);
  }
  return out;
}

template <typename Pred>
bool AllCodePoints(std::string_view text, Pred pred) {
  if (text.empty()) return false;
  size_t pos = 0;
  while (pos < text.size())
    if (!pred(NextCodePoint(text, &pos))) return false;
  return true;
}

std::vector<uint32_t> Decode(std::string_view text) {
  std::vector<uint32_t> cps;
  size_t pos = 0;
  while (pos < text.size()) cps.push_back(NextCodePoint(text, &pos));
  return cps;
}

}  // namespace

uint32_t NextCodePoint(std::string_view text, size_t* pos) {
  auto byte = [&](size_t i) { return static_cast<unsigned char>(text[i]); };
  size_t i = *pos;
  unsigned char lead = byte(i);
  int length = lead < 0x80 ? 1 : (lead >> 5) == 0x6 ? 2 : (lead >> 4) == 0xE ? 3 : (lead >> 3) == 0x1E ? 4 : 0;
  if (length == 1 || length == 0 || i + static_cast<size_t>(length) > text.size()) {
    *pos = i + 1;
    return lead;
  }
  uint32_t cp = lead & (0x7F >> length);
  for (int k = 1; k < length; ++k) {
    unsigned char c = byte(i + static_cast<size_t>(k));
    if ((c & 0xC0) != 0x80) {
      *pos = i + 1;
      return lead;
    }
    cp = (cp << 6) | (c & 0x3F);
  }
  *pos = i + static_cast<size_t>(length);
  return cp;
}

void AppendUtf8(uint32_t cp, std::string* out) {
  if (cp < 0x80) {
    out->push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out->push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out->push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out->push_back(static_cast<char>(0xF0 | ((cp >> 18) & 0x07)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out->push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

std::vector<size_t> CodePointOffsets(std::string_view text) {
  std::vector<size_t> offsets;
  offsets.reserve(text.size() + 1);
  size_t pos = 0;
  while (pos < text.size()) {
    offsets.push_back(pos);
    NextCodePoint(text, &pos);
  }
  offsets.push_back(text.size());
  return offsets;
}

size_t CodePointCount(std::string_view text) {
  size_t count = 0, pos = 0;
  while (pos < text.size()) {
    NextCodePoint(text, &pos);
    ++count;
  }
  return count;
}

bool IsSpace(uint32_t cp) {
  switch (cp) {
    case ' ':
    case '\t':
    case '\n':
    case '\v':
    case '\f':
    case '\r':
    case 0x1C:
    case 0x1D:
    case 0x1E:
    case 0x1F:
    case 0x85:
    case 0xA0:
    case 0x1680:
    case 0x2028:
    case 0x2029:
    case 0x202F:
    case 0x205F:
    case 0x3000:
      return true;
    default:
      return cp >= 0x2000 && cp <= 0x200A;
  }
}

std::string Upper(std::string_view text) { return MapCodePoints(text, ToUpper); }
std::string Lower(std::string_view text) { return MapCodePoints(text, ToLower); }

std::string Capitalize(std::string_view text) {
  bool first = true;
  return MapCodePoints(text, [&](uint32_t cp) {
    uint32_t mapped = first ? ToUpper(cp) : ToLower(cp);
    first = false;
    return mapped;
  });
}

std::string TitleMethod(std::string_view text) {
  bool previous_cased = false;
  return MapCodePoints(text, [&](uint32_t cp) {
    uint32_t mapped = previous_cased ? ToLower(cp) : ToUpper(cp);
    previous_cased = IsCased(cp);
    return mapped;
  });
}

std::string TitleFilter(std::string_view text) {
  // re.split(r"([-\s({\[<]+)") then item[0].upper() + item[1:].lower() for every piece, separators included.
  auto is_separator = [](uint32_t cp) {
    return cp == '-' || cp == '(' || cp == '{' || cp == '[' || cp == '<' || IsSpace(cp);
  };
  bool piece_start = true;
  bool in_separator = false;
  return MapCodePoints(text, [&](uint32_t cp) {
    bool separator = is_separator(cp);
    if (separator != in_separator) piece_start = true;
    in_separator = separator;
    uint32_t mapped = piece_start ? ToUpper(cp) : ToLower(cp);
    piece_start = false;
    return mapped;
  });
}

std::string Strip(std::string_view text, const std::optional<std::string>& chars, StripSide side) {
  std::vector<uint32_t> strip_set;
  if (chars) strip_set = Decode(*chars);
  auto strips = [&](uint32_t cp) {
    return chars ? std::find(strip_set.begin(), strip_set.end(), cp) != strip_set.end() : IsSpace(cp);
  };
  std::vector<size_t> offsets = CodePointOffsets(text);
  size_t n = offsets.size() - 1, begin = 0, end = n;
  auto cp_at = [&](size_t k) {
    size_t pos = offsets[k];
    return NextCodePoint(text, &pos);
  };
  if (side != StripSide::Right)
    while (begin < end && strips(cp_at(begin))) ++begin;
  if (side != StripSide::Left)
    while (end > begin && strips(cp_at(end - 1))) --end;
  return std::string(text.substr(offsets[begin], offsets[end] - offsets[begin]));
}

std::optional<std::vector<std::string>> Split(std::string_view text, const std::optional<std::string>& sep,
                                              int64_t maxsplit, bool from_right) {
  std::vector<std::string> parts;
  if (sep && sep->empty()) return std::nullopt;
  if (maxsplit < 0) maxsplit = INT64_MAX;
  if (sep) {
    if (!from_right) {
      size_t start = 0;
      while (static_cast<int64_t>(parts.size()) < maxsplit) {
        size_t found = text.find(*sep, start);
        if (found == std::string_view::npos) break;
        parts.emplace_back(text.substr(start, found - start));
        start = found + sep->size();
      }
      parts.emplace_back(text.substr(start));
    } else {
      size_t end = text.size();
      int64_t splits = 0;
      while (splits < maxsplit && end >= sep->size()) {
        size_t found = text.rfind(*sep, end - sep->size());
        if (found == std::string_view::npos) break;
        parts.emplace_back(text.substr(found + sep->size(), end - found - sep->size()));
        end = found;
        ++splits;
      }
      parts.emplace_back(text.substr(0, end));
      std::reverse(parts.begin(), parts.end());
    }
    return parts;
  }
  // Whitespace runs; no empty strings at either end.
  std::vector<size_t> offsets = CodePointOffsets(text);
  size_t n = offsets.size() - 1;
  auto space_at = [&](size_t k) {
    size_t pos = offsets[k];
    return IsSpace(NextCodePoint(text, &pos));
  };
  if (!from_right) {
    size_t k = 0;
    while (k < n) {
      while (k < n && space_at(k)) ++k;
      if (k == n) break;
      if (static_cast<int64_t>(parts.size()) == maxsplit) {  // the rest, trailing whitespace included
        parts.emplace_back(text.substr(offsets[k]));
        break;
      }
      size_t start = k;
      while (k < n && !space_at(k)) ++k;
      parts.emplace_back(text.substr(offsets[start], offsets[k] - offsets[start]));
    }
  } else {
    size_t k = n;
    while (k > 0) {
      while (k > 0 && space_at(k - 1)) --k;
      if (k == 0) break;
      if (static_cast<int64_t>(parts.size()) == maxsplit) {  // the rest, leading whitespace included
        parts.emplace_back(text.substr(0, offsets[k]));
        break;
      }
      size_t end = k;
      while (k > 0 && !space_at(k - 1)) --k;
      parts.emplace_back(text.substr(offsets[k], offsets[end] - offsets[k]));
    }
    std::reverse(parts.begin(), parts.end());
  }
  return parts;
}

std::vector<std::string> SplitLines(std::string_view text, bool keep_ends) {
  std::vector<std::string> lines;
  size_t start = 0, pos = 0;
  while (pos < text.size()) {
    size_t at = pos;
    uint32_t cp = NextCodePoint(text, &pos);
    bool is_break = cp == '\n' || cp == '\r' || cp == '\v' || cp == '\f' || cp == 0x1C || cp == 0x1D || cp == 0x1E ||
                    cp == 0x85 || cp == 0x2028 || cp == 0x2029;
    if (!is_break) continue;
    if (cp == '\r' && pos < text.size() && text[pos] == '\n') ++pos;
    lines.emplace_back(text.substr(start, (keep_ends ? pos : at) - start));
    start = pos;
  }
  if (start < text.size()) lines.emplace_back(text.substr(start));
  return lines;
}

std::string Replace(std::string_view text, std::string_view old_text, std::string_view new_text, int64_t count) {
  if (count < 0) count = INT64_MAX;
  std::string out;
  if (old_text.empty()) {  // Python inserts `new` before every code point and at the end
    std::vector<size_t> offsets = CodePointOffsets(text);
    int64_t done = 0;
    for (size_t k = 0; k + 1 < offsets.size(); ++k) {
      if (done < count) {
        out += new_text;
        ++done;
      }
      out += text.substr(offsets[k], offsets[k + 1] - offsets[k]);
    }
    if (done < count) out += new_text;
    return out;
  }
  size_t start = 0;
  int64_t done = 0;
  while (done < count) {
    size_t found = text.find(old_text, start);
    if (found == std::string_view::npos) break;
    out += text.substr(start, found - start);
    out += new_text;
    start = found + old_text.size();
    ++done;
  }
  out += text.substr(start);
  return out;
}

int64_t Find(std::string_view text, std::string_view needle, bool from_right) {
  size_t found = from_right ? text.rfind(needle) : text.find(needle);
  if (found == std::string_view::npos) return -1;
  return static_cast<int64_t>(CodePointCount(text.substr(0, found)));
}

int64_t Count(std::string_view text, std::string_view needle) {
  if (needle.empty()) return static_cast<int64_t>(CodePointCount(text)) + 1;
  int64_t count = 0;
  for (size_t found = text.find(needle); found != std::string_view::npos;
       found = text.find(needle, found + needle.size()))
    ++count;
  return count;
}

bool IsDigit(std::string_view text) { return AllCodePoints(text, IsDigitCp); }
bool IsAlpha(std::string_view text) { return AllCodePoints(text, IsAlphaCp); }
bool IsAlnum(std::string_view text) {
  return AllCodePoints(text, [](uint32_t cp) { return IsAlphaCp(cp) || IsDigitCp(cp); });
}
bool IsSpaceText(std::string_view text) { return AllCodePoints(text, IsSpace); }
bool IsLower(std::string_view text) {
  bool any_cased = false;
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = NextCodePoint(text, &pos);
    if (IsUpperCp(cp) && !IsLowerCp(cp)) return false;
    any_cased = any_cased || IsCased(cp);
  }
  return any_cased;
}
bool IsUpper(std::string_view text) {
  bool any_cased = false;
  size_t pos = 0;
  while (pos < text.size()) {
    uint32_t cp = NextCodePoint(text, &pos);
    if (IsLowerCp(cp) && !IsUpperCp(cp)) return false;
    any_cased = any_cased || IsCased(cp);
  }
  return any_cased;
}

std::string Repr(std::string_view text) {
  char quote = (text.find('\'') != std::string_view::npos && text.find('"') == std::string_view::npos) ? '"' : '\'';
  std::string out(1, quote);
  for (char c : text) {
    unsigned char u = static_cast<unsigned char>(c);
    if (c == quote || c == '\\') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else if (u < 0x20 || u == 0x7F) {
      static const char* kHex = "0123456789abcdef";
      out += "\\x";
      out.push_back(kHex[u >> 4]);
      out.push_back(kHex[u & 0xF]);
    } else {
      out.push_back(c);
    }
  }
  out.push_back(quote);
  return out;
}

}  // namespace fusec::rt::jinja::pystr
