#include "compiler/ir/ir.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <set>
#include <sstream>

#include "compiler/support/sha256.h"

namespace fusec::ir {
namespace {

struct KindInfo {
  std::string_view spelling;
  int version;
};

constexpr KindInfo kKinds[] = {
#define FUSEC_NODE_KIND(Name, Spelling, Version) {Spelling, Version},
#include "compiler/ir/node_kind.def"
#undef FUSEC_NODE_KIND
};

std::string Join(const std::vector<std::string>& items, std::string_view separator) {
  std::string out;
  for (size_t i = 0; i < items.size(); ++i) {
    if (i > 0) out += separator;
    out += items[i];
  }
  return out;
}

std::string Short(const std::string& hash) { return hash.empty() ? "-" : hash.substr(0, 12); }

}  // namespace

std::string_view Spelling(NodeKind kind) { return kKinds[static_cast<size_t>(kind)].spelling; }
int KindVersion(NodeKind kind) { return kKinds[static_cast<size_t>(kind)].version; }

const std::vector<NodeKind>& AllNodeKinds() {
  static const std::vector<NodeKind> kinds = [] {
    std::vector<NodeKind> all;
    for (size_t i = 0; i < std::size(kKinds); ++i) all.push_back(static_cast<NodeKind>(i));
    return all;
  }();
  return kinds;
}

std::optional<NodeKind> NodeKindByName(std::string_view spelling) {
  for (NodeKind kind : AllNodeKinds()) {
    if (Spelling(kind) == spelling) return kind;
  }
  return std::nullopt;
}

std::string_view Spelling(ValueType type) {
  switch (type) {
    case ValueType::Model:
      return "model";
    case ValueType::Dataset:
      return "dataset";
    case ValueType::Items:
      return "items";
    case ValueType::Weighted:
      return "weighted items";
    case ValueType::RefLogprobs:
      return "reference log-probabilities";
    case ValueType::Metrics:
      return "metrics";
    case ValueType::Directory:
      return "directory";
  }
  return "?";
}

const Signature& SignatureOf(NodeKind kind) {
  static const std::map<NodeKind, Signature> signatures = {
      {NodeKind::LoadModel, {{}, ValueType::Model}},
      {NodeKind::LoadData, {{}, ValueType::Dataset}},
      {NodeKind::FilterSources, {{{"data", ValueType::Dataset}}, ValueType::Dataset}},
      {NodeKind::Split, {{{"data", ValueType::Dataset}}, ValueType::Dataset}},
      {NodeKind::Sample,
       {{{"prompts", ValueType::Dataset}, {"model", ValueType::Model, /*optional=*/false, /*repeated=*/true}},
        ValueType::Dataset}},
      {NodeKind::Score, {{{"data", ValueType::Dataset}}, ValueType::Dataset}},
      // `tokenizer`: the stage's model, whose tokenizer gives `len` when the rule or the weighting reads it.
      {NodeKind::Select,
       {{{"data", ValueType::Dataset}, {"tokenizer", ValueType::Model, /*optional=*/true}}, ValueType::Items}},
      {NodeKind::Pairs,
       {{{"data", ValueType::Dataset}, {"tokenizer", ValueType::Model, /*optional=*/true}}, ValueType::Items}},
      {NodeKind::Groups,
       {{{"data", ValueType::Dataset}, {"tokenizer", ValueType::Model, /*optional=*/true}}, ValueType::Items}},
      {NodeKind::Weight, {{{"items", ValueType::Items}}, ValueType::Weighted}},
      {NodeKind::RefLogprobs, {{{"model", ValueType::Model}, {"items", ValueType::Items}}, ValueType::RefLogprobs}},
      {NodeKind::Train,
       {{{"init", ValueType::Model},
         {"items", ValueType::Weighted},
         {"reference", ValueType::Model, /*optional=*/true},
         {"ref_logprobs", ValueType::RefLogprobs, /*optional=*/true}},
        ValueType::Model}},
      {NodeKind::Evaluate,
       {{{"data", ValueType::Dataset}, {"model", ValueType::Model, /*optional=*/true, /*repeated=*/true}},
        ValueType::Metrics}},
      {NodeKind::Export, {{{"model", ValueType::Model}}, ValueType::Directory}},
  };
  return signatures.at(kind);
}

const Input* Node::FindInput(std::string_view slot) const {
  for (const Input& input : inputs) {
    if (input.slot == slot) return &input;
  }
  return nullptr;
}

bool ReadsResponseLength(const Payload& payload) {
  auto reads = [](const ExprRef& expr) { return ReadsField(expr, Field::Len); };
  if (const auto* select = std::get_if<Select>(&payload)) return reads(select->rule.by) || reads(select->rule.where);
  if (const auto* pairs = std::get_if<Pairs>(&payload)) {
    bool any = reads(pairs->rule.by) || reads(pairs->rule.where);
    for (const RoleRule& role : pairs->rule.roles) any = any || reads(role.score) || reads(role.where);
    return any;
  }
  if (const auto* groups = std::get_if<Groups>(&payload)) return reads(groups->rule.where);
  if (const auto* weight = std::get_if<Weight>(&payload)) return reads(weight->weight);
  return false;
}

bool NeedsDevice(const Node& node) {
  switch (node.kind()) {
    case NodeKind::Sample:
    case NodeKind::RefLogprobs:
    case NodeKind::Train:
    case NodeKind::Evaluate:
      return true;
    case NodeKind::Score:
      return std::holds_alternative<RewardModelSpec>(node.as<Score>().scorer);
    case NodeKind::LoadModel:
    case NodeKind::LoadData:
    case NodeKind::FilterSources:
    case NodeKind::Split:
    case NodeKind::Select:
    case NodeKind::Pairs:
    case NodeKind::Groups:
    case NodeKind::Weight:
    case NodeKind::Export:
      return false;
  }
  return false;
}

const LossGraph* LossOf(const Node& node) {
  const auto* train = node.get_if<Train>();
  return train != nullptr ? &train->loss : nullptr;
}

namespace {

/// The parameters that decide a node's outputs: its JSON view without `save_every`, which says only how often
/// a stage checkpoints, so a rerun with another cadence reuses the stage's entry and resumes its checkpoints,
/// and without `shard`, which says only how several ranks hold the optimizer's state (like the world size,
/// it changes rounding, not what is computed).
nlohmann::ordered_json HashedParams(const Node& node) {
  nlohmann::ordered_json params = ParamsJson(node);
  if (node.kind() == NodeKind::Train) {
    params.erase("save_every");
    params.erase("shard");
  }
  return params;
}

}  // namespace

std::string ComputeHash(const Node& node, const Graph& graph) {
  Sha256 hash;
  hash.Update("fusec-node\n");
  hash.Update(Spelling(node.kind())).Update("\nversion ").Update(std::to_string(KindVersion(node.kind()))).Update("\n");
  hash.Update(HashedParams(node).dump()).Update("\n");
  if (const LossGraph* loss = LossOf(node)) hash.Update(loss->ToString());
  for (const Input& input : node.inputs) {
    hash.Update("input ").Update(input.slot).Update(" ").Update(graph.at(input.node).hash).Update("\n");
  }
  return hash.HexDigest();
}

std::vector<std::string> Verify(const Graph& graph) {
  std::vector<std::string> problems;
  auto problem = [&](size_t index, const std::string& what) {
    problems.push_back("node %" + std::to_string(index) + " (" + std::string(Spelling(graph.nodes[index].kind())) +
                       "): " + what);
  };
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    const Signature& signature = SignatureOf(node.kind());
    std::map<std::string_view, int> counts;
    for (const Input& input : node.inputs) {
      if (!input.node.valid() || input.node.value >= i) {
        problem(i, "input `" + input.slot + "` is not an earlier node");
        continue;
      }
      auto slot = std::find_if(signature.inputs.begin(), signature.inputs.end(),
                               [&](const Slot& s) { return s.name == input.slot; });
      if (slot == signature.inputs.end()) {
        problem(i, "has no input slot `" + input.slot + "`");
        continue;
      }
      ++counts[slot->name];
      ValueType actual = SignatureOf(graph.at(input.node).kind()).output;
      if (actual != slot->type) {
        problem(i, "input `" + input.slot + "` is " + std::string(Spelling(actual)) + ", expected " +
                       std::string(Spelling(slot->type)));
      }
    }
    for (const Slot& slot : signature.inputs) {
      int count = counts[slot.name];
      if (count == 0 && !slot.optional) problem(i, "misses input `" + std::string(slot.name) + "`");
      if (count > 1 && !slot.repeated) problem(i, "has input `" + std::string(slot.name) + "` twice");
    }
    if (const auto* train = node.get_if<Train>()) {
      {
        const LossGraph& loss = train->loss;
        for (size_t op = 0; op < loss.ops.size(); ++op) {
          for (int arg : loss.ops[op].args) {
            if (arg < 0 || static_cast<size_t>(arg) >= op) {
              problem(i, "loss op %" + std::to_string(op) + " reads %" + std::to_string(arg) + ", not an earlier op");
            }
          }
          const LossOp& o = loss.ops[op];
          bool reads_role = o.kind == LossOpKind::Logp || o.kind == LossOpKind::RefLogp ||
                            o.kind == LossOpKind::Length || o.kind == LossOpKind::Reward;
          if (reads_role && std::find(loss.roles.begin(), loss.roles.end(), o.role) == loss.roles.end()) {
            problem(i, "loss op %" + std::to_string(op) + " reads `" + o.role + "`, which the unit does not name");
          }
        }
        if (loss.result < 0 || static_cast<size_t>(loss.result) >= loss.ops.size()) {
          problem(i, "loss result is not an op");
        }
      }
      bool has_reference = node.FindInput("reference") != nullptr;
      bool has_ref_logprobs = node.FindInput("ref_logprobs") != nullptr;
      if (has_reference && has_ref_logprobs) problem(i, "has both a reference model and reference log-probabilities");
      if (train->requirements) {
        bool needs = !train->requirements->reference_logp.empty();
        if (needs && !has_reference && !has_ref_logprobs) problem(i, "reads ref_logp but has no reference");
        if (!needs && (has_reference || has_ref_logprobs)) problem(i, "has a reference its loss never reads");
      }
    }
    const bool is_rule = node.kind() == NodeKind::Select || node.kind() == NodeKind::Pairs ||
                         node.kind() == NodeKind::Groups;
    if (is_rule && ReadsResponseLength(node.payload) && node.FindInput("tokenizer") == nullptr) {
      problem(i, "reads `len` but has no tokenizer input");
    }
    if (const auto* weight = node.get_if<Weight>(); weight != nullptr && !weight->weight) {
      problem(i, "has no weight expression");
    }
    if (node.kind() == NodeKind::Weight && ReadsResponseLength(node.payload)) {
      const Input* items = node.FindInput("items");
      if (items != nullptr && items->node.value < i && graph.at(items->node).FindInput("tokenizer") == nullptr) {
        problem(i, "reads `len` but its items come from a rule node without a tokenizer input");
      }
    }
    if (!node.hash.empty()) {
      bool inputs_hashed = std::all_of(node.inputs.begin(), node.inputs.end(), [&](const Input& input) {
        return input.node.valid() && input.node.value < i && !graph.at(input.node).hash.empty();
      });
      if (!inputs_hashed) {
        problem(i, "is hashed but its inputs are not");
      } else if (ComputeHash(node, graph) != node.hash) {
        problem(i, "hash does not match its content");
      }
    }
  }
  for (const ExperimentOutputs& experiment : graph.experiments) {
    auto check = [&](NodeId id, NodeKind kind, const std::string& what) {
      if (!id.valid() || id.value >= graph.nodes.size() || graph.at(id).kind() != kind) {
        problems.push_back("experiment `" + experiment.name + "`: " + what + " is not a " +
                           std::string(Spelling(kind)) + " node");
      }
    };
    for (const auto& [stage, id] : experiment.stages) check(id, NodeKind::Train, "stage `" + stage + "`");
    for (const auto& [stage, id] : experiment.exports) check(id, NodeKind::Export, "export of `" + stage + "`");
    if (experiment.evaluation) check(*experiment.evaluation, NodeKind::Evaluate, "the evaluation");
  }
  return problems;
}

std::string SpanText(const SourceManager& sources, SourceSpan span) {
  if (!span.valid()) return "";
  const SourceFile& file = sources.file(span.file);
  LineColumn position = file.Locate(span.begin);
  return file.display_name() + ":" + std::to_string(position.line) + ":" + std::to_string(position.column);
}

std::string PrintGraph(const Graph& graph, const SourceManager& sources) {
  std::ostringstream out;
  for (const ExperimentOutputs& experiment : graph.experiments) {
    out << "; experiment " << experiment.name << " -> " << experiment.output << "\n";
    std::vector<std::string> stages;
    for (const auto& [stage, id] : experiment.stages) stages.push_back(stage + " = %" + std::to_string(id.value));
    if (!stages.empty()) out << ";   stages: " << Join(stages, ", ") << "\n";
    if (experiment.evaluation) out << ";   evaluation: %" << experiment.evaluation->value << "\n";
  }
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    out << "%" << i << " = " << Spelling(node.kind());
    std::vector<std::string> inputs;
    for (const Input& input : node.inputs) inputs.push_back(input.slot + ": %" + std::to_string(input.node.value));
    out << "(" << Join(inputs, ", ") << ")";
    const nlohmann::ordered_json params = ParamsJson(node);
    if (!params.empty()) out << " " << params.dump();
    out << "\n    ; hash " << Short(node.hash) << (node.hash.empty() ? "" : node.cached ? ", cached" : ", to run");
    if (!node.stages.empty()) out << ", for " << Join(node.stages, " ");
    std::string where = SpanText(sources, node.span);
    if (!where.empty()) out << ", at " << where;
    if (NeedsDevice(node)) out << ", on device";
    out << "\n";
    if (const auto* train = node.get_if<Train>()) {
      out << "    loss " << Spelling(train->loss.unit) << "(" << Join(train->loss.roles, ", ") << ") of "
          << train->loss.objective << ":\n";
      std::istringstream lines(train->loss.ToString());
      for (std::string line; std::getline(lines, line);) out << "      " << line << "\n";
      if (train->requirements) out << "    needs " << train->requirements->ToString() << "\n";
    }
  }
  return out.str();
}

std::string ToJson(const Graph& graph, const SourceManager& sources) {
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    nlohmann::ordered_json entry;
    entry["id"] = i;
    entry["kind"] = Spelling(node.kind());
    entry["stage"] = node.stages.empty() ? nlohmann::ordered_json(nullptr) : nlohmann::ordered_json(node.stages.front());
    entry["stages"] = node.stages;
    entry["hash"] = node.hash;
    nlohmann::ordered_json inputs = nlohmann::ordered_json::array();
    for (const Input& input : node.inputs) inputs.push_back(input.node.value);
    entry["inputs"] = inputs;
    nlohmann::ordered_json slots = nlohmann::ordered_json::object();
    for (const Input& input : node.inputs) slots[input.slot] = input.node.value;
    entry["input_slots"] = slots;
    entry["span"] = SpanText(sources, node.span);
    entry["cached"] = node.cached;
    entry["params"] = ParamsJson(node);
    if (const auto* train = node.get_if<Train>()) {
      entry["loss"] = train->loss.ToString();
      if (train->requirements) entry["needs"] = train->requirements->ToString();
    }
    nodes.push_back(std::move(entry));
  }
  nlohmann::ordered_json experiments = nlohmann::ordered_json::array();
  for (const ExperimentOutputs& experiment : graph.experiments) {
    nlohmann::ordered_json entry;
    entry["name"] = experiment.name;
    entry["output"] = experiment.output;
    nlohmann::ordered_json stages = nlohmann::ordered_json::object();
    for (const auto& [stage, id] : experiment.stages) stages[stage] = id.value;
    entry["stages"] = stages;
    nlohmann::ordered_json exports = nlohmann::ordered_json::object();
    for (const auto& [stage, id] : experiment.exports) exports[stage] = id.value;
    entry["exports"] = exports;
    entry["evaluation"] =
        experiment.evaluation ? nlohmann::ordered_json(experiment.evaluation->value) : nlohmann::ordered_json(nullptr);
    experiments.push_back(std::move(entry));
  }
  nlohmann::ordered_json root;
  root["nodes"] = std::move(nodes);
  root["experiments"] = std::move(experiments);
  return root.dump(2) + "\n";
}

std::string ToDot(const Graph& graph) {
  std::ostringstream out;
  out << "digraph fusec {\n  rankdir=LR;\n  node [shape=box, fontname=\"Helvetica\"];\n";
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    std::string label = std::string(Spelling(node.kind()));
    if (!node.stages.empty()) label += "\\n" + Join(node.stages, "\\n");
    label += "\\n" + Short(node.hash);
    out << "  n" << i << " [label=\"" << label << "\"";
    if (node.cached) out << ", style=filled, fillcolor=\"#dddddd\"";
    if (node.kind() == NodeKind::Train) out << ", penwidth=2";
    out << "];\n";
  }
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    for (const Input& input : graph.nodes[i].inputs) {
      out << "  n" << input.node.value << " -> n" << i << " [label=\"" << input.slot << "\"];\n";
    }
  }
  out << "}\n";
  return out.str();
}

}  // namespace fusec::ir
