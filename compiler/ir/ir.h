// The execution graph: what a checked program runs, as typed nodes with content hashes.
//
// Coarse nodes (load a model, split data, select responses, train, export...) connected by typed edges, kept
// in topological order so that a node's inputs always come before it and a NodeId is its position. A train
// node holds its loss as a small tensor-expression graph (LossGraph) that passes optimise and the runtime
// evaluates. Every node gets a content hash of everything that determines its output: its kind and the
// kind's code version, its parameters, its loss graph and its inputs' hashes; equal hashes mean equal
// outputs, which is what merges the shared stages of a sweep and what keys the stage cache.
//
// Data rules (which responses, which pairs, what weights) stay as sema's checked structures and terms: the
// runtime evaluates them per prompt, and the graph only needs their canonical text for hashing.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <variant>
#include <vector>

#include "compiler/sema/checked.h"
#include "compiler/source/source.h"

namespace fusec::ir {

enum class NodeKind : uint8_t {
#define FUSEC_NODE_KIND(Name, Spelling, Version) Name,
#include "compiler/ir/node_kind.def"
#undef FUSEC_NODE_KIND
};

std::string_view Spelling(NodeKind kind);
int KindVersion(NodeKind kind);
std::optional<NodeKind> NodeKindByName(std::string_view spelling);
const std::vector<NodeKind>& AllNodeKinds();

/// What flows along an edge.
enum class ValueType : uint8_t { Model, Dataset, Items, Weighted, RefLogprobs, Metrics, Directory };
std::string_view Spelling(ValueType type);

/// A node's position in Graph::nodes.
struct NodeId {
  uint32_t value = UINT32_MAX;
  bool valid() const { return value != UINT32_MAX; }
  friend bool operator==(NodeId a, NodeId b) { return a.value == b.value; }
  friend auto operator<=>(NodeId a, NodeId b) { return a.value <=> b.value; }
};

/// An input of a node: the slot of its signature (`init`, `items`...) and the node that feeds it.
struct Input {
  std::string slot;
  NodeId node;
};

/// One input slot of a node kind's signature.
struct Slot {
  std::string_view name;
  ValueType type;
  bool optional = false;
  bool repeated = false;
};
struct Signature {
  std::vector<Slot> inputs;
  ValueType output;
};
const Signature& SignatureOf(NodeKind kind);

// ---------------------------------------------------------------------------------------------------------
// Loss graphs

enum class LossOpKind : uint8_t {
  Const,     // `value`
  Logp,      // policy log-probability of `role`, summed over its tokens
  RefLogp,   // reference log-probability of `role`
  Length,    // token count of `role`
  Reward,    // reward of `role`
  Weight,    // the item's weight
  Progress,  // training progress in [0, 1]
  Unary,     // `name`: - | not
  Binary,    // `name`: + - * / ^ == != < <= > >= and or
  Math,      // `name`: log exp sigmoid log_sigmoid softplus relu abs sqrt detach min max clamp
  Select,    // args: condition, then, else
  Reduce,    // `name`: sum | mean | max | min over a group's members
  LooMean,   // leave-one-out mean over a group's members
};
std::string_view Spelling(LossOpKind kind);

/// One operation of a loss graph, in SSA form: `args` index earlier operations.
struct LossOp {
  LossOpKind kind = LossOpKind::Const;
  std::string name;
  std::string role;
  double value = 0;
  sema::ScalarType type = sema::ScalarType::Float;
  sema::Level level = sema::Level::Const;
  sema::ItemKind item = sema::ItemKind::Unknown;
  std::vector<int> args;

  friend bool operator==(const LossOp&, const LossOp&) = default;
};

/// A loss as a tensor-expression graph. The loss is `ops[result]`, one value per unit.
struct LossGraph {
  std::vector<LossOp> ops;
  int result = -1;
  sema::ObjectiveUnit unit = sema::ObjectiveUnit::Pair;
  std::vector<std::string> roles;  // the responses the unit names (`chosen`, `rejected`, or `y`)
  std::string objective;           // `dpo(beta: 10.0, length_norm: true)`, for messages

  /// `%3 = div %1, %2` lines, then `result %4`: canonical, so it is also what the hash reads.
  std::string ToString() const;
};

/// What a train node reads from the data and the models: inferred from its loss graph.
struct Requirements {
  std::vector<std::string> policy_logp;     // roles whose policy log-probabilities are read
  std::vector<std::string> reference_logp;  // roles whose reference log-probabilities are read
  bool lengths = false;
  bool rewards = false;
  bool weight_in_loss = false;  // the loss places the weight; otherwise it multiplies each item's loss
  bool progress = false;
  bool groups = false;

  std::string ToString() const;
};

// ---------------------------------------------------------------------------------------------------------
// Nodes and graphs

using Rule = std::variant<std::monostate, sema::CheckedSelection, sema::CheckedPairing, sema::CheckedGrouping>;

/// Whether a data rule, or a weighting term, reads `len`: the response's token count, which depends on the
/// tokenizer of the stage's model, so such a rule node takes that model as its `tokenizer` input.
bool ReadsResponseLength(const Rule& rule);
bool ReadsResponseLength(const sema::TermRef& term);

struct Node {
  NodeKind kind = NodeKind::LoadModel;
  std::vector<Input> inputs;
  /// Everything else that determines the output, in a fixed order (hashed as canonical JSON).
  nlohmann::ordered_json params = nlohmann::ordered_json::object();
  Rule rule;                       // Select, Pairs, Groups
  sema::TermRef weight;            // Weight
  std::optional<LossGraph> loss;   // Train
  std::optional<Requirements> requirements;  // Train, once inferred
  /// The experiment stages this node computes, as `experiment/stage` (several after merging).
  std::vector<std::string> stages;
  SourceSpan span;
  std::string hash;  // 64 hex digits once hashed
  bool cached = false;

  const Input* FindInput(std::string_view slot) const;
};

/// Where each experiment's results are in the graph.
struct ExperimentOutputs {
  std::string name;
  std::string output;  // the run directory
  SourceSpan span;
  std::vector<std::pair<std::string, NodeId>> stages;   // stage name -> train node, dependencies first
  std::vector<std::pair<std::string, NodeId>> exports;  // stage name -> export node
  std::optional<NodeId> evaluation;
};

struct Graph {
  std::vector<Node> nodes;
  std::vector<ExperimentOutputs> experiments;

  const Node& at(NodeId id) const { return nodes.at(id.value); }
  Node& at(NodeId id) { return nodes.at(id.value); }
};

/// The content hash of `node`, given that its inputs' hashes are set.
std::string ComputeHash(const Node& node, const Graph& graph);

/// Problems with the graph's structure: order, slots and their types, loss graphs, requirements, hashes.
/// Empty when the graph is well formed. Run after every pass in debug builds (passes/pipeline.cpp).
std::vector<std::string> Verify(const Graph& graph);

/// IR text: one line per node, with its loss graph and requirements indented under train nodes.
std::string PrintGraph(const Graph& graph, const SourceManager& sources);
/// `{"nodes": [{"id", "kind", "stage", "stages", "hash", "inputs", "span", "cached", "params"}...],
///   "experiments": [...]}`
std::string ToJson(const Graph& graph, const SourceManager& sources);
/// A Graphviz digraph.
std::string ToDot(const Graph& graph);

/// `file:line:col`, or "" for an invalid span.
std::string SpanText(const SourceManager& sources, SourceSpan span);

/// The scalar meaning of Math and Binary operations (`log`, `clamp`, `^`, `==`, ...), shared by constant
/// folding and the runtime's data rules. nullopt outside an operation's domain (`log` of a non-positive
/// number, division by zero) or for an unknown name.
std::optional<double> EvalMath(const std::string& name, const std::vector<double>& x);
std::optional<double> EvalBinary(const std::string& name, double a, double b);

}  // namespace fusec::ir
