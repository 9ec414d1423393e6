// Expressions of data rules: selection scores and filters, pair roles, `where` filters and weightings.
//
// Lowering turns sema's terms into these; the runtime evaluates them on records (runtime/exec/rules.cpp)
// and never sees sema. A small immutable tree, because rules are evaluated per response or per item with
// scoped aggregates (`max(reward) over source`) and normalisations across items (`softmax(...) over
// sources`) that an SSA list would only complicate; loss graphs, which are evaluated on whole batches of
// tensors, are SSA instead (ir.h). Operators come from op_kind.def; ToString prints what the checker
// prints, so IR text, hashes and messages read like the .fuse source.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/enums.h"
#include "compiler/ir/ops.h"

namespace fusec::ir {

enum class ExprKind : uint8_t {
  Const,      // `number`, `boolean` or `text`, by `type`
  Field,      // `field` of the response `role` ("" = the current response)
  Op,         // `op` of `args`
  Select,     // if args[0] then args[1] else args[2]
  Aggregate,  // `reduction` of args[0] over the prompt's responses sharing `scope` (count: no argument)
  Normalize,  // `normalization` of args[0] across the items of `scope` (uniform: no argument)
};

struct Expr;
using ExprRef = std::shared_ptr<const Expr>;

struct Expr {
  ExprKind kind = ExprKind::Const;
  ScalarType type = ScalarType::Float;
  double number = 0;
  bool boolean = false;
  std::string text;
  Field field = Field::Reward;
  std::string role;
  OpKind op = OpKind::Add;
  Reduction reduction = Reduction::Sum;
  Normalization normalization = Normalization::Softmax;
  Scope scope = Scope::Prompt;
  std::vector<ExprRef> args;
};

/// .fuse-like text with minimal parentheses: `softmax(max(reward) over source / 0.5) over sources`.
std::string ToString(const Expr& expr);
/// "null" for a missing expression (no filter), as the JSON view writes it.
std::string ToString(const ExprRef& expr);

/// An operand's text as a printer of binding strength `parent_precedence` writes it: parenthesised when it
/// binds looser, or equally on the side associativity does not group (the right of `-` and `/`, the left of
/// `^`). Shared by this printer and sema's term printer, so both read like the .fuse source.
std::string ParenthesizedOperand(const std::string& text, int precedence, int parent_precedence, bool right_side);

/// Whether `expr` reads `field` anywhere.
bool ReadsField(const ExprRef& expr, Field field);

/// A constant as .fuse writes it: `true`, `"text"`, `3`, `0.5` (bools read `boolean`, strings `text`, numbers
/// `number`). Shared by the expression, term and loss-graph printers.
std::string ConstantText(ScalarType type, double number, bool boolean, const std::string& text);

/// Shortest text that reads back as the same double, always with a `.` or exponent: `1.0`, `5e-06`.
std::string FormatFloat(double value);

}  // namespace fusec::ir
