// The .fuse abstract syntax tree.
//
// The parser's only output and sema's only input. Plain data: nodes own their children through unique_ptr,
// every node carries the span it came from, and nothing here knows about ANTLR or about types and values
// (those live in sema). Expression kinds are declared once, in expr_kind.def. A parse that reported errors
// still yields a tree, with ErrorExpr where something could not be read, but sema does not run on it.
//
// The grammar production of each node is in its comment; grammar/Fuse.g4 is the authority.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "compiler/source/source.h"

namespace fusec::ast {

struct Identifier {
  std::string text;
  SourceSpan span;
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

/// arg ::= (name ':')? expr
struct Argument {
  std::optional<Identifier> name;
  ExprPtr value;
  SourceSpan span;
};

/// recordField ::= name ':' expr
struct RecordField {
  Identifier name;
  ExprPtr value;
};

enum class UnaryOp : uint8_t { Negate, Plus, Not };
enum class BinaryOp : uint8_t { Add, Sub, Mul, Div, Pow, Eq, Ne, Lt, Le, Gt, Ge, And, Or };

const char* Spelling(UnaryOp op);
const char* Spelling(BinaryOp op);

/// Stands where the parser could not build an expression; sema treats it as already reported.
struct ErrorExpr {};
/// NUMBER without a fraction, exponent or `%`: `42`, `1_000`, `2k` (= 2048).
struct IntExpr {
  int64_t value;
  std::string text;
};
/// NUMBER with a fraction, exponent or `%`: `0.1`, `5e-6`, `10%` (= 0.1).
struct FloatExpr {
  double value;
  std::string text;
};
struct BoolExpr {
  bool value;
};
struct StringExpr {
  std::string value;
};
struct NoneExpr {};
/// name
struct NameExpr {
  std::string name;
};
/// expr '.' name
struct MemberExpr {
  ExprPtr object;
  Identifier member;
};
/// expr '(' argList? ')'
struct CallExpr {
  ExprPtr callee;
  std::vector<Argument> args;
};
/// expr '[' expr ']'
struct IndexExpr {
  ExprPtr object;
  ExprPtr index;
};
/// expr 'over' name: `softmax(reward) over prompt`, `max(reward) over source`
struct OverExpr {
  ExprPtr operand;
  Identifier scope;
};
/// ('-' | '+' | 'not') expr
struct UnaryExpr {
  UnaryOp op;
  ExprPtr operand;
};
/// expr op expr
struct BinaryExpr {
  BinaryOp op;
  ExprPtr lhs;
  ExprPtr rhs;
  SourceSpan op_span;
};
/// expr 'where' expr: a filter on a selection, pairing, grouping or role
struct WhereExpr {
  ExprPtr subject;
  ExprPtr condition;
};
/// 'if' expr 'then' expr 'else' expr
struct IfExpr {
  ExprPtr condition;
  ExprPtr then_branch;
  ExprPtr else_branch;
};
/// '[' expr, ... ']'
struct ListExpr {
  std::vector<ExprPtr> elements;
};
/// '{' name: expr, ... '}'
struct RecordExpr {
  std::vector<RecordField> fields;
};
/// 'within' name '{' role: selector, ... '}': one preference pair per source or per prompt
struct WithinExpr {
  Identifier scope;
  std::vector<RecordField> roles;
};
/// 'by' name: a grouping of responses, `by source`
struct ByExpr {
  Identifier scope;
};

enum class ExprKind : uint8_t {
#define FUSEC_EXPR_KIND(Name) Name,
#include "compiler/ast/expr_kind.def"
#undef FUSEC_EXPR_KIND
};

using ExprNode = std::variant<ErrorExpr, IntExpr, FloatExpr, BoolExpr, StringExpr, NoneExpr, NameExpr,
                              MemberExpr, CallExpr, IndexExpr, OverExpr, UnaryExpr, BinaryExpr, WhereExpr,
                              IfExpr, ListExpr, RecordExpr, WithinExpr, ByExpr>;

// expr_kind.def is the one list; this keeps the variant in step with it.
#define FUSEC_EXPR_KIND(Name)                                                                              \
  static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(ExprKind::Name), ExprNode>, \
                               Name##Expr>,                                                               \
                "ExprNode alternatives must follow expr_kind.def");
#include "compiler/ast/expr_kind.def"
#undef FUSEC_EXPR_KIND

struct Expr {
  SourceSpan span;
  ExprNode node;

  ExprKind kind() const { return static_cast<ExprKind>(node.index()); }
  template <typename T>
  const T* As() const {
    return std::get_if<T>(&node);
  }
};

template <typename T>
ExprPtr MakeExpr(SourceSpan span, T node) {
  return std::make_unique<Expr>(Expr{span, ExprNode(std::move(node))});
}

// ---------------------------------------------------------------------------------------------------------
// Types and parameters

struct TypeField;

/// typeExpr ::= name ('[' typeExpr, ... ']')? | '{' name: typeExpr, ... '}'
struct TypeExpr {
  SourceSpan span;
  Identifier name;  // empty text for a record type
  std::vector<TypeExpr> args;
  std::vector<TypeField> record_fields;
  bool is_record = false;
};

/// typeField ::= name ':' typeExpr
struct TypeField {
  Identifier name;
  TypeExpr type;
};

/// constraint ::= ('>' | '>=' | '<' | '<=') expr | 'in' ('[' | '(') expr ',' expr (']' | ')')
struct Constraint {
  enum class Kind : uint8_t { Greater, GreaterEqual, Less, LessEqual, Interval };
  Kind kind;
  ExprPtr low;   // the bound for Greater/GreaterEqual/Less/LessEqual, the lower end for Interval
  ExprPtr high;  // Interval only
  bool low_inclusive = true;
  bool high_inclusive = true;
  SourceSpan span;
};

/// param ::= name ':' typeExpr constraint? ('=' expr)?
struct Param {
  Identifier name;
  TypeExpr type;
  std::optional<Constraint> constraint;
  ExprPtr default_value;  // null when the parameter is required
  SourceSpan span;
};

/// funcParam ::= name (':' typeExpr)?
struct FuncParam {
  Identifier name;
  std::optional<TypeExpr> type;
};

// ---------------------------------------------------------------------------------------------------------
// Statements of bodies

/// letDecl ::= 'let' name funcParams? '=' expr
struct LetDecl {
  Identifier name;
  std::optional<std::vector<FuncParam>> params;  // present: a function
  ExprPtr value;
  SourceSpan span;
};

/// fieldAssign ::= name '=' expr
struct FieldAssign {
  Identifier name;
  ExprPtr value;
  SourceSpan span;
};

/// checkStmt ::= ('warn' | 'error') 'if' expr ':' STRING
struct CheckStmt {
  bool is_error = false;
  ExprPtr condition;
  std::string message;
  SourceSpan span;
};

/// stageBase ::= name ('(' argList? ')')?
struct StageBase {
  Identifier name;
  std::optional<std::vector<Argument>> args;
  SourceSpan span;
};

struct BodyItem;

/// stageDecl ::= 'stage' name '=' stageBase '{' bodyItem* '}'
struct StageDecl {
  Identifier name;
  StageBase base;
  std::vector<BodyItem> body;
  SourceSpan span;
};

/// bodyItem ::= letDecl | stageDecl | fieldAssign | checkStmt
struct BodyItem {
  std::variant<LetDecl, FieldAssign, CheckStmt, StageDecl> node;
};

// ---------------------------------------------------------------------------------------------------------
// Top-level declarations

/// unitClause ::= 'per' ('group' 'of')? ID '(' name, ... ')'
struct UnitClause {
  bool group = false;
  Identifier unit;  // `response` or `pair`
  std::vector<Identifier> names;
  SourceSpan span;
};

/// objectiveDecl ::= 'objective' name params unitClause? '{' bodyItem* '}'
struct ObjectiveDecl {
  Identifier name;
  std::vector<Param> params;
  std::optional<UnitClause> unit;
  std::vector<BodyItem> body;
  SourceSpan span;
};

/// weightingDecl ::= 'weighting' name params? '=' expr
struct WeightingDecl {
  Identifier name;
  std::vector<Param> params;
  ExprPtr body;
  SourceSpan span;
};

/// stageTemplateDecl ::= 'stage' name params '=' stageBase '{' bodyItem* '}'
struct StageTemplateDecl {
  Identifier name;
  std::vector<Param> params;
  StageBase base;
  std::vector<BodyItem> body;
  SourceSpan span;
};

/// experimentDecl ::= 'experiment' name params? '{' bodyItem* '}' | 'experiment' name '=' name '(' args ')'
struct ExperimentDecl {
  Identifier name;
  std::optional<std::vector<Param>> params;  // present: a template
  std::vector<BodyItem> body;
  std::optional<Identifier> instance_of;  // present: an instance of a template, with `args`
  std::vector<Argument> args;
  SourceSpan span;
};

/// sweepDecl ::= 'sweep' name '=' name ('(' argList? ')')? 'over' expr
struct SweepDecl {
  Identifier name;
  Identifier template_name;
  std::vector<Argument> fixed_args;
  ExprPtr grid;
  SourceSpan span;
};

using Decl = std::variant<LetDecl, ObjectiveDecl, WeightingDecl, StageTemplateDecl, ExperimentDecl, SweepDecl>;

/// importItem ::= ID ('as' ID)?
struct ImportItem {
  Identifier name;
  std::optional<Identifier> alias;
};

/// importDecl ::= 'import' modulePath ('.' '{' importItem, ... '}' | 'as' ID)?
struct ImportDecl {
  std::vector<Identifier> dotted_path;  // `std.objectives`
  std::optional<std::string> file_path;  // `"lib/common.fuse"`
  SourceSpan path_span;
  std::optional<std::vector<ImportItem>> items;
  std::optional<Identifier> alias;
  SourceSpan span;
};

/// file ::= importDecl* decl* EOF
struct Module {
  FileId file;
  std::vector<ImportDecl> imports;
  std::vector<Decl> decls;
};

/// A command-line override: `po.optim.lr=1e-6` sets the argument `lr` of stage `po`'s field `optim`.
/// setting ::= name ('.' name)* '=' expr
struct Setting {
  std::vector<Identifier> path;
  ExprPtr value;
  SourceSpan span;
};

/// The span and name of any top-level declaration.
const Identifier& DeclName(const Decl& decl);
SourceSpan DeclSpan(const Decl& decl);
/// `let`, `objective`, `weighting`, `stage`, `experiment` or `sweep`.
const char* DeclKeyword(const Decl& decl);

}  // namespace fusec::ast
