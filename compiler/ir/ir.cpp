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

std::string_view Spelling(LossOpKind kind) {
  switch (kind) {
    case LossOpKind::Const:
      return "const";
    case LossOpKind::Logp:
      return "logp";
    case LossOpKind::RefLogp:
      return "ref_logp";
    case LossOpKind::Length:
      return "len";
    case LossOpKind::Reward:
      return "reward";
    case LossOpKind::Weight:
      return "weight";
    case LossOpKind::Progress:
      return "progress";
    case LossOpKind::Unary:
      return "unary";
    case LossOpKind::Binary:
      return "binary";
    case LossOpKind::Math:
      return "math";
    case LossOpKind::Select:
      return "select";
    case LossOpKind::Reduce:
      return "reduce";
    case LossOpKind::LooMean:
      return "loo_mean";
  }
  return "?";
}

std::string LossGraph::ToString() const {
  std::ostringstream out;
  for (size_t i = 0; i < ops.size(); ++i) {
    const LossOp& op = ops[i];
    out << "%" << i << " = ";
    switch (op.kind) {
      case LossOpKind::Const:
        if (op.type == sema::ScalarType::Bool) {
          out << (op.value != 0 ? "true" : "false");
        } else if (op.type == sema::ScalarType::Int) {
          out << static_cast<int64_t>(op.value);
        } else {
          out << sema::FormatFloat(op.value);
        }
        break;
      case LossOpKind::Logp:
      case LossOpKind::RefLogp:
      case LossOpKind::Length:
      case LossOpKind::Reward:
        out << Spelling(op.kind) << "(" << op.role << ")";
        break;
      case LossOpKind::Weight:
      case LossOpKind::Progress:
        out << Spelling(op.kind);
        break;
      case LossOpKind::Unary:
      case LossOpKind::Binary:
      case LossOpKind::Math:
      case LossOpKind::Reduce:
        out << op.name;
        break;
      case LossOpKind::Select:
        out << "select";
        break;
      case LossOpKind::LooMean:
        out << "loo_mean";
        break;
    }
    for (size_t a = 0; a < op.args.size(); ++a) out << (a == 0 ? " %" : ", %") << op.args[a];
    out << "\n";
  }
  out << "result %" << result << "\n";
  return out.str();
}

std::string Requirements::ToString() const {
  std::vector<std::string> parts;
  for (const std::string& role : policy_logp) parts.push_back("logp(" + role + ")");
  for (const std::string& role : reference_logp) parts.push_back("ref_logp(" + role + ")");
  if (lengths) parts.emplace_back("len");
  if (rewards) parts.emplace_back("reward");
  if (groups) parts.emplace_back("groups");
  if (progress) parts.emplace_back("progress");
  parts.emplace_back(weight_in_loss ? "weight inside the loss" : "weight outside the loss");
  return Join(parts, ", ");
}

const Input* Node::FindInput(std::string_view slot) const {
  for (const Input& input : inputs) {
    if (input.slot == slot) return &input;
  }
  return nullptr;
}

bool ReadsResponseLength(const sema::TermRef& term) {
  bool reads = false;
  sema::ForEachTerm(term, [&](const sema::Term& t) {
    reads = reads || (t.op == sema::TermOp::Field && t.name == "len");
  });
  return reads;
}

bool ReadsResponseLength(const Rule& rule) {
  if (const auto* selection = std::get_if<sema::CheckedSelection>(&rule)) {
    return ReadsResponseLength(selection->by) || ReadsResponseLength(selection->where);
  }
  if (const auto* pairing = std::get_if<sema::CheckedPairing>(&rule)) {
    bool reads = ReadsResponseLength(pairing->by) || ReadsResponseLength(pairing->where);
    for (const sema::RoleSelector& role : pairing->roles) {
      reads = reads || ReadsResponseLength(role.score) || ReadsResponseLength(role.where);
    }
    return reads;
  }
  if (const auto* grouping = std::get_if<sema::CheckedGrouping>(&rule)) return ReadsResponseLength(grouping->where);
  return false;
}

std::string ComputeHash(const Node& node, const Graph& graph) {
  Sha256 hash;
  hash.Update("fusec-node\n");
  hash.Update(Spelling(node.kind)).Update("\nversion ").Update(std::to_string(KindVersion(node.kind))).Update("\n");
  hash.Update(node.params.dump()).Update("\n");
  if (node.loss) hash.Update(node.loss->ToString());
  for (const Input& input : node.inputs) {
    hash.Update("input ").Update(input.slot).Update(" ").Update(graph.at(input.node).hash).Update("\n");
  }
  return hash.HexDigest();
}

std::vector<std::string> Verify(const Graph& graph) {
  std::vector<std::string> problems;
  auto problem = [&](size_t index, const std::string& what) {
    problems.push_back("node %" + std::to_string(index) + " (" + std::string(Spelling(graph.nodes[index].kind)) +
                       "): " + what);
  };
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    const Signature& signature = SignatureOf(node.kind);
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
      ValueType actual = SignatureOf(graph.at(input.node).kind).output;
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
    if (node.kind == NodeKind::Train) {
      if (!node.loss) {
        problem(i, "has no loss graph");
      } else {
        const LossGraph& loss = *node.loss;
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
      if (node.requirements) {
        bool needs = !node.requirements->reference_logp.empty();
        if (needs && !has_reference && !has_ref_logprobs) problem(i, "reads ref_logp but has no reference");
        if (!needs && (has_reference || has_ref_logprobs)) problem(i, "has a reference its loss never reads");
      }
    }
    if ((node.kind == NodeKind::Select || node.kind == NodeKind::Pairs || node.kind == NodeKind::Groups) &&
        std::holds_alternative<std::monostate>(node.rule)) {
      problem(i, "has no rule");
    }
    if (ReadsResponseLength(node.rule) && node.FindInput("tokenizer") == nullptr) {
      problem(i, "reads `len` but has no tokenizer input");
    }
    if (node.kind == NodeKind::Weight && !node.weight) problem(i, "has no weight term");
    if (node.kind == NodeKind::Weight && ReadsResponseLength(node.weight)) {
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
      if (!id.valid() || id.value >= graph.nodes.size() || graph.at(id).kind != kind) {
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

std::optional<double> EvalMath(const std::string& name, const std::vector<double>& x) {
  if (name == "log") return x[0] > 0 ? std::optional<double>(std::log(x[0])) : std::nullopt;
  if (name == "exp") return std::exp(x[0]);
  if (name == "sigmoid") return 1.0 / (1.0 + std::exp(-x[0]));
  if (name == "log_sigmoid") return x[0] >= 0 ? -std::log1p(std::exp(-x[0])) : x[0] - std::log1p(std::exp(x[0]));
  if (name == "softplus") return x[0] > 0 ? x[0] + std::log1p(std::exp(-x[0])) : std::log1p(std::exp(x[0]));
  if (name == "relu") return std::max(0.0, x[0]);
  if (name == "abs") return std::abs(x[0]);
  if (name == "sqrt") return x[0] >= 0 ? std::optional<double>(std::sqrt(x[0])) : std::nullopt;
  if (name == "detach") return x[0];
  if (name == "min") return std::min(x[0], x[1]);
  if (name == "max") return std::max(x[0], x[1]);
  if (name == "clamp") return std::clamp(x[0], x[1], std::max(x[1], x[2]));
  return std::nullopt;
}

std::optional<double> EvalBinary(const std::string& name, double a, double b) {
  if (name == "+") return a + b;
  if (name == "-") return a - b;
  if (name == "*") return a * b;
  if (name == "/") return b != 0 ? std::optional<double>(a / b) : std::nullopt;
  if (name == "^") return std::pow(a, b);
  if (name == "==") return a == b;
  if (name == "!=") return a != b;
  if (name == "<") return a < b;
  if (name == "<=") return a <= b;
  if (name == ">") return a > b;
  if (name == ">=") return a >= b;
  if (name == "and") return (a != 0) && (b != 0);
  if (name == "or") return (a != 0) || (b != 0);
  return std::nullopt;
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
    out << "%" << i << " = " << Spelling(node.kind);
    std::vector<std::string> inputs;
    for (const Input& input : node.inputs) inputs.push_back(input.slot + ": %" + std::to_string(input.node.value));
    out << "(" << Join(inputs, ", ") << ")";
    if (!node.params.empty()) out << " " << node.params.dump();
    out << "\n    ; hash " << Short(node.hash) << (node.hash.empty() ? "" : node.cached ? ", cached" : ", to run");
    if (!node.stages.empty()) out << ", for " << Join(node.stages, " ");
    std::string where = SpanText(sources, node.span);
    if (!where.empty()) out << ", at " << where;
    out << "\n";
    if (node.loss) {
      out << "    loss " << sema::UnitSyntax(node.loss->unit) << "(" << Join(node.loss->roles, ", ") << ") of "
          << node.loss->objective << ":\n";
      std::istringstream lines(node.loss->ToString());
      for (std::string line; std::getline(lines, line);) out << "      " << line << "\n";
    }
    if (node.requirements) out << "    needs " << node.requirements->ToString() << "\n";
  }
  return out.str();
}

std::string ToJson(const Graph& graph, const SourceManager& sources) {
  nlohmann::ordered_json nodes = nlohmann::ordered_json::array();
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& node = graph.nodes[i];
    nlohmann::ordered_json entry;
    entry["id"] = i;
    entry["kind"] = Spelling(node.kind);
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
    entry["params"] = node.params;
    if (node.loss) entry["loss"] = node.loss->ToString();
    if (node.requirements) entry["needs"] = node.requirements->ToString();
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
    std::string label = std::string(Spelling(node.kind));
    if (!node.stages.empty()) label += "\\n" + Join(node.stages, "\\n");
    label += "\\n" + Short(node.hash);
    out << "  n" << i << " [label=\"" << label << "\"";
    if (node.cached) out << ", style=filled, fillcolor=\"#dddddd\"";
    if (node.kind == NodeKind::Train) out << ", penwidth=2";
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
