// What every node body of the executor shares: the values nodes pass on, and the run's context.
//
// The executor (executor.cpp) is a demand-driven walk; each node kind's body lives in its own file
// (load_nodes.cpp, rule_nodes.cpp, sample_node.cpp, score_node.cpp, ref_logprobs_node.cpp, train_node.cpp, export_node.cpp,
// evaluate_node.cpp) and sees the run only through RunContext: the device, the stage cache, path resolution,
// the reporter, and `Input()`, which evaluates an input node on demand (a cached train node never asks for its
// items, so their whole data pipeline is skipped). Node bodies throw RunError (runtime/support/run_error.h);
// the walk adds the failing node's span and renders it.
#pragma once

#include <torch/types.h>

#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "compiler/cache/cache.h"
#include "compiler/ir/ir.h"
#include "compiler/support/file_lock.h"
#include "runtime/dist/work_split.h"
#include "runtime/exec/executor.h"
#include "runtime/exec/reporter.h"
#include "runtime/exec/run_directory.h"
#include "runtime/exec/rules.h"
#include "runtime/model/inference.h"
#include "runtime/model/llama.h"
#include "runtime/support/run_error.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "runtime/train/trainer.h"

namespace fusec::rt {

/// A model as nodes pass it on: a Hugging Face model directory and the chat template to use with it.
struct ModelHandle {
  std::string dir;
  ir::ChatTemplateName chat;
};

/// The output of a node.
struct NodeValue {
  std::optional<ModelHandle> model;
  std::shared_ptr<const Dataset> data;  // datasets, and the dataset items index
  std::shared_ptr<const ItemSet> items;
  std::shared_ptr<const std::vector<std::vector<double>>> ref_logp;  // [item][role]; NaN for dropped items
};

/// A model directory loaded for use: the model on the run's device, its tokenizer and chat template.
struct OpenedModel {
  LlamaForCausalLM model{nullptr};
  std::optional<Tokenizer> tokenizer;
  ChatTemplate chat;
};

/// Where generation by `opened` stops: its template's end-of-turn token and its tokenizer's EOS, those it has.
std::vector<int32_t> StopIds(const OpenedModel& opened);

class RunContext {
 public:
  using EvalInput = std::function<const NodeValue&(ir::NodeId)>;

  RunContext(const PlannedRun& plan, const RunOptions& options, Reporter& reporter, EvalInput eval_input);

  const PlannedRun& plan() const { return plan_; }
  const RunOptions& options() const { return options_; }
  Reporter& reporter() { return reporter_; }
  StageCache& cache() { return cache_; }
  const torch::Device& device() const { return device_; }
  void set_device(torch::Device device) { device_ = device; }
  const std::string& started() const { return started_; }
  /// Whether the note that bf16 autocast is slow on the CPU was printed already (once a run).
  bool warned_cpu_bf16 = false;
  /// The models evaluations of this run evaluated, by what decides the result (the model's hash, the data's,
  /// the settings): a sweep's points share their base model and shared stages, which are evaluated once.
  struct EvaluatedModel {
    EvalResult result;
    std::string completions;  // its completions file in the cache entry
  };
  std::map<std::string, EvaluatedModel> evaluated_models;

  /// The value of the node feeding `slot` of `node`, computed now if it was not yet.
  const NodeValue& Input(const ir::Node& node, std::string_view slot);
  const NodeValue& Value(ir::NodeId id) { return eval_input_(id); }

  /// A path of the experiment (data, models), relative to the .fuse file.
  std::string Resolve(const std::string& path) const;
  /// Where the run writes a path under an experiment's output directory (or --out): in the run directory's
  /// staging copy until it is published (run_directory.h).
  std::filesystem::path Rebase(const std::string& path) const;
  /// The name `written` (a path Rebase gave) will have once its run directory is published.
  std::filesystem::path Published(const std::filesystem::path& written) const;
  /// The run directory each experiment's output directory (as planned) is written to.
  void SetRunDirectories(std::map<std::string, const RunDirectory*> by_output) { run_dirs_ = std::move(by_output); }

  /// The complete cache entry of `node`, after a full check (once a run: a complete entry stays so); a corrupt
  /// one is reported and ignored.
  std::optional<std::string> CachedEntry(const ir::Node& node);
  /// Takes the lock of `node`'s cache entry (StageCache::LockPath), waiting with a message naming the process
  /// that holds it (another run computing the same node).
  FileLock LockEntry(const ir::Node& node);
  /// Commits `staging` as `node`'s cache entry and returns the entry's directory.
  std::string Commit(const ir::Node& node, const std::string& staging);

  /// How a node whose work the ranks split (ref_logprobs, evaluate, sample) starts, the same on every rank:
  /// `cached` is the entry when rank 0 found one (then every rank reads it), else every rank computes its share
  /// and rank 0 holds the entry's lock (`lock`) and commits. One process: CachedEntry, then LockEntry.
  struct SharedStart {
    std::optional<std::string> cached;
    std::optional<FileLock> lock;
  };
  SharedStart StartShared(const ir::Node& node);
  /// A rank other than 0: the entry rank 0 said it found, or an error saying the cache must be shared.
  std::string EntryRankZeroFound(const ir::Node& node);
  /// The ranks' split of this run's work (all of it on one process).
  WorkSplit Split() const { return WorkSplit(options_.ranks); }
  /// Rank 0's word to the others about `node` (`what`: `entry`, once committed), and the others' wait for it.
  void TellOtherRanks(const ir::Node& node, const std::string& what, const std::string& value);
  std::string AwaitRankZero(const ir::Node& node, const std::string& what);

  /// Loads a model directory on the run's device with its tokenizer and chat template, checked against each
  /// other (a tokenizer with more tokens than the embedding has rows would index out of range mid-training).
  OpenedModel Open(const ModelHandle& handle);

  /// How log-probabilities are computed: every optimisation on, unless `fusec run --unoptimized`.
  LogProbOptions LogProbs() const;

  /// `experiment/stage`, or the kind's spelling for nodes of no stage.
  static std::string Label(const ir::Node& node);
  /// Label() for a node of a stage; for a node of none (a `sample`, a `score`), its kind and where it is written:
  /// `sample at demo.fuse:37`, so that two sampling steps of one experiment are told apart in progress lines.
  std::string StepLabel(const ir::Node& node) const;
  /// `stage`, the part after the experiment's name.
  static std::string StageName(const ir::Node& node);
  /// The experiment a node belongs to (its first stage's).
  static std::string ExperimentOf(const ir::Node& node);

 private:
  const PlannedRun& plan_;
  const RunOptions& options_;
  Reporter& reporter_;
  EvalInput eval_input_;
  StageCache cache_;
  std::map<std::string, const RunDirectory*> run_dirs_;  // by the experiment's planned output directory
  std::filesystem::path base_dir_;
  torch::Device device_ = torch::kCPU;
  std::string started_;
  std::set<std::string> chat_warned_;  // model directories whose template choice was warned about (once each)
  std::map<std::string, std::string> complete_entries_;  // node hash -> its entry, once CachedEntry found it whole
};

/// The chat template `name` means for `tokenizer`, loaded from `source` (`auto`: the one recorded in its
/// tokenizer_config.json, else its own Jinja; ResolveChatTemplate). `warning`, if given, receives what the user
/// should hear about an `auto` choice (DetectChatTemplate); empty if nothing.
ChatTemplate ResolveChat(ir::ChatTemplateName name, const Tokenizer& tokenizer, const std::string& source,
                         std::string* warning = nullptr);

/// Tokenized training items: the items whose sequences fit the length limits, with their original indexes.
struct TokenizedItems {
  TrainData data;
  std::vector<size_t> kept;
  int64_t too_long = 0;
};
TokenizedItems TokenizeItems(const Dataset& dataset, const ItemSet& items, const Tokenizer& tokenizer,
                             const ChatTemplate& chat, int64_t max_len, std::optional<int64_t> max_prompt_len);

/// Puts a copy of the directory tree `from` (a cache entry) at `to` through a staging directory, replacing
/// `to`: hard links where the filesystem allows (a sweep's points share one copy of each model; cache outputs
/// are read-only, so a link cannot be written through), else copies.
void CopyDirectory(const std::filesystem::path& from, const std::filesystem::path& to);

// The node bodies, one family per file.
NodeValue RunLoadModel(const ir::Node& node, RunContext& run);        // load_nodes.cpp
NodeValue RunLoadData(const ir::Node& node, RunContext& run);         // load_nodes.cpp
NodeValue RunFilterSources(const ir::Node& node, RunContext& run);    // rule_nodes.cpp
NodeValue RunSplit(const ir::Node& node, RunContext& run);            // rule_nodes.cpp
NodeValue RunSample(const ir::Node& node, RunContext& run);           // sample_node.cpp
NodeValue RunScore(const ir::Node& node, RunContext& run);            // score_node.cpp
NodeValue RunRule(const ir::Node& node, RunContext& run);             // rule_nodes.cpp: select, pairs, groups
NodeValue RunWeight(const ir::Node& node, RunContext& run);           // rule_nodes.cpp
NodeValue RunRefLogprobs(const ir::Node& node, RunContext& run);      // ref_logprobs_node.cpp
NodeValue RunTrain(const ir::Node& node, RunContext& run);            // train_node.cpp
NodeValue RunExport(const ir::Node& node, RunContext& run);           // export_node.cpp
NodeValue RunEvaluate(const ir::Node& node, RunContext& run);         // evaluate_node.cpp

}  // namespace fusec::rt
