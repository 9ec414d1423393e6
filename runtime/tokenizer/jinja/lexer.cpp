#include "runtime/tokenizer/jinja/lexer.h"

#include <charconv>
#include <cstdlib>

#include "runtime/tokenizer/jinja/pystr.h"
#include "runtime/tokenizer/jinja/value.h"

namespace fusec::rt::jinja {
namespace {

/// jinja2 normalizes every newline of the source to \n and drops one trailing newline
/// (keep_trailing_newline is off in Hugging Face's environment).
std::string NormalizeNewlines(std::string_view source) {
  std::string out;
  out.reserve(source.size());
  for (size_t k = 0; k < source.size(); ++k) {
    if (source[k] == '\r') {
      out.push_back('\n');
      if (k + 1 < source.size() && source[k + 1] == '\n') ++k;
    } else {
      out.push_back(source[k]);
    }
  }
  if (!out.empty() && out.back() == '\n') out.pop_back();
  return out;
}

/// Python's rstrip() (jinja2's `text.rstrip()` for `{%-`).
std::string_view RightStrip(std::string_view text) {
  std::vector<size_t> offsets = pystr::CodePointOffsets(text);
  size_t end = offsets.size() - 1;
  while (end > 0) {
    size_t pos = offsets[end - 1];
    if (!pystr::IsSpace(pystr::NextCodePoint(text, &pos))) break;
    --end;
  }
  return text.substr(0, offsets[end]);
}

bool IsIdentStart(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool IsIdentChar(char c) { return IsIdentStart(c) || (c >= '0' && c <= '9'); }
bool IsDigit(char c) { return c >= '0' && c <= '9'; }
bool IsAsciiSpace(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

class Lexer {
 public:
  explicit Lexer(std::string_view source) : src_(NormalizeNewlines(source)) {}

  std::vector<Token> Run() {
    while (pos_ < src_.size()) {
      size_t open = FindOpen(pos_);
      if (open == std::string::npos) {
        EmitData(pos_, src_.size());
        break;
      }
      char type = src_[open + 1];
      char sign = open + 2 < src_.size() ? src_[open + 2] : '\0';
      std::string_view text(src_.data() + pos_, open - pos_);
      if (sign == '-') {
        text = RightStrip(text);
      } else if (sign != '+' && type != '{') {
        size_t l_pos = text.rfind('\n');
        l_pos = l_pos == std::string_view::npos ? 0 : l_pos + 1;
        bool line_starting = pos_ == 0 || src_[pos_ - 1] == '\n';
        if ((l_pos > 0 || line_starting) && l_pos < text.size() && AllSpace(text.substr(l_pos)))
          text = text.substr(0, l_pos);
      }
      AdvanceTo(pos_);
      EmitText(text);
      AdvanceTo(open);
      size_t body = open + 2 + ((sign == '-' || sign == '+') ? 1 : 0);
      if (type == '#') {
        LexComment(body);
      } else if (type == '%' && IsRaw(body)) {
        LexRaw(body);
      } else {
        LexTag(type == '{', body);
      }
    }
    Token end;
    end.kind = TokenKind::End;
    end.line = line_;
    tokens_.push_back(end);
    return std::move(tokens_);
  }

 private:
  size_t FindOpen(size_t from) const {
    for (size_t k = src_.find('{', from); k != std::string::npos; k = src_.find('{', k + 1)) {
      if (k + 1 < src_.size() && (src_[k + 1] == '{' || src_[k + 1] == '%' || src_[k + 1] == '#')) return k;
    }
    return std::string::npos;
  }

  static bool AllSpace(std::string_view text) {
    size_t pos = 0;
    while (pos < text.size())
      if (!pystr::IsSpace(pystr::NextCodePoint(text, &pos))) return false;
    return true;
  }

  /// Moves the line counter to `to`.
  void AdvanceTo(size_t to) {
    for (; counted_ < to && counted_ < src_.size(); ++counted_)
      if (src_[counted_] == '\n') ++line_;
  }

  void EmitText(std::string_view text) {
    if (text.empty()) return;
    Token t;
    t.kind = TokenKind::Data;
    t.text = std::string(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }
  void EmitData(size_t from, size_t to) {
    AdvanceTo(from);
    EmitText(std::string_view(src_).substr(from, to - from));
    AdvanceTo(to);
  }
  void Emit(TokenKind kind, std::string text = "") {
    Token t;
    t.kind = kind;
    t.text = std::move(text);
    t.line = line_;
    tokens_.push_back(std::move(t));
  }

  /// After a tag: `-` strips all whitespace that follows, plain block ends drop one newline (trim_blocks).
  void AfterBlockEnd(size_t after, char sign) {
    pos_ = after;
    if (sign == '-') {
      while (pos_ < src_.size()) {
        size_t next = pos_;
        if (!pystr::IsSpace(pystr::NextCodePoint(src_, &next))) break;
        pos_ = next;
      }
    } else if (sign != '+' && pos_ < src_.size() && src_[pos_] == '\n') {
      ++pos_;
    }
  }

  void LexComment(size_t body) {
    int open_line = line_;
    size_t close = src_.find("#}", body);
    if (close == std::string::npos) throw Failure{open_line, "unterminated comment `{#`", false};
    char sign = close > body && (src_[close - 1] == '-' || src_[close - 1] == '+') ? src_[close - 1] : '\0';
    AdvanceTo(close + 2);
    AfterBlockEnd(close + 2, sign);
  }

  bool IsRaw(size_t body) const {
    size_t k = body;
    while (k < src_.size() && IsAsciiSpace(src_[k])) ++k;
    if (src_.compare(k, 3, "raw") != 0 || (k + 3 < src_.size() && IsIdentChar(src_[k + 3]))) return false;
    return true;
  }

  void LexRaw(size_t body) {
    int open_line = line_;
    size_t close = src_.find("%}", body);
    if (close == std::string::npos) throw Failure{open_line, "unterminated `{% raw %}`", false};
    char sign = src_[close - 1] == '-' ? '-' : '\0';
    AdvanceTo(close + 2);
    pos_ = close + 2;
    if (sign == '-') AfterBlockEnd(pos_, '-');
    // The content runs to `{% endraw %}` ({%- and -%} allowed).
    for (size_t k = src_.find("{%", pos_); k != std::string::npos; k = src_.find("{%", k + 1)) {
      size_t j = k + 2;
      char open_sign = (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) ? src_[j++] : '\0';
      while (j < src_.size() && IsAsciiSpace(src_[j])) ++j;
      if (src_.compare(j, 6, "endraw") != 0) continue;
      j += 6;
      while (j < src_.size() && IsAsciiSpace(src_[j])) ++j;
      char close_sign = (j < src_.size() && (src_[j] == '-' || src_[j] == '+')) ? src_[j++] : '\0';
      if (src_.compare(j, 2, "%}") != 0) continue;
      std::string_view text(src_.data() + pos_, k - pos_);
      if (open_sign == '-') {
        text = RightStrip(text);
      } else if (open_sign != '+') {
        size_t l_pos = text.rfind('\n');
        if (l_pos != std::string_view::npos && AllSpace(text.substr(l_pos + 1)) && l_pos + 1 < text.size())
          text = text.substr(0, l_pos + 1);
      }
      EmitText(text);
      AdvanceTo(j + 2);
      AfterBlockEnd(j + 2, close_sign);
      return;
    }
    throw Failure{open_line, "`{% raw %}` has no `{% endraw %}`", false};
  }

  void LexTag(bool variable, size_t body) {
    int open_line = line_;
    Emit(variable ? TokenKind::VariableBegin : TokenKind::BlockBegin);
    size_t k = body;
    int depth = 0;  // open brackets: `}}` inside `{{ {'a': {'b': 1}} }}` closes dicts, not the tag
    while (true) {
      while (k < src_.size() && IsAsciiSpace(src_[k])) ++k;
      AdvanceTo(k);
      if (k >= src_.size())
        throw Failure{open_line, std::string("unterminated `") + (variable ? "{{" : "{%") + "`", false};
      if (depth == 0) {
        const char* end = variable ? "}}" : "%}";
        char sign = (src_[k] == '-' || src_[k] == '+') ? src_[k] : '\0';
        size_t at = k + (sign ? 1 : 0);
        if (src_.compare(at, 2, end) == 0 && !(variable && sign == '+')) {
          Emit(variable ? TokenKind::VariableEnd : TokenKind::BlockEnd);
          AdvanceTo(at + 2);
          if (variable) {
            pos_ = at + 2;
            if (sign == '-') AfterBlockEnd(pos_, '-');
          } else {
            AfterBlockEnd(at + 2, sign);
          }
          return;
        }
      }
      char c = src_[k];
      if (c == '\'' || c == '"') {
        k = LexString(k);
      } else if (IsDigit(c)) {
        k = LexNumber(k);
      } else if (IsIdentStart(c)) {
        size_t start = k;
        while (k < src_.size() && IsIdentChar(src_[k])) ++k;
        Emit(TokenKind::Name, src_.substr(start, k - start));
      } else {
        static const char* kTwo[] = {"//", "**", "==", "!=", "<=", ">="};
        std::string op;
        for (const char* two : kTwo)
          if (src_.compare(k, 2, two) == 0) op = two;
        if (op.empty()) {
          if (std::string_view("+-/*%~[](){}<>=.:|,;").find(c) == std::string_view::npos)
            throw Failure{line_, "unexpected character `" + std::string(1, c) + "` in a tag", false};
          op = std::string(1, c);
        }
        if (op == "(" || op == "[" || op == "{") ++depth;
        if ((op == ")" || op == "]" || op == "}") && depth > 0) --depth;
        Emit(TokenKind::Operator, op);
        k += op.size();
      }
    }
  }

  size_t LexNumber(size_t k) {
    size_t start = k;
    auto digits = [&](size_t at, auto is_digit) {
      size_t j = at;
      if (j >= src_.size() || !is_digit(src_[j])) return at;
      while (j < src_.size() && (is_digit(src_[j]) || (src_[j] == '_' && j + 1 < src_.size() && is_digit(src_[j + 1]))))
        ++j;
      return j;
    };
    auto dec = [](char c) { return IsDigit(c); };
    if (src_[k] == '0' && k + 1 < src_.size() &&
        (src_[k + 1] == 'x' || src_[k + 1] == 'X' || src_[k + 1] == 'o' || src_[k + 1] == 'O' || src_[k + 1] == 'b' ||
         src_[k + 1] == 'B')) {
      char base_char = static_cast<char>(src_[k + 1] | 0x20);
      int base = base_char == 'x' ? 16 : base_char == 'o' ? 8 : 2;
      size_t j = k + 2;
      std::string digits_text;
      while (j < src_.size() && (src_[j] == '_' || (HexValue(src_[j]) >= 0 && HexValue(src_[j]) < base))) {
        if (src_[j] != '_') digits_text.push_back(src_[j]);
        ++j;
      }
      if (digits_text.empty()) throw Failure{line_, "invalid number literal", false};
      EmitInteger(digits_text, base);
      return j;
    }
    size_t j = digits(k, dec);
    bool is_float = false;
    if (j + 1 < src_.size() && src_[j] == '.' && IsDigit(src_[j + 1])) {
      j = digits(j + 1, dec);
      is_float = true;
    }
    if (j < src_.size() && (src_[j] == 'e' || src_[j] == 'E')) {
      size_t e = j + 1;
      if (e < src_.size() && (src_[e] == '+' || src_[e] == '-')) ++e;
      size_t after = digits(e, dec);
      if (after > e) {
        j = after;
        is_float = true;
      }
    }
    std::string text;
    for (size_t m = start; m < j; ++m)
      if (src_[m] != '_') text.push_back(src_[m]);
    if (is_float) {
      Token t;
      t.kind = TokenKind::Float;
      t.number = std::strtod(text.c_str(), nullptr);
      t.line = line_;
      tokens_.push_back(std::move(t));
    } else {
      EmitInteger(text, 10);
    }
    return j;
  }

  void EmitInteger(const std::string& digits, int base) {
    Token t;
    t.kind = TokenKind::Integer;
    t.line = line_;
    auto result = std::from_chars(digits.data(), digits.data() + digits.size(), t.integer, base);
    if (result.ec != std::errc() || result.ptr != digits.data() + digits.size())
      throw Failure{line_, "integer literal `" + digits + "` is out of range", false};
    tokens_.push_back(std::move(t));
  }

  /// A quoted string with Python's escapes (jinja2 decodes them as `unicode-escape`).
  size_t LexString(size_t k) {
    int open_line = line_;
    char quote = src_[k];
    std::string value;
    size_t j = k + 1;
    while (true) {
      if (j >= src_.size()) throw Failure{open_line, "unterminated string literal", false};
      char c = src_[j];
      if (c == quote) break;
      if (c != '\\') {
        value.push_back(c);
        ++j;
        continue;
      }
      if (j + 1 >= src_.size()) throw Failure{open_line, "unterminated string literal", false};
      char e = src_[j + 1];
      j += 2;
      auto hex = [&](int count) {
        uint32_t cp = 0;
        for (int n = 0; n < count; ++n) {
          int h = j < src_.size() ? HexValue(src_[j]) : -1;
          if (h < 0) throw Failure{line_, "truncated `\\" + std::string(1, e) + "` escape in a string literal", false};
          cp = cp * 16 + static_cast<uint32_t>(h);
          ++j;
        }
        if (cp > 0x10FFFF) throw Failure{line_, "escape out of the Unicode range in a string literal", false};
        pystr::AppendUtf8(cp, &value);
      };
      switch (e) {
        case '\n':
          break;
        case '\\':
          value.push_back('\\');
          break;
        case '\'':
          value.push_back('\'');
          break;
        case '"':
          value.push_back('"');
          break;
        case 'a':
          value.push_back('\a');
          break;
        case 'b':
          value.push_back('\b');
          break;
        case 'f':
          value.push_back('\f');
          break;
        case 'n':
          value.push_back('\n');
          break;
        case 'r':
          value.push_back('\r');
          break;
        case 't':
          value.push_back('\t');
          break;
        case 'v':
          value.push_back('\v');
          break;
        case 'x':
          hex(2);
          break;
        case 'u':
          hex(4);
          break;
        case 'U':
          hex(8);
          break;
        default:
          if (e >= '0' && e <= '7') {
            uint32_t cp = static_cast<uint32_t>(e - '0');
            for (int n = 0; n < 2 && j < src_.size() && src_[j] >= '0' && src_[j] <= '7'; ++n, ++j)
              cp = cp * 8 + static_cast<uint32_t>(src_[j] - '0');
            pystr::AppendUtf8(cp, &value);
          } else {  // Python keeps an unknown escape as it is
            value.push_back('\\');
            value.push_back(e);
          }
      }
    }
    Token t;
    t.kind = TokenKind::String;
    t.text = std::move(value);
    t.line = open_line;
    tokens_.push_back(std::move(t));
    return j + 1;
  }

  std::string src_;
  size_t pos_ = 0;
  size_t counted_ = 0;
  int line_ = 1;
  std::vector<Token> tokens_;
};

}  // namespace

std::vector<Token> Lex(std::string_view source) { return Lexer(source).Run(); }

}  // namespace fusec::rt::jinja
