// Training checkpoints: what a stopped stage needs to go on as if it had never stopped.
//
// A checkpoint directory holds one `step-NNNNNNNN/` directory per saved step: the weights in fp32
// (model.safetensors, named as the model's parameters), the optimizer's state (optimizer.pt, LibTorch's
// serialization: AdamW's moments and step counts) and state.json (`step`, `total_steps`); `LATEST` names the
// newest complete one. A checkpoint is written into `step-N.partial/`, fsynced and renamed into place, then
// published by replacing LATEST atomically, and only then are older ones removed: a process killed at any
// moment (SIGKILL included) leaves LATEST naming a complete checkpoint, or no LATEST before the first.
//
// Reading the weights back shares the model directory loader's copy out of the mapping (checkpoint.h), but a
// training checkpoint must match the model exactly, every parameter in fp32 and nothing converted, since a
// resumed run must end with the same weights as an uninterrupted one. Failures are `false` or nullopt with
// `error` set, as elsewhere in runtime/model; the trainer turns them into a TrainError.
#pragma once

#include <torch/optim/optimizer.h>

#include <cstdint>
#include <optional>
#include <string>

#include "runtime/model/llama.h"

namespace fusec::rt {

/// Where training stands, as state.json records it.
struct TrainingState {
  int64_t step = 0;         // optimizer steps taken
  int64_t total_steps = 0;  // optimizer steps of the whole stage
};

/// Writes `model`'s weights, `optimizer`'s state and `state` as checkpoint `step-N` of `dir` (which must exist),
/// publishes it as LATEST and removes the older ones. False with `error` when a file cannot be written.
bool SaveTrainingCheckpoint(LlamaForCausalLMImpl& model, const torch::optim::Optimizer& optimizer,
                            const TrainingState& state, const std::string& dir, std::string* error);

/// The checkpoint `dir`/LATEST names (a `step-N` directory in `dir`); nullopt when there is none yet.
std::optional<std::string> LatestTrainingCheckpoint(const std::string& dir);

/// Loads `checkpoint` (a `step-N` directory) into `model` and `optimizer`. Nullopt with `error` naming the
/// checkpoint, its file or the tensor when it is damaged or does not match the model.
std::optional<TrainingState> LoadTrainingCheckpoint(LlamaForCausalLMImpl& model, torch::optim::Optimizer& optimizer,
                                                    const std::string& checkpoint, std::string* error);

}  // namespace fusec::rt
