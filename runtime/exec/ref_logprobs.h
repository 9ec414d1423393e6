// Reference log-probabilities: the body of the hoisted `ref_logprobs` node, shared with fusec-bench.
//
// The passes hoist a frozen reference model's log-probabilities out of training (compiler/passes), so they
// are computed once per stage's items, cached, and the reference model is never resident while training.
// The computation is one function, so the benchmark times exactly what `fusec run` runs.
#pragma once

#include <cstdint>
#include <vector>

#include "runtime/dist/work_split.h"
#include "runtime/model/inference.h"
#include "runtime/model/llama.h"
#include "runtime/train/trainer.h"

namespace fusec::rt {

/// The summed log-probability under `model` of every role's response of every item of `data`:
/// [item][role]. Each prompt's distinct responses are scored together, packed behind one copy of the prompt,
/// in batches of about `batch_tokens` tokens. Under several ranks each computes its share of the batches
/// (`split`) and every rank returns all of them.
std::vector<std::vector<double>> ReferenceLogprobs(LlamaForCausalLMImpl& model, const TrainData& data,
                                                   int64_t batch_tokens, const LogProbOptions& options,
                                                   const WorkSplit& split = WorkSplit());

/// Every rank's share of `scores` (ScoreResponses with split.Filter(): the others' batches {0, 0}), in place.
void GatherScores(const WorkSplit& split, std::vector<std::vector<ResponseScore>>& scores);

}  // namespace fusec::rt
