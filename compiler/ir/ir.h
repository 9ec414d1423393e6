// The execution graph: what a checked program runs, as typed nodes with content hashes.
//
// Coarse nodes (load a model, split data, select responses, train, export...) connected by typed edges, kept
// in topological order so that a node's inputs always come before it and a NodeId is its position. A train
// node holds its loss as a small tensor-expression graph (LossGraph) that passes optimise and the runtime
// evaluates. Every node gets a content hash of everything that determines its output: its kind and the
// kind's code version, its parameters, its loss graph and its inputs' hashes; equal hashes mean equal
// outputs, which is what merges the shared stages of a sweep and what keys the stage cache.
//
// What a node computes is its payload (payloads.h), one struct per kind, held in a variant that
// node_kind.def keeps in step with NodeKind. The IR includes nothing of sema: the runtime reads this header
// and payloads.h and nothing upstream of them. JSON is a view printed from the payloads (ParamsJson), read by
// the content hash, `--emit=json|ir` and cache manifests.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>
#include <type_traits>
#include <variant>
#include <vector>

#include "compiler/ir/payloads.h"
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
// Nodes and graphs

namespace detail {
/// std::variant of the types listed, the last of which is `void` (X-macro lists end with a comma).
template <typename Done, typename... Rest>
struct VariantWithoutLastVoid;
template <typename... Done>
struct VariantWithoutLastVoid<std::variant<Done...>, void> {
  using type = std::variant<Done...>;
};
template <typename... Done, typename Next, typename... Rest>
struct VariantWithoutLastVoid<std::variant<Done...>, Next, Rest...> {
  using type = typename VariantWithoutLastVoid<std::variant<Done..., Next>, Rest...>::type;
};
}  // namespace detail

/// A node's payload: alternative i is the struct of NodeKind i (payloads.h), in node_kind.def's order.
using Payload = detail::VariantWithoutLastVoid<std::variant<>,
#define FUSEC_NODE_KIND(Name, Spelling, Version) Name,
#include "compiler/ir/node_kind.def"
#undef FUSEC_NODE_KIND
                                               void>::type;

#define FUSEC_NODE_KIND(Name, Spelling, Version)                                                          \
  static_assert(std::is_same_v<std::variant_alternative_t<static_cast<size_t>(NodeKind::Name), Payload>, \
                               Name>,                                                                   \
                "Payload's alternatives follow node_kind.def");
#include "compiler/ir/node_kind.def"
#undef FUSEC_NODE_KIND

struct Node {
  Payload payload;
  std::vector<Input> inputs;
  /// The experiment stages this node computes, as `experiment/stage` (several after merging).
  std::vector<std::string> stages;
  SourceSpan span;
  std::string hash;  // 64 hex digits once hashed
  bool cached = false;

  NodeKind kind() const { return static_cast<NodeKind>(payload.index()); }
  /// The payload of kind P; the node must be of that kind.
  template <typename P>
  const P& as() const {
    return std::get<P>(payload);
  }
  template <typename P>
  P& as() {
    return std::get<P>(payload);
  }
  template <typename P>
  const P* get_if() const {
    return std::get_if<P>(&payload);
  }
  template <typename P>
  P* get_if() {
    return std::get_if<P>(&payload);
  }
  const Input* FindInput(std::string_view slot) const;
};

/// Whether a node's data rule or weighting reads `len`: the response's token count, which depends on the
/// tokenizer of the stage's model, so such a rule node takes that model as its `tokenizer` input.
bool ReadsResponseLength(const Payload& payload);

/// Whether the node runs a model's forward passes, so it belongs on the experiment's device (a GPU when there
/// is one): sampling, scoring with a reward model, reference log-probabilities, training and evaluation.
/// Loading, splitting, rules, weights, gold-answer scoring and exports run on the CPU.
bool NeedsDevice(const Node& node);

/// The loss graph of a train node; null for other kinds.
const LossGraph* LossOf(const Node& node);

/// The node's parameters as canonical JSON, printed from its payload (everything that determines its output
/// besides its inputs and loss graph): what the content hash, `--emit=json|ir` and cache manifests show.
nlohmann::ordered_json ParamsJson(const Node& node);

/// Where each experiment's results are in the graph.
struct ExperimentOutputs {
  std::string name;
  std::string output;  // the run directory
  DeviceName device = DeviceName::Auto;  // the experiment's `device`
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

}  // namespace fusec::ir
