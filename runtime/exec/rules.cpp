#include "runtime/exec/rules.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <functional>
#include <numeric>
#include <set>

#include "compiler/support/sha256.h"

namespace fusec::rt {
namespace {

using ir::Expr;
using ir::ExprKind;
using ir::ExprRef;

/// A value of a rule's term: a number (bools are 0 or 1) or a string (`source`).
struct Scalar {
  double number = 0;
  std::string text;
  bool is_text = false;
};

/// Where a term is evaluated: at one response of a prompt, or at an item whose roles name responses.
struct Context {
  const Dataset* data = nullptr;
  uint32_t prompt = 0;
  int32_t response = -1;  // the current response; -1 for a pair item
  const std::vector<std::string>* roles = nullptr;
  const std::vector<int32_t>* role_responses = nullptr;
  std::string source;  // the source `over source` means
  /// Values of `softmax(...) over ...` and friends, computed across items beforehand (weightings only).
  const std::map<const Expr*, std::vector<double>>* normalized = nullptr;
  size_t item = 0;
};

[[noreturn]] void Fail(const Context& ctx, const std::string& what) {
  throw RuleError("prompt `" + (*ctx.data)[ctx.prompt].id + "` (line " + std::to_string((*ctx.data)[ctx.prompt].line) +
                  "): " + what);
}

const PromptRecord& PromptOf(const Context& ctx) { return (*ctx.data)[ctx.prompt]; }

/// The sample number of response `r` within its source: how many earlier responses share its source.
int SampleIndex(const PromptRecord& prompt, int32_t r) {
  int index = 0;
  for (int32_t k = 0; k < r; ++k) index += prompt.responses[static_cast<size_t>(k)].source == prompt.responses[static_cast<size_t>(r)].source;
  return index;
}

Scalar Eval(const Expr& term, const Context& ctx);

double Number(const Expr& term, const Context& ctx) {
  Scalar value = Eval(term, ctx);
  if (value.is_text) Fail(ctx, "`" + ir::ToString(term) + "` is a string where a number is needed");
  return value.number;
}

Scalar Num(double value) { return Scalar{value, "", false}; }

Scalar Field(const Expr& term, const Context& ctx) {
  int32_t r = ctx.response;
  if (!term.role.empty()) {
    r = -1;
    if (ctx.roles != nullptr) {
      for (size_t i = 0; i < ctx.roles->size(); ++i) {
        if ((*ctx.roles)[i] == term.role) r = (*ctx.role_responses)[i];
      }
    }
    if (r < 0) Fail(ctx, "`" + ir::ToString(term) + "` names a role this item does not have");
  }
  if (r < 0) {
    Fail(ctx, "`" + std::string(ir::Spelling(term.field)) + "` of the prompt's responses is only meaningful inside an aggregate");
  }
  const ResponseRecord& response = PromptOf(ctx).responses[static_cast<size_t>(r)];
  switch (term.field) {
    case ir::Field::Reward:
      if (!response.reward) Fail(ctx, "response " + std::to_string(r + 1) + " has no reward, which the rule reads");
      return Num(*response.reward);
    case ir::Field::Source:
      return Scalar{0, response.source, true};
    case ir::Field::Index:
      return Num(SampleIndex(PromptOf(ctx), r));
    case ir::Field::Len:
      if (!response.tokens) Fail(ctx, "internal: `len` is read but the responses were not tokenized for this rule");
      return Num(static_cast<double>(*response.tokens));
  }
  Fail(ctx, "unknown field");
}

Scalar Aggregate(const Expr& term, const Context& ctx) {
  const PromptRecord& prompt = PromptOf(ctx);
  const bool count = term.reduction == ir::Reduction::Count;
  std::vector<double> values;
  for (size_t r = 0; r < prompt.responses.size(); ++r) {
    if (term.scope == ir::Scope::Source) {
      if (ctx.source.empty()) Fail(ctx, "`over source` needs an item of one source");
      if (prompt.responses[r].source != ctx.source) continue;
    }
    if (count) {
      values.push_back(1);
      continue;
    }
    Context at = ctx;
    at.response = static_cast<int32_t>(r);
    at.roles = nullptr;
    values.push_back(Number(*term.args.at(0), at));
  }
  if (count) return Num(static_cast<double>(values.size()));
  if (values.empty()) Fail(ctx, "`" + ir::ToString(term) + "` has no responses to aggregate");
  switch (term.reduction) {
    case ir::Reduction::Sum:
      return Num(std::accumulate(values.begin(), values.end(), 0.0));
    case ir::Reduction::Mean:
      return Num(std::accumulate(values.begin(), values.end(), 0.0) / static_cast<double>(values.size()));
    case ir::Reduction::Max:
      return Num(*std::max_element(values.begin(), values.end()));
    case ir::Reduction::Min:
      return Num(*std::min_element(values.begin(), values.end()));
    case ir::Reduction::Count:
      break;
  }
  Fail(ctx, "unknown aggregate");
}

/// An operator's value: the compiler's constant folder's meaning (ir::EvalScalar). Strings compare by `==`
/// and `!=` only.
Scalar Operator(const Expr& term, const Context& ctx) {
  constexpr size_t kMaxArity = 3;  // clamp's; op_kind.def has no wider operator
  if (term.args.size() > kMaxArity) Fail(ctx, "internal: `" + ir::ToString(term) + "` has too many operands");
  std::array<Scalar, kMaxArity> args;  // no allocation per operation: rules run per response
  std::array<double, kMaxArity> numbers{};
  bool any_text = false;
  for (size_t i = 0; i < term.args.size(); ++i) {
    args[i] = Eval(*term.args[i], ctx);
    numbers[i] = args[i].number;
    any_text = any_text || args[i].is_text;
  }
  if (any_text) {
    const bool equality = term.op == ir::OpKind::Eq || term.op == ir::OpKind::Ne;
    if (!equality || !args[0].is_text || !args[1].is_text) Fail(ctx, "`" + ir::ToString(term) + "` mixes a string in");
    return Num((args[0].text == args[1].text) == (term.op == ir::OpKind::Eq) ? 1 : 0);
  }
  std::optional<double> value = ir::EvalScalar(term.op, std::span<const double>(numbers.data(), term.args.size()));
  if (!value) Fail(ctx, "`" + ir::ToString(term) + "` is undefined here (outside its function's domain)");
  return Num(*value);
}

Scalar Eval(const Expr& term, const Context& ctx) {
  switch (term.kind) {
    case ExprKind::Const:
      if (term.type == ir::ScalarType::String) return Scalar{0, term.text, true};
      if (term.type == ir::ScalarType::Bool) return Num(term.boolean ? 1 : 0);
      return Num(term.number);
    case ExprKind::Field:
      return Field(term, ctx);
    case ExprKind::Aggregate:
      return Aggregate(term, ctx);
    case ExprKind::Normalize: {
      if (ctx.normalized == nullptr || ctx.normalized->count(&term) == 0) {
        Fail(ctx, "`" + ir::ToString(term) + "` normalises across items, which only a weighting does");
      }
      return Num(ctx.normalized->at(&term)[ctx.item]);
    }
    case ExprKind::Op:
      return Operator(term, ctx);
    case ExprKind::Select:
      return Number(*term.args[0], ctx) != 0 ? Eval(*term.args[1], ctx) : Eval(*term.args[2], ctx);
  }
  Fail(ctx, "unknown expression");
}

bool Holds(const ExprRef& where, const Context& ctx) { return !where || Number(*where, ctx) != 0; }

Context AtResponse(const Dataset& data, uint32_t p, int32_t r) {
  Context ctx;
  ctx.data = &data;
  ctx.prompt = p;
  ctx.response = r;
  ctx.source = data[p].responses[static_cast<size_t>(r)].source;
  return ctx;
}

/// The prompt's responses split by source, sources in order of first appearance.
std::vector<std::vector<int32_t>> BySource(const PromptRecord& prompt) {
  std::vector<std::string> order;
  std::map<std::string, std::vector<int32_t>> members;
  for (size_t r = 0; r < prompt.responses.size(); ++r) {
    const std::string& source = prompt.responses[r].source;
    if (members.count(source) == 0) order.push_back(source);
    members[source].push_back(static_cast<int32_t>(r));
  }
  std::vector<std::vector<int32_t>> out;
  for (const std::string& source : order) out.push_back(members[source]);
  return out;
}

std::vector<std::vector<int32_t>> Units(const PromptRecord& prompt, ir::Scope scope) {
  if (scope == ir::Scope::Source) return BySource(prompt);
  std::vector<int32_t> all(prompt.responses.size());
  std::iota(all.begin(), all.end(), 0);
  return {all};
}

/// The candidate of `members` with the highest (or lowest) score; the first one on ties.
std::optional<int32_t> Pick(const Dataset& data, uint32_t p, const std::vector<int32_t>& members,
                            const ExprRef& score, const ExprRef& where, bool highest) {
  std::optional<int32_t> best;
  double best_score = 0;
  for (int32_t r : members) {
    Context ctx = AtResponse(data, p, r);
    if (!Holds(where, ctx)) continue;
    double s = Number(*score, ctx);
    if (!best || (highest ? s > best_score : s < best_score)) {
      best = r;
      best_score = s;
    }
  }
  return best;
}

Context AtItem(const Dataset& data, const ItemSet& items, size_t i) {
  const Item& item = items.items[i];
  Context ctx;
  ctx.data = &data;
  ctx.prompt = item.prompt;
  ctx.item = i;
  ctx.roles = &items.roles;
  ctx.role_responses = &item.responses;
  ctx.source = data[item.prompt].responses[static_cast<size_t>(item.responses.at(0))].source;
  if (items.roles.size() == 1) ctx.response = item.responses[0];  // response items read fields directly
  return ctx;
}

/// Normalises `values` (softmax, normalize, rank, uniform) in place.
void NormalizeValues(ir::Normalization how, std::vector<double>& values, const Context& ctx, const std::string& what) {
  const size_t n = values.size();
  if (how == ir::Normalization::Uniform) {
    std::fill(values.begin(), values.end(), 1.0 / static_cast<double>(n));
  } else if (how == ir::Normalization::Softmax) {
    double top = *std::max_element(values.begin(), values.end());
    double sum = 0;
    for (double& v : values) sum += (v = std::exp(v - top));
    for (double& v : values) v /= sum;
  } else if (how == ir::Normalization::Normalize) {
    double sum = 0;
    for (double v : values) {
      if (v < 0 || !std::isfinite(v)) Fail(ctx, "`" + what + "` normalises a negative or non-finite value");
      sum += v;
    }
    if (sum <= 0) Fail(ctx, "`" + what + "` normalises values that sum to zero");
    for (double& v : values) v /= sum;
  } else {  // rank
    // 1 for the lowest value, n for the highest, ties sharing their mean rank; then normalised to sum 1.
    std::vector<size_t> order(n);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) { return values[a] < values[b]; });
    std::vector<double> ranks(n);
    for (size_t i = 0; i < n;) {
      size_t j = i;
      while (j + 1 < n && values[order[j + 1]] == values[order[i]]) ++j;
      double mean_rank = (static_cast<double>(i + 1) + static_cast<double>(j + 1)) / 2;
      for (size_t k = i; k <= j; ++k) ranks[order[k]] = mean_rank;
      i = j + 1;
    }
    double total = static_cast<double>(n) * static_cast<double>(n + 1) / 2;
    for (size_t i = 0; i < n; ++i) values[i] = ranks[i] / total;
  }
}

}  // namespace

Dataset SplitPart(const Dataset& data, const std::vector<std::pair<std::string, double>>& fractions,
                  const std::string& part, int64_t seed) {
  Dataset out;
  for (const PromptRecord& record : data) {
    std::string digest = Sha256Hex(std::to_string(seed) + std::string(1, '\0') + record.id);
    double u = static_cast<double>(std::stoull(digest.substr(0, 13), nullptr, 16)) / static_cast<double>(1ULL << 52);
    double cumulative = 0;
    for (const auto& [name, fraction] : fractions) {
      cumulative += fraction;
      if (u < cumulative) {
        if (name == part) out.push_back(record);
        break;
      }
    }
  }
  return out;
}

Dataset KeepSources(const Dataset& data, const std::vector<std::string>& sources) {
  std::set<std::string> keep(sources.begin(), sources.end());
  Dataset out;
  for (const PromptRecord& record : data) {
    PromptRecord kept = record;
    kept.responses.clear();
    for (const ResponseRecord& response : record.responses) {
      if (keep.count(response.source) != 0) kept.responses.push_back(response);
    }
    if (!kept.responses.empty()) out.push_back(std::move(kept));
  }
  return out;
}

ItemSet Select(const Dataset& data, const ir::SelectionRule& rule) {
  ItemSet out;
  out.roles = {"y"};
  for (uint32_t p = 0; p < data.size(); ++p) {
    for (const std::vector<int32_t>& unit : Units(data[p], rule.scope)) {
      std::vector<std::pair<double, int32_t>> ranked;
      for (int32_t r : unit) {
        Context ctx = AtResponse(data, p, r);
        if (!Holds(rule.where, ctx)) continue;
        ranked.emplace_back(rule.by ? Number(*rule.by, ctx) : 0.0, r);
      }
      std::stable_sort(ranked.begin(), ranked.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
      size_t keep = rule.k ? std::min(ranked.size(), static_cast<size_t>(*rule.k)) : ranked.size();
      if (keep == 0) ++out.dropped;
      for (size_t i = 0; i < keep; ++i) out.items.push_back(Item{p, {ranked[i].second}});
    }
  }
  return out;
}

ItemSet Pair(const Dataset& data, const ir::PairingRule& rule) {
  ItemSet out;
  for (const ir::RoleRule& role : rule.roles) out.roles.push_back(role.name);
  if (out.roles.empty()) out.roles = {"chosen", "rejected"};
  auto keep = [&](uint32_t p, std::vector<int32_t> responses) {
    Item item{p, std::move(responses)};
    ItemSet probe;
    probe.roles = out.roles;
    probe.items = {item};
    if (rule.where && !Holds(rule.where, AtItem(data, probe, 0))) return;
    out.items.push_back(std::move(item));
  };
  for (uint32_t p = 0; p < data.size(); ++p) {
    if (rule.kind == ir::PairingKind::Within) {
      for (const std::vector<int32_t>& unit : Units(data[p], rule.scope)) {
        std::vector<int32_t> picked;
        for (const ir::RoleRule& role : rule.roles) {
          auto r = Pick(data, p, unit, role.score, role.where, role.argmax);
          if (!r || std::find(picked.begin(), picked.end(), *r) != picked.end()) break;  // no candidate, or reused
          picked.push_back(*r);
        }
        if (picked.size() != rule.roles.size()) {
          ++out.dropped;
          continue;
        }
        keep(p, picked);
      }
      continue;
    }
    // all_pairs and across_sources rank by `by` and keep strictly better/worse pairs at least min_gap apart.
    auto score = [&](int32_t r) { return Number(*rule.by, AtResponse(data, p, r)); };
    std::vector<int32_t> candidates;
    std::vector<std::vector<int32_t>> units;
    if (rule.kind == ir::PairingKind::AcrossSources) {
      std::vector<int32_t> bests;
      for (const std::vector<int32_t>& source : BySource(data[p])) {
        if (auto best = Pick(data, p, source, rule.by, nullptr, true)) bests.push_back(*best);
      }
      units = {bests};
    } else {
      units = Units(data[p], rule.scope);
    }
    for (const std::vector<int32_t>& unit : units) {
      for (size_t i = 0; i < unit.size(); ++i) {
        for (size_t j = 0; j < unit.size(); ++j) {
          double gap = score(unit[i]) - score(unit[j]);
          if (i != j && gap > 0 && gap >= rule.min_gap) keep(p, {unit[i], unit[j]});
        }
      }
    }
  }
  return out;
}

ItemSet Group(const Dataset& data, const ir::GroupingRule& rule) {
  ItemSet out;
  out.roles = {"y"};
  for (uint32_t p = 0; p < data.size(); ++p) {
    for (const std::vector<int32_t>& unit : Units(data[p], rule.scope)) {
      std::vector<int32_t> members;
      for (int32_t r : unit) {
        if (Holds(rule.where, AtResponse(data, p, r))) members.push_back(r);
      }
      if (members.size() < 2) {
        ++out.dropped;
        continue;
      }
      for (int32_t r : members) out.items.push_back(Item{p, {r}, out.groups});
      ++out.groups;
    }
  }
  return out;
}

void Weigh(const Dataset& data, const ir::ExprRef& weight, ItemSet& items) {
  if (!weight) {
    for (Item& item : items.items) item.weight = 1.0;
    return;
  }
  // Normalisations first, innermost first: each needs its argument at every item of its scope.
  std::map<const Expr*, std::vector<double>> normalized;
  std::function<void(const ExprRef&)> prepare = [&](const ExprRef& term) {
    for (const ExprRef& arg : term->args) prepare(arg);
    if (term->kind != ExprKind::Normalize || normalized.count(term.get()) != 0) return;
    const size_t n = items.items.size();
    std::vector<double> values(n, 0.0);
    for (size_t i = 0; i < n && !term->args.empty(); ++i) {
      Context ctx = AtItem(data, items, i);
      ctx.normalized = &normalized;
      values[i] = Number(*term->args[0], ctx);
    }
    // Partition the items: by prompt, or by prompt and source.
    std::map<std::pair<uint32_t, std::string>, std::vector<size_t>> partitions;
    for (size_t i = 0; i < n; ++i) {
      Context ctx = AtItem(data, items, i);
      partitions[{items.items[i].prompt, term->scope == ir::Scope::Source ? ctx.source : ""}].push_back(i);
    }
    std::vector<double> result(n, 0.0);
    std::string what = ir::ToString(*term);
    for (const auto& [key, members] : partitions) {
      Context ctx = AtItem(data, items, members.front());
      if (term->scope != ir::Scope::Sources) {
        std::vector<double> part;
        for (size_t i : members) part.push_back(values[i]);
        NormalizeValues(term->normalization, part, ctx, what);
        for (size_t k = 0; k < members.size(); ++k) result[members[k]] = part[k];
        continue;
      }
      // `over sources`: one value per source, normalised across the prompt's sources; a source's share is
      // split evenly among its items, so a prompt's weights still sum to one.
      std::vector<std::string> sources;
      std::map<std::string, std::vector<size_t>> by_source;
      for (size_t i : members) {
        std::string source = AtItem(data, items, i).source;
        if (by_source.count(source) == 0) sources.push_back(source);
        by_source[source].push_back(i);
      }
      std::vector<double> per_source;
      for (const std::string& source : sources) {
        const std::vector<size_t>& of_source = by_source[source];
        for (size_t i : of_source) {
          if (std::abs(values[i] - values[of_source.front()]) > 1e-12 * std::max(1.0, std::abs(values[i]))) {
            Fail(ctx, "`" + what + "` needs one value per source, but source `" + source + "` has several");
          }
        }
        per_source.push_back(values[of_source.front()]);
      }
      NormalizeValues(term->normalization, per_source, ctx, what);
      for (size_t s = 0; s < sources.size(); ++s) {
        const std::vector<size_t>& of_source = by_source[sources[s]];
        for (size_t i : of_source) result[i] = per_source[s] / static_cast<double>(of_source.size());
      }
    }
    normalized[term.get()] = std::move(result);
  };
  prepare(weight);
  for (size_t i = 0; i < items.items.size(); ++i) {
    Context ctx = AtItem(data, items, i);
    ctx.normalized = &normalized;
    double w = Number(*weight, ctx);
    if (!std::isfinite(w)) Fail(ctx, "the weight `" + ir::ToString(*weight) + "` is not finite");
    items.items[i].weight = w;
  }
}

}  // namespace fusec::rt
