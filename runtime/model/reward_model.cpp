#include "runtime/model/reward_model.h"

#include <torch/torch.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/data/examples.h"
#include "runtime/model/checkpoint.h"
#include "runtime/model/config.h"
#include "runtime/support/json_text.h"
#include "runtime/support/run_error.h"
#include "runtime/support/text.h"

// Legend: N = tokens of a packed forward, B = conversations in it, H = hidden_size, K = objectives (ArmoRM),
// D = the gating network's hidden width.

namespace fusec::rt {
namespace {

namespace fs = std::filesystem;
using Json = nlohmann::ordered_json;

/// A reward architecture: its head, and the causal LM whose decoder is its backbone (config.h parses that).
struct RewardArchitecture {
  const char* name;
  const char* backbone;
  RewardHead head;
};

constexpr RewardArchitecture kRewardArchitectures[] = {
    {"LlamaForSequenceClassification", "LlamaForCausalLM", RewardHead::SequenceClassification},
    {"LlamaForRewardModelWithGating", "LlamaForCausalLM", RewardHead::GatedRegression},
    {"MistralForSequenceClassification", "MistralForCausalLM", RewardHead::SequenceClassification},
    {"Qwen2ForSequenceClassification", "Qwen2ForCausalLM", RewardHead::SequenceClassification},
    {"Qwen3ForSequenceClassification", "Qwen3ForCausalLM", RewardHead::SequenceClassification},
    {"Gemma2ForSequenceClassification", "Gemma2ForCausalLM", RewardHead::SequenceClassification},
};

// ArmoRM's modeling_custom.py defaults, for the fields its config leaves out.
constexpr int64_t kDefaultObjectives = 19;
constexpr int64_t kDefaultGatingHiddenDim = 1024;
constexpr int64_t kDefaultGatingLayers = 3;
constexpr double kDefaultGatingTemperature = 10;
// transformers' PretrainedConfig: a config without `id2label` or `num_labels` has two labels.
constexpr int64_t kDefaultLabels = 2;
// Bounds on the head's sizes, so that a hostile config cannot ask for an allocation that crashes.
constexpr int64_t kMaxHeadWidth = int64_t{1} << 16;
constexpr int64_t kMaxGatingLayers = 64;

std::string Shown(const Json& value) {
  std::string text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

/// ArmoRM's GatingNetwork: `n_hidden` Linear + ReLU layers of width D, then Linear to K (bias as the
/// checkpoint has it), softmax(x / temperature) * logit_scale. Registered as `gating.layers.{i}` and
/// `gating.logit_scale`, the checkpoint's names.
class GatingNetworkImpl : public torch::nn::Module {
 public:
  GatingNetworkImpl(int64_t in, int64_t objectives, int64_t hidden, int64_t hidden_layers, bool last_bias,
                    double temperature)
      : temperature_(temperature) {
    layers = register_module("layers", torch::nn::ModuleList());
    for (int64_t i = 0; i < hidden_layers; ++i) {
      layers->push_back(torch::nn::Linear(torch::nn::LinearOptions(in, hidden).bias(true)));
      in = hidden;
    }
    layers->push_back(torch::nn::Linear(torch::nn::LinearOptions(in, objectives).bias(last_bias)));
    logit_scale = register_parameter("logit_scale", torch::ones({1}));
  }

  /// x [B, H] float32 -> the gate [B, K].
  torch::Tensor forward(torch::Tensor x) {
    const size_t count = layers->size();
    for (size_t i = 0; i < count; ++i) {
      x = layers[i]->as<torch::nn::Linear>()->forward(x);
      if (i + 1 < count) x = torch::relu(x);
    }
    return torch::softmax(x / temperature_, /*dim=*/1) * logit_scale[0];
  }

  torch::nn::ModuleList layers{nullptr};
  torch::Tensor logit_scale;  // [1]

 private:
  double temperature_;
};
TORCH_MODULE(GatingNetwork);

/// The head's sizes and settings as config.json gives them.
struct HeadSettings {
  RewardHead head = RewardHead::SequenceClassification;
  int64_t labels = 1;
  int64_t objectives = kDefaultObjectives;
  int64_t gating_hidden_dim = kDefaultGatingHiddenDim;
  int64_t gating_layers = kDefaultGatingLayers;
  double gating_temperature = kDefaultGatingTemperature;
};

/// An integer field of the head in [minimum, maximum]: absent or null keeps `into`.
void ReadHeadInteger(const Json& json, const char* key, int64_t minimum, int64_t maximum, int64_t& into,
                     const std::string& config_path) {
  auto it = json.find(key);
  if (it == json.end() || it->is_null()) return;
  if (!it->is_number_integer() || it->get<int64_t>() < minimum || it->get<int64_t>() > maximum ||
      (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(maximum))) {
    throw RunError(RunErrorKind::ModelDirectory, config_path + ": `" + key +
                                                     "` must be an integer >= " + std::to_string(minimum) +
                                                     " and <= " + std::to_string(maximum) + ", not " + Shown(*it));
  }
  into = it->get<int64_t>();
}

/// How many labels a sequence classifier's config gives it, as transformers counts them: `id2label`'s
/// entries, else `num_labels`, else two.
int64_t LabelCount(const Json& json, const std::string& config_path) {
  if (auto it = json.find("id2label"); it != json.end() && !it->is_null()) {
    if (!it->is_object()) {
      throw RunError(RunErrorKind::ModelDirectory,
                     config_path + ": `id2label` must be an object of labels, not " + Shown(*it));
    }
    return static_cast<int64_t>(it->size());
  }
  int64_t labels = kDefaultLabels;
  ReadHeadInteger(json, "num_labels", 1, kMaxHeadWidth, labels, config_path);
  return labels;
}

/// Whether the checkpoint of `dir` holds a tensor `name` (its index's `weight_map`, or model.safetensors).
/// A checkpoint that cannot be read answers true: loading reports what is wrong with it.
bool CheckpointHas(const std::string& dir, const std::string& name) {
  const fs::path index = fs::path(dir) / "model.safetensors.index.json";
  std::error_code ec;
  if (fs::exists(index, ec)) {
    auto text = ReadWholeFile(index.string());
    if (!text || JsonNestingError(*text)) return true;
    nlohmann::json parsed = nlohmann::json::parse(*text, nullptr, false);
    if (parsed.is_discarded() || !parsed.is_object() || !parsed.contains("weight_map") ||
        !parsed["weight_map"].is_object()) {
      return true;
    }
    return parsed["weight_map"].contains(name);
  }
  std::string error;
  auto file = SafetensorsFile::Open((fs::path(dir) / "model.safetensors").string(), &error);
  return !file || file->Find(name) != nullptr;
}

/// `chat`'s spelling, as ResolveChatTemplate reads it (enums.def's, written out: the model library links no IR).
std::string_view ChatName(ir::ChatTemplateName chat) {
  switch (chat) {
    case ir::ChatTemplateName::Auto:
      return "auto";
    case ir::ChatTemplateName::Llama3:
      return "llama3";
    case ir::ChatTemplateName::Chatml:
      return "chatml";
    case ir::ChatTemplateName::Gemma:
      return "gemma";
    case ir::ChatTemplateName::Plain:
      return "plain";
  }
  return "auto";
}

torch::Tensor LongTensor(const std::vector<int64_t>& values, const torch::Device& device) {
  return torch::tensor(values, torch::kLong).to(device);
}

}  // namespace

std::string SupportedRewardArchitectures() {
  std::string names;
  const size_t count = std::size(kRewardArchitectures);
  for (size_t i = 0; i < count; ++i) {
    names += (i == 0 ? "" : i + 1 == count ? " and " : ", ") + std::string(kRewardArchitectures[i].name);
  }
  return names;
}

int64_t GatingPosition(const std::vector<int32_t>& prompt_ids, const Tokenizer& tokenizer, const ChatTemplate& chat) {
  if (prompt_ids.empty()) return -1;
  const std::vector<int32_t> end_of_turn = tokenizer.Encode(chat.EndOfTurn(), /*add_special_tokens=*/false);
  if (!end_of_turn.empty() && end_of_turn.size() <= prompt_ids.size()) {
    for (size_t start = prompt_ids.size() - end_of_turn.size() + 1; start-- > 0;) {
      if (std::equal(end_of_turn.begin(), end_of_turn.end(), prompt_ids.begin() + static_cast<std::ptrdiff_t>(start))) {
        return static_cast<int64_t>(start + end_of_turn.size()) - 1;
      }
    }
  }
  return static_cast<int64_t>(prompt_ids.size()) - 1;
}

struct RewardModel::State {
  std::string dir;
  RewardHead head = RewardHead::SequenceClassification;
  LlamaForCausalLM model{nullptr};
  std::optional<Tokenizer> tokenizer;
  ChatTemplate chat;
  // The head, float32 on the model's device (registered in `model` under the checkpoint's names).
  torch::nn::Linear score{nullptr};             // [labels = 1, H]
  torch::nn::Linear regression_layer{nullptr};  // [K, H]
  torch::Tensor reward_transform_matrix;        // [K, K]
  GatingNetwork gating{nullptr};
};

RewardModel::RewardModel(std::unique_ptr<State> state) : state_(std::move(state)) {}
RewardModel::RewardModel(RewardModel&&) noexcept = default;
RewardModel& RewardModel::operator=(RewardModel&&) noexcept = default;
RewardModel::~RewardModel() = default;

RewardHead RewardModel::head() const { return state_->head; }
const Tokenizer& RewardModel::tokenizer() const { return *state_->tokenizer; }
const ChatTemplate& RewardModel::chat() const { return state_->chat; }
const LlamaForCausalLMImpl& RewardModel::backbone() const { return *state_->model; }

RewardModel RewardModel::Load(const std::string& dir, ir::ChatTemplateName chat, torch::Device device,
                              std::string* warning) {
  auto fail = [&](const std::string& what) -> RunError {
    return std::move(RunError(RunErrorKind::ModelDirectory, what).Place(dir));
  };
  const std::string config_path = (fs::path(dir) / "config.json").string();
  std::error_code ec;
  if (!fs::is_directory(dir, ec)) throw fail(dir + ": not a model directory");
  auto text = ReadWholeFile(config_path);
  if (!text) throw fail(config_path + ": no such file (a model directory holds config.json and safetensors weights)");
  if (auto nesting = JsonNestingError(*text)) throw fail(config_path + ": " + *nesting);
  Json json = Json::parse(*text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) throw fail(config_path + ": is not a JSON object");

  // The architecture names the head; the backbone is parsed as the causal LM it extends.
  auto architectures = json.find("architectures");
  if (architectures == json.end() || !architectures->is_array() || architectures->size() != 1 ||
      !(*architectures)[0].is_string()) {
    throw fail(config_path + ": needs `architectures` with one architecture, such as " +
               "[\"LlamaForSequenceClassification\"]");
  }
  const std::string name = (*architectures)[0].get<std::string>();
  const RewardArchitecture* architecture = nullptr;
  for (const RewardArchitecture& known : kRewardArchitectures) {
    if (name == known.name) architecture = &known;
  }
  if (architecture == nullptr) {
    throw std::move(fail(config_path + ": architecture `" + name + "` is not a supported reward model (" +
                         SupportedRewardArchitectures() + " are)")
                        .Help("a reward model's config.json names its head in `architectures`; a causal LM has none"));
  }
  HeadSettings settings;
  settings.head = architecture->head;
  try {
    if (settings.head == RewardHead::SequenceClassification) {
      settings.labels = LabelCount(json, config_path);
      if (settings.labels != 1) {
        throw fail(config_path + ": " + name + " has " + std::to_string(settings.labels) +
                   " labels (`id2label`, `num_labels`); a reward model scores with one");
      }
    } else {
      ReadHeadInteger(json, "num_objectives", 1, kMaxHeadWidth, settings.objectives, config_path);
      ReadHeadInteger(json, "gating_hidden_dim", 1, kMaxHeadWidth, settings.gating_hidden_dim, config_path);
      ReadHeadInteger(json, "gating_n_hidden", 0, kMaxGatingLayers, settings.gating_layers, config_path);
      if (auto it = json.find("gating_temperature"); it != json.end() && !it->is_null()) {
        if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>())) {
          throw fail(config_path + ": `gating_temperature` must be a positive number, not " + Shown(*it));
        }
        settings.gating_temperature = it->get<double>();
      }
    }
  } catch (RunError& error) {
    throw std::move(error.Place(dir));
  }

  Json backbone_json = json;
  backbone_json["architectures"] = Json::array({architecture->backbone});
  std::string error;
  auto config = ParseModelConfig(backbone_json.dump(), &error);
  if (!config) throw fail(config_path + ": " + error);
  config->architecture = name;         // for messages about its tensors
  config->tie_word_embeddings = true;  // no LM head: the decoder builds none when tied

  auto state = std::make_unique<State>();
  state->dir = dir;
  state->head = settings.head;
  try {
    state->model = LlamaForCausalLM(*config);
  } catch (RunError& too_large) {  // the config asks for more memory than there is
    throw std::move(too_large.Place(config_path));
  }
  auto dtype = ResolveDtype("auto", *config, device, &error);
  if (!dtype) throw fail(error);
  state->model->to(device, *dtype);
  // The head after the move, so it stays float32: registered under the checkpoint's names, loaded and checked
  // with the backbone's tensors.
  const int64_t hidden = config->hidden_size;
  LlamaForCausalLMImpl& model = *state->model;
  if (settings.head == RewardHead::SequenceClassification) {
    state->score = model.register_module(
        "score", torch::nn::Linear(torch::nn::LinearOptions(hidden, settings.labels).bias(false)));
    state->score->to(device, torch::kFloat);
  } else {
    state->regression_layer = model.register_module(
        "regression_layer", torch::nn::Linear(torch::nn::LinearOptions(hidden, settings.objectives).bias(false)));
    state->reward_transform_matrix =
        model.register_parameter("reward_transform_matrix", torch::eye(settings.objectives));
    const bool last_bias = CheckpointHas(dir, "gating.layers." + std::to_string(settings.gating_layers) + ".bias");
    state->gating =
        model.register_module("gating", GatingNetwork(hidden, settings.objectives, settings.gating_hidden_dim,
                                                      settings.gating_layers, last_bias, settings.gating_temperature));
    state->regression_layer->to(device, torch::kFloat);
    state->gating->to(device, torch::kFloat);
    torch::NoGradGuard no_grad;
    state->reward_transform_matrix.set_data(state->reward_transform_matrix.to(device, torch::kFloat));
  }
  if (!LoadWeights(model, dir, &error)) throw fail(error);
  model.eval();
  model.set_source(dir);

  // A tokenizer may have more tokens than the embedding has rows: reward models often add a pad token only
  // their upstream batching uses (ArmoRM's and Skywork's `pad_token_id` 128256). Input() refuses a conversation
  // that tokenizes to one of them.
  auto tokenizer = Tokenizer::Load(dir, &error);
  if (!tokenizer) throw fail(error);
  std::string chat_warning;
  auto resolved = ResolveChatTemplate(ChatName(chat), *tokenizer, dir, &error, &chat_warning);
  if (!resolved) throw RunError(RunErrorKind::Tokenization, error).Place(dir);
  if (warning != nullptr) *warning = chat_warning;
  state->tokenizer = std::move(tokenizer);
  state->chat = std::move(*resolved);
  return RewardModel(std::move(state));
}

std::optional<RewardInput> RewardModel::Input(const PromptRecord& record, std::string_view response,
                                              std::string* error) const {
  auto prompt = TokenizePrompt(record, *state_->tokenizer, state_->chat, error);
  if (!prompt) return std::nullopt;
  auto reply = TokenizeResponse(record, response, *state_->tokenizer, state_->chat, error);
  if (!reply) return std::nullopt;
  const int64_t vocab = state_->model->config().vocab_size;
  for (const std::vector<int32_t>* ids : {&*prompt, &*reply}) {
    for (int32_t id : *ids) {
      if (id >= vocab) {
        *error = "the reward model's tokenizer gives token " + std::to_string(id) + " (`" +
                 state_->tokenizer->TokenText(id) + "`), outside its `vocab_size` " + std::to_string(vocab) + " (" +
                 state_->dir + "/config.json)";
        return std::nullopt;
      }
    }
  }
  RewardInput input;
  if (state_->head == RewardHead::GatedRegression) {
    input.gating_position = GatingPosition(*prompt, *state_->tokenizer, state_->chat);
  }
  input.ids = std::move(*prompt);
  input.ids.insert(input.ids.end(), reply->begin(), reply->end());
  return input;
}

std::vector<double> RewardModel::Score(const std::vector<RewardInput>& inputs, int64_t batch_tokens,
                                       const std::function<void(int64_t, int64_t)>& progress,
                                       const std::function<bool(int64_t batch)>& computes_batch) {
  State& state = *state_;
  LlamaForCausalLMImpl& model = *state.model;
  const ModelConfig& config = model.config();
  if (batch_tokens < 1) {
    throw RunError(RunErrorKind::Internal,
                   "reward scoring needs batch_tokens >= 1, not " + std::to_string(batch_tokens));
  }
  for (size_t i = 0; i < inputs.size(); ++i) {
    const RewardInput& input = inputs[i];
    const auto length = static_cast<int64_t>(input.ids.size());
    const std::string which = "reward input " + std::to_string(i);
    if (length == 0) throw RunError(RunErrorKind::Internal, which + " has no tokens");
    if (length > config.max_position) {
      throw RunError(RunErrorKind::PositionLimit,
                     which + " has " + std::to_string(length) + " tokens, more than the reward model's " +
                         "`max_position_embeddings` " + std::to_string(config.max_position))
          .Place(state.dir)
          .Help("shorten the responses (max_new_tokens) or the prompts");
    }
    for (int32_t id : input.ids) {
      if (id < 0 || id >= config.vocab_size) {
        throw RunError(RunErrorKind::Internal, which + " holds token id " + std::to_string(id) +
                                                   ", outside the reward model's vocabulary of " +
                                                   std::to_string(config.vocab_size));
      }
    }
    if (state.head == RewardHead::GatedRegression && (input.gating_position < 0 || input.gating_position >= length)) {
      throw RunError(RunErrorKind::Internal, which + " has gating position " + std::to_string(input.gating_position) +
                                                 ", outside its " + std::to_string(length) + " tokens");
    }
  }

  torch::NoGradGuard no_grad;
  const torch::Device device = model.model->embed_tokens->weight.device();
  std::vector<double> scores;
  scores.reserve(inputs.size());
  const auto total = static_cast<int64_t>(inputs.size());
  for (size_t begin = 0, batch_index = 0; begin < inputs.size(); ++batch_index) {
    // One packed row: each conversation a segment of its own, positions from 0.
    PackedLayout layout;
    std::vector<int64_t> ids, positions, last_rows, gating_rows;
    size_t end = begin;
    while (end < inputs.size()) {
      const RewardInput& input = inputs[end];
      const auto length = static_cast<int64_t>(input.ids.size());
      if (end > begin && static_cast<int64_t>(ids.size()) + length > batch_tokens) break;
      const auto first = static_cast<int64_t>(ids.size());
      layout.segments.push_back({first, length, -1});
      for (int64_t t = 0; t < length; ++t) {
        ids.push_back(input.ids[static_cast<size_t>(t)]);
        positions.push_back(t);
      }
      last_rows.push_back(first + length - 1);
      gating_rows.push_back(first + std::max<int64_t>(input.gating_position, 0));
      ++end;
    }
    if (computes_batch && !computes_batch(static_cast<int64_t>(batch_index))) {  // another rank's batch
      scores.insert(scores.end(), end - begin, 0.0);
      begin = end;
      if (progress) progress(static_cast<int64_t>(begin), total);
      continue;
    }
    torch::Tensor hidden =
        model.HiddenPacked(LongTensor(ids, device).view({1, -1}), LongTensor(positions, device).view({1, -1}), layout)
            .squeeze(0);                                                                           // [N, H]
    torch::Tensor last = hidden.index_select(0, LongTensor(last_rows, device)).to(torch::kFloat);  // [B, H]
    torch::Tensor batch_scores;                                                                    // [B]
    if (state.head == RewardHead::SequenceClassification) {
      batch_scores = state.score->forward(last).select(1, 0);
    } else {
      torch::Tensor rewards = state.regression_layer->forward(last);                                     // [B, K]
      torch::Tensor prompt = hidden.index_select(0, LongTensor(gating_rows, device)).to(torch::kFloat);  // [B, H]
      torch::Tensor gate = state.gating->forward(prompt);                                                // [B, K]
      batch_scores = (gate * torch::matmul(rewards, state.reward_transform_matrix)).sum(1);
    }
    batch_scores = batch_scores.to(torch::kDouble).cpu();
    const int64_t bad = batch_scores.isfinite().logical_not().sum().item<int64_t>();
    if (bad > 0) {
      throw RunError(RunErrorKind::NonFiniteModel, "the reward model's scores are not finite (NaN or Inf) for " +
                                                       std::to_string(bad) + " of " +
                                                       std::to_string(batch_scores.size(0)) + " conversations")
          .Place(state.dir)
          .Help(
              "the weights are finite (checked on load): a head or a value of config.json overflows, or a narrow "
              "dtype does; fp32 has the widest range");
    }
    const double* values = batch_scores.data_ptr<double>();
    scores.insert(scores.end(), values, values + batch_scores.size(0));
    begin = end;
    if (progress) progress(static_cast<int64_t>(begin), total);
  }
  return scores;
}

}  // namespace fusec::rt
