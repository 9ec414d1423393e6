// `fusec run`: executes an experiment's planned graph on the runtime.
//
// The compiler plans (check, lower, passes, cache marks); the executor walks the graph from its sinks
// (exports, evaluations) and computes a node only when something needs it and the stage cache does not
// already hold it, so a cached train node's whole data pipeline is skipped. Models travel between nodes as
// Hugging Face model directories; train, ref_logprobs and new_model nodes commit their outputs to the cache
// (atomically), so an interrupted run loses at most the steps since the stage's last checkpoint, which the
// next run of the same stage resumes from (`--restart` discards them). SIGINT and SIGTERM stop a stage after a
// checkpoint (runtime/support/interrupt.h). Every run directory gets its manifest.toml, metrics.jsonl (one line per optimizer step),
// exports under export/<stage>/ and a summary.json.
//
// Paths in the experiment (data, models) are relative to the .fuse file; run directories to the current
// directory.
#pragma once

#include <cstdint>
#include <iosfwd>
#include <optional>
#include <string>
#include <vector>

#include "compiler/ir/ir.h"
#include "compiler/source/source.h"

namespace fusec::rt {

class RankGroup;  // runtime/dist/rank_group.h

struct RunOptions {
  std::string file;
  std::vector<std::string> overrides;
  std::string stdlib;
  std::string config;
  std::string cache;
  std::string out;  // replaces the experiment's output directory (one experiment only)
  /// Interrupted stages resume from their last checkpoint by default (`--resume` says so explicitly);
  /// `restart` (`--restart`) discards those checkpoints and starts such stages at step 1.
  bool resume = false;
  bool restart = false;
  /// A training checkpoint at least this often (besides `save_every`), so a kill loses at most this much.
  double checkpoint_minutes = 10;
  std::string device = "auto";  // auto | cpu | cuda
  bool deterministic = false;
  /// Train and score the usual way: padded rows, each response repeating its prompt, whole-vocabulary logits,
  /// micro-batches by prompt count. Same results to rounding, slower; for comparisons.
  bool unoptimized = false;
  /// Computed tokens a batch of reference log-probabilities (and of evaluation's NLL) holds: memory against
  /// speed, the results the same to rounding (so not in a node's hash). Ranks split a node's batches.
  int64_t score_batch_tokens = 8192;
  /// Stop each training stage after this many optimizer steps of this run, as if killed (tests of --resume).
  std::optional<int64_t> stop_after_steps;
  /// Several ranks (torchrun, srun, --nproc): the leader (rank 0) walks the graph and writes; every rank trains
  /// its share of each stage and computes its share of reference log-probabilities, evaluation, sampling and
  /// scoring; the others wait for what the leader alone computes (loading models). nullptr: one process.
  RankGroup* ranks = nullptr;
};

/// A planned program, as the compiler's driver hands it over (runtime/cli plans; the executor only walks).
struct PlannedRun {
  const ir::Graph& graph;
  const SourceManager& sources;  // for the nodes' spans in messages
  std::string cache_dir;
  std::string config_device = "auto";  // fusec.toml's `[run] device`
  std::string manifest_toml;           // the run manifest, written into every run directory
  std::string fusec_version;           // recorded in cache manifests
};

/// Runs a planned graph. Progress and errors go to `err`, the summary to `out`. Exit status: 0 done,
/// 1 errors in the input or a failed stage.
int RunGraph(const PlannedRun& plan, const RunOptions& options, std::ostream& out, std::ostream& err);

}  // namespace fusec::rt
