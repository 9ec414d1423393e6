// The source models in the language: `sample(prompts, models: {...}, ...)`, `score(data, by: ...)` and the
// scorers `reward_model(path, chat)` and `gold_reward(noise, seed)`.
//
// Their parameters are rows of builtins.cpp's table like every builtin's (types, ranges, defaults), so a bad
// `temperature` of the call reads like any argument error. What the table cannot say is checked here: the
// `models` record, whose values are models or records of per-source overrides. An override's field is
// checked against the call's own row of the same name, so `{model: m, temperature: -1}` gets the call's
// range error, at the override. The result keeps every setting resolved per source (`n` from `seeds`,
// the call's defaults under the source's overrides, seeds one per sample), so lowering only copies it; only
// a seed left to the experiment stays `none` (the builtin does not know which experiment reads it).

#include <algorithm>
#include <map>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

/// Samples per prompt and source when neither `n` nor `seeds` says: FuseChat-3.0's and WRPO's 5.
constexpr int64_t kDefaultSamples = 5;

/// The parameters of `sample` a source's record may override, and `model`.
const std::vector<std::string>& OverrideFields() {
  static const std::vector<std::string> fields = {"model",          "n",          "temperature",
                                                  "top_p",          "top_k",      "repetition_penalty",
                                                  "max_new_tokens", "seed",       "seeds"};
  return fields;
}

const ParamSpec* FindParam(Sema& sema, std::string_view builtin, std::string_view param) {
  for (const Builtin& candidate : sema.builtins()) {
    if (candidate.name != builtin) continue;
    for (const ParamSpec& spec : candidate.params) {
      if (spec.name == param) return &spec;
    }
  }
  return nullptr;
}

/// The `models:` record literal of the call, when it writes one: its field names' spans.
const ast::RecordExpr* ModelsLiteral(const CallSite& site) {
  if (site.call == nullptr) return nullptr;
  for (size_t i = 0; i < site.call->args.size(); ++i) {
    const ast::Argument& arg = site.call->args[i];
    if (arg.name ? arg.name->text == "models" : i == 1) return arg.value->As<ast::RecordExpr>();
  }
  return nullptr;
}

const ast::RecordField* FieldOf(const ast::RecordExpr* record, const std::string& name) {
  if (record == nullptr) return nullptr;
  for (const ast::RecordField& field : record->fields) {
    if (field.name.text == name) return &field;
  }
  return nullptr;
}

std::optional<int64_t> KnownInt(const ValueRef& value) {
  if (value == nullptr) return std::nullopt;
  if (const auto* i = value->As<int64_t>()) return *i;
  return std::nullopt;
}

std::optional<int64_t> KnownLength(const ValueRef& value) {
  if (value == nullptr) return std::nullopt;
  if (const auto* list = value->As<ListVal>()) return static_cast<int64_t>(list->elements.size());
  return std::nullopt;
}

bool Given(const ValueRef& value) { return value != nullptr && !value->is_none(); }

ValueRef RepeatedSeed(const ValueRef& seed, int64_t n, SourceSpan span) {
  ListVal list;
  for (int64_t i = 0; i < n; ++i) list.elements.push_back(seed);
  return values::Make(types::List(types::Int()), span, std::move(list));
}

/// `seeds: [...]` of the call or of a source must list at least one seed.
bool CheckSeedsNotEmpty(Sema& sema, const ValueRef& seeds, const std::string& owner) {
  if (!Given(seeds) || KnownLength(seeds).value_or(1) > 0) return true;
  sema.Report(DiagnosticKind::OutOfRange, seeds->span, "`seeds` of " + owner + " lists no seed")
      .Help("give one seed per sample, as in `seeds: [13, 21, 42]`, or drop it to sample `n` from `seed`");
  return false;
}

class SampleChecker {
 public:
  SampleChecker(Sema& sema, const CallSite& site) : sema_(sema), site_(site), literal_(ModelsLiteral(site)) {
    for (const auto& [name, value] : site.args) call_[name] = value;
  }

  ValueRef Run() {
    const auto* models = call_["models"]->As<RecordVal>();
    if (models == nullptr) return values::Unknown(types::Opaque(TypeKind::Dataset), site_.span);
    if (models->fields.empty()) {
      sema_.Report(DiagnosticKind::OutOfRange, call_["models"]->span, "`sample` needs at least one source model")
          .Help("name each source, as in `models: {gemma: hf_model(\"models/gemma-2-27b-it\")}`");
      return values::Error(site_.span);
    }
    std::optional<int64_t> call_n = CallSamples();
    bool ok = call_n.has_value() || HasUnknown();
    RecordVal sources;
    std::vector<std::pair<std::string, TypeRef>> source_types;
    for (const auto& [name, value] : models->fields) {
      ValueRef source = Source(name, value, call_n);
      if (source->is_error()) ok = false;
      source_types.emplace_back(name, source->type);
      sources.fields.emplace_back(name, source);
    }
    if (!ok) return values::Error(site_.span);
    NamedValues args = {
        {"prompts", call_["prompts"]},
        // The resolved record carries the call's span, which a name's use does not replace (the sample node's
        // span: where a runtime problem of the sampling is reported).
        {"models", values::Make(types::Record(std::move(source_types)), site_.span, std::move(sources))},
        {"keep_responses", call_["keep_responses"]},
        {"drop_identical", call_["drop_identical"]},
        {"batch_tokens", call_["batch_tokens"]},
    };
    return values::Make(types::Opaque(TypeKind::Dataset), site_.span, ConstructedVal{"sample", std::move(args)});
  }

 private:
  bool HasUnknown() const {
    for (const auto& [name, value] : call_) {
      if (value->is_unknown()) return true;
    }
    return false;
  }

  /// The call's samples per source: `n`, else the length of `seeds`, else kDefaultSamples.
  std::optional<int64_t> CallSamples() {
    const ValueRef& n = call_["n"];
    const ValueRef& seeds = call_["seeds"];
    if (!CheckSeedsNotEmpty(sema_, seeds, "`sample`")) return std::nullopt;
    std::optional<int64_t> count = KnownInt(n);
    std::optional<int64_t> listed = KnownLength(seeds);
    if (count && listed && *count != *listed) {
      sema_.Report(DiagnosticKind::InconsistentSettings, n->span,
                   "`n: " + std::to_string(*count) + "` samples per prompt, but `seeds` lists " +
                       std::to_string(*listed))
          .Note(seeds->span, "`seeds` is given here")
          .Help("one seed per sample: drop `n` (it is the length of `seeds`), or list " + std::to_string(*count) +
                " seeds");
      return std::nullopt;
    }
    if (count) return count;
    if (listed) return listed;
    if (Given(n) || Given(seeds)) return std::nullopt;  // Unknown (a template's parameter)
    return kDefaultSamples;
  }

  SourceSpan NameSpan(const std::string& source, const std::string& field, const ValueRef& fallback) const {
    if (const ast::RecordField* entry = FieldOf(literal_, source)) {
      if (const ast::RecordField* inner = FieldOf(entry->value->As<ast::RecordExpr>(), field)) return inner->name.span;
    }
    return fallback->span.valid() ? fallback->span : site_.span;
  }

  /// One source: a model, or a record `{model: M, <override>: ...}`; the result is the source's record with
  /// every setting resolved.
  ValueRef Source(const std::string& name, const ValueRef& value, std::optional<int64_t> call_n) {
    if (value->is_error()) return value;
    std::string owner = "source `" + name + "`";
    std::map<std::string, ValueRef> overrides;
    ValueRef model;
    if (const auto* record = value->As<RecordVal>()) {
      bool ok = true;
      for (const auto& [field, field_value] : record->fields) {
        if (field == "model") {
          model = sema_.Coerce(field_value, types::Opaque(TypeKind::Model), "`model` of " + owner, value->span);
          if (model->is_error()) ok = false;
          continue;
        }
        const ParamSpec* param =
            std::find(OverrideFields().begin(), OverrideFields().end(), field) == OverrideFields().end()
                ? nullptr
                : FindParam(sema_, "sample", field);
        if (param == nullptr) {
          auto builder = sema_.Report(DiagnosticKind::UnknownField, NameSpan(name, field, field_value),
                                      owner + " of `sample` has no setting `" + field + "`");
          std::string hint = DidYouMean(field, OverrideFields());
          builder.Help(!hint.empty() ? hint
                                     : "a source is a model, or a record of `model` and settings of `sample` it "
                                       "overrides: `n`, `temperature`, `top_p`, `top_k`, `repetition_penalty`, "
                                       "`max_new_tokens`, `seed`, `seeds`");
          ok = false;
          continue;
        }
        std::string what = "`" + field + "` of " + owner;
        ValueRef checked = sema_.Coerce(field_value, param->type, what, field_value->span, param->accepts_none);
        if (param->range && !checked->is_error() && !sema_.CheckRange(checked, *param->range, what, checked->span)) {
          checked = values::Error(checked->span);
        }
        if (checked->is_error()) ok = false;
        overrides[field] = checked;
      }
      if (!model && ok) {
        sema_.Report(DiagnosticKind::MissingField, value->span, owner + " has settings but no `model`")
            .Help("name its model, as in `" + name + ": {model: hf_model(\"models/...\"), temperature: 0.7}`");
        ok = false;
      }
      if (!ok) return values::Error(value->span);
    } else if (value->is_unknown() || IsAssignable(*value->type, *types::Opaque(TypeKind::Model))) {
      model = value;
    } else {
      sema_.Report(DiagnosticKind::TypeMismatch, value->span,
                   owner + " of `sample` expects a model or a record `{model: ..., temperature: ...}`, got " +
                       DescribeKind(*value))
          .Help("a source is `hf_model(...)`, `new_model(...)`, a stage of the experiment, or "
                "`{model: ..., <setting>: ...}`");
      return values::Error(value->span);
    }
    auto setting = [&](const std::string& field) {
      auto it = overrides.find(field);
      return it != overrides.end() ? it->second : call_[field];
    };

    // n and seeds: the source's own seeds, else its seed, else the call's seeds, else the call's seed, else
    // the experiment's (none here).
    auto own_n = overrides.count("n") > 0 ? overrides["n"] : nullptr;
    std::optional<int64_t> n = own_n ? KnownInt(own_n) : call_n;
    ValueRef seeds;
    if (ValueRef own_seeds = overrides.count("seeds") > 0 ? overrides["seeds"] : nullptr; Given(own_seeds)) {
      if (!CheckSeedsNotEmpty(sema_, own_seeds, owner)) return values::Error(value->span);
      std::optional<int64_t> listed = KnownLength(own_seeds);
      if (own_n && n && listed && *n != *listed) {
        sema_.Report(DiagnosticKind::InconsistentSettings, own_n->span,
                     owner + " takes `n: " + std::to_string(*n) + "` samples per prompt, but its `seeds` lists " +
                         std::to_string(*listed))
            .Note(own_seeds->span, "`seeds` is given here")
            .Help("one seed per sample: drop `n` (it is the length of `seeds`), or list " + std::to_string(*n) +
                  " seeds");
        return values::Error(value->span);
      }
      if (!own_n) n = listed;
      seeds = own_seeds;
    } else if (ValueRef own_seed = overrides.count("seed") > 0 ? overrides["seed"] : nullptr; Given(own_seed)) {
      seeds = n ? RepeatedSeed(own_seed, *n, own_seed->span) : values::Unknown(types::List(types::Int()), value->span);
    } else if (Given(call_["seeds"])) {
      std::optional<int64_t> listed = KnownLength(call_["seeds"]);
      if (own_n && n && listed && *n != *listed) {
        sema_.Report(DiagnosticKind::InconsistentSettings, own_n->span,
                     owner + " takes `n: " + std::to_string(*n) + "` samples per prompt, but the call's `seeds` lists " +
                         std::to_string(*listed))
            .Note(call_["seeds"]->span, "`seeds` is given here")
            .Help("give " + owner + " its own `seeds: [...]` (one per sample) or `seed: ...`");
        return values::Error(value->span);
      }
      seeds = call_["seeds"];
    } else if (Given(call_["seed"])) {
      seeds = n ? RepeatedSeed(call_["seed"], *n, call_["seed"]->span)
                : values::Unknown(types::List(types::Int()), value->span);
    } else {
      seeds = values::None(value->span);  // the experiment's seed, for every sample (DatasetOriginOf)
    }
    NamedValues fields = {
        {"model", model},
        {"n", n ? values::Int(*n, own_n ? own_n->span : call_["n"]->span) : values::Unknown(types::Int(), value->span)},
        {"temperature", setting("temperature")},
        {"top_p", setting("top_p")},
        {"top_k", setting("top_k")},
        {"repetition_penalty", setting("repetition_penalty")},
        {"max_new_tokens", setting("max_new_tokens")},
        {"seeds", seeds},
    };
    std::vector<std::pair<std::string, TypeRef>> field_types;
    for (const auto& [field, field_value] : fields) field_types.emplace_back(field, field_value->type);
    return values::Make(types::Record(std::move(field_types)), value->span, RecordVal{std::move(fields)});
  }

  Sema& sema_;
  const CallSite& site_;
  const ast::RecordExpr* literal_;
  std::map<std::string, ValueRef> call_;
};

}  // namespace

ValueRef SampleBuiltin(Sema& sema, const CallSite& site) { return SampleChecker(sema, site).Run(); }

ValueRef ScoreBuiltin(Sema& /*sema*/, const CallSite& site) {
  return values::Make(types::Opaque(TypeKind::Dataset), site.span, ConstructedVal{site.name, site.args});
}

ValueRef ScorerBuiltin(Sema& /*sema*/, const CallSite& site) {
  return values::Make(types::Opaque(TypeKind::RewardModel), site.span, ConstructedVal{site.name, site.args});
}

}  // namespace fusec::sema
