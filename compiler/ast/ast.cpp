#include "compiler/ast/ast.h"

namespace fusec::ast {

const char* Spelling(UnaryOp op) {
  switch (op) {
    case UnaryOp::Negate:
      return "-";
    case UnaryOp::Plus:
      return "+";
    case UnaryOp::Not:
      return "not";
  }
  return "?";
}

const char* Spelling(BinaryOp op) {
  switch (op) {
    case BinaryOp::Add:
      return "+";
    case BinaryOp::Sub:
      return "-";
    case BinaryOp::Mul:
      return "*";
    case BinaryOp::Div:
      return "/";
    case BinaryOp::Pow:
      return "^";
    case BinaryOp::Eq:
      return "==";
    case BinaryOp::Ne:
      return "!=";
    case BinaryOp::Lt:
      return "<";
    case BinaryOp::Le:
      return "<=";
    case BinaryOp::Gt:
      return ">";
    case BinaryOp::Ge:
      return ">=";
    case BinaryOp::And:
      return "and";
    case BinaryOp::Or:
      return "or";
  }
  return "?";
}

const Identifier& DeclName(const Decl& decl) {
  return std::visit([](const auto& d) -> const Identifier& { return d.name; }, decl);
}

SourceSpan DeclSpan(const Decl& decl) {
  return std::visit([](const auto& d) { return d.span; }, decl);
}

const char* DeclKeyword(const Decl& decl) {
  struct Visitor {
    const char* operator()(const LetDecl&) const { return "let"; }
    const char* operator()(const ObjectiveDecl&) const { return "objective"; }
    const char* operator()(const WeightingDecl&) const { return "weighting"; }
    const char* operator()(const StageTemplateDecl&) const { return "stage"; }
    const char* operator()(const ExperimentDecl&) const { return "experiment"; }
    const char* operator()(const SweepDecl&) const { return "sweep"; }
  };
  return std::visit(Visitor{}, decl);
}

}  // namespace fusec::ast
