// The template's text as tokens, with Hugging Face's whitespace rules already applied: jinja2's lexer with
// trim_blocks (the newline after a block tag goes) and lstrip_blocks (indentation before a block tag goes),
// `{%-`/`-%}`/`{{-`/`-}}` (all whitespace on that side goes), `+` to opt out, `{# #}` comments and
// `{% raw %}`. So the parser sees only the text that prints and the tokens inside tags; it never thinks about
// whitespace.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace fusec::rt::jinja {

enum class TokenKind : uint8_t {
  Data,           // text printed as is
  VariableBegin,  // {{
  VariableEnd,    // }}
  BlockBegin,     // {%
  BlockEnd,       // %}
  Name,
  String,    // text holds the unescaped value
  Integer,   // integer holds the value
  Float,     // number holds the value
  Operator,  // text: + - * / // % ** ~ == != < > <= >= = . : | , ( ) [ ] { }
  End,
};

struct Token {
  TokenKind kind = TokenKind::End;
  std::string text;
  int64_t integer = 0;
  double number = 0;
  int line = 1;
};

/// The tokens of `source`, ending with one End token. Throws Failure (with the line) on an unterminated
/// tag, comment or string, or a character no token starts with.
std::vector<Token> Lex(std::string_view source);

}  // namespace fusec::rt::jinja
