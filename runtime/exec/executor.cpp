// The executor's walk: demand-driven evaluation of a planned graph from its sinks, one node body per kind
// (run_context.h lists them), errors rendered as diagnostics at the failing node.

#include "runtime/exec/executor.h"

#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include <ATen/Context.h>
#include <filesystem>
#include <map>
#include <ostream>

#include "runtime/dist/rank_group.h"
#include "runtime/exec/run_context.h"
#include "runtime/support/interrupt.h"
#include "runtime/support/torch_errors.h"
#include "runtime/train/trainer.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

/// `error` again, its message prefixed with the node that failed and its span set to the node's: the first
/// (innermost) node to see an error names itself; the nodes that needed it pass it on unchanged.
RunError AtNode(const RunError& error, const ir::Node& node) {
  if (error.span().valid()) return error;
  std::string who = node.stages.empty() ? std::string(ir::Spelling(node.kind()))
                                        : std::string(ir::Spelling(node.kind())) + " `" + node.stages.front() + "`";
  RunError out(error.kind(), who + ": " + error.message());
  out.At(node.span);
  if (!error.place().empty()) out.Place(error.place());
  for (const DiagnosticNote& note : error.notes()) out.Note(note.span, note.message);
  if (!error.help().empty()) out.Help(error.help());
  return out;
}

class Walk {
 public:
  Walk(const PlannedRun& plan, const RunOptions& options, std::ostream& out, std::ostream& err)
      : plan_(plan),
        options_(options),
        err_(err),
        reporter_(Follower() ? null_ : out, Follower() ? null_ : err),
        run_(plan, options, reporter_, [this](ir::NodeId id) -> const NodeValue& { return Eval(id); }) {}

  int Run() {
    if (Follower()) return Follow();
    const ir::Graph& graph = plan_.graph;
    if (!options_.out.empty() && graph.experiments.size() != 1) {
      err_ << "error: --out needs a file with one experiment; this one has " << graph.experiments.size()
           << " (each writes to its own output directory) [Usage]\n";
      return kExitUsage;
    }
    try {
      run_.set_device(ResolveDevice());
      ClaimRunDirectories();
      for (const ir::ExperimentOutputs& experiment : graph.experiments) {
        for (const auto& [stage, id] : experiment.exports) Eval(id);
        if (experiment.evaluation) Eval(*experiment.evaluation);
      }
      reporter_.Finish(graph.experiments);
      for (RunDirectory& dir : run_dirs_) dir.Publish();
      if (options_.ranks != nullptr) {
        try {
          options_.ranks->Post(WalkKey(walk_posts_), "done");
          options_.ranks->Barrier();  // rank 0 hosts the store: it leaves last
        } catch (const DistributedError& error) {
          throw RunError(RunErrorKind::Distributed, error.what());
        }
      }
    } catch (const RunError& error) {
      if (options_.ranks != nullptr) TellFollowersOf(error);
      err_ << Render(error, plan_.sources);
      for (const RunDirectory& dir : run_dirs_) {
        err_ << "note: this run's record is in " << dir.staging().string() << "; " << dir.final().string()
             << (fs::exists(dir.final()) ? " still holds the last finished run" : " is written when a run finishes")
             << "\n";
      }
      return ExitStatusOf(error);
    }
    return kExitOk;
  }

 private:
  /// A rank other than the leader: it trains its shares and waits for the rest.
  bool Follower() const { return options_.ranks != nullptr && !options_.ranks->leader(); }

  /// The leader's n-th word on the walk: the id of the next train node it enters, or `done`.
  static std::string WalkKey(int64_t n) { return "walk/" + std::to_string(n); }

  /// A follower's walk: the train nodes the leader enters, in its order (so every rank issues the same
  /// collectives in the same order), each evaluated as the leader does, until the leader is done.
  int Follow() {
    try {
      try {
        run_.set_device(ResolveDevice());
        for (int64_t n = 0;; ++n) {
          const std::string word = options_.ranks->AwaitPost(WalkKey(n));
          if (word == "done") {
            options_.ranks->Barrier();
            return kExitOk;
          }
          word_ = static_cast<uint32_t>(std::stoul(word));
          Eval(ir::NodeId{word_});
        }
      } catch (const DistributedError& error) {
        throw RunError(RunErrorKind::Distributed, error.what());
      }
    } catch (const RunError& error) {
      // A stop every rank agreed on (a signal, --stop-after) is said once, by rank 0.
      const bool said_by_the_leader =
          error.kind() == RunErrorKind::Interrupted || error.kind() == RunErrorKind::TrainingStopped;
      if (!said_by_the_leader) err_ << Render(error, plan_.sources);
      return ExitStatusOf(error);
    }
  }

  /// The leader failed: the followers waiting for it stop too (those inside a collective see it fail).
  void TellFollowersOf(const RunError& error) noexcept {
    try {
      options_.ranks->PostFailure(std::string(RunErrorKindName(error.kind())) + ": " + error.message());
    } catch (const DistributedError&) {
      // the store is gone with the ranks; nobody is left to tell
    }
  }

  /// Nodes the leader computes alone (loading or making a model: it commits the cache entry); a follower waits
  /// for the leader, then reads the entry the leader committed.
  static bool LeaderAlone(ir::NodeKind kind) { return kind == ir::NodeKind::LoadModel; }

  /// Nodes every rank computes together, each its share (train: its micro-batches; the others: their batches,
  /// dist/work_split.h), when the leader's walk says so.
  static bool Walked(ir::NodeKind kind) {
    return kind == ir::NodeKind::Train || kind == ir::NodeKind::RefLogprobs || kind == ir::NodeKind::Evaluate ||
           kind == ir::NodeKind::Sample || kind == ir::NodeKind::Score;
  }

  /// Computes `node` as this rank's part says: the leader tells the followers which walked node it enters and
  /// when a node it computes alone is done.
  NodeValue ComputeAsRank(const ir::Node& node, ir::NodeId id) {
    RankGroup* ranks = options_.ranks;
    if (ranks == nullptr) return Compute(node);
    const std::string done_key = "node/" + std::to_string(id.value);
    if (ranks->leader()) {
      if (Walked(node.kind())) EnterWalked(node, id);
      NodeValue value = Compute(node);
      if (LeaderAlone(node.kind())) ranks->Post(done_key, "done");
      if (Walked(node.kind())) --walked_open_;
      return value;
    }
    if (Walked(node.kind()) && id.value != word_) {
      throw RunError(RunErrorKind::Internal, ranks->Describe() + " reached %" + std::to_string(id.value) +
                                                 " before rank 0 said it enters it");
    }
    if (LeaderAlone(node.kind())) ranks->AwaitPost(done_key);
    return Compute(node);
  }

  /// The inputs a walked node's body reads even when its entry is cached: a train node passes on its `init`'s
  /// chat template, ref_logprobs its `items` with the cached values.
  static bool NeededWhenCached(ir::NodeKind kind, const std::string& slot) {
    return (kind == ir::NodeKind::Train && slot == "init") || (kind == ir::NodeKind::RefLogprobs && slot == "items");
  }

  /// The leader enters a walked node: the inputs its body will read first (each walked input is a word of its
  /// own, and the nodes it computes alone are done before the followers need them), then the word. A walked
  /// node is never entered inside another: the followers, inside the outer one, would not hear of it.
  void EnterWalked(const ir::Node& node, ir::NodeId id) {
    if (walked_open_ > 0) {
      throw RunError(RunErrorKind::Internal, "%" + std::to_string(id.value) + " is entered inside another node " +
                                                 "every rank computes");
    }
    const bool cached = run_.CachedEntry(node).has_value();
    for (const ir::Input& input : node.inputs) {
      if (!cached || NeededWhenCached(node.kind(), input.slot)) Eval(input.node);
    }
    options_.ranks->Post(WalkKey(walk_posts_++), std::to_string(id.value));
    ++walked_open_;
  }

  const NodeValue& Eval(ir::NodeId id) {
    if (auto it = values_.find(id.value); it != values_.end()) return it->second;
    const ir::Node& node = plan_.graph.at(id);
    for (const ir::Input& input : node.inputs) {
      if (input.node.value >= id.value) {
        throw RunError(RunErrorKind::Internal, "the graph is not in dependency order at %" + std::to_string(id.value));
      }
    }
    if (int signal = InterruptSignal()) {
      throw RunError(RunErrorKind::Interrupted, "stopped by " + SignalName(signal) + " before " +
                                                    std::string(ir::Spelling(node.kind())) +
                                                    (node.stages.empty() ? "" : " `" + node.stages.front() + "`"))
          .Help("run the same command again: finished stages come from the cache, interrupted ones resume");
    }
    try {
      return values_[id.value] = ComputeAsRank(node, id);
    } catch (const DistributedError& error) {
      throw AtNode(RunError(RunErrorKind::Distributed, error.what()), node);
    } catch (const RunError& error) {
      throw AtNode(error, node);
    } catch (const RuleError& error) {
      throw AtNode(RunError(RunErrorKind::DataRule, error.what()), node);
    } catch (const TrainError& error) {
      throw AtNode(RunError(RunErrorKind::Checkpoint, error.what()), node);
    } catch (const c10::Error& error) {
      if (auto out_of_memory = OutOfMemoryMessage(error)) {
        throw AtNode(RunError(RunErrorKind::OutOfMemory, *out_of_memory)
                         .Help("a smaller model, `micro_batch` or `max_len` needs less"),
                     node);
      }
      throw AtNode(RunError(RunErrorKind::Internal, error.what_without_backtrace()), node);
    } catch (const fs::filesystem_error& error) {
      throw AtNode(RunError(RunErrorKind::FileSystem, error.code().message()).Place(error.path1().string()), node);
    }
  }

  NodeValue Compute(const ir::Node& node) {
    switch (node.kind()) {
      case ir::NodeKind::LoadModel:
        return RunLoadModel(node, run_);
      case ir::NodeKind::LoadData:
        return RunLoadData(node, run_);
      case ir::NodeKind::FilterSources:
        return RunFilterSources(node, run_);
      case ir::NodeKind::Split:
        return RunSplit(node, run_);
      case ir::NodeKind::Sample:
        return RunSample(node, run_);
      case ir::NodeKind::Score:
        return RunScore(node, run_);
      case ir::NodeKind::Select:
      case ir::NodeKind::Pairs:
      case ir::NodeKind::Groups:
        return RunRule(node, run_);
      case ir::NodeKind::Weight:
        return RunWeight(node, run_);
      case ir::NodeKind::RefLogprobs:
        return RunRefLogprobs(node, run_);
      case ir::NodeKind::Train:
        return RunTrain(node, run_);
      case ir::NodeKind::Export:
        return RunExport(node, run_);
      case ir::NodeKind::Evaluate:
        return RunEvaluate(node, run_);
    }
    throw RunError(RunErrorKind::Internal, "unknown node kind");
  }

  /// Each experiment's run directory (its output, or --out): locked, and written in its staging copy.
  void ClaimRunDirectories() {
    const std::string what = "fusec run " + options_.file;
    run_dirs_.reserve(plan_.graph.experiments.size());
    for (const ir::ExperimentOutputs& experiment : plan_.graph.experiments) {
      const fs::path dir = options_.out.empty() ? fs::path(experiment.output) : fs::path(options_.out);
      run_dirs_.push_back(RunDirectory::Begin(dir, what, err_));
    }
    std::map<std::string, const RunDirectory*> by_output;
    for (size_t i = 0; i < run_dirs_.size(); ++i) {
      const ir::ExperimentOutputs& experiment = plan_.graph.experiments[i];
      by_output[experiment.output] = &run_dirs_[i];
      reporter_.RunStarted(experiment.name, run_dirs_[i].staging(), run_dirs_[i].final(), plan_.manifest_toml);
    }
    run_.SetRunDirectories(std::move(by_output));
  }

  /// --device, else fusec.toml's `[run] device`, else the experiment's `device`; `auto` is CUDA when present.
  torch::Device ResolveDevice() const {
    std::string device = options_.device;
    std::string where = "--device " + device;
    if (device == "auto" && plan_.config_device != "auto") {
      device = plan_.config_device;
      where = "fusec.toml's `[run] device = \"" + device + "\"`";
    }
    if (device == "auto" && !plan_.graph.experiments.empty()) {
      device = std::string(ir::Spelling(plan_.graph.experiments.front().device));
      where = "the experiment's `device = " + device + "`";
    }
    if (device == "cpu") return torch::kCPU;
    // Several ranks on a node: each its own GPU, the launcher's LOCAL_RANK.
    const auto gpu = static_cast<c10::DeviceIndex>(options_.ranks != nullptr ? options_.ranks->local_rank() : 0);
    if (device == "cuda" && !torch::cuda::is_available()) {
      throw RunError(RunErrorKind::Device, where + ": no CUDA device is available")
          .Help("use `--device cpu`, or run where a GPU is visible");
    }
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA, gpu) : torch::Device(torch::kCPU);
  }

  const PlannedRun& plan_;
  const RunOptions& options_;
  std::ostream& err_;
  std::ostream null_{nullptr};  // a follower's progress and summary: the leader's alone reach the console
  Reporter reporter_;
  RunContext run_;
  std::map<uint32_t, NodeValue> values_;
  int64_t walk_posts_ = 0;  // the leader's words on the walk so far
  int64_t walked_open_ = 0;  // the leader: walked nodes entered and not yet computed
  uint32_t word_ = 0;        // a follower: the node of the leader's word it is computing
  std::vector<RunDirectory> run_dirs_;  // reserved before it fills: RunContext keeps pointers into it
};

}  // namespace

int RunGraph(const PlannedRun& plan, const RunOptions& options, std::ostream& out, std::ostream& err) {
  // On the CPU, reruns are bit-identical anyway (same machine and thread count); --deterministic also makes
  // LibTorch refuse kernels without a deterministic implementation (some CUDA ones).
  if (options.deterministic) at::globalContext().setDeterministicAlgorithms(true, false);
  return Walk(plan, options, out, err).Run();
}

}  // namespace fusec::rt
