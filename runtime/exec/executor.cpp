// The executor's walk: demand-driven evaluation of a planned graph from its sinks, one node body per kind
// (run_context.h lists them), errors rendered as diagnostics at the failing node.

#include "runtime/exec/executor.h"

#include <c10/util/Exception.h>
#include <torch/cuda.h>

#include <ATen/Context.h>
#include <filesystem>
#include <map>
#include <ostream>

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
        reporter_(out, err),
        run_(plan, options, reporter_, [this](ir::NodeId id) -> const NodeValue& { return Eval(id); }) {}

  int Run() {
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
    } catch (const RunError& error) {
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
      return values_[id.value] = Compute(node);
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
    if (device == "cuda" && !torch::cuda::is_available()) {
      throw RunError(RunErrorKind::Device, where + ": no CUDA device is available")
          .Help("use `--device cpu`, or run where a GPU is visible");
    }
    return torch::cuda::is_available() ? torch::Device(torch::kCUDA) : torch::Device(torch::kCPU);
  }

  const PlannedRun& plan_;
  const RunOptions& options_;
  std::ostream& err_;
  Reporter reporter_;
  RunContext run_;
  std::map<uint32_t, NodeValue> values_;
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
