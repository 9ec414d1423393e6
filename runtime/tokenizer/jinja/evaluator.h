// The walk that renders a parsed template: statements write to an output buffer, expressions give values.
// Scopes are jinja2's: a `for` body (each iteration afresh) and a macro have their own frame (a `set` inside
// a loop is invisible after it, and in the next iteration, hence `namespace()`), `if` has none. Every loop, call and
// byte written is counted against limits, so a hostile template ends with an error rather than exhausting time, memory
// or the stack.
#pragma once

#include <ctime>
#include <string>
#include <utility>
#include <vector>

#include "runtime/tokenizer/jinja/ast.h"
#include "runtime/tokenizer/jinja/builtins.h"
#include "runtime/tokenizer/jinja/jinja.h"
#include "runtime/tokenizer/jinja/value.h"

namespace fusec::rt::jinja {

class Evaluator {
 public:
  Evaluator(std::vector<std::pair<std::string, Value>> context, std::time_t now, const RenderLimits& limits);

  ~Evaluator();  // empties the namespaces, which can hold themselves (`set ns.me = [ns]`) and would leak
  Evaluator(const Evaluator&) = delete;
  Evaluator& operator=(const Evaluator&) = delete;

  /// Renders `body` into the result. Throws Failure.
  std::string Render(const Body& body);

  Value Eval(const Expr& expr);
  Value GetAttr(const Value& object, std::string_view name, int line);
  Value GetItem(const Value& object, const Value& key, int line);
  Value Call(const Value& callee, CallArgs& args, int line);
  Value ApplyFilter(const FilterSpec& filter, const Value& operand, CallArgs& args, int line);
  bool ApplyTest(const TestSpec& test, const Value& operand, CallArgs& args, int line);

  /// Counts `n` more iterations (or items built) against the limits.
  void CountIterations(int64_t n, int line);
  /// Fails when a string or list of `size` would exceed the output limit.
  void CheckSize(size_t size, int line) const;
  std::time_t now() const { return now_; }
  void TrackNamespace(std::shared_ptr<NamespaceData> ns) { namespaces_.push_back(std::move(ns)); }
  int line() const { return line_; }

  /// Calls a macro (or a `{% call %}` block's `caller`): its parameters bound in a frame of its own.
  Value InvokeMacro(const Body& body, const std::vector<MacroParam>& params, const std::string& name, CallArgs& args,
                    int line);

 private:
  enum class Flow : uint8_t { Normal, Break, Continue };
  using Frame = std::vector<std::pair<std::string, Value>>;

  Flow Exec(const Body& body);
  Flow ExecStmt(const Stmt& stmt);
  Flow ExecFor(const Stmt& stmt);
  void ExecSet(const Stmt& stmt);
  void Assign(const std::vector<std::string>& targets, bool unpack, const Value& value, int line);
  void Write(std::string_view text);
  /// Renders `body` to a string of its own (block set, macro, filter block).
  std::string Capture(const Body& body);
  Value MakeMacro(const Body& body, const std::vector<MacroParam>& params, const std::string& name);

  Value Lookup(const std::string& name) const;
  void Define(const std::string& name, Value value);
  Value EvalBinary(const std::string& op, const Value& a, const Value& b, int line);
  Value EvalSlice(const Value& object, const Expr& expr);
  Value EvalCompare(const Expr& expr);
  Value ApplyFilterChain(const Expr& filter, const Value& body_text);
  void EvalArgs(const Expr& expr, size_t first, CallArgs* args);

  std::vector<Frame> frames_;  // [0]: globals, [1]: the context, then template-level and loop/macro frames
  std::vector<std::string*> outputs_;
  std::string result_;
  std::time_t now_;
  RenderLimits limits_;
  int64_t iterations_ = 0;
  int call_depth_ = 0;
  int line_ = 0;      // the statement being run, for errors thrown without a line
  size_t floor_ = 0;  // inside a macro: its frame; lookups skip the frames between it and the template's
  const std::string* filter_body_ = nullptr;  // a filter block's rendered body
  std::vector<std::shared_ptr<NamespaceData>> namespaces_;
};

}  // namespace fusec::rt::jinja
