// Sema's internals: one checker object shared by the files of compiler/sema/.
//
// Why one class: checking .fuse is evaluation (templates are called, sweeps are expanded, objectives are
// inlined), so name resolution, evaluation, type and level checking and elaboration call each other
// constantly. The class is split across files by topic:
//   modules.cpp      loading files and resolving imports
//   evaluator.cpp    expressions, names, calls, arguments, types, ranges and levels
//   builtins.cpp     the builtin functions and constants
//   objectives.cpp   objectives and weightings
//   stages.cpp       stages and their template chains
//   experiments.cpp  experiments, templates, sweeps and grid files, and Check() itself
#pragma once

#include <deque>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "compiler/ast/ast.h"
#include "compiler/diag/diagnostics.h"
#include "compiler/sema/check.h"
#include "compiler/sema/checked.h"
#include "compiler/sema/scope.h"
#include "compiler/sema/term.h"
#include "compiler/sema/value.h"

namespace fusec::sema {

/// What implicit names and primitives an expression may use.
struct DataContext {
  enum class Kind : uint8_t {
    None,       // constants only: hyperparameters, paths, constructors
    Response,   // one response of the prompt is current: `reward`, `len`, `source`, `index`, aggregates
    Pair,       // a filter over pairs: `reward(chosen)` for each role
    Weight,     // a weighting: fields of the item (or the pool, for pair items), aggregates, normalisers
    Objective,  // a loss: `logp`, `ref_logp`, `weight`, `progress`, reductions over groups
  };
  Kind kind = Kind::None;
  ItemKind item = ItemKind::Unknown;  // Weight: what the stage's items are
  std::vector<std::string> roles;     // Pair, Weight over pairs
  /// Checking a declaration on its own (a weighting before any stage uses it): the item kind is not known
  /// yet, so whatever could be valid for some item kind is accepted.
  bool abstract = false;
};

struct Range {
  std::optional<double> low;
  std::optional<double> high;
  bool low_inclusive = true;
  bool high_inclusive = true;

  bool Contains(double value) const;
  /// `> 0`, `>= 1`, `in [0, 1)`
  std::string ToString() const;
};

enum class ArgMode : uint8_t {
  Value,         // evaluated where the call is
  ResponseExpr,  // evaluated with one response current (`top_k(4, by: reward)`)
  Closure,       // kept unevaluated until a stage gives it a context (weightings)
};

struct ParamSpec {
  std::string name;
  TypeRef type;
  ArgMode mode = ArgMode::Value;
  std::optional<Range> range;
  bool accepts_none = false;
  bool accepts_terms = false;  // may depend on the data (math functions, response expressions)
  /// Takes a record of any fields, which the builtin checks itself (`sample`'s `models`); `type` is only shown.
  bool any_record = false;
  ValueRef default_value;                   // builtins
  const ast::Expr* default_expr = nullptr;  // declarations: evaluated in the declaration's scope
  ScopeRef default_env = nullptr;
  SourceSpan span;  // the declaration of the parameter, for notes

  bool required() const { return !default_value && default_expr == nullptr; }
};

/// The parameters' names, in order (for suggestions and messages).
std::vector<std::string> ParamNames(const std::vector<ParamSpec>& params);

struct CallSite;
using BuiltinImpl = ValueRef (*)(class Sema&, const CallSite&);

struct Builtin {
  std::string name;
  std::vector<ParamSpec> params;
  BuiltinImpl impl = nullptr;
  /// Scopes accepted after `over` (empty: `over` is an error).
  std::vector<std::string> scopes;
  /// The builtin binds its own arguments (split's parts, math functions of any arity).
  bool custom_arguments = false;
  /// Used as a bare name (not called): the value it stands for, computed by `impl` with no arguments.
  bool is_constant = false;
  std::string signature;  // for help lines: `adamw(lr: float > 0, ...)`
};

struct CallSite {
  std::string name;
  SourceSpan span;         // the whole call
  SourceSpan callee_span;  // the name
  NamedValues args;        // bound and coerced, in parameter order (builtins without custom_arguments)
  std::map<std::string, SourceSpan> arg_spans;
  std::optional<ast::Identifier> over;  // `over prompt`
  const ast::CallExpr* call = nullptr;  // null for a bare name
  ScopeRef scope = nullptr;
  const DataContext* context = nullptr;
};

struct ModuleInfo {
  FileId file;
  std::string name;  // `std.objectives`, or the display path of a user file
  bool is_stdlib = false;
  bool parsed = false;  // parsed without errors
  ast::Module ast;
  ScopeRef scope = nullptr;
  enum class State : uint8_t { Loading, Loaded } state = State::Loading;
};

class Sema {
 public:
  Sema(SourceManager& sources, Diagnostics& diagnostics, std::string stdlib_dir);

  CheckedProgram CheckFiles(const std::vector<std::string>& files,
                            const std::vector<std::pair<std::string, std::string>>& texts,
                            const std::vector<std::string>& overrides = {});
  /// Edits a root module's AST with `--set` overrides (overrides.cpp).
  void ApplyOverrides(ModuleInfo& module, const std::vector<std::string>& overrides);
  /// Reports the overrides that a sweep's points would ignore: the sweep named in `--set`, and template
  /// parameters the sweep fixes or sweeps (`given`: parameter -> "swept" or "fixed"). Called by ExpandSweep
  /// once the grid is known, because a grid file's axes are only known then (overrides.cpp).
  void ReportIgnoredOverrides(const ast::SweepDecl& sweep, const ast::ExperimentDecl* template_decl,
                              const std::map<std::string, std::string>& given);

  // --- Reporting (evaluator.cpp) -------------------------------------------------------------------------
  /// Reports with the notes of the instantiations being evaluated (template instance, sweep point).
  DiagnosticBuilder Report(DiagnosticKind kind, SourceSpan span, std::string message);
  /// While alive, every report gets `note` (e.g. "in sweep point `tau=0`") appended.
  class InstantiationNote {
   public:
    InstantiationNote(Sema& sema, SourceSpan span, std::string note);
    ~InstantiationNote();
    InstantiationNote(const InstantiationNote&) = delete;
    InstantiationNote& operator=(const InstantiationNote&) = delete;

   private:
    Sema& sema_;
  };

  // --- Evaluation (evaluator.cpp) ------------------------------------------------------------------------
  ValueRef Eval(const ast::Expr& expr, const ScopeRef& scope, const DataContext& context);
  /// Evaluates and coerces to `expected`; `what` names the thing for messages (`field \`epochs\``).
  ValueRef EvalAs(const ast::Expr& expr, const ScopeRef& scope, const DataContext& context,
                  const TypeRef& expected, const std::string& what, bool accepts_none = false);
  ValueRef Force(Binding& binding, SourceSpan use);
  /// Checks `value` against `expected` (int widens to float, also inside lists); Error when it does not fit.
  ValueRef Coerce(const ValueRef& value, const TypeRef& expected, const std::string& what, SourceSpan use,
                  bool accepts_none = false);
  bool CheckRange(const ValueRef& value, const Range& range, const std::string& what, SourceSpan use);
  /// What one parameter is given: an expression to evaluate, or a value (sweep points, grid files).
  struct GivenArgument {
    const ast::Expr* expr = nullptr;
    ValueRef value;
    SourceSpan span;
  };
  /// What a parameter without an argument or default becomes: an error that is reported, one that is not
  /// (the call already has an error that explains it), or Unknown (checking a declaration on its own).
  enum class MissingArguments : uint8_t { Report, Quiet, Unknown };
  /// The core of argument binding: defaults (which see earlier parameters), types, data-dependence, ranges.
  /// `given` is indexed like `params`.
  std::optional<NamedValues> BindParameters(const std::string& callee, SourceSpan use,
                                            const std::vector<ParamSpec>& params,
                                            const std::vector<GivenArgument>& given, const ScopeRef& scope,
                                            const DataContext& context, SourceSpan declaration,
                                            MissingArguments missing);
  /// Binds call arguments to parameters: positional then named, defaults, types, ranges.
  std::optional<NamedValues> BindArguments(const std::string& callee, SourceSpan call_span,
                                           const std::vector<ParamSpec>& params,
                                           const std::vector<ast::Argument>& args, const ScopeRef& scope,
                                           const DataContext& context, SourceSpan declaration);
  /// Binds already-evaluated values (template instances from a sweep grid) to parameters.
  std::optional<NamedValues> BindValues(const std::string& callee, SourceSpan use,
                                        const std::vector<ParamSpec>& params, const NamedValues& given,
                                        const std::map<std::string, SourceSpan>& given_spans);
  const std::vector<ParamSpec>& ResolveParams(const std::vector<ast::Param>& params, const ScopeRef& env);
  /// A scope binding each parameter to its value.
  ScopeRef BindScope(const ScopeRef& parent, const std::vector<ParamSpec>& params, const NamedValues& values);
  /// Evaluates an argument for a parameter according to its mode.
  ValueRef EvalArgument(const ast::Expr& expr, const ParamSpec& param, const ScopeRef& scope,
                        const DataContext& context);

  // Terms and levels.
  TermRef ToTerm(const ValueRef& value, SourceSpan span);
  ValueRef TermValue(TermRef term, SourceSpan span);
  TermRef MakeTerm(Term term);
  /// Combines the levels of operands; reports LevelMismatch and returns nullopt when they cannot mix.
  std::optional<std::pair<Level, ItemKind>> CombineLevels(const std::vector<TermRef>& operands,
                                                         SourceSpan span, const std::string& operation);
  /// A number or bool that may depend on the data: constant, Unknown or a Term.
  bool IsScalarLike(const ValueRef& value) const;
  std::string Describe(const ast::Expr& expr) const;

  // --- Builtins (builtins.cpp) ---------------------------------------------------------------------------
  ScopeRef MakeBuiltinScope();
  ValueRef CallBuiltin(const Builtin& builtin, CallSite site);
  /// The response a response-context primitive reads by default, or null outside such a context.
  const std::vector<Builtin>& builtins() const { return builtins_; }

  // --- Sources of datasets (sources.cpp) -------------------------------------------------------------------
  /// Reports the source names a stage's rules and weighting compare `source` with (`where source == "x"`)
  /// that its data cannot have, when the data's sources are known. False when one was reported.
  bool CheckRuleSources(const CheckedStage& stage);
  /// Reports the names of `keep_sources(data, [...])` that `data` cannot have, when its sources are known.
  bool CheckKeptSources(const ValueRef& data, const ValueRef& sources);

  // --- Objectives and weightings (objectives.cpp) --------------------------------------------------------
  ValueRef InstantiateObjective(const DeclVal& decl, SourceSpan use, const NamedValues& args);
  void CheckObjectiveDecl(const ast::ObjectiveDecl& decl, const ScopeRef& env);
  void CheckWeightingDecl(const ast::WeightingDecl& decl, const ScopeRef& env);
  /// A weighting's per-item term in a stage whose items are `context.item`.
  CheckedWeighting ElaborateWeighting(const ValueRef& weighting, const DataContext& context, SourceSpan use);
  /// Evaluates a declared weighting's body with its arguments in a weight context.
  ValueRef EvalWeightingBody(const WeightingVal& weighting, const DataContext& context, SourceSpan use);

  /// Arguments for checking a declaration on its own: defaults where there are some, Unknown elsewhere.
  NamedValues AbstractArguments(const std::vector<ParamSpec>& params);

  // --- Stages (stages.cpp) -------------------------------------------------------------------------------
  /// What a stage is made from: its own body, and the stage kind (template) it extends.
  struct StageRequest {
    std::string name;
    SourceSpan name_span;
    const std::vector<ast::BodyItem>* body = nullptr;
    ScopeRef scope = nullptr;  // the body's lets live here
    ScopeRef outer = nullptr;  // the base's arguments are evaluated here
    const ast::StageBase* base = nullptr;
    int64_t experiment_seed = 42;
    ValueRef default_data;  // the experiment's `data`, for stages that set none
    /// A stage template checked on its own: missing required fields are expected, not errors.
    bool abstract = false;
  };
  std::optional<CheckedStage> ElaborateStage(const StageRequest& request);
  /// `adamw(lr: 1e-5)` with adamw's other arguments at their builtin defaults: a stage's optimizer when no
  /// layer of its template chain sets `optim`.
  ConstructedVal DefaultOptimizer() const;
  void CheckStageTemplateDecl(const ast::StageTemplateDecl& decl, const ScopeRef& env);
  /// Orders stages by dependency; reports cycles.
  std::vector<CheckedStage> OrderStages(std::vector<CheckedStage> stages,
                                        const std::map<std::string, SourceSpan>& stage_spans);

  // --- Experiments (experiments.cpp) ---------------------------------------------------------------------
  /// One checked experiment per point of the sweep's grid.
  std::vector<CheckedExperiment> ExpandSweep(const ast::SweepDecl& sweep, const ScopeRef& scope);
  std::optional<CheckedExperiment> ElaborateExperiment(const std::string& name, SourceSpan span,
                                                       const std::vector<ast::BodyItem>& body,
                                                       const ScopeRef& scope);
  /// Runs `warn if` / `error if` statements of a body. With a valid `use` (the call of an objective or stage
  /// kind), a failing check is reported there, where the user can act, with a note at the check.
  void RunChecks(const std::vector<ast::BodyItem>& body, const ScopeRef& scope, const DataContext& context,
                 SourceSpan use = {}, const std::string& owner = "");
  /// A value as the user wrote it (`10`, not the `10.0` it became), or its .fuse text.
  std::string Shown(const ValueRef& value) const;
  /// Adds a body's `let`s to `scope` as lazy bindings; reports duplicates.
  void DefineLets(const std::vector<ast::BodyItem>& body, const ScopeRef& scope, const DataContext& context,
                  bool warn_if_unused);
  void WarnUnused(const ScopeRef& scope);
  /// Evaluates the lets of a scope that nothing used, so errors in them are reported too.
  void CheckUnforcedLets(const ScopeRef& scope);

  // --- Modules (modules.cpp) -----------------------------------------------------------------------------
  /// Loads a file named by the user; `text`, when given, is used instead of reading the file.
  ModuleInfo* LoadRootModule(const std::string& path, const std::string* text = nullptr);
  ModuleInfo* LoadStdlibModule(const std::vector<ast::Identifier>& dotted, SourceSpan span);
  ModuleInfo* LoadFileModule(const ModuleInfo& from, const std::string& relative, SourceSpan span);
  /// Builds the module's scope (imports, then declarations) once its imports are loaded.
  void BuildModuleScope(ModuleInfo& module);
  /// "help: `simpo` is in `std.objectives`; ..." for a name that is not in scope but is in the stdlib.
  std::optional<std::string> StdlibHint(const std::string& name);

  SourceManager& sources() { return sources_; }
  Diagnostics& diagnostics() { return diagnostics_; }

  /// Expansion budget: inlined calls and terms created in this run. Exceeding it reports once.
  bool ChargeExpansion(SourceSpan span, size_t amount = 1);

 private:
  friend class ExpressionEvaluator;

  SourceManager& sources_;
  Diagnostics& diagnostics_;
  std::string stdlib_dir_;
  ScopeArena scopes_;  // first member destroyed last: every value that points at a scope dies before it
  std::vector<Builtin> builtins_;
  ScopeRef builtin_scope_ = nullptr;
  ScopeRef prelude_scope_ = nullptr;
  std::deque<ModuleInfo> modules_;
  std::map<std::string, ModuleInfo*> modules_by_path_;
  std::vector<ModuleInfo*> loading_stack_;
  std::optional<std::map<std::string, std::string>> stdlib_index_;  // name -> module, built on demand
  std::vector<std::pair<SourceSpan, std::string>> instantiation_notes_;
  std::map<const void*, std::vector<ParamSpec>> resolved_params_;
  std::vector<const void*> inline_stack_;  // functions being inlined (their LetDecl), to refuse recursion
  size_t expansion_used_ = 0;
  bool expansion_reported_ = false;

  // Overrides a sweep may ignore, kept by ApplyOverrides for ReportIgnoredOverrides.
  struct SweepOverride {
    const ast::SweepDecl* sweep;
    std::vector<std::string> path;  // after the sweep's name
    std::string value_text;
    SourceSpan span;  // the sweep's name in the override
  };
  struct TemplateParamOverride {
    const ast::ExperimentDecl* template_decl;
    std::string param;
    SourceSpan span;  // the parameter's name in the override
  };
  std::vector<SweepOverride> sweep_overrides_;
  std::vector<TemplateParamOverride> template_param_overrides_;
  /// The parameters of the stage kind `base` names (`k`, `temperature` of `fuse_sft`); nullopt when it is no
  /// stage template (then the check reports it).
  std::optional<std::vector<std::string>> StageKindParams(ModuleInfo& module, const ast::StageBase& base);
};

// The sampling and scoring builtins (sampling.cpp); their parameter rows are in builtins.cpp's table.
ValueRef SampleBuiltin(Sema& sema, const CallSite& site);
ValueRef ScoreBuiltin(Sema& sema, const CallSite& site);
ValueRef ScorerBuiltin(Sema& sema, const CallSite& site);  // `reward_model(...)` and `gold_reward(...)`

/// The fields of stages (`train`'s) and of experiments, for suggestions.
const std::vector<std::string>& StageFieldNames();
const std::vector<std::string>& ExperimentFieldNames();

/// Names of the implicit fields of the current response in a Response or Weight context.
bool IsResponseField(const std::string& name);

}  // namespace fusec::sema
