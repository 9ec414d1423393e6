// Passes over whole execution graphs.

#include <algorithm>
#include <map>
#include <set>

#include "compiler/cache/cache.h"
#include "compiler/passes/passes.h"

namespace fusec {
namespace {

/// Rebuilds a graph node by node, keeping the order topological and remapping inputs and outputs.
class GraphBuilder {
 public:
  explicit GraphBuilder(const ir::Graph& old) : old_(old), remap_(old.nodes.size()) {}

  /// Appends a node whose inputs refer to the old graph's nodes.
  ir::NodeId AddRemapped(ir::Node node) {
    for (ir::Input& input : node.inputs) input.node = remap_[input.node.value];
    return Add(std::move(node));
  }
  /// Appends a node whose inputs already refer to this builder's nodes.
  ir::NodeId Add(ir::Node node) {
    graph_.nodes.push_back(std::move(node));
    return ir::NodeId{static_cast<uint32_t>(graph_.nodes.size() - 1)};
  }
  void Map(ir::NodeId old_id, ir::NodeId new_id) { remap_[old_id.value] = new_id; }
  ir::NodeId Mapped(ir::NodeId old_id) const { return remap_[old_id.value]; }
  ir::Node& at(ir::NodeId id) { return graph_.at(id); }

  ir::Graph Finish() {
    for (ir::ExperimentOutputs experiment : old_.experiments) {
      for (auto& [stage, id] : experiment.stages) id = remap_[id.value];
      for (auto& [stage, id] : experiment.exports) id = remap_[id.value];
      if (experiment.evaluation) experiment.evaluation = remap_[experiment.evaluation->value];
      graph_.experiments.push_back(std::move(experiment));
    }
    return std::move(graph_);
  }

 private:
  const ir::Graph& old_;
  std::vector<ir::NodeId> remap_;
  ir::Graph graph_;
};

template <typename Transform>
ir::Graph ForEachLoss(ir::Graph graph, Transform transform) {
  for (ir::Node& node : graph.nodes) {
    if (auto* train = node.get_if<ir::Train>()) train->loss = transform(train->loss);
  }
  return graph;
}

}  // namespace

ir::Graph FoldConstants(ir::Graph graph) {
  return ForEachLoss(std::move(graph), [](const ir::LossGraph& loss) { return FoldConstants(loss); });
}

ir::Graph EliminateCommonSubexpressions(ir::Graph graph) {
  return ForEachLoss(std::move(graph), [](const ir::LossGraph& loss) { return EliminateCommonSubexpressions(loss); });
}

ir::Graph InferRequirements(ir::Graph graph) {
  for (ir::Node& node : graph.nodes) {
    if (auto* train = node.get_if<ir::Train>()) train->requirements = RequirementsOf(train->loss);
  }
  return graph;
}

ir::Graph HoistReferences(ir::Graph graph) {
  GraphBuilder builder(graph);
  for (uint32_t i = 0; i < graph.nodes.size(); ++i) {
    ir::Node node = graph.nodes[i];
    const ir::Input* reference = node.FindInput("reference");
    const auto* train = node.get_if<ir::Train>();
    bool hoist = train != nullptr && reference != nullptr && train->requirements &&
                 !train->requirements->reference_logp.empty();
    if (hoist) {
      // The reference model runs on the stage's items (not its weights: a tau sweep shares the node).
      const ir::Node& weight = graph.at(node.FindInput("items")->node);
      ir::NodeId items = weight.FindInput("items")->node;
      ir::Node ref{ir::RefLogprobs{train->requirements->reference_logp, train->spec.max_len, train->spec.max_prompt_len}};
      ref.inputs = {{"model", builder.Mapped(reference->node)}, {"items", builder.Mapped(items)}};
      ref.stages = node.stages;
      ref.span = node.span;
      ir::NodeId ref_id = builder.Add(std::move(ref));
      std::vector<ir::Input> inputs;
      for (const ir::Input& input : node.inputs) {
        if (input.slot == "reference") {
          inputs.push_back({"ref_logprobs", ref_id});
        } else {
          inputs.push_back({input.slot, builder.Mapped(input.node)});
        }
      }
      node.inputs = std::move(inputs);
      builder.Map(ir::NodeId{i}, builder.Add(std::move(node)));
      continue;
    }
    builder.Map(ir::NodeId{i}, builder.AddRemapped(std::move(node)));
  }
  return builder.Finish();
}

ir::Graph HashNodes(ir::Graph graph) {
  for (ir::Node& node : graph.nodes) node.hash = ir::ComputeHash(node, graph);
  return graph;
}

ir::Graph MergeEqualNodes(ir::Graph graph) {
  GraphBuilder builder(graph);
  std::map<std::string, ir::NodeId> by_hash;
  for (uint32_t i = 0; i < graph.nodes.size(); ++i) {
    ir::Node& node = graph.nodes[i];
    auto it = by_hash.find(node.hash);
    if (it != by_hash.end()) {
      // Equal hashes: equal outputs. The kept node computes this node's stages too.
      ir::Node& kept = builder.at(it->second);
      for (const std::string& stage : node.stages) {
        if (std::find(kept.stages.begin(), kept.stages.end(), stage) == kept.stages.end()) kept.stages.push_back(stage);
      }
      builder.Map(ir::NodeId{i}, it->second);
      continue;
    }
    ir::NodeId id = builder.AddRemapped(std::move(node));
    builder.Map(ir::NodeId{i}, id);
    by_hash.emplace(builder.at(id).hash, id);
  }
  return builder.Finish();
}

ir::Graph MarkCached(ir::Graph graph, const StageCache& cache, Diagnostics& diagnostics) {
  for (ir::Node& node : graph.nodes) {
    CacheLookup lookup = cache.Find(node.hash, CacheCheck::Quick);
    node.cached = lookup.status == CacheStatus::Complete;
    if (lookup.status == CacheStatus::Corrupt) {
      diagnostics
          .Report(DiagnosticKind::CacheEntryCorrupt, node.span,
                  "the cached output of this " + std::string(ir::Spelling(node.kind())) + " node is unusable: " +
                      lookup.problem)
          .Note("the entry " + lookup.path + " is ignored; the node will run again");
    }
  }
  return graph;
}

}  // namespace fusec
