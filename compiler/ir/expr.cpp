#include "compiler/ir/expr.h"

#include <charconv>
#include <cmath>

namespace fusec::ir {
namespace {

constexpr int kSelectPrecedence = 0;
constexpr int kNegativeConstantPrecedence = 7;  // `-1.0` binds like a unary minus
constexpr int kAtomPrecedence = 9;

int Precedence(const Expr& expr) {
  switch (expr.kind) {
    case ExprKind::Op:
      return PrecedenceOf(expr.op);
    case ExprKind::Select:
      return kSelectPrecedence;
    case ExprKind::Const:
      return expr.type != ScalarType::String && expr.number < 0 ? kNegativeConstantPrecedence : kAtomPrecedence;
    default:
      return kAtomPrecedence;
  }
}

std::string Print(const Expr& expr);

std::string PrintOperand(const Expr& operand, int parent_precedence, bool right_side) {
  return ParenthesizedOperand(Print(operand), Precedence(operand), parent_precedence, right_side);
}

std::string PrintOp(const Expr& expr) {
  const std::string spelling(Spelling(expr.op));
  switch (FormOf(expr.op)) {
    case OpForm::Prefix: {
      std::string operand = PrintOperand(*expr.args[0], Precedence(expr), false);
      return expr.op == OpKind::Not ? "not " + operand : spelling + operand;
    }
    case OpForm::Infix: {
      int precedence = Precedence(expr);
      bool right_assoc = expr.op == OpKind::Pow;
      return PrintOperand(*expr.args[0], precedence, right_assoc) + " " + spelling + " " +
             PrintOperand(*expr.args[1], precedence, !right_assoc);
    }
    case OpForm::Call: {
      std::string out = spelling + "(";
      for (size_t i = 0; i < expr.args.size(); ++i) out += (i > 0 ? ", " : "") + Print(*expr.args[i]);
      return out + ")";
    }
  }
  return "?";
}

std::string Print(const Expr& expr) {
  switch (expr.kind) {
    case ExprKind::Const:
      return ConstantText(expr.type, expr.number, expr.boolean, expr.text);
    case ExprKind::Field: {
      std::string name(Spelling(expr.field));
      return expr.role.empty() ? name : name + "(" + expr.role + ")";
    }
    case ExprKind::Op:
      return PrintOp(expr);
    case ExprKind::Select:
      return "if " + Print(*expr.args[0]) + " then " + Print(*expr.args[1]) + " else " + Print(*expr.args[2]);
    case ExprKind::Aggregate: {
      std::string inner = expr.args.empty() ? "" : Print(*expr.args[0]);
      return std::string(Spelling(expr.reduction)) + "(" + inner + ") over " + std::string(Spelling(expr.scope));
    }
    case ExprKind::Normalize: {
      if (expr.normalization == Normalization::Uniform) return "uniform over " + std::string(Spelling(expr.scope));
      std::string inner = expr.args.empty() ? "" : Print(*expr.args[0]);
      return std::string(Spelling(expr.normalization)) + "(" + inner + ") over " +
             std::string(Spelling(expr.scope));
    }
  }
  return "?";
}

}  // namespace

std::string ParenthesizedOperand(const std::string& text, int precedence, int parent_precedence, bool right_side) {
  bool parenthesise = precedence < parent_precedence || (precedence == parent_precedence && right_side);
  return parenthesise ? "(" + text + ")" : text;
}

std::string ToString(const Expr& expr) { return Print(expr); }
std::string ToString(const ExprRef& expr) { return expr ? Print(*expr) : "null"; }

bool ReadsField(const ExprRef& expr, Field field) {
  if (!expr) return false;
  if (expr->kind == ExprKind::Field && expr->field == field) return true;
  for (const ExprRef& arg : expr->args) {
    if (ReadsField(arg, field)) return true;
  }
  return false;
}

std::string ConstantText(ScalarType type, double number, bool boolean, const std::string& text) {
  switch (type) {
    case ScalarType::Bool:
      return boolean ? "true" : "false";
    case ScalarType::String:
      return "\"" + text + "\"";
    case ScalarType::Int:
      return std::to_string(static_cast<int64_t>(number));
    case ScalarType::Float:
      return FormatFloat(number);
  }
  return "?";
}

std::string FormatFloat(double value) {
  if (std::isnan(value)) return "nan";
  if (std::isinf(value)) return value < 0 ? "-inf" : "inf";
  char buffer[64];
  auto result = std::to_chars(buffer, buffer + sizeof(buffer), value);
  std::string text(buffer, result.ptr);
  if (text.find_first_of(".eE") == std::string::npos) text += ".0";
  return text;
}

}  // namespace fusec::ir
