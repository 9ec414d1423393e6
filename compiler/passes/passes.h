// The passes over the execution graph, and the pipeline that runs them in order.
//
// Each pass takes a graph and returns one; RunPipeline (pipeline.cpp) is the single readable list of what
// runs in which order and why, after Halide's Lower.cpp. The loss-graph passes are also exposed on their
// own, for tests and for the runtime's use on a single loss.
#pragma once

#include <iosfwd>
#include <optional>
#include <string>

#include "compiler/diag/diagnostics.h"
#include "compiler/ir/ir.h"

namespace fusec {

class StageCache;

// Loss graphs. Both also drop operations the result no longer reads.
/// Evaluates operations whose inputs are constants, takes the branch of an `if` on a constant, and removes
/// identities (`x * 1`, `x / 1`, `x + 0`, `- -x`).
ir::LossGraph FoldConstants(const ir::LossGraph& loss);
/// Shares operations that compute the same thing (same operation on the same operands).
ir::LossGraph EliminateCommonSubexpressions(const ir::LossGraph& loss);
/// Keeps only the operations the result reads, in their order.
ir::LossGraph RemoveDeadOperations(const ir::LossGraph& loss);
/// What a loss reads: from its live operations.
ir::Requirements RequirementsOf(const ir::LossGraph& loss);

// Graphs.
ir::Graph FoldConstants(ir::Graph graph);
ir::Graph EliminateCommonSubexpressions(ir::Graph graph);
ir::Graph InferRequirements(ir::Graph graph);
/// Gives every train node that reads `ref_logp` a `ref_logprobs` node (its reference model on its items)
/// and removes the reference model from the train node's inputs, so that model is never resident while
/// training. Train nodes with the same reference, items and lengths share the node once hashes merge.
ir::Graph HoistReferences(ir::Graph graph);
ir::Graph HashNodes(ir::Graph graph);
/// Keeps one node per hash: the shared stages of a sweep's points, and repeated uses of one value.
ir::Graph MergeEqualNodes(ir::Graph graph);
/// Marks nodes whose hash has a complete entry in the cache. Corrupt entries are reported as warnings and
/// left to be rebuilt.
ir::Graph MarkCached(ir::Graph graph, const StageCache& cache, Diagnostics& diagnostics);

struct PipelineOptions {
  /// Verify the graph after every pass (always on in debug builds).
  bool verify_each = false;
  /// Print the graph after every pass to `dump`, as IR text.
  bool print_after_all = false;
  std::ostream* dump = nullptr;
  const SourceManager* sources = nullptr;
  const StageCache* cache = nullptr;
  Diagnostics* diagnostics = nullptr;
};

/// Runs every pass in order. A verification failure is a bug in fusec: it is thrown as std::logic_error
/// with the problems listed, so a test or the driver reports it instead of running a malformed graph.
ir::Graph RunPipeline(ir::Graph graph, const PipelineOptions& options);

}  // namespace fusec
