// The parsed template: statements holding expressions, both plain trees owned by their parents. One node
// struct per family with a kind and the few fields every kind needs (jinja2's node set is small and stable);
// the field comments say which kind uses which. Every node carries its line for error messages; `depth`
// bounds the tree so evaluating it cannot overflow the stack.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tokenizer/jinja/value.h"

namespace fusec::rt::jinja {

struct FilterSpec;
struct TestSpec;

enum class ExprKind : uint8_t {
  Literal,      // value
  Name,         // name
  List,         // children
  Tuple,        // children
  Dict,         // children: key, value, key, value, ...
  GetAttr,      // children[0] . name
  GetItem,      // children[0] [ children[1] ]
  Slice,        // children[0] [ children[1] : children[2] : children[3] ] (null children for omitted parts)
  Call,         // children[0] ( children[1..] , keyword )
  Filter,       // children[0] | name ( children[1..] , keyword ); filter resolved at parse time
  Test,         // children[0] is [not] name ( children[1..] ); negated
  Negate,       // - children[0]
  Plus,         // + children[0]
  Not,          // not children[0]
  Binary,       // children[0] op children[1]: + - * / // % ** ~
  And,          // children[0] and children[1]
  Or,           // children[0] or children[1]
  Compare,      // children[0] ops[0] children[1] ops[1] children[2] ... (chained as in Python)
  Conditional,  // children[1] if children[0] else children[2] (children[2] null: undefined)
};

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
  ExprKind kind = ExprKind::Literal;
  int line = 0;
  int depth = 1;
  Value value;                                           // Literal
  std::string name;                                      // Name, GetAttr, Filter, Test, Binary (the operator)
  std::vector<ExprPtr> children;                         // see ExprKind
  std::vector<std::pair<std::string, ExprPtr>> keyword;  // Call, Filter
  std::vector<std::string> ops;                          // Compare: == != < > <= >= in notin
  bool negated = false;                                  // Test: `is not`
  const FilterSpec* filter = nullptr;                    // Filter
  const TestSpec* test = nullptr;                        // Test
};

enum class StmtKind : uint8_t {
  Text,         // text
  Output,       // {{ expr }}
  If,           // branches: (condition, body) ...; else_body
  For,          // targets in expr [if condition]: body, else_body
  Set,          // target (names or ns.attr) = expr
  SetBlock,     // {% set name %}body{% endset %}, optional filter
  Macro,        // name(params with defaults): body
  CallBlock,    // {% call expr %}body{% endcall %}: expr called with `caller` bound to body
  FilterBlock,  // {% filter name(args) %}body{% endfilter %}
  Break,
  Continue,
  Generation,  // {% generation %}body{% endgeneration %}: HF's assistant-mask marker, renders its body
};

struct Stmt;
using StmtPtr = std::unique_ptr<Stmt>;
using Body = std::vector<StmtPtr>;

struct MacroParam {
  std::string name;
  ExprPtr default_value;  // null: required
};

struct Stmt {
  StmtKind kind = StmtKind::Text;
  int line = 0;
  std::string text;   // Text
  ExprPtr expr;       // Output, For (iterable), Set, CallBlock (the call), filter (FilterBlock, SetBlock)
  ExprPtr condition;  // For: the `if` filter clause
  std::vector<std::string> targets;                // For, Set, SetBlock: names (more than one: unpacking)
  std::string attribute;                           // Set: `ns.attribute` (targets[0] is ns)
  bool unpack = false;                             // For, Set: the target was a tuple
  std::vector<std::pair<ExprPtr, Body>> branches;  // If
  Body body;                                       // For, SetBlock, Macro, CallBlock, FilterBlock, Generation
  Body else_body;                                  // If, For
  std::string name;                                // Macro
  std::vector<MacroParam> params;                  // Macro, CallBlock (caller's parameters)
};

}  // namespace fusec::rt::jinja
