// The JSON view of node payloads: one function per payload type, in the field order the IR text, the
// content hashes and cache manifests have always shown (a changed order would change every hash).

#include <type_traits>

#include "compiler/ir/ir.h"

namespace fusec::ir {
namespace {

using Json = nlohmann::ordered_json;

template <typename T>
Json Optional(const std::optional<T>& value) {
  return value ? Json(*value) : Json(nullptr);
}

Json ExprJson(const ExprRef& expr) { return expr ? Json(ToString(*expr)) : Json(nullptr); }

template <typename E>
Json EnumJson(E value) {
  return std::string(Spelling(value));
}

Json ModelJson(const HfModelSpec& m) {
  Json json{{"constructor", "hf_model"}, {"path", m.path}, {"chat", EnumJson(m.chat)}};
  if (!m.fingerprint.empty()) json["fingerprint"] = m.fingerprint;
  return json;
}

Json ModelJson(const NewModelSpec& m) {
  return Json{{"constructor", "new_model"},
              {"hidden_size", m.hidden_size},
              {"intermediate_size", m.intermediate_size},
              {"num_layers", m.num_layers},
              {"num_heads", m.num_heads},
              {"num_kv_heads", Optional(m.num_kv_heads)},
              {"vocab_size", Optional(m.vocab_size)},
              {"max_position", m.max_position},
              {"rope_theta", m.rope_theta},
              {"rms_norm_eps", m.rms_norm_eps},
              {"tie_embeddings", m.tie_embeddings},
              {"architecture", EnumJson(m.architecture)},
              {"tokenizer", m.tokenizer},
              {"chat", EnumJson(m.chat)},
              {"seed", m.seed}};
}

Json Params(const LoadModel& p) {
  return std::visit([](const auto& model) { return ModelJson(model); }, p.model);
}

Json Params(const LoadData& p) {
  const DatasetSpec& d = p.data;
  const JsonlFields& f = d.fields;
  Json json{{"constructor", "jsonl"}, {"path", d.path},         {"id", f.id},
            {"prompt", f.prompt},     {"messages", f.messages}, {"responses", f.responses},
            {"source", f.source},     {"text", f.text},         {"reward", f.reward},
            {"gold", f.gold},         {"family", f.family},     {"bad_lines", EnumJson(d.bad_lines)},
            {"limit", Optional(d.limit)}};
  if (!d.fingerprint.empty()) json["fingerprint"] = d.fingerprint;
  return json;
}

Json Params(const FilterSources& p) { return Json{{"sources", p.sources}}; }

Json Params(const Split& p) {
  Json fractions = Json::object();
  for (const auto& [name, fraction] : p.fractions) fractions[name] = fraction;
  return Json{{"part", p.part}, {"fractions", fractions}, {"seed", p.seed}};
}

Json SettingsJson(const SamplingSettings& s) {
  return Json{{"n", s.n},
              {"temperature", s.temperature},
              {"top_p", s.top_p},
              {"top_k", Optional(s.top_k)},
              {"repetition_penalty", s.repetition_penalty},
              {"max_new_tokens", s.max_new_tokens},
              {"seeds", s.seeds}};
}

Json Params(const Sample& p) {
  Json sources = Json::array();
  for (const SampledSource& source : p.sources) {
    sources.push_back(Json{{"name", source.name}, {"settings", SettingsJson(source.settings)}});
  }
  return Json{{"sources", sources},
              {"keep_responses", p.keep_responses},
              {"drop_identical", p.drop_identical},
              {"batch_tokens", p.batch_tokens}};
}

Json ScorerJson(const RewardModelSpec& m) {
  Json json{{"constructor", "reward_model"}, {"path", m.path}, {"chat", EnumJson(m.chat)}};
  if (!m.fingerprint.empty()) json["fingerprint"] = m.fingerprint;
  return json;
}

Json ScorerJson(const GoldRewardSpec& g) {
  return Json{{"constructor", "gold_reward"}, {"noise", g.noise}, {"seed", g.seed}};
}

Json Params(const Score& p) {
  return Json{{"scorer", std::visit([](const auto& scorer) { return ScorerJson(scorer); }, p.scorer)},
              {"keep_existing", p.keep_existing},
              {"batch_tokens", p.batch_tokens}};
}

Json Params(const Select& p) {
  return Json{{"scope", EnumJson(p.rule.scope)}, {"k", Optional(p.rule.k)}, {"by", ExprJson(p.rule.by)},
              {"where", ExprJson(p.rule.where)}};
}

Json Params(const Pairs& p) {
  Json roles = Json::array();
  for (const RoleRule& role : p.rule.roles) {
    roles.push_back(Json{{"name", role.name},
                         {"pick", role.argmax ? "argmax" : "argmin"},
                         {"score", ExprJson(role.score)},
                         {"where", ExprJson(role.where)}});
  }
  return Json{{"rule", EnumJson(p.rule.kind)}, {"scope", EnumJson(p.rule.scope)}, {"roles", roles},
              {"by", ExprJson(p.rule.by)},     {"min_gap", p.rule.min_gap},       {"where", ExprJson(p.rule.where)}};
}

Json Params(const Groups& p) { return Json{{"scope", EnumJson(p.rule.scope)}, {"where", ExprJson(p.rule.where)}}; }

Json Params(const Weight& p) { return Json{{"weight", ExprJson(p.weight)}}; }

Json Params(const RefLogprobs& p) {
  return Json{{"roles", p.roles}, {"max_len", p.max_len}, {"max_prompt_len", Optional(p.max_prompt_len)}};
}

Json Params(const Train& p) {
  const TrainSpec& s = p.spec;
  const OptimSpec& o = s.optim;
  return Json{{"objective", s.objective},
              {"optim",
               Json{{"name", o.name},
                    {"lr", o.lr},
                    {"betas", {o.beta1, o.beta2}},
                    {"eps", o.eps},
                    {"weight_decay", o.weight_decay},
                    {"warmup", o.warmup},
                    {"schedule", EnumJson(o.schedule)},
                    {"min_lr_ratio", o.min_lr_ratio}}},
              {"epochs", s.epochs},
              {"max_steps", Optional(s.max_steps)},
              {"batch", s.batch},
              {"micro_batch", s.micro_batch},
              {"max_len", s.max_len},
              {"max_prompt_len", Optional(s.max_prompt_len)},
              {"seed", s.seed},
              {"precision", EnumJson(s.precision)},
              {"grad_clip", Optional(s.grad_clip)},
              {"save_every", Optional(s.save_every)},
              {"shard", EnumJson(s.shard)}};
}

Json Params(const Evaluate& p) {
  return Json{{"max_new_tokens", p.max_new_tokens}, {"batch", p.batch}, {"output", p.output}};
}

Json Params(const Export& p) { return Json{{"path", p.path}}; }

}  // namespace

nlohmann::ordered_json ParamsJson(const Node& node) {
  return std::visit([](const auto& payload) { return Params(payload); }, node.payload);
}

}  // namespace fusec::ir
