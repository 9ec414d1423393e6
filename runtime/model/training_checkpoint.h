// Training checkpoints: what a stopped stage needs to go on as if it had never stopped.
//
// A checkpoint directory holds one `step-NNNNNNNN/` directory per saved step: the weights in fp32
// (model.safetensors, named as the model's parameters), the optimizer's state (one file per rank that wrote
// it, optimizer-RRRRR-of-NNNNN.safetensors: AdamW's moments `<parameter>.exp_avg` and `.exp_avg_sq` in fp32,
// its step count in the metadata as `<parameter>.step`, for the parameters that rank owned), the stage's
// metrics lines up to the step (metrics.jsonl, so a resumed stage reports them as an uninterrupted one does),
// state.json (the format version, the stage's hash, `step`, `total_steps`, `optimizer_shards` and the model's
// identity: the SHA-256 of its configuration and of its parameters' names and shapes) and manifest.json (the
// size and SHA-256 of each of those files); `LATEST`
// names the newest complete one. A checkpoint is written into `step-N.partial/`, every write checked and
// fsynced, renamed into place, then published by replacing LATEST atomically, and only then are older ones
// removed: a process killed at any moment (SIGKILL included) leaves LATEST naming a complete checkpoint, or no
// LATEST before the first; a write that fails (a full disk) removes `step-N.partial/` and leaves the previous
// checkpoint as it was.
//
// Resuming trusts nothing it has not verified: a checkpoint is refused, with the file and what does not
// match, when a file is missing, its size or SHA-256 differs from the manifest's (a bit flip, a truncated
// file, another model's weights copied in), a field of state.json or LATEST is missing, of the wrong type or
// inconsistent (an edited step), it is of another stage or another model, or of another format version
// (older checkpoints, without checksums, included). It is refused rather than an older one tried: only the
// newest is kept, and a stage that silently trained on from somewhere else would be a wrong result.
//
// Moments are kept by parameter name, so a checkpoint written by N ranks resumes on M: each rank loads the
// moments of the parameters it owns now, from whichever file has them. Several ranks write one checkpoint in
// three calls: the leader begins it (BeginTrainingCheckpoint), every rank writes its moments into it
// (WriteOptimizerShard, into the same directory: the checkpoint directory must be on a file system every rank
// sees, and each leaves its file's size and SHA-256 beside it, so the leader need not read it back), then
// the leader writes the rest, records every file in the manifest and publishes it (CommitTrainingCheckpoint);
// barriers between the calls are the trainer's.
//
// Reading the weights back shares the model directory loader's copy out of the mapping (checkpoint.h), but a
// training checkpoint must match the model exactly, every parameter in fp32 and nothing converted, since a
// resumed run must end with the same weights as an uninterrupted one. Failures are `false` or nullopt with
// `error` set (beginning with the file), as elsewhere in runtime/model; the trainer turns them into a
// CheckpointError.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <optional>
#include <string>

#include "runtime/model/llama.h"

namespace fusec::rt {

/// The version of the checkpoint format this fusec writes and reads (state.json's and manifest.json's
/// `format_version`). 1, implicit: before checksums and identities; 2: the optimizer in LibTorch's
/// serialization (optimizer.pt), indexed by position, which only one process could resume.
inline constexpr int64_t kTrainingCheckpointFormat = 3;

/// Where training stands, as a checkpoint records it.
struct TrainingState {
  int64_t step = 0;         // optimizer steps taken
  int64_t total_steps = 0;  // optimizer steps of the whole stage
  std::string stage;        // the stage's hash: a checkpoint resumes only the stage that wrote it
  std::string metrics;      // the stage's metrics.jsonl lines of steps 1..step, kept as they are
};

/// Writes `model`'s weights, `optimizer`'s state (an AdamW over some or all of the model's parameters) and
/// `state` as checkpoint `step-N` of `dir` (which must exist), publishes it as LATEST and removes the older
/// ones. False with `error` naming the file and the reason ("no space left on device") when one cannot be
/// written; the previous checkpoint is then kept as it was. One process: the three calls below in one.
bool SaveTrainingCheckpoint(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                            const TrainingState& state, const std::string& dir, std::string* error);

/// The file of rank `shard`'s moments among `shards`: `optimizer-00001-of-00003.safetensors`.
std::string OptimizerShardFileName(int64_t shard, int64_t shards);
/// Where checkpoint `step` of `dir` is written before it is published (`step-N.partial`).
std::string CheckpointStagingDirectory(const std::string& dir, int64_t step);
/// The leader: a fresh staging directory for checkpoint `step` of `dir`.
bool BeginTrainingCheckpoint(const std::string& dir, int64_t step, std::string* error);
/// Every rank: the moments of `optimizer`'s parameters (named as `model`'s) into `staging`, as file `shard` of
/// `shards`.
bool WriteOptimizerShard(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                         const std::string& staging, int64_t shard, int64_t shards, std::string* error);
/// The leader, once every shard is written: the weights, metrics and state, the manifest of every file, then
/// publishes the checkpoint as LATEST. On failure the staging directory is removed and LATEST is as it was.
bool CommitTrainingCheckpoint(LlamaForCausalLMImpl& model, const TrainingState& state, int64_t shards,
                              const std::string& dir, std::string* error);

/// The checkpoint `dir`/LATEST names (a `step-N` directory in `dir`). Nullopt with `error` empty when there is
/// none yet (no LATEST); nullopt with `error` naming LATEST when it does not name a checkpoint directory of `dir`.
std::optional<std::string> LatestTrainingCheckpoint(const std::string& dir, std::string* error);

/// Verifies `checkpoint` (a `step-N` directory) as stage `stage`'s, then loads it into `model` and
/// `optimizer` (the moments of the parameters `optimizer` holds, from whichever of the checkpoint's optimizer
/// files has them). Nullopt with `error` naming the file, the field or the tensor, and what does not match, when it
/// is damaged, foreign or of another format; the model and optimizer may then be partly loaded.
std::optional<TrainingState> LoadTrainingCheckpoint(LlamaForCausalLMImpl& model, torch::optim::Optimizer& optimizer,
                                                    const std::string& checkpoint, const std::string& stage,
                                                    std::string* error);

}  // namespace fusec::rt
