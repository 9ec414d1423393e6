// Data-dependent expressions: losses, weights, selection scores and filters.
//
// Sema evaluates to constants whatever it can; what depends on the data stays symbolic as a Term, a small
// immutable tree whose leaves are constants and primitives (`logp(chosen)`, `reward`, `weight`,
// `progress`). The graph issue lowers a stage's terms into its tensor-expression graph, and the runtime
// evaluates them. Constants are not folded here beyond what the evaluator computes from constant operands,
// so the graph's own folding pass has real work (`if length_norm then len(y) else 1`, `x * 1`).
//
// Each term has a level, where it varies, which is what the type checker uses to refuse mixing per-response
// with per-pair values:
//   Const  the same everywhere (a hyperparameter);
//   Step   varies with the training step only (`progress`);
//   Group  one value per group (a reduction over a group's members);
//   Pool   one value per response of the prompt's pool, usable only inside an aggregate (`max(reward) over
//          source` in a weighting whose items are pairs);
//   Item   one value per item: a response or a pair, as `item` says.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "compiler/ir/enums.h"
#include "compiler/ir/expr.h"
#include "compiler/source/source.h"

namespace fusec::sema {

enum class TermOp : uint8_t {
#define FUSEC_TERM_OP(Name) Name,
#include "compiler/sema/term_op.def"
#undef FUSEC_TERM_OP
};

enum class Level : uint8_t { Const, Step, Group, Pool, Item };
enum class ItemKind : uint8_t { Unknown, Response, Pair };
/// The value type of a term. Terms hold scalars only; a response is never a term, its fields are.
using ScalarType = ir::ScalarType;

const char* LevelName(Level level, ItemKind item);
const char* ItemKindName(ItemKind item);

struct Term;
using TermRef = std::shared_ptr<const Term>;

struct Term {
  TermOp op = TermOp::Const;
  ScalarType type = ScalarType::Float;
  Level level = Level::Const;
  ItemKind item = ItemKind::Unknown;
  std::string name;   // operator, function, field or aggregation name (see term_op.def)
  std::string ref;    // the response a Field/Logp/RefLogp reads: "" = the current response, else a role
  std::string scope;  // Aggregate and Normalize: prompt | source | sources
  double number = 0;  // Const of type Float or Int
  bool boolean = false;
  std::string text;  // Const of type String
  std::vector<TermRef> args;
  SourceSpan span;  // where the expression was written
};

/// Prints a term as .fuse-like text with minimal parentheses: `-log_sigmoid(10 * (logp(chosen) - ...))`.
std::string ToString(const Term& term);
inline std::string ToString(const TermRef& term) { return term ? ToString(*term) : "<none>"; }

/// Calls `visit` on every node of the tree, parents before children.
template <typename Visit>
void ForEachTerm(const TermRef& term, Visit&& visit) {
  if (!term) return;
  visit(*term);
  for (const TermRef& arg : term->args) ForEachTerm(arg, visit);
}

using ir::FormatFloat;

/// Number of nodes in the tree, counting shared subtrees each time they occur.
size_t TermSize(const TermRef& term);

}  // namespace fusec::sema
