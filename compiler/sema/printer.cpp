// `fusec plan --emit=ast`: the checked program as stable text.
//
// Stable means: the same input gives the same bytes (fixed field order, shortest round-trip numbers, no
// addresses or hash-map order), so golden tests can pin it and a diff between two runs shows what changed.

#include <sstream>

#include "compiler/sema/checked.h"

namespace fusec::sema {
namespace {

std::string Where(const SourceManager& sources, SourceSpan span) {
  if (!span.valid()) return "";
  const SourceFile& file = sources.file(span.file);
  LineColumn position = file.Locate(span.begin);
  return "  # " + file.display_name() + ":" + std::to_string(position.line) + ":" + std::to_string(position.column);
}

std::string Rule(const CheckedSelection& selection) {
  std::string out = selection.k ? "top " + std::to_string(*selection.k) : std::string("all");
  out += " by " + ToString(selection.by) + " over " + std::string(ir::Spelling(selection.scope));
  if (selection.where) out += " where " + ToString(selection.where);
  return out;
}

std::string Rule(const CheckedPairing& pairing) {
  std::string out;
  switch (pairing.kind) {
    case CheckedPairing::Kind::Within: {
      out = "within " + std::string(ir::Spelling(pairing.scope)) + " {";
      for (size_t i = 0; i < pairing.roles.size(); ++i) {
        const RoleSelector& role = pairing.roles[i];
        out += (i > 0 ? ", " : "") + role.name + ": " + (role.argmax ? "argmax(" : "argmin(") + ToString(role.score) + ")";
        if (role.where) out += " where " + ToString(role.where);
      }
      out += "}";
      break;
    }
    case CheckedPairing::Kind::AllPairs:
      out = "all_pairs(by: " + ToString(pairing.by) + ", min_gap: " + FormatFloat(pairing.min_gap) + ") over " +
            std::string(ir::Spelling(pairing.scope));
      break;
    case CheckedPairing::Kind::AcrossSources:
      out = "across_sources(by: " + ToString(pairing.by) + ", min_gap: " + FormatFloat(pairing.min_gap) + ")";
      break;
  }
  if (pairing.where) out += " where " + ToString(pairing.where);
  return out;
}

std::string Rule(const CheckedGrouping& grouping) {
  std::string out = "by " + std::string(ir::Spelling(grouping.scope));
  if (grouping.where) out += " where " + ToString(grouping.where);
  return out;
}

std::string Needs(const LossNeeds& needs) {
  std::vector<std::string> parts;
  for (const std::string& ref : needs.logp_of) parts.push_back("logp(" + ref + ")");
  if (needs.reference_logp) parts.emplace_back("ref_logp");
  if (needs.lengths) parts.emplace_back("len");
  if (needs.rewards) parts.emplace_back("reward");
  if (needs.groups) parts.emplace_back("groups");
  if (needs.progress) parts.emplace_back("progress");
  parts.emplace_back(needs.weight ? "weight inside the loss" : "weight outside the loss");
  std::string out;
  for (size_t i = 0; i < parts.size(); ++i) out += (i > 0 ? ", " : "") + parts[i];
  return out;
}

std::string Named(const NamedValues& values) {
  std::string out;
  for (size_t i = 0; i < values.size(); ++i) out += (i > 0 ? ", " : "") + values[i].first + ": " + ToString(values[i].second);
  return out;
}

void PrintStage(std::ostringstream& out, const CheckedStage& stage, const SourceManager& sources) {
  out << "  stage " << stage.name << ":";
  for (size_t i = 0; i < stage.kinds.size(); ++i) out << (i > 0 ? " ->" : "") << " " << stage.kinds[i];
  out << Where(sources, stage.span) << "\n";
  out << "    init = " << ToString(stage.init) << "\n";
  out << "    data = " << ToString(stage.data) << "\n";
  if (const auto* selection = std::get_if<CheckedSelection>(&stage.rule)) out << "    select = " << Rule(*selection) << "\n";
  if (const auto* pairing = std::get_if<CheckedPairing>(&stage.rule)) out << "    pairs = " << Rule(*pairing) << "\n";
  if (const auto* grouping = std::get_if<CheckedGrouping>(&stage.rule)) out << "    groups = " << Rule(*grouping) << "\n";
  out << "    weight = " << ToString(stage.weight.weight) << "\n";
  if (stage.objective) {
    const CheckedObjective& objective = *stage.objective;
    out << "    objective = " << objective.name << "(" << Named(objective.args) << ") " << UnitSyntax(objective.unit);
    out << "(";
    for (size_t i = 0; i < objective.names.size(); ++i) out << (i > 0 ? ", " : "") << objective.names[i];
    out << ")\n";
    out << "      loss = " << ToString(objective.loss) << "\n";
    out << "      needs = " << Needs(objective.needs) << "\n";
  }
  if (stage.reference) out << "    reference = " << ToString(stage.reference) << "\n";
  const ir::OptimSpec& o = stage.optim;
  out << "    optim = " << o.name << "(lr: " << FormatFloat(o.lr) << ", betas: [" << FormatFloat(o.beta1) << ", "
      << FormatFloat(o.beta2) << "], eps: " << FormatFloat(o.eps) << ", weight_decay: " << FormatFloat(o.weight_decay)
      << ", warmup: " << FormatFloat(o.warmup) << ", schedule: " << ir::Spelling(o.schedule)
      << ", min_lr_ratio: " << FormatFloat(o.min_lr_ratio) << ")\n";
  out << "    epochs = " << stage.epochs << "\n";
  if (stage.max_steps) out << "    max_steps = " << *stage.max_steps << "\n";
  out << "    batch = " << stage.batch << "\n";
  out << "    micro_batch = " << stage.micro_batch << "\n";
  out << "    max_len = " << stage.max_len << "\n";
  if (stage.max_prompt_len) out << "    max_prompt_len = " << *stage.max_prompt_len << "\n";
  out << "    seed = " << stage.seed << "\n";
  out << "    precision = " << ir::Spelling(stage.precision) << "\n";
  out << "    grad_clip = " << (stage.grad_clip ? FormatFloat(*stage.grad_clip) : std::string("none")) << "\n";
  if (stage.save_every) out << "    save_every = " << *stage.save_every << "\n";
  out << "    shard = " << ir::Spelling(stage.shard) << "\n";
  if (!stage.depends_on.empty()) {
    out << "    after =";
    for (const std::string& dependency : stage.depends_on) out << " " << dependency;
    out << "\n";
  }
}

}  // namespace

std::string PrintProgram(const CheckedProgram& program, const SourceManager& sources) {
  std::ostringstream out;
  for (size_t i = 0; i < program.experiments.size(); ++i) {
    const CheckedExperiment& experiment = program.experiments[i];
    if (i > 0) out << "\n";
    out << "experiment " << experiment.name << Where(sources, experiment.span) << "\n";
    if (!experiment.template_name.empty()) {
      out << "  template = " << experiment.template_name << "(" << Named(experiment.template_args) << ")\n";
    }
    if (!experiment.sweep.empty()) out << "  sweep = " << experiment.sweep << "\n";
    out << "  target = " << ToString(experiment.target) << "\n";
    out << "  seed = " << experiment.seed << "\n";
    out << "  output = \"" << experiment.output << "\"\n";
    out << "  device = " << ir::Spelling(experiment.device) << "\n";
    if (experiment.eval) out << "  eval = " << ToString(experiment.eval) << "\n";
    for (const CheckedStage& stage : experiment.stages) PrintStage(out, stage, sources);
  }
  return out.str();
}

}  // namespace fusec::sema
