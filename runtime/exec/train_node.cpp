// train: one stage's training, from its cached entry when there is one, else from the init model on its
// weighted items (runtime/train/trainer.h), with checkpoints that the next run of the stage resumes from.

#include <c10/util/Exception.h>

#include <chrono>
#include <cmath>
#include <nlohmann/json.hpp>
#include <ostream>

#include "runtime/dist/rank_group.h"
#include "runtime/exec/run_context.h"
#include "runtime/model/checkpoint.h"
#include "runtime/support/interrupt.h"
#include "runtime/support/text.h"
#include "runtime/support/torch_errors.h"
#include "runtime/train/trainer.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;

/// A finished stage from the cache: its metrics go to the run directories, the model is the entry's.
NodeValue ReuseCached(const ir::Node& node, const std::string& entry, const ModelHandle& init, RunContext& run) {
  const std::string metrics = ReadWholeFile(entry + "/metrics.jsonl").value_or("");
  run.reporter().AppendMetrics(node.stages, metrics);
  run.reporter().StageDone(node.stages, "cached", Reporter::LastLoss(metrics));
  run.reporter().progress() << "[" << RunContext::Label(node) << "] cached ("
                            << entry.substr(run.cache().dir().size() + 1) << ")\n";
  return NodeValue{ModelHandle{entry + "/model", init.chat}};
}

/// The stage's items tokenized, with their reference log-probabilities when the loss reads them.
TokenizedItems PrepareItems(const ir::Node& node, const OpenedModel& opened, RunContext& run) {
  const NodeValue& items = run.Input(node, "items");
  const ir::TrainSpec& spec = node.as<ir::Train>().spec;
  TokenizedItems tokenized =
      TokenizeItems(*items.data, *items.items, *opened.tokenizer, opened.chat, spec.max_len, spec.max_prompt_len);
  if (node.FindInput("ref_logprobs") == nullptr) return tokenized;
  const NodeValue& ref = run.Input(node, "ref_logprobs");
  for (size_t i : tokenized.kept) {
    const std::vector<double>& row = (*ref.ref_logp)[i];
    for (double v : row) {
      if (std::isnan(v)) {
        throw RunError(RunErrorKind::Internal, "an item has no reference log-probability (lengths differ?)");
      }
    }
    tokenized.data.ref_logp.push_back(row);
  }
  return tokenized;
}

/// `auto` is bf16 autocast on a GPU and fp32 on the CPU; weights and AdamW stay fp32.
bool UsesBf16(ir::Precision precision, RunContext& run) {
  if (precision == ir::Precision::Fp16) {  // the checker refuses it; a graph from elsewhere may not
    throw RunError(RunErrorKind::Unsupported, "precision fp16 needs loss scaling, which fusec does not do")
        .Help("use `precision = bf16` or `fp32`");
  }
  bool bf16 = precision == ir::Precision::Bf16 || (precision == ir::Precision::Auto && run.device().is_cuda());
  if (bf16 && run.device().is_cpu() && !run.warned_cpu_bf16) {
    run.reporter().progress() << "  note: bf16 autocast on the CPU is slow in LibTorch 1.13; `precision = fp32` "
                                 "trains faster here\n";
    run.warned_cpu_bf16 = true;
  }
  return bf16;
}

/// The stage's metrics lines: each step's, and when resuming those of the steps before the checkpoint (which
/// keeps them, so a stage resumed at any step, its last included, reports what an uninterrupted one does).
/// Every line also goes to the run directories.
class StageMetrics {
 public:
  StageMetrics(const ir::Node& node, Reporter& reporter)
      : node_(node), reporter_(reporter), start_(std::chrono::steady_clock::now()) {}

  void OnResume(const std::string& lines) {
    lines_ = lines;
    reporter_.AppendMetrics(node_.stages, lines);
  }

  void OnStep(const StepMetrics& m) {
    if (first_step_ < 0) first_step_ = m.step;
    last = m;
    std::string line = Reporter::MetricsJson(RunContext::Label(node_), m).dump() + "\n";
    lines_ += line;
    reporter_.AppendMetrics(node_.stages, line);
    reporter_.Step(RunContext::Label(node_), m, first_step_, start_);
  }

  /// metrics.jsonl of the stage so far.
  const std::string& lines() const { return lines_; }
  StepMetrics last;

 private:
  const ir::Node& node_;
  Reporter& reporter_;
  std::chrono::steady_clock::time_point start_;
  std::string lines_;
  int64_t first_step_ = -1;
};

/// Whether the stage goes on from its checkpoints: it does when a run of the same stage (same hash) left one,
/// unless `--restart` discards them (said on stderr, as is resuming).
bool ResumesFromCheckpoint(const std::string& label, const fs::path& checkpoints, RunContext& run) {
  std::error_code ec;
  const bool has_checkpoint = fs::exists(checkpoints / "LATEST", ec);
  if (run.options().restart && fs::exists(checkpoints, ec)) {
    run.reporter().progress() << "[" << label << "] --restart: discarding its checkpoints (" << checkpoints.string()
                              << ")\n";
    fs::remove_all(checkpoints);
    return false;
  }
  return has_checkpoint;
}

/// Trains, turning LibTorch's failures into RunErrors (out of memory above all).
void TrainOrThrow(LlamaForCausalLMImpl& model, const TrainData& data, const ir::Train& train,
                  const TrainSettings& settings, const TrainOptions& options) {
  try {
    Train(model, data, train.loss, *train.requirements, settings, options);
  } catch (const NonFiniteLossError& error) {
    throw RunError(RunErrorKind::NonFiniteLoss, error.what())
        .Help("a smaller learning rate, or a loss that stays finite (`log` of a positive value), trains on");
  } catch (const CheckpointError& error) {
    if (error.when == CheckpointError::When::Saving) {
      throw RunError(RunErrorKind::Checkpoint, error.what())
          .Help("free space on the device and rerun: the stage resumes from its previous checkpoint, which is kept");
    }
    throw RunError(RunErrorKind::Checkpoint, std::string("cannot resume: ") + error.what())
        .Help("the checkpoint cannot be trusted: `fusec run --restart` discards it and trains the stage from its "
              "first step");
  } catch (const c10::Error& torch_error) {  // out of memory, a shape LibTorch refuses
    if (auto out_of_memory = OutOfMemoryMessage(torch_error)) {
      throw RunError(RunErrorKind::OutOfMemory, *out_of_memory + " while training")
          .Help("a smaller `micro_batch` or `max_len`, or `precision = bf16`, needs less (finished stages and "
                "checkpoints are kept)");
    }
    throw RunError(RunErrorKind::Internal, torch_error.what_without_backtrace());
  }
}

/// What the trainer is told, the same on every rank.
TrainSettings SettingsOf(const ir::Node& node, RunContext& run) {
  const ir::Train& train_node = node.as<ir::Train>();
  TrainSettings settings = TrainSettings::FromSpec(train_node.spec);
  settings.bf16_autocast = UsesBf16(train_node.spec.precision, run);
  if (run.options().unoptimized) settings.DisableOptimizations();
  return settings;
}

TrainOptions OptionsOf(const ir::Node& node, RunContext& run, const fs::path& checkpoints, bool resuming,
                       StageMetrics& metrics) {
  TrainOptions train;
  train.stage = RunContext::Label(node);
  train.stage_hash = node.hash;
  train.checkpoint_dir = checkpoints.string();
  train.resume = resuming;
  train.metrics_so_far = [&metrics] { return metrics.lines(); };
  train.on_resume = [&metrics](const std::string& lines) { metrics.OnResume(lines); };
  train.stop_after = run.options().stop_after_steps;
  if (run.options().checkpoint_minutes > 0) train.checkpoint_interval_s = run.options().checkpoint_minutes * 60;
  train.should_stop = [] { return InterruptSignal() != 0; };
  train.on_step = [&metrics](const StepMetrics& m) { metrics.OnStep(m); };
  train.ranks = run.options().ranks;
  return train;
}

/// A stage that ended before its last step: SIGINT or SIGTERM (here or on another rank, which all ranks agree
/// on) or --stop-after; its checkpoint is saved.
void ThrowIfStoppedEarly(const StepMetrics& last, const std::string& label, RunContext& run) {
  if (last.step >= last.total_steps) return;
  if (InterruptSignal() != 0 || !run.options().stop_after_steps) {
    const std::string by = InterruptSignal() != 0 ? SignalName(InterruptSignal()) : "a signal to another rank";
    throw RunError(RunErrorKind::Interrupted, "stopped by " + by + " after step " + std::to_string(last.step) +
                                                  " of " + std::to_string(last.total_steps) +
                                                  "; its checkpoint is saved")
        .Help("run the same command again to resume from step " + std::to_string(last.step) +
              " (`--restart` starts the stage over)");
  }
  throw RunError(RunErrorKind::TrainingStopped, label + ": stopped after step " + std::to_string(last.step) + " of " +
                                                    std::to_string(last.total_steps) + " (--stop-after)")
      .Help("running it again continues from the last checkpoint");
}

/// A rank other than the leader: it trains its share of each step as the leader planned the stage, and
/// returns the model the leader committed.
NodeValue FollowTrain(const ir::Node& node, RunContext& run) {
  const std::string label = RunContext::Label(node);
  const ModelHandle init = *run.Input(node, "init").model;
  const std::string plan = run.AwaitRankZero(node, "plan");
  if (plan == "cached") return ReuseCached(node, run.EntryRankZeroFound(node), init, run);
  OpenedModel opened = run.Open(init);
  TokenizedItems tokenized = PrepareItems(node, opened, run);
  const fs::path checkpoints = run.cache().CheckpointPath(node.hash);
  StageMetrics metrics(node, run.reporter());
  TrainOrThrow(*opened.model, tokenized.data, node.as<ir::Train>(), SettingsOf(node, run),
               OptionsOf(node, run, checkpoints, plan == "resume", metrics));
  ThrowIfStoppedEarly(metrics.last, label, run);
  const std::string entry = run.AwaitRankZero(node, "entry");
  return NodeValue{ModelHandle{entry + "/model", init.chat}};
}

}  // namespace

NodeValue RunTrain(const ir::Node& node, RunContext& run) {
  if (run.options().ranks != nullptr && !run.options().ranks->leader()) return FollowTrain(node, run);
  const std::string label = RunContext::Label(node);
  const ModelHandle init = *run.Input(node, "init").model;
  auto reuse = [&](const std::string& entry) {
    run.TellOtherRanks(node, "plan", "cached");
    return ReuseCached(node, entry, init, run);
  };
  if (auto cached = run.CachedEntry(node)) return reuse(*cached);
  // One process trains a stage at a time (its checkpoints and entry are shared); one that waited reuses
  // what the other committed.
  const FileLock stage_lock = run.LockEntry(node);
  if (auto cached = run.CachedEntry(node)) return reuse(*cached);
  if (node.FindInput("reference") != nullptr) {
    throw RunError(RunErrorKind::Internal, "a reference model must be hoisted into ref_logprobs before training");
  }
  const ir::Train& train_node = node.as<ir::Train>();
  OpenedModel opened = run.Open(init);
  TokenizedItems tokenized = PrepareItems(node, opened, run);
  const TrainSettings settings = SettingsOf(node, run);

  const fs::path checkpoints = run.cache().CheckpointPath(node.hash);
  const bool resuming = ResumesFromCheckpoint(label, checkpoints, run);
  fs::create_directories(checkpoints);
  StageMetrics metrics(node, run.reporter());
  const TrainOptions train = OptionsOf(node, run, checkpoints, resuming, metrics);
  RankGroup* ranks = run.options().ranks;
  run.reporter().progress() << "[" << label << "] training on " << tokenized.data.items.items.size() << " items"
                            << (tokenized.too_long > 0
                                    ? " (" + std::to_string(tokenized.too_long) + " over max_len dropped)"
                                    : "")
                            << (resuming ? ", resuming from its last checkpoint" : "") << " on "
                            << run.device().str() << (settings.bf16_autocast ? " (bf16 autocast)" : "")
                            << (ranks != nullptr ? " x " + std::to_string(ranks->size()) + " ranks" : "") << "\n";
  if (tokenized.data.items.items.empty()) {
    throw RunError(RunErrorKind::NoItems, "no items to train on")
        .Help("the stage's rule kept nothing, or every item is longer than `max_len`");
  }
  run.TellOtherRanks(node, "plan", resuming ? "resume" : "fresh");
  TrainOrThrow(*opened.model, tokenized.data, train_node, settings, train);
  ThrowIfStoppedEarly(metrics.last, label, run);

  std::string staging = run.cache().BeginEntry(node.hash);
  SaveOptions save;
  save.tokenizer_dir = init.dir;
  save.chat_template = opened.chat.kind;  // what it was trained with, so readers of the export default to it
  std::string error;
  if (!SaveModel(*opened.model, staging + "/model", save, &error)) throw RunError(RunErrorKind::FileSystem, error);
  WriteOrThrow(fs::path(staging) / "metrics.jsonl", metrics.lines());
  std::string entry = run.Commit(node, staging);
  fs::remove_all(checkpoints);
  run.TellOtherRanks(node, "entry", entry);
  run.reporter().StageDone(node.stages, "trained", Reporter::LastLoss(metrics.lines()));
  return NodeValue{ModelHandle{entry + "/model", init.chat}};
}

}  // namespace fusec::rt
