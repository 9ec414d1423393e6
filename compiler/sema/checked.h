// The checked program: sema's one output, the graph issue's input.
//
// Every experiment that would run (concrete experiments, template instances and sweep points) appears
// here fully resolved: templates expanded, defaults filled in, names replaced by what they denote, rules and
// objectives elaborated into terms whose levels are known. Nothing downstream needs the AST or scopes again.
// Spans are kept wherever a later phase may have to point the user at the cause of a runtime problem.
#pragma once

#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "compiler/ir/payloads.h"
#include "compiler/sema/term.h"
#include "compiler/sema/value.h"

namespace fusec::sema {

/// What an objective's loss is one value of.
using ObjectiveUnit = ir::Unit;
/// `per pair`, `per group of pairs`: for messages.
const char* UnitName(ObjectiveUnit unit);
/// `per pair`, `per group of pair`: as written in .fuse.
const char* UnitSyntax(ObjectiveUnit unit);

/// What a loss reads from the data and the models; the graph issue's requirement inference starts here.
struct LossNeeds {
  bool policy_logp = false;
  bool reference_logp = false;
  bool lengths = false;
  bool rewards = false;
  bool weight = false;  // the loss places the weight itself (else it multiplies the unit loss)
  bool progress = false;
  bool groups = false;  // a reduction or leave-one-out mean over group members
  std::vector<std::string> logp_of;  // the responses (roles or `y`) whose policy log-probs are read
};

struct CheckedObjective {
  std::string name;  // the declaration's name
  SourceSpan declaration;
  SourceSpan use;  // the call that made this instance
  NamedValues args;
  ObjectiveUnit unit = ObjectiveUnit::Pair;
  std::vector<std::string> names;  // the roles (`chosen`, `rejected`) or the response name (`y`)
  TermRef loss;
  LossNeeds needs;
};

/// Which responses of each prompt a response-item stage (SFT) trains on.
struct CheckedSelection {
  ir::Scope scope = ir::Scope::Prompt;  // prompt | source: the top-k is taken per prompt or per source
  std::optional<int64_t> k;      // none: all (after the filter)
  TermRef by;                    // ranking score, per response; highest first
  TermRef where;                 // filter applied before ranking; null = keep all
  SourceSpan span;
  std::string description;  // `top_k(4, by: reward)` as written
};

/// One role of a pair: the response of the scope with the highest (argmax) or lowest score.
struct RoleSelector {
  std::string name;
  bool argmax = true;
  TermRef score;
  TermRef where;  // candidates; null = all responses of the scope
  SourceSpan span;
};

/// How a preference stage builds its pairs.
struct CheckedPairing {
  // Within: `within source|prompt {roles}`, one tuple of roles per source or per prompt; AllPairs: every
  // (better, worse) pair of the scope by `by`, gap at least min_gap; AcrossSources: every pair of two sources'
  // best responses, the better one chosen.
  using Kind = ir::PairingKind;
  Kind kind = Kind::Within;
  ir::Scope scope = ir::Scope::Source;
  std::vector<RoleSelector> roles;  // Within; AllPairs and AcrossSources have chosen and rejected
  TermRef by;
  double min_gap = 0;
  TermRef where;  // filter over whole pairs; null = keep all
  SourceSpan span;
  std::string description;
};

/// Groups of responses for group objectives (RLOO): all samples of a source, or of a prompt.
struct CheckedGrouping {
  ir::Scope scope = ir::Scope::Source;
  TermRef where;
  SourceSpan span;
  std::string description;
};

struct CheckedWeighting {
  TermRef weight;  // per item, Const for a constant weight
  std::string description;
  SourceSpan span;
};

/// A resolved stage: every field has its final value and every default is filled in.
struct CheckedStage {
  std::string name;
  SourceSpan span;
  std::vector<std::string> kinds;  // the template chain, nearest first: {"fuserl_po", "fuse_po", "train"}
  ValueRef init;                   // Model
  ValueRef data;                   // Dataset
  ValueRef reference;              // Model, or null when no objective needs one
  std::variant<std::monostate, CheckedSelection, CheckedPairing, CheckedGrouping> rule;
  CheckedWeighting weight;
  std::shared_ptr<const CheckedObjective> objective;
  // The settings, each from the stage's template chain or the root `train` template's defaults (written once,
  // in stages.cpp's field table and the adamw builtin); zero only in a template checked without arguments.
  ir::OptimSpec optim;
  int64_t epochs = 0;
  std::optional<int64_t> max_steps;
  int64_t batch = 0;  // prompts per optimizer step
  int64_t micro_batch = 0;
  int64_t max_len = 0;
  std::optional<int64_t> max_prompt_len;
  int64_t seed = 0;
  ir::Precision precision = ir::Precision::Auto;
  std::optional<double> grad_clip;
  std::optional<int64_t> save_every;
  ir::Shard shard = ir::Shard::Gradients;
  std::vector<std::string> depends_on;  // stages whose model this one reads (init, reference)
  std::map<std::string, SourceSpan> field_spans;  // where each field got its value
};

struct CheckedExperiment {
  std::string name;  // `fuserl_dpo`, or `tau_ablation[tau=0.5,seed=1]` for a sweep point
  SourceSpan span;
  std::string template_name;  // empty for a concrete experiment
  NamedValues template_args;  // every parameter, defaults included
  std::string sweep;          // the sweep it is a point of, if any
  ValueRef target;
  int64_t seed = 42;
  std::string output;
  ir::DeviceName device = ir::DeviceName::Auto;
  ValueRef eval;  // Evaluation, or null
  std::vector<CheckedStage> stages;  // dependencies first
};

struct CheckedProgram {
  std::vector<CheckedExperiment> experiments;
};

// Typed views of the checked values lowering turns into nodes (specs.cpp). The builtin table bound every
// argument, defaults included, so these only read what is there; lowering never looks at constructor names.

/// A dataset value: a file, one part of a split, or a source filter of another dataset.
struct SplitPartOf {
  ValueRef data;
  ir::Split part;
};
struct KeepSourcesOf {
  ValueRef data;
  ir::FilterSources filter;
};
/// `sample(prompts, models: {...}, ...)`: the prompts, each source's model (a model value or a stage's), and
/// every setting resolved per source (a seed left to the experiment is `experiment_seed`).
struct SampleOf {
  ValueRef prompts;
  std::vector<ValueRef> models;  // one per source, in ir::Sample::sources' order
  ir::Sample sample;
  SourceSpan call_span;  // the `sample(...)` call
};
/// `score(data, by: scorer, ...)`.
struct ScoreOf {
  ValueRef data;
  ir::Score score;
  SourceSpan scorer_span;  // where the scorer is written (`by: reward_model(...)`)
};
using DatasetOrigin = std::variant<ir::DatasetSpec, SplitPartOf, KeepSourcesOf, SampleOf, ScoreOf>;
/// `experiment_seed` is the seed of the experiment the dataset is lowered for: `sample`'s default seed.
DatasetOrigin DatasetOriginOf(const Value& dataset, int64_t experiment_seed);

/// The sources a dataset's responses can have, when the checker knows them: a sample's model names (plus the
/// prompts' own sources when it keeps their responses), a split part's or a scored dataset's input's,
/// `keep_sources`' list. Nullopt when they depend on a file (`jsonl`) or on an unknown value. An upper bound:
/// a name outside it matches no response (sources.cpp).
std::optional<std::vector<std::string>> KnownSources(const Value& dataset);
/// The stages whose models a dataset is sampled from (`sample(..., models: {target: sft})`), so a stage
/// training on it depends on them.
std::vector<std::string> StagesReadBy(const Value& dataset);

/// A model value: the model a stage trains (by the stage's name), or one to load or create.
using ModelOrigin = std::variant<std::string, ir::ModelSpec>;
ModelOrigin ModelOriginOf(const Value& model);

/// `evaluate(data, models, max_new_tokens, batch)`; no models named: the target and every stage.
struct EvaluationOf {
  ValueRef data;
  std::vector<ValueRef> models;
  int64_t max_new_tokens = 0;
  int64_t batch = 0;
};
EvaluationOf EvaluationOfValue(const Value& evaluation);

/// An optimizer value (`adamw(...)`) as the trainer's spec; arguments not known yet (a template checked without
/// its arguments) read as 0.
ir::OptimSpec OptimSpecOf(const ConstructedVal& optimizer);

/// The checked AST as stable text (`fusec plan --emit=ast`): experiments in declaration order, fields in a
/// fixed order, numbers in shortest round-trip form, spans as `file:line:col`.
std::string PrintProgram(const CheckedProgram& program, const SourceManager& sources);

}  // namespace fusec::sema
