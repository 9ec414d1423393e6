// Typed views of checked constructor values (checked.h): what lowering needs of `hf_model`, `new_model`,
// `jsonl`, `split`, `keep_sources`, `sample`, `score` and `evaluate`, read once from the arguments the builtin table bound.

#include <stdexcept>

#include "compiler/sema/checked.h"

namespace fusec::sema {
namespace {

const ValueRef& Required(const NamedValues& args, std::string_view name) {
  for (const auto& [arg_name, value] : args) {
    if (arg_name == name && value) return value;
  }
  throw std::logic_error("checked value without argument `" + std::string(name) + "`");
}

int64_t Int(const NamedValues& args, std::string_view name) { return *Required(args, name)->As<int64_t>(); }
double Number(const NamedValues& args, std::string_view name) { return *Required(args, name)->AsNumber(); }
bool Bool(const NamedValues& args, std::string_view name) { return *Required(args, name)->As<bool>(); }
const std::string& String(const NamedValues& args, std::string_view name) {
  return *Required(args, name)->As<std::string>();
}
std::optional<int64_t> OptionalInt(const NamedValues& args, std::string_view name) {
  ValueRef value = FindNamed(args, name);
  if (!value || value->is_none()) return std::nullopt;
  return *value->As<int64_t>();
}
template <typename E>
E Enum(const NamedValues& args, std::string_view name) {
  return *ir::EnumAt<E>(Required(args, name)->As<EnumVal>()->index);
}

ir::HfModelSpec HfModelSpecOf(const NamedValues& args) {
  ir::HfModelSpec spec;
  spec.path = String(args, "path");
  spec.chat = Enum<ir::ChatTemplateName>(args, "chat");
  return spec;
}

ir::NewModelSpec NewModelSpecOf(const NamedValues& args) {
  ir::NewModelSpec spec;
  spec.hidden_size = Int(args, "hidden_size");
  spec.intermediate_size = Int(args, "intermediate_size");
  spec.num_layers = Int(args, "num_layers");
  spec.num_heads = Int(args, "num_heads");
  spec.num_kv_heads = OptionalInt(args, "num_kv_heads");
  spec.vocab_size = OptionalInt(args, "vocab_size");
  spec.max_position = Int(args, "max_position");
  spec.rope_theta = Number(args, "rope_theta");
  spec.rms_norm_eps = Number(args, "rms_norm_eps");
  spec.tie_embeddings = Bool(args, "tie_embeddings");
  spec.architecture = *ir::EnumBySpelling<ir::Architecture>(String(args, "architecture"));  // checked by NewModel
  spec.tokenizer = String(args, "tokenizer");
  spec.chat = Enum<ir::ChatTemplateName>(args, "chat");
  spec.seed = Int(args, "seed");
  return spec;
}

ir::DatasetSpec JsonlSpecOf(const NamedValues& args) {
  ir::DatasetSpec spec;
  spec.path = String(args, "path");
  spec.fields = {String(args, "id"),     String(args, "prompt"), String(args, "messages"),
                 String(args, "responses"), String(args, "source"), String(args, "text"),
                 String(args, "reward"), String(args, "gold"),   String(args, "family")};
  spec.bad_lines = Enum<ir::BadLines>(args, "bad_lines");
  spec.limit = OptionalInt(args, "limit");
  return spec;
}

SplitPartOf SplitPartOfArgs(const NamedValues& part_args) {
  const NamedValues& split_args = Required(part_args, "split")->As<ConstructedVal>()->args;
  SplitPartOf out;
  out.data = Required(split_args, "data");
  out.part.part = String(part_args, "part");
  for (const auto& [name, value] : split_args) {
    if (name != "data" && name != "seed") out.part.fractions.emplace_back(name, *value->AsNumber());
  }
  out.part.seed = Int(split_args, "seed");
  return out;
}

/// The settings sampling.cpp resolved for one source; seeds `none` are the experiment's seed for each sample.
ir::SamplingSettings SamplingSettingsOf(const NamedValues& source, int64_t experiment_seed) {
  ir::SamplingSettings settings;
  settings.n = Int(source, "n");
  settings.temperature = Number(source, "temperature");
  settings.top_p = Number(source, "top_p");
  settings.top_k = OptionalInt(source, "top_k");
  settings.repetition_penalty = Number(source, "repetition_penalty");
  settings.max_new_tokens = Int(source, "max_new_tokens");
  ValueRef seeds = Required(source, "seeds");
  if (const auto* list = seeds->As<ListVal>()) {
    for (const ValueRef& seed : list->elements) settings.seeds.push_back(*seed->As<int64_t>());
  } else {
    settings.seeds.assign(static_cast<size_t>(settings.n), experiment_seed);
  }
  return settings;
}

SampleOf SampleOfArgs(const NamedValues& args, int64_t experiment_seed) {
  SampleOf out;
  out.prompts = Required(args, "prompts");
  out.call_span = Required(args, "models")->span;
  for (const auto& [name, source] : Required(args, "models")->As<RecordVal>()->fields) {
    const NamedValues& fields = source->As<RecordVal>()->fields;
    out.models.push_back(Required(fields, "model"));
    out.sample.sources.push_back(ir::SampledSource{name, SamplingSettingsOf(fields, experiment_seed)});
  }
  out.sample.keep_responses = Bool(args, "keep_responses");
  out.sample.drop_identical = Bool(args, "drop_identical");
  out.sample.batch_tokens = Int(args, "batch_tokens");
  return out;
}

ir::ScorerSpec ScorerSpecOf(const ConstructedVal& scorer) {
  if (scorer.constructor == "gold_reward") {
    return ir::GoldRewardSpec{Number(scorer.args, "noise"), Int(scorer.args, "seed")};
  }
  ir::RewardModelSpec spec;
  spec.path = String(scorer.args, "path");
  spec.chat = Enum<ir::ChatTemplateName>(scorer.args, "chat");
  return spec;
}

ScoreOf ScoreOfArgs(const NamedValues& args) {
  ScoreOf out;
  out.data = Required(args, "data");
  out.score.scorer = ScorerSpecOf(*Required(args, "by")->As<ConstructedVal>());
  out.scorer_span = Required(args, "by")->span;
  out.score.keep_existing = Bool(args, "keep_existing");
  out.score.batch_tokens = Int(args, "batch_tokens");
  return out;
}

}  // namespace

DatasetOrigin DatasetOriginOf(const Value& dataset, int64_t experiment_seed) {
  const auto& constructed = *dataset.As<ConstructedVal>();
  if (constructed.constructor == "split_part") return SplitPartOfArgs(constructed.args);
  if (constructed.constructor == "sample") return SampleOfArgs(constructed.args, experiment_seed);
  if (constructed.constructor == "score") return ScoreOfArgs(constructed.args);
  if (constructed.constructor == "keep_sources") {
    KeepSourcesOf out;
    out.data = Required(constructed.args, "data");
    for (const ValueRef& source : Required(constructed.args, "sources")->As<ListVal>()->elements) {
      out.filter.sources.push_back(*source->As<std::string>());
    }
    return out;
  }
  return JsonlSpecOf(constructed.args);
}

ModelOrigin ModelOriginOf(const Value& model) {
  if (const auto* stage = model.As<StageModelVal>()) return stage->stage;
  const auto& constructed = *model.As<ConstructedVal>();
  if (constructed.constructor == "new_model") return ir::ModelSpec{NewModelSpecOf(constructed.args)};
  return ir::ModelSpec{HfModelSpecOf(constructed.args)};
}

ir::OptimSpec OptimSpecOf(const ConstructedVal& optimizer) {
  auto number = [&](std::string_view name) {
    ValueRef value = FindNamed(optimizer.args, name);
    return value ? value->AsNumber().value_or(0.0) : 0.0;
  };
  ir::OptimSpec spec;
  spec.name = optimizer.constructor;
  spec.lr = number("lr");
  if (ValueRef betas = FindNamed(optimizer.args, "betas")) {
    if (const auto* list = betas->As<ListVal>(); list != nullptr && list->elements.size() == 2) {
      spec.beta1 = list->elements[0]->AsNumber().value_or(0.0);
      spec.beta2 = list->elements[1]->AsNumber().value_or(0.0);
    }
  }
  spec.eps = number("eps");
  spec.weight_decay = number("weight_decay");
  spec.warmup = number("warmup");
  if (ValueRef schedule = FindNamed(optimizer.args, "schedule"); schedule && schedule->As<EnumVal>()) {
    spec.schedule = *ir::EnumAt<ir::Schedule>(schedule->As<EnumVal>()->index);
  }
  spec.min_lr_ratio = number("min_lr_ratio");
  return spec;
}

EvaluationOf EvaluationOfValue(const Value& evaluation) {
  const NamedValues& args = evaluation.As<ConstructedVal>()->args;
  EvaluationOf out;
  out.data = Required(args, "data");
  if (ValueRef models = FindNamed(args, "models")) {
    if (const auto* list = models->As<ListVal>()) out.models = list->elements;
  }
  out.max_new_tokens = Int(args, "max_new_tokens");
  out.batch = Int(args, "batch");
  return out;
}

}  // namespace fusec::sema
