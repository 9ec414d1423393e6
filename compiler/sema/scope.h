// Lexical scopes and their bindings.
//
// Scopes nest from the builtins outwards in: builtins, the prelude (std.stages), a module's imports and
// declarations, a template's parameters, an experiment's fields, lets and stages, a stage's lets, and the
// implicit names of a data context (`y`, `chosen`). Bindings inside a body are order-independent and lazy:
// a `let` or field is evaluated on first use, in the context where it was written, and a binding that is
// reached again while it is being evaluated is a cyclic definition. Each binding records whether it was
// used, for the unused-binding warnings.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "compiler/sema/value.h"

namespace fusec::ast {
struct Expr;
}

namespace fusec::sema {

struct DataContext;

enum class BindingKind : uint8_t {
  Builtin,      // a builtin function or constant
  Declaration,  // a module's objective, weighting, template, experiment or sweep
  Import,       // a name or module brought in by `import`
  Param,        // a template, objective or function parameter
  Let,          // `let name = ...`
  Field,        // an experiment field (`target = ...`), referable from its stages
  Stage,        // a stage of an experiment; its value is the stage's model
  Context,      // an implicit name of a data context (`y`, `chosen`)
};

struct Binding {
  std::string name;
  BindingKind kind = BindingKind::Let;
  SourceSpan span;  // the defining name; invalid for builtins

  // Either a value, or an expression evaluated on first use.
  ValueRef value;
  const ast::Expr* expr = nullptr;
  ScopeRef env = nullptr;
  std::shared_ptr<const DataContext> context;  // the data context the expression was written in

  enum class State : uint8_t { Ready, Pending, Evaluating };
  State state = State::Ready;
  bool used = false;
  bool warn_if_unused = false;
};

class ScopeArena;

class Scope {
 public:
  Scope(ScopeRef parent, ScopeArena* arena) : parent_(parent), arena_(arena) {}
  Scope(const Scope&) = delete;
  Scope& operator=(const Scope&) = delete;

  /// Adds a binding and returns it with true; if the name is already bound here, adds nothing and returns
  /// the existing binding with false.
  std::pair<Binding*, bool> Define(Binding binding);
  Binding* FindLocal(const std::string& name);
  const Binding* FindLocal(const std::string& name) const;
  /// Looks the name up here and in enclosing scopes.
  Binding* Find(const std::string& name);
  /// Every name visible from this scope, for suggestions.
  std::vector<std::string> VisibleNames() const;
  /// This scope's bindings in the order they were defined.
  const std::vector<Binding*>& ordered() const { return ordered_; }
  ScopeRef parent() const { return parent_; }
  ScopeArena& arena() const { return *arena_; }

 private:
  ScopeRef parent_;
  ScopeArena* arena_;
  std::map<std::string, std::unique_ptr<Binding>> bindings_;
  std::vector<Binding*> ordered_;
};

/// Owns every scope of a check run; scopes die together when the run ends.
class ScopeArena {
 public:
  ScopeRef New(ScopeRef parent) {
    scopes_.push_back(std::make_unique<Scope>(parent, this));
    return scopes_.back().get();
  }

 private:
  std::vector<std::unique_ptr<Scope>> scopes_;
};

/// A new scope inside `parent`, owned by the parent's arena.
inline ScopeRef MakeScope(ScopeRef parent) { return parent->arena().New(parent); }

}  // namespace fusec::sema
