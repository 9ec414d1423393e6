#include "compiler/sema/term.h"

#include <charconv>
#include <cmath>

namespace fusec::sema {
namespace {

constexpr int kAtomPrecedence = 9;
constexpr int kNegativeConstantPrecedence = 7;  // `-1.0` binds like a unary minus

/// The binding strength of a term's operator, from the IR's operator table (op_kind.def).
int Precedence(const Term& term) {
  switch (term.op) {
    case TermOp::Binary:
    case TermOp::Unary: {
      auto op = ir::OpBySpelling(term.name, static_cast<int>(term.args.size()));
      return op ? ir::PrecedenceOf(*op) : kAtomPrecedence;
    }
    case TermOp::Select:
      return 0;
    case TermOp::Const:
      return term.number < 0 ? kNegativeConstantPrecedence : kAtomPrecedence;
    default:
      return kAtomPrecedence;
  }
}

std::string Print(const Term& term);

std::string PrintOperand(const Term& operand, int parent_precedence, bool right_side) {
  return ir::ParenthesizedOperand(Print(operand), Precedence(operand), parent_precedence, right_side);
}

std::string Print(const Term& term) {
  auto response = [&](const char* name) {
    return term.ref.empty() ? std::string(name) : std::string(name) + "(" + term.ref + ")";
  };
  switch (term.op) {
    case TermOp::Const:
      return ir::ConstantText(term.type, term.number, term.boolean, term.text);
    case TermOp::Field:
      return response(term.name.c_str());
    case TermOp::Logp:
      return "logp(" + term.ref + ")";
    case TermOp::RefLogp:
      return "ref_logp(" + term.ref + ")";
    case TermOp::Weight:
      return "weight";
    case TermOp::Progress:
      return "progress";
    case TermOp::Unary: {
      std::string operand = PrintOperand(*term.args[0], Precedence(term), false);
      return term.name == "not" ? "not " + operand : term.name + operand;
    }
    case TermOp::Binary: {
      int precedence = Precedence(term);
      bool right_assoc = term.name == "^";
      return PrintOperand(*term.args[0], precedence, right_assoc) + " " + term.name + " " +
             PrintOperand(*term.args[1], precedence, !right_assoc);
    }
    case TermOp::Math:
    case TermOp::Reduce:
    case TermOp::LooMean: {
      std::string out = term.op == TermOp::LooMean ? "loo_mean(" : term.name + "(";
      for (size_t i = 0; i < term.args.size(); ++i) {
        if (i > 0) out += ", ";
        out += Print(*term.args[i]);
      }
      return out + ")";
    }
    case TermOp::Select:
      return "if " + Print(*term.args[0]) + " then " + Print(*term.args[1]) + " else " + Print(*term.args[2]);
    case TermOp::Aggregate:
    case TermOp::Normalize: {
      if (term.name == "uniform") return "uniform over " + term.scope;
      std::string inner = term.args.empty() ? "" : Print(*term.args[0]);
      return term.name + "(" + inner + ") over " + term.scope;
    }
  }
  return "?";
}

}  // namespace

const char* ItemKindName(ItemKind item) {
  switch (item) {
    case ItemKind::Response:
      return "response";
    case ItemKind::Pair:
      return "pair";
    case ItemKind::Unknown:
      return "item";
  }
  return "item";
}

const char* LevelName(Level level, ItemKind item) {
  switch (level) {
    case Level::Const:
      return "constant";
    case Level::Step:
      return "per-step";
    case Level::Group:
      return item == ItemKind::Pair ? "per-group (of pairs)" : "per-group";
    case Level::Pool:
      return "per-response (of the prompt's pool)";
    case Level::Item:
      return item == ItemKind::Pair ? "per-pair" : item == ItemKind::Response ? "per-response" : "per-item";
  }
  return "?";
}

std::string ToString(const Term& term) { return Print(term); }

size_t TermSize(const TermRef& term) {
  size_t size = 0;
  ForEachTerm(term, [&](const Term&) { ++size; });
  return size;
}

}  // namespace fusec::sema
