// The operator table of expressions (op_kind.def) and the scalar meaning of each operator, written once.
//
// Sema folds constant arithmetic with EvalScalar, the loss-graph passes fold constants with it, and the
// runtime evaluates data rules and weightings with it, so `log`, `clamp` or `==` mean the same at check time
// and at run time. Operators are identified by kind everywhere after sema; OpBySpelling is the one place
// where the text a .fuse file writes becomes a kind. No dependencies beyond the standard library.
#pragma once

#include <cstdint>
#include <optional>
#include <span>
#include <string_view>

namespace fusec::ir {

enum class OpKind : uint8_t {
#define FUSEC_OP(Name, Spelling, Arity, Form, Precedence) Name,
#include "compiler/ir/op_kind.def"
#undef FUSEC_OP
};

enum class OpForm : uint8_t { Prefix, Infix, Call };

std::string_view Spelling(OpKind op);
int Arity(OpKind op);
OpForm FormOf(OpKind op);
/// The printer's binding strength: 1 (`or`) to 8 (`^`), 9 for calls.
int PrecedenceOf(OpKind op);

/// The operator spelled `spelling` with `arity` operands (`-` is Neg with one, Sub with two), or nullopt.
std::optional<OpKind> OpBySpelling(std::string_view spelling, int arity);

/// The value of `op` on `args` (Arity(op) of them; bools are 0 and 1). Nullopt outside the operator's domain:
/// `log` of a non-positive number, `sqrt` of a negative one, division by zero.
std::optional<double> EvalScalar(OpKind op, std::span<const double> args);

}  // namespace fusec::ir
