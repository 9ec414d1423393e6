// What the checker knows of a dataset's sources, and the checks that use it.
//
// A source is a name on each response (`source`). A sampled dataset's sources are its models' names, which
// the checker knows; a file's (`jsonl`) are known only when it is read, so those stay unknown and nothing is
// checked. Sets are upper bounds (keep_sources lists what may remain), which is all a check needs: a name
// outside the set matches no response, so `keep_sources` naming it keeps nothing of it and `where source ==
// "x"` selects nothing, which is an error rather than an empty stage found after hours of sampling.

#include <algorithm>
#include <set>

#include "compiler/diag/suggest.h"
#include "compiler/sema/sema.h"

namespace fusec::sema {
namespace {

const ConstructedVal* Constructed(const ValueRef& value) {
  return value == nullptr ? nullptr : value->As<ConstructedVal>();
}

/// The dataset a split part, a source filter or a scored dataset is made from.
ValueRef InputOf(const ConstructedVal& dataset) {
  if (dataset.constructor == "split_part") {
    const ConstructedVal* split = Constructed(FindNamed(dataset.args, "split"));
    return split == nullptr ? nullptr : FindNamed(split->args, "data");
  }
  if (dataset.constructor == "keep_sources" || dataset.constructor == "score") return FindNamed(dataset.args, "data");
  if (dataset.constructor == "sample") return FindNamed(dataset.args, "prompts");
  return nullptr;
}

std::string Listed(const std::vector<std::string>& names) {
  std::string out;
  for (const std::string& name : names) out += (out.empty() ? "`" : ", `") + name + "`";
  return out;
}

}  // namespace

std::optional<std::vector<std::string>> KnownSources(const Value& dataset) {
  const auto* constructed = dataset.As<ConstructedVal>();
  if (constructed == nullptr) return std::nullopt;
  const std::string& kind = constructed->constructor;
  if (kind == "keep_sources") {
    const auto* list = FindNamed(constructed->args, "sources") ? FindNamed(constructed->args, "sources")->As<ListVal>()
                                                               : nullptr;
    if (list == nullptr) return std::nullopt;
    std::vector<std::string> names;
    for (const ValueRef& element : list->elements) {
      const auto* name = element->As<std::string>();
      if (name == nullptr) return std::nullopt;
      names.push_back(*name);
    }
    return names;
  }
  if (kind == "split_part" || kind == "score") {
    ValueRef input = InputOf(*constructed);
    return input ? KnownSources(*input) : std::nullopt;
  }
  if (kind == "sample") {
    ValueRef models = FindNamed(constructed->args, "models");
    ValueRef keep = FindNamed(constructed->args, "keep_responses");
    const auto* record = models ? models->As<RecordVal>() : nullptr;
    const auto* keeps = keep ? keep->As<bool>() : nullptr;
    if (record == nullptr || keeps == nullptr) return std::nullopt;
    std::vector<std::string> names;
    if (*keeps) {
      ValueRef prompts = FindNamed(constructed->args, "prompts");
      auto own = prompts ? KnownSources(*prompts) : std::nullopt;
      if (!own) return std::nullopt;
      names = *own;
    }
    for (const auto& [name, source] : record->fields) {
      if (std::find(names.begin(), names.end(), name) == names.end()) names.push_back(name);
    }
    return names;
  }
  return std::nullopt;  // jsonl: the file says
}

std::vector<std::string> StagesReadBy(const Value& dataset) {
  std::vector<std::string> stages;
  const auto* constructed = dataset.As<ConstructedVal>();
  if (constructed == nullptr) return stages;
  if (constructed->constructor == "sample") {
    if (ValueRef models = FindNamed(constructed->args, "models"); models && models->As<RecordVal>()) {
      for (const auto& [name, source] : models->As<RecordVal>()->fields) {
        const auto* fields = source->As<RecordVal>();
        ValueRef model = fields ? FindNamed(fields->fields, "model") : nullptr;
        if (const auto* stage = model ? model->As<StageModelVal>() : nullptr) stages.push_back(stage->stage);
      }
    }
  }
  if (ValueRef input = InputOf(*constructed)) {
    for (const std::string& stage : StagesReadBy(*input)) stages.push_back(stage);
  }
  std::sort(stages.begin(), stages.end());
  stages.erase(std::unique(stages.begin(), stages.end()), stages.end());
  return stages;
}

bool Sema::CheckKeptSources(const ValueRef& data, const ValueRef& sources) {
  if (data == nullptr || sources == nullptr) return true;
  std::optional<std::vector<std::string>> known = KnownSources(*data);
  const auto* list = sources->As<ListVal>();
  if (!known || list == nullptr) return true;
  bool ok = true;
  for (const ValueRef& element : list->elements) {
    const auto* name = element->As<std::string>();
    if (name == nullptr || std::find(known->begin(), known->end(), *name) != known->end()) continue;
    auto builder = Report(DiagnosticKind::UnknownSource, element->span.valid() ? element->span : sources->span,
                          "`keep_sources` keeps source \"" + *name + "\", which the data does not have");
    builder.Note(data->span, "the data's sources are " + Listed(*known));
    std::string hint = DidYouMean(*name, *known);
    if (!hint.empty()) builder.Help(hint);
    ok = false;
  }
  return ok;
}

bool Sema::CheckRuleSources(const CheckedStage& stage) {
  if (stage.data == nullptr) return true;
  std::optional<std::vector<std::string>> known = KnownSources(*stage.data);
  if (!known) return true;
  // Each term with the field it is the value of, for where to report.
  std::vector<std::pair<TermRef, std::string>> terms;
  if (const auto* selection = std::get_if<CheckedSelection>(&stage.rule)) {
    terms = {{selection->by, "select"}, {selection->where, "select"}};
  } else if (const auto* pairing = std::get_if<CheckedPairing>(&stage.rule)) {
    terms = {{pairing->by, "pairs"}, {pairing->where, "pairs"}};
    for (const RoleSelector& role : pairing->roles) {
      terms.emplace_back(role.score, "pairs");
      terms.emplace_back(role.where, "pairs");
    }
  } else if (const auto* grouping = std::get_if<CheckedGrouping>(&stage.rule)) {
    terms = {{grouping->where, "groups"}};
  }
  terms.emplace_back(stage.weight.weight, "weight");
  auto span_of = [&](const std::string& field) {
    auto it = stage.field_spans.find(field);
    return it != stage.field_spans.end() ? it->second : SourceSpan{};
  };
  bool ok = true;
  SourceSpan data_at = span_of("data").valid() ? span_of("data") : stage.data->span;
  std::set<std::string> reported;  // one error per name, however many comparisons use it
  for (const auto& [root, field] : terms) {
    ForEachTerm(root, [&, &field = field](const Term& term) {
      if (term.op != TermOp::Binary || (term.name != "==" && term.name != "!=") || term.args.size() != 2) return;
      const Term* source = term.args[0].get();
      const Term* constant = term.args[1].get();
      if (constant->op == TermOp::Field) std::swap(source, constant);
      if (source->op != TermOp::Field || source->name != "source" || constant->op != TermOp::Const ||
          constant->type != ScalarType::String || constant->name == "?") {  // `?`: a template's Unknown
        return;
      }
      if (std::find(known->begin(), known->end(), constant->text) != known->end()) return;
      if (!reported.insert(constant->text).second) return;
      // At the name when the stage's field writes it; a name passed into a declared rule (`wrpo_triples("x")`)
      // is reported at the field, with a note at the comparison.
      SourceSpan compared = constant->span.valid() ? constant->span : term.span;
      SourceSpan at = span_of(field);
      bool inside = at.valid() && compared.file == at.file && compared.begin >= at.begin && compared.end <= at.end;
      auto builder = Report(DiagnosticKind::UnknownSource, inside || !at.valid() ? compared : at,
                            "stage `" + stage.name + "` compares `source` with \"" + constant->text +
                                "\", which its data does not have");
      if (!inside && at.valid()) builder.Note(compared, "compared here");
      builder.Note(data_at, "the data's sources are " + Listed(*known));
      std::string hint = DidYouMean(constant->text, *known);
      if (!hint.empty()) builder.Help(hint);
      ok = false;
    });
  }
  return ok;
}

}  // namespace fusec::sema
