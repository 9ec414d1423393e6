// Tokens to statements, by recursive descent over jinja2's grammar (its parser.py, production by
// production). Filters and tests are resolved against the builtins here, and statements jinja2 has but this
// interpreter lacks (`include`, `extends`, `do`, recursive loops, ...) are refused by name, so an unsupported
// template fails when it is loaded. Nesting is bounded (kMaxNesting) so hostile input cannot overflow the stack.
#pragma once

#include <vector>

#include "runtime/tokenizer/jinja/ast.h"
#include "runtime/tokenizer/jinja/lexer.h"

namespace fusec::rt::jinja {

inline constexpr int kMaxNesting = 128;    // parentheses, brackets and statements inside each other
inline constexpr int kMaxExprDepth = 256;  // the depth of one expression's tree (`a + b + ...` grows it too)

/// The template's statements. Throws Failure with the line.
Body Parse(const std::vector<Token>& tokens);

}  // namespace fusec::rt::jinja
