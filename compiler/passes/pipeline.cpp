// The pass pipeline, as one list (Halide's Lower.cpp): what runs, in which order, and why in that order.
//
// After every pass the graph is verified (in debug builds, or when asked) and printed (with
// `--print-after-all`). A failed verification is a bug in fusec, reported as std::logic_error.

#include <ostream>
#include <stdexcept>

#include "compiler/passes/passes.h"

namespace fusec {
namespace {

class Pipeline {
 public:
  explicit Pipeline(const PipelineOptions& options) : options_(options) {
#ifndef NDEBUG
    verify_ = true;
#endif
    verify_ = verify_ || options.verify_each;
  }

  template <typename Pass>
  ir::Graph Run(const char* name, Pass pass, ir::Graph graph) {
    graph = pass(std::move(graph));
    After(name, graph);
    return graph;
  }

  void After(const char* name, const ir::Graph& graph) {
    if (verify_) {
      std::vector<std::string> problems = ir::Verify(graph);
      if (!problems.empty()) {
        std::string message = std::string("the graph is malformed after `") + name + "`:";
        for (const std::string& problem : problems) message += "\n  " + problem;
        throw std::logic_error(message);
      }
    }
    if (options_.print_after_all && options_.dump != nullptr && options_.sources != nullptr) {
      *options_.dump << "; *** IR after " << name << " ***\n" << ir::PrintGraph(graph, *options_.sources) << "\n";
    }
  }

 private:
  const PipelineOptions& options_;
  bool verify_ = false;
};

}  // namespace

ir::Graph RunPipeline(ir::Graph graph, const PipelineOptions& options) {
  Pipeline pipeline(options);
  pipeline.After("lower", graph);

  // Loss graphs first. Folding takes the branch of `if` on constants, so the reference term of
  // `rloo(kl: 0)` and the `1` of `if length_norm then len(y) else 1` are gone before anything reads them.
  graph = pipeline.Run("fold-constants", [](ir::Graph g) { return FoldConstants(std::move(g)); }, std::move(graph));
  // After folding, which can make operations equal (`x / 1` and `x` both become `x`).
  graph = pipeline.Run("eliminate-common-subexpressions",
                       [](ir::Graph g) { return EliminateCommonSubexpressions(std::move(g)); }, std::move(graph));

  // Requirements are read from the optimised loss graphs: only what the loss really reads.
  graph = pipeline.Run("infer-requirements", [](ir::Graph g) { return InferRequirements(std::move(g)); },
                       std::move(graph));
  // Needs the requirements (which roles need reference log-probs). Before hashing, so the new nodes are
  // hashed and merged like any other.
  graph = pipeline.Run("hoist-references", [](ir::Graph g) { return HoistReferences(std::move(g)); },
                       std::move(graph));

  // Hashes read the final parameters and loss graphs; nothing after this changes a node's content.
  graph = pipeline.Run("hash", [](ir::Graph g) { return HashNodes(std::move(g)); }, std::move(graph));
  // Needs hashes. Merges the equal nodes of a sweep's points (the shared FuseSFT stage of a tau sweep runs
  // once) and the repeated uses of one value within an experiment.
  graph = pipeline.Run("merge-equal-nodes", [](ir::Graph g) { return MergeEqualNodes(std::move(g)); },
                       std::move(graph));

  // Needs final hashes: the cache is keyed by them.
  if (options.cache != nullptr && options.diagnostics != nullptr) {
    graph = pipeline.Run(
        "mark-cached",
        [&](ir::Graph g) { return MarkCached(std::move(g), *options.cache, *options.diagnostics); },
        std::move(graph));
  }
  return graph;
}

}  // namespace fusec
