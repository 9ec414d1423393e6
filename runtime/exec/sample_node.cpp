// sample: every source model's responses to every prompt (generation.h), written in shards while it runs
// (sample_shards.h) and committed to the stage cache as a dataset (dataset_entry.h) once all are done.
//
// Recipe: for each source in the order written, read the blocks its shards already hold; if any is missing,
// open the model, tokenize the prompts with its own tokenizer and template, check each prompt fits the model's
// positions and the batch budget, then generate every missing block's requests in one continuous batch, writing
// each block's shard as soon as its last sample is done. Then assemble the records (the prompts' own responses
// first when `keep_responses`, then each source's n samples), drop prompts whose samples are all identical when
// `drop_identical`, commit, and discard the shards.
//
// Under several ranks block b of every source is rank b mod N's (dist/work_split.h): each rank samples and
// writes its own blocks' shards (the draws do not depend on what else is in the batch, so they are one
// process's), then rank 0 reads every shard, commits, and the others read the entry it committed.

#include <algorithm>
#include <chrono>
#include <iomanip>
#include <ostream>
#include <set>
#include <sstream>
#include <thread>

#include "runtime/data/examples.h"
#include "runtime/dist/work_split.h"
#include "runtime/exec/dataset_entry.h"
#include "runtime/exec/run_context.h"
#include "runtime/exec/sample_shards.h"
#include "runtime/model/generation.h"
#include "runtime/support/interrupt.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

/// One source of the step: its name, settings and model node.
struct SampledModel {
  const ir::SampledSource* source;
  ir::NodeId model;
};

std::vector<SampledModel> SampledModels(const ir::Node& node) {
  const ir::Sample& spec = node.as<ir::Sample>();
  std::vector<SampledModel> models;
  for (const ir::Input& input : node.inputs) {
    if (input.slot == "model") models.push_back({nullptr, input.node});
  }
  if (models.size() != spec.sources.size()) {
    throw RunError(RunErrorKind::Internal, "the sample node has " + std::to_string(models.size()) +
                                               " model inputs for " + std::to_string(spec.sources.size()) +
                                               " sources");
  }
  for (size_t k = 0; k < models.size(); ++k) models[k].source = &spec.sources[k];
  return models;
}

/// What every shard of the step left: [source][prompt][sample], and how many blocks were done already.
struct SamplesSoFar {
  std::vector<std::vector<std::vector<SampledText>>> texts;
  std::vector<std::vector<bool>> block_done;  // [source][block]
  int64_t blocks_done = 0;
  int64_t blocks_total = 0;
};

SamplesSoFar ReadShards(const SampleShards& shards, const std::vector<SampledModel>& models, size_t prompts,
                        const std::string& label, std::ostream& progress) {
  SamplesSoFar so_far;
  so_far.texts.resize(models.size());
  so_far.block_done.resize(models.size());
  for (size_t k = 0; k < models.size(); ++k) {
    const int64_t n = models[k].source->settings.n;
    so_far.texts[k].assign(prompts, std::vector<SampledText>(static_cast<size_t>(n)));
    so_far.block_done[k].assign(static_cast<size_t>(shards.blocks()), false);
    for (int64_t b = 0; b < shards.blocks(); ++b) {
      ++so_far.blocks_total;
      std::string problem;
      auto samples = shards.Read(static_cast<int64_t>(k), b, n, &problem);
      if (!problem.empty()) progress << "warning: [" << label << "] " << problem << "; sampling that block again\n";
      if (!samples) continue;
      for (size_t p = 0; p < samples->size(); ++p) {
        so_far.texts[k][static_cast<size_t>(shards.BlockBegin(b)) + p] = std::move((*samples)[p]);
      }
      so_far.block_done[k][static_cast<size_t>(b)] = true;
      ++so_far.blocks_done;
    }
  }
  return so_far;
}

/// The token ids of every prompt under this source's tokenizer and template, each checked to fit the model's
/// positions and the budget of one batch with `max_new_tokens` after it.
std::vector<std::vector<int32_t>> TokenizePrompts(const Dataset& prompts, const OpenedModel& opened,
                                                  const std::string& source, const ir::SamplingSettings& settings,
                                                  int64_t batch_tokens) {
  std::vector<std::vector<int32_t>> ids;
  ids.reserve(prompts.size());
  const int64_t max_position = opened.model->config().max_position;
  std::string error;
  for (const PromptRecord& record : prompts) {
    auto tokens = TokenizePrompt(record, *opened.tokenizer, opened.chat, &error);
    if (!tokens) {
      throw RunError(RunErrorKind::Tokenization, "source `" + source + "`, prompt `" + record.id + "`: " + error);
    }
    const int64_t length = static_cast<int64_t>(tokens->size());
    const std::string where = "prompt `" + record.id + "` (line " + std::to_string(record.line) + ") has " +
                              std::to_string(length) + " tokens under source `" + source + "`'s tokenizer, and with " +
                              "`max_new_tokens` " + std::to_string(settings.max_new_tokens) + " needs ";
    if (length + settings.max_new_tokens > max_position) {
      throw RunError(RunErrorKind::PositionLimit, where + "more than the " + std::to_string(max_position) +
                                                      " positions (`max_position_embeddings`) of its model")
          .Help(length < max_position ? "lower `max_new_tokens` to at most " + std::to_string(max_position - length) +
                                            ", or leave the longest prompts out"
                                      : "leave prompts longer than the model's positions out of the prompts file");
    }
    if (length + settings.max_new_tokens > batch_tokens) {
      throw RunError(RunErrorKind::PositionLimit, where + "more than the " + std::to_string(batch_tokens) +
                                                      " cache positions of one batch (`batch_tokens`)")
          .Help("raise `batch_tokens` to at least " + std::to_string(length + settings.max_new_tokens) +
                ", or lower `max_new_tokens`");
    }
    ids.push_back(std::move(*tokens));
  }
  return ids;
}

/// Stops the step between shards: a signal, or `--stop-after N` once N shards were written by this run.
class StopCheck {
 public:
  StopCheck(const RunOptions& options, const std::string& label) : options_(options), label_(label) {}

  void AfterShard(int64_t blocks_done, int64_t blocks_total) {
    ++written_;
    if (int signal = InterruptSignal()) {
      throw RunError(RunErrorKind::Interrupted, "stopped by " + SignalName(signal) + " after " +
                                                    std::to_string(blocks_done) + " of " +
                                                    std::to_string(blocks_total) + " shards; they are saved")
          .Help("run the same command again to sample only the rest (`--restart` starts the step over)");
    }
    if (options_.stop_after_steps && written_ >= *options_.stop_after_steps && blocks_done < blocks_total) {
      throw RunError(RunErrorKind::TrainingStopped, label_ + ": stopped after " + std::to_string(blocks_done) +
                                                        " of " + std::to_string(blocks_total) +
                                                        " shards (--stop-after)")
          .Help("running it again samples only the shards that are missing");
    }
  }

 private:
  const RunOptions& options_;
  std::string label_;
  int64_t written_ = 0;
};

/// Generates the missing blocks of source `k`, writing each block's shard as it completes.
void SampleSource(size_t k, const SampledModel& sampled, const Dataset& prompts, const ir::Sample& spec,
                  const SampleShards& shards, const WorkSplit& split, SamplesSoFar& so_far, StopCheck& stop,
                  const std::string& label, RunContext& run) {
  const ir::SamplingSettings& settings = sampled.source->settings;
  const std::string& name = sampled.source->name;
  if (static_cast<int64_t>(settings.seeds.size()) != settings.n) {
    throw RunError(RunErrorKind::Internal, "source `" + name + "` has " + std::to_string(settings.seeds.size()) +
                                               " seeds for " + std::to_string(settings.n) + " samples");
  }
  const ModelHandle handle = *run.Value(sampled.model).model;
  OpenedModel opened = run.Open(handle);
  const auto prompt_ids = TokenizePrompts(prompts, opened, name, settings, spec.batch_tokens);

  struct Slot {
    int64_t block;
    size_t prompt;
    size_t sample;
  };
  std::vector<GenerationRequest> requests;
  std::vector<Slot> slots;
  std::vector<int64_t> remaining(static_cast<size_t>(shards.blocks()), 0);
  for (int64_t b = 0; b < shards.blocks(); ++b) {
    if (so_far.block_done[k][static_cast<size_t>(b)] || !split.Owns(b)) continue;
    for (int64_t p = shards.BlockBegin(b); p < shards.BlockBegin(b) + shards.BlockSize(b); ++p) {
      const PromptRecord& record = prompts[static_cast<size_t>(p)];
      for (int64_t s = 0; s < settings.n; ++s) {
        const uint64_t seed = static_cast<uint64_t>(settings.seeds[static_cast<size_t>(s)]);
        requests.push_back({prompt_ids[static_cast<size_t>(p)], StreamSeed(seed, name, record.id, s)});
        slots.push_back({b, static_cast<size_t>(p), static_cast<size_t>(s)});
        ++remaining[static_cast<size_t>(b)];
      }
    }
  }

  SamplerSettings sampler;
  sampler.temperature = settings.temperature;
  sampler.top_p = settings.top_p;
  sampler.top_k = settings.top_k.value_or(0);
  sampler.repetition_penalty = settings.repetition_penalty;
  GenerationLimits limits;
  limits.max_new_tokens = settings.max_new_tokens;
  limits.token_budget = spec.batch_tokens;
  limits.stop_ids = StopIds(opened);

  std::ostream& progress = run.reporter().progress();
  progress << "[" << label << "] sampling `" << name << "` (" << handle.dir << "): " << requests.size() / settings.n
           << " prompts x " << settings.n << ", at most " << settings.max_new_tokens << " new tokens, temperature "
           << settings.temperature << ", top_p " << settings.top_p << ", " << GenerationSlots(requests, limits)
           << " rows at once"
           << (split.ranks() > 1 ? " (rank 0's share of the blocks; " + std::to_string(split.ranks()) + " ranks)" : "")
           << "\n";
  const auto start = Clock::now();
  auto last_line = start;
  int64_t tokens = 0;
  size_t finished = 0;
  const Tokenizer& tokenizer = *opened.tokenizer;
  GenerateContinuous(*opened.model, requests, sampler, limits, [&](size_t index, const Generation& generation) {
    const Slot& slot = slots[index];
    std::vector<int32_t> ids = generation.ids;
    if (generation.stopped && !ids.empty()) ids.pop_back();
    // Valid UTF-8 always (an untrained model may end mid-character): the records the cache gives back later
    // are then byte for byte the ones this run passes on.
    so_far.texts[k][slot.prompt][slot.sample] = {LossyUtf8(tokenizer.Decode(ids, true)),
                                                 static_cast<int64_t>(generation.ids.size())};
    tokens += static_cast<int64_t>(generation.ids.size());
    ++finished;
    if (--remaining[static_cast<size_t>(slot.block)] == 0) {
      const size_t begin = static_cast<size_t>(shards.BlockBegin(slot.block));
      ShardSamples block(so_far.texts[k].begin() + static_cast<std::ptrdiff_t>(begin),
                         so_far.texts[k].begin() + static_cast<std::ptrdiff_t>(begin) + shards.BlockSize(slot.block));
      shards.Write(static_cast<int64_t>(k), slot.block, block);
      so_far.block_done[k][static_cast<size_t>(slot.block)] = true;
      ++so_far.blocks_done;
      stop.AfterShard(so_far.blocks_done, so_far.blocks_total);
    }
    const auto now = Clock::now();
    if (now - last_line >= std::chrono::seconds(10)) {
      last_line = now;
      const double seconds = std::chrono::duration<double>(now - start).count();
      std::ostringstream line;
      line << "[" << label << "] `" << name << "`: " << finished << " of " << requests.size() << " samples, "
           << std::fixed << std::setprecision(0) << static_cast<double>(tokens) / seconds << " tokens/s\n";
      progress << line.str();
    }
  });
  const double seconds = std::chrono::duration<double>(Clock::now() - start).count();
  std::ostringstream line;
  line << "[" << label << "] `" << name << "`: " << requests.size() << " samples, " << tokens << " tokens in "
       << std::fixed << std::setprecision(1) << seconds << " s (" << std::setprecision(0)
       << static_cast<double>(tokens) / std::max(seconds, 1e-9) << " tokens/s)\n";
  progress << line.str();
}

/// The step's records: each prompt with its own responses (when kept), then every source's samples.
std::shared_ptr<Dataset> AssembleRecords(const Dataset& prompts, const std::vector<SampledModel>& models,
                                         const SamplesSoFar& so_far, const ir::Sample& spec, int64_t* dropped) {
  auto records = std::make_shared<Dataset>();
  records->reserve(prompts.size());
  for (size_t p = 0; p < prompts.size(); ++p) {
    PromptRecord record = prompts[p];
    if (!spec.keep_responses) record.responses.clear();
    std::set<std::string> texts;
    int64_t samples = 0;
    for (size_t k = 0; k < models.size(); ++k) {
      for (const SampledText& sample : so_far.texts[k][p]) {
        record.responses.push_back({models[k].source->name, sample.text, std::nullopt, std::nullopt});
        texts.insert(sample.text);
        ++samples;
      }
    }
    if (spec.drop_identical && samples > 1 && texts.size() == 1) {
      ++*dropped;
      continue;
    }
    records->push_back(std::move(record));
  }
  return records;
}

/// Samples the missing blocks this rank owns, source after source. A rank that stops (a signal, --stop-after)
/// stops every rank once each has left its sampling: the shards written so far are kept for the rerun.
void SampleThisRanksBlocks(const std::vector<SampledModel>& models, const Dataset& prompts, const ir::Sample& spec,
                           const SampleShards& shards, const WorkSplit& split, SamplesSoFar& so_far,
                           const std::string& label, RunContext& run) {
  StopCheck stop(run.options(), label);
  std::optional<RunError> stopped;
  try {
    for (size_t k = 0; k < models.size(); ++k) {
      const auto& done = so_far.block_done[k];
      bool mine_missing = false;
      for (int64_t b = 0; b < shards.blocks(); ++b) mine_missing |= !done[static_cast<size_t>(b)] && split.Owns(b);
      if (mine_missing) SampleSource(k, models[k], prompts, spec, shards, split, so_far, stop, label, run);
    }
  } catch (const RunError& error) {
    if (error.kind() != RunErrorKind::Interrupted && error.kind() != RunErrorKind::TrainingStopped) throw;
    stopped = error;
  }
  if (!split.AnyRank(stopped.has_value())) return;
  if (stopped) throw *stopped;
  throw RunError(RunErrorKind::TrainingStopped, label + ": stopped because another rank stopped sampling (a signal "
                                                        "or --stop-after); the shards written are saved")
      .Help("running it again samples only the shards that are missing");
}

/// The first shard of `so_far` not done, or nullopt when every block of every source is.
std::optional<std::filesystem::path> FirstMissingShard(const SamplesSoFar& so_far, const SampleShards& shards) {
  for (size_t k = 0; k < so_far.block_done.size(); ++k) {
    for (size_t b = 0; b < so_far.block_done[k].size(); ++b) {
      if (!so_far.block_done[k][b]) return shards.Path(static_cast<int64_t>(k), static_cast<int64_t>(b));
    }
  }
  return std::nullopt;
}

/// Rank 0 reads every rank's shards once all have sampled. A shared filesystem may show a file another node
/// renamed into place only after its directory cache expires (NFS: up to a minute), so a missing shard is
/// looked for again each second for `patience` before it is an error.
SamplesSoFar ReadEveryRanksShards(const SampleShards& shards, const std::vector<SampledModel>& models,
                                  size_t prompts, const std::string& label, std::ostream& progress,
                                  std::chrono::seconds patience) {
  const auto give_up = Clock::now() + patience;
  for (bool said = false;; said = true) {
    SamplesSoFar so_far = ReadShards(shards, models, prompts, label, progress);
    const std::optional<std::filesystem::path> missing = FirstMissingShard(so_far, shards);
    if (!missing) return so_far;
    if (Clock::now() >= give_up) {
      throw RunError(RunErrorKind::FileSystem, "the shard " + missing->string() + " is still missing " +
                                                   std::to_string(patience.count()) + " s after every rank " +
                                                   "sampled its blocks")
          .Help("the cache directory must be on a filesystem every rank sees; the shards written are kept, and "
                "running again samples only the missing ones");
    }
    if (!said) progress << "[" << label << "] waiting for " << missing->string() << " to appear\n";
    std::this_thread::sleep_for(std::chrono::seconds(1));
  }
}

}  // namespace

NodeValue RunSample(const ir::Node& node, RunContext& run) {
  // One process samples a step at a time (its shards are shared); rank 0 holds the lock for every rank.
  const RunContext::SharedStart shared = run.StartShared(node);
  if (shared.cached) return NodeValue{std::nullopt, ReadDatasetEntry(*shared.cached)};
  const ir::Sample& spec = node.as<ir::Sample>();
  const std::string label = run.StepLabel(node);
  const std::vector<SampledModel> models = SampledModels(node);
  const Dataset& prompts = *run.Input(node, "prompts").data;
  const WorkSplit split = run.Split();
  std::ostream& progress = run.reporter().progress();

  const fs::path checkpoints = run.cache().CheckpointPath(node.hash);
  std::error_code ec;
  if (split.writes() && run.options().restart && fs::exists(checkpoints, ec)) {
    progress << "[" << label << "] --restart: discarding its shards (" << checkpoints.string() << ")\n";
    fs::remove_all(checkpoints);
  }
  split.WaitForEveryRank();  // the shards as rank 0 left them
  const SampleShards shards(checkpoints, static_cast<int64_t>(prompts.size()));
  SamplesSoFar so_far = ReadShards(shards, models, prompts.size(), label, progress);
  if (so_far.blocks_done > 0) {
    progress << "[" << label << "] resuming: " << so_far.blocks_done << " of " << so_far.blocks_total
             << " shards were sampled by an earlier run (" << checkpoints.string() << ")\n";
  }
  SampleThisRanksBlocks(models, prompts, spec, shards, split, so_far, label, run);
  if (!split.writes()) return NodeValue{std::nullopt, ReadDatasetEntry(run.AwaitRankZero(node, "entry"))};
  if (split.ranks() > 1) {
    so_far = ReadEveryRanksShards(shards, models, prompts.size(), label, progress, std::chrono::seconds(60));
  } else if (auto missing = FirstMissingShard(so_far, shards)) {
    throw RunError(RunErrorKind::Internal, "the shard " + missing->string() + " is missing after sampling");
  }

  int64_t dropped = 0;
  std::shared_ptr<Dataset> records = AssembleRecords(prompts, models, so_far, spec, &dropped);
  const std::string staging = run.cache().BeginEntry(node.hash);
  WriteDatasetEntry(staging, *records);
  const std::string entry = run.Commit(node, staging);
  fs::remove_all(checkpoints, ec);
  run.TellOtherRanks(node, "entry", entry);
  progress << "[" << label << "] sampled " << prompts.size() << " prompts from " << models.size() << " sources"
           << (dropped > 0 ? ", " + std::to_string(dropped) + " prompts whose samples were all identical dropped" : "")
           << "\n";
  return NodeValue{std::nullopt, records};
}

}  // namespace fusec::rt
