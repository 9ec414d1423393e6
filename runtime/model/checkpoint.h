// Model directories as Hugging Face writes and reads them: config.json, model.safetensors (or shards with
// model.safetensors.index.json), generation_config.json, and the tokenizer files.
//
// Loading checks every tensor against the model the config describes before copying anything: a missing
// tensor, an unexpected one, a wrong shape or a dtype that is not F32/BF16/F16 is an error naming the file
// and the tensor. Tensors are copied from the memory mapping straight into parameters. Writing produces what
// transformers' from_pretrained loads (tensor names, `format: pt` metadata, shards of at most
// `max_shard_bytes`), written into a staging directory and renamed into place, so a crash never leaves half a
// model under the final name.
#pragma once

#include <torch/types.h>

#include <optional>
#include <string>

#include "runtime/model/config.h"
#include "runtime/model/llama.h"
#include "runtime/model/safetensors.h"
#include "runtime/tokenizer/chat_template.h"

namespace fusec::rt {

/// The dtype a model directory's weights are loaded in: `requested` (fp32, bf16, fp16), or for `auto` the
/// config's torch_dtype on CUDA and float32 on CPU (LibTorch 1.13's CPU kernels are slow in bf16). fp16 on the
/// CPU is refused: LibTorch 1.13 has no float16 matrix product there.
std::optional<torch::Dtype> ResolveDtype(const std::string& requested, const ModelConfig& config,
                                         const torch::Device& device, std::string* error);

/// Builds the model `dir` describes and loads its weights, in `dtype` on `device`. A config that asks for more
/// memory than the machine has throws the RunError OutOfMemory (llama.h), placed at its config.json.
std::optional<LlamaForCausalLM> LoadModel(const std::string& dir, torch::Dtype dtype, const torch::Device& device,
                                          std::string* error);

/// Copies the weights of the safetensors checkpoint in `dir` into `model`'s parameters.
bool LoadWeights(LlamaForCausalLMImpl& model, const std::string& dir, std::string* error);

/// Copies `tensor` of `file` into `parameter`, converting it to the parameter's dtype and device. The caller
/// has checked that the shapes agree. The mapping is viewed in place when it is aligned, else copied out first.
/// LoadWeights and training checkpoints (training_checkpoint.h) both read weights through it.
void CopyTensorInto(const SafetensorsFile& file, const TensorInfo& tensor, torch::Tensor& parameter);

struct SaveOptions {
  torch::Dtype dtype = torch::kFloat;           // the dtype written (and recorded as torch_dtype)
  uint64_t max_shard_bytes = uint64_t{5} << 30;  // transformers' default, 5 GiB
  std::string tokenizer_dir;                     // tokenizer files are copied from here, if set
  /// The chat template the model was made or trained with, recorded in its tokenizer_config.json
  /// (RecordChatTemplate) so readers default to it; unset: the copied files stay as they are.
  std::optional<ChatTemplateKind> chat_template;
};

/// Writes `model` as a Hugging Face model directory at `dir` (which must not exist, or be a fusec model
/// directory to replace).
bool SaveModel(LlamaForCausalLMImpl& model, const std::string& dir, const SaveOptions& options, std::string* error);

/// The tokenizer files a model directory carries along.
inline constexpr const char* kTokenizerFiles[] = {"tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"};

}  // namespace fusec::rt
