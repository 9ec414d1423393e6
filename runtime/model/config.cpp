#include "runtime/model/config.h"

#include <cmath>
#include <cstdio>
#include <filesystem>
#include <limits>

#include "runtime/support/json_text.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

using Json = nlohmann::ordered_json;

/// The ranges of config.json's float fields. Outside them the decoder computes NaN or Inf, or nonsense: a
/// `rope_theta` below 1 makes the rotary frequencies grow instead of fall (1e-300 overflows them), and an
/// `rms_norm_eps` that float32 rounds to 0 divides a zero row by 0.
struct FloatRange {
  double min;
  double max;
};
constexpr FloatRange kRmsNormEpsRange{1e-12, 1.0};
constexpr FloatRange kRopeThetaRange{1.0, 1e12};
constexpr FloatRange kInitializerRange{1e-30, 1e30};  // init-model also checks the weights it draws
constexpr FloatRange kRopeFactorRange{1e-6, 1e6};
static_assert(kRmsNormEpsRange.min > 1.2e-38, "rms_norm_eps must stay a normal float32");

std::string Number(double value) {
  char text[32];
  std::snprintf(text, sizeof text, "%g", value);
  return text;
}

/// "`key` must be a positive number in [min, max] (got value)".
std::string RangeError(const std::string& key, FloatRange range, const std::string& got) {
  return "`" + key + "` must be a positive number in [" + Number(range.min) + ", " + Number(range.max) + "]" +
         (got.empty() ? "" : " (got " + got + ")");
}

bool InRange(double value, FloatRange range) {
  return std::isfinite(value) && value >= range.min && value <= range.max;
}

/// What config.json's `architectures` names, and the family switches it sets before the fields tune them.
enum class Family : uint8_t { Llama, Mistral, Qwen2, Qwen3, Gemma2 };

struct Architecture {
  const char* name;
  const char* model_type;
  Family family;
};

constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", Family::Llama},    {"MistralForCausalLM", "mistral", Family::Mistral},
    {"Qwen2ForCausalLM", "qwen2", Family::Qwen2},    {"Qwen3ForCausalLM", "qwen3", Family::Qwen3},
    {"Gemma2ForCausalLM", "gemma2", Family::Gemma2},
};
constexpr const char* kSupportedArchitectures =
    "LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM, Qwen3ForCausalLM and Gemma2ForCausalLM are";

// transformers' Gemma2Config defaults, for the fields a config leaves out (Gemma2Config.__init__).
constexpr int64_t kGemma2HeadDim = 256;
constexpr double kGemma2QueryPreAttnScalar = 224;
constexpr double kGemma2AttnLogitSoftcapping = 50.0;
constexpr double kGemma2FinalLogitSoftcapping = 30.0;
constexpr int64_t kGemma2SlidingWindow = 4096;
// Qwen3Config's default head_dim (its hidden_size / num_attention_heads would be 4096 / 32 = 128 as well).
constexpr int64_t kQwen3HeadDim = 128;

/// A JSON value as an error message shows it: its text, cut short when long.
std::string Shown(const Json& value) {
  std::string text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

/// A positive finite number at `key`: absent leaves `into` as it is (the family's default), null clears it.
bool OptionalPositive(const Json& json, const char* key, std::optional<double>& into, std::string* error) {
  auto it = json.find(key);
  if (it == json.end()) return true;
  if (it->is_null()) {
    into.reset();
    return true;
  }
  if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>())) {
    *error = "`" + std::string(key) + "` must be a positive number or null, not " + Shown(*it);
    return false;
  }
  into = it->get<double>();
  return true;
}

/// Gemma-2's attention scale and soft-capping, and the sliding window: which layers use it and how far back
/// it sees. Gemma-2 windows layers 0, 2, 4, ... (modeling_gemma2: `is_sliding = not bool(layer_idx % 2)`),
/// Mistral every layer when it has a `sliding_window`; a `layer_types` list, where a config has one, says it
/// layer by layer. Qwen2's and Qwen3's windows (`use_sliding_window`) are refused.
bool ParseAttentionVariants(const Json& json, Family family, ModelConfig& config, std::string* error) {
  auto fail = [&](const std::string& what) {
    *error = what;
    return false;
  };
  if (family == Family::Gemma2) {
    config.query_pre_attn_scalar = kGemma2QueryPreAttnScalar;
    config.attn_logit_softcapping = kGemma2AttnLogitSoftcapping;
    config.final_logit_softcapping = kGemma2FinalLogitSoftcapping;
    if (!OptionalPositive(json, "query_pre_attn_scalar", config.query_pre_attn_scalar, error) ||
        !OptionalPositive(json, "attn_logit_softcapping", config.attn_logit_softcapping, error) ||
        !OptionalPositive(json, "final_logit_softcapping", config.final_logit_softcapping, error)) {
      return false;
    }
    if (!config.query_pre_attn_scalar) return fail("`query_pre_attn_scalar` must be a positive number, not null");
  } else {
    for (const char* key : {"query_pre_attn_scalar", "attn_logit_softcapping", "final_logit_softcapping"}) {
      if (auto it = json.find(key); it != json.end() && !it->is_null()) {
        return fail("`" + std::string(key) + "` is not supported for " + config.architecture +
                    " (Gemma2ForCausalLM has it)");
      }
    }
  }
  if (auto window = json.find("use_sliding_window"); window != json.end() && !window->is_null()) {
    if (!window->is_boolean()) return fail("`use_sliding_window` must be true or false, not " + Shown(*window));
    if (window->get<bool>()) return fail("`use_sliding_window` true is not supported");
  }
  // The window's size matters only where a layer uses it: Qwen2's and Qwen3's configs carry one, unused.
  const bool windowed = family == Family::Gemma2 || family == Family::Mistral;
  if (!windowed) return true;
  std::optional<int64_t> window =
      family == Family::Gemma2 ? std::optional<int64_t>(kGemma2SlidingWindow) : std::nullopt;
  if (auto it = json.find("sliding_window"); it != json.end()) {
    if (it->is_null()) {
      window.reset();
    } else if (!it->is_number_integer() || it->get<int64_t>() < 1 ||
               it->get<int64_t>() > std::numeric_limits<int32_t>::max()) {
      return fail("`sliding_window` must be an integer >= 1 or null, not " + Shown(*it));
    } else {
      window = it->get<int64_t>();
    }
  }
  if (!window) return true;
  config.sliding_window = window;
  config.sliding_layers.assign(static_cast<size_t>(config.num_layers), false);
  for (int64_t layer = 0; layer < config.num_layers; ++layer) {
    config.sliding_layers[static_cast<size_t>(layer)] = family == Family::Mistral || layer % 2 == 0;
  }
  if (auto types = json.find("layer_types"); types != json.end() && !types->is_null()) {
    if (!types->is_array() || types->size() != static_cast<size_t>(config.num_layers)) {
      return fail("`layer_types` must be a list of `num_hidden_layers` (" + std::to_string(config.num_layers) +
                  ") layer types, not " + Shown(*types));
    }
    for (size_t layer = 0; layer < types->size(); ++layer) {
      const Json& type = (*types)[layer];
      if (type == "sliding_attention" || type == "full_attention") {
        config.sliding_layers[layer] = type == "sliding_attention";
      } else {
        return fail("`layer_types[" + std::to_string(layer) + "]` " + Shown(type) +
                    " is not supported (sliding_attention and full_attention are)");
      }
    }
  }
  return true;
}

std::optional<ModelConfig> ParseModelConfigUnchecked(const std::string& text, std::string* error) {
  if (auto nesting = JsonNestingError(text)) {
    *error = *nesting;
    return std::nullopt;
  }
  Json json = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded() || !json.is_object()) {
    *error = "is not a JSON object";
    return std::nullopt;
  }
  ModelConfig config;
  config.raw = json;
  auto fail = [&](const std::string& what) {
    *error = what;
    return std::nullopt;
  };
  // Sizes are bounded by int32 so that no product of two of them, nor a token id, overflows downstream; the
  // memory a config asks for is checked against the machine when the model is built (llama.cpp).
  constexpr int64_t kMaxSize = std::numeric_limits<int32_t>::max();
  auto integer = [&](const char* key, int64_t& into, bool required, int64_t minimum) -> bool {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) {
      if (required) *error = "has no `" + std::string(key) + "`";
      return !required;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < minimum || it->get<int64_t>() > kMaxSize ||
        (it->is_number_unsigned() && it->get<uint64_t>() > static_cast<uint64_t>(kMaxSize))) {
      *error = "`" + std::string(key) + "` must be an integer >= " + std::to_string(minimum) + " and <= " +
               std::to_string(kMaxSize) + ", not " + Shown(*it);
      return false;
    }
    into = it->get<int64_t>();
    return true;
  };
  auto positive = [&](const Json& object, const std::string& key, const std::string& name, double& into) -> bool {
    auto it = object.find(key);
    if (it == object.end() || it->is_null()) return true;
    if (!it->is_number() || !(it->get<double>() > 0) || !std::isfinite(it->get<double>())) {
      *error = "`" + name + "` must be a positive number, not " + Shown(*it);
      return false;
    }
    into = it->get<double>();
    return true;
  };
  auto number = [&](const char* key, double& into, FloatRange range) -> bool {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return true;
    if (!it->is_number() || !InRange(it->get<double>(), range)) {
      *error = RangeError(key, range, Shown(*it));
      return false;
    }
    into = it->get<double>();
    return true;
  };
  auto boolean = [&](const char* key) -> std::optional<bool> {  // nullopt: absent or null; sets error when not a bool
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return std::nullopt;
    if (!it->is_boolean()) {
      *error = "`" + std::string(key) + "` must be true or false, not " + Shown(*it);
      return std::nullopt;
    }
    return it->get<bool>();
  };
  auto string = [&](const char* key) -> std::optional<std::string> {  // the same for strings
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return std::nullopt;
    if (!it->is_string()) {
      *error = "`" + std::string(key) + "` must be a string, not " + Shown(*it);
      return std::nullopt;
    }
    return it->get<std::string>();
  };

  auto architectures = json.find("architectures");
  if (architectures == json.end() || !architectures->is_array() || architectures->size() != 1 ||
      !(*architectures)[0].is_string()) {
    return fail("needs `architectures` with one architecture, such as [\"LlamaForCausalLM\"]");
  }
  config.architecture = (*architectures)[0].get<std::string>();
  const Architecture* architecture = nullptr;
  for (const Architecture& known : kArchitectures) {
    if (config.architecture == known.name) architecture = &known;
  }
  if (architecture == nullptr) {
    return fail("architecture `" + config.architecture + "` is not supported (" + kSupportedArchitectures + ")");
  }
  const Family family = architecture->family;
  config.model_type = architecture->model_type;
  config.qkv_bias = family == Family::Qwen2;
  if (family == Family::Gemma2) {
    config.norm_style = NormStyle::Gemma;
    config.mlp_activation = MlpActivation::GeluTanh;
    config.scale_embeddings = true;
    config.sandwich_norms = true;
    config.tie_word_embeddings = true;  // Gemma2Config's default
    config.rms_norm_eps = 1e-6;
  }
  if (family == Family::Qwen3) {
    config.qk_norm = true;
    config.rms_norm_eps = 1e-6;
  }
  if (!integer("hidden_size", config.hidden_size, true, 1) ||
      !integer("intermediate_size", config.intermediate_size, true, 1) ||
      !integer("num_hidden_layers", config.num_layers, true, 1) ||
      !integer("num_attention_heads", config.num_heads, true, 1) || !integer("vocab_size", config.vocab_size, true, 1) ||
      !integer("max_position_embeddings", config.max_position, false, 1)) {
    return std::nullopt;
  }
  config.num_kv_heads = config.num_heads;
  if (!integer("num_key_value_heads", config.num_kv_heads, false, 1)) return std::nullopt;
  // Gemma2Config and Qwen3Config default head_dim to a constant; the others derive it.
  const bool derived_head_dim = family != Family::Gemma2 && family != Family::Qwen3;
  config.head_dim = family == Family::Gemma2  ? kGemma2HeadDim
                    : family == Family::Qwen3 ? kQwen3HeadDim
                                              : config.hidden_size / config.num_heads;
  if (!integer("head_dim", config.head_dim, false, 1)) return std::nullopt;
  if (derived_head_dim && json.find("head_dim") == json.end() && config.hidden_size % config.num_heads != 0) {
    return fail("`hidden_size` " + std::to_string(config.hidden_size) + " is not a multiple of `num_attention_heads` " +
                std::to_string(config.num_heads));
  }
  if (config.num_heads % config.num_kv_heads != 0) {
    return fail("`num_attention_heads` " + std::to_string(config.num_heads) + " is not a multiple of " +
                "`num_key_value_heads` " + std::to_string(config.num_kv_heads));
  }
  if (config.head_dim % 2 != 0) return fail("the head size " + std::to_string(config.head_dim) + " is odd");
  if (!number("rms_norm_eps", config.rms_norm_eps, kRmsNormEpsRange) ||
      !number("rope_theta", config.rope_theta, kRopeThetaRange) ||
      !number("initializer_range", config.initializer_range, kInitializerRange)) {
    return std::nullopt;
  }
  if (family == Family::Gemma2) {  // modeling_gemma2 reads `hidden_activation`, not `hidden_act`
    if (auto act = string("hidden_activation"); act && *act != "gelu_pytorch_tanh") {
      return fail("`hidden_activation` " + *act + " is not supported (Gemma-2's GeGLU uses gelu_pytorch_tanh)");
    }
  } else if (auto act = string("hidden_act"); act && *act != "silu") {
    return fail("`hidden_act` " + *act + " is not supported (the decoder uses SwiGLU with silu)");
  }
  if (!error->empty()) return std::nullopt;
  if (auto bias = boolean("attention_bias"); bias && *bias) {
    // Gemma-2's and Qwen3's `attention_bias` also puts a bias on o_proj, which the decoder does not have.
    if (family == Family::Gemma2 || family == Family::Qwen3) {
      return fail("`attention_bias` true is not supported for " + config.architecture);
    }
    config.qkv_bias = true;
  }
  if (auto bias = boolean("mlp_bias"); bias && *bias) return fail("`mlp_bias` true is not supported");
  if (auto tie = boolean("tie_word_embeddings")) config.tie_word_embeddings = *tie;
  if (!error->empty()) return std::nullopt;
  if (!ParseAttentionVariants(json, family, config, error)) return std::nullopt;
  if (auto tp = json.find("pretraining_tp"); tp != json.end() && !tp->is_null()) {
    if (!tp->is_number_integer() || tp->get<int64_t>() != 1) {
      return fail("`pretraining_tp` " + Shown(*tp) + " is not supported (only 1 is)");
    }
  }
  if (auto scaling = json.find("rope_scaling"); scaling != json.end() && !scaling->is_null()) {
    if (!scaling->is_object()) return fail("`rope_scaling` must be an object or null, not " + Shown(*scaling));
    std::string kind = "default";
    for (const char* key : {"type", "rope_type"}) {  // rope_type is the newer name and wins
      auto it = scaling->find(key);
      if (it == scaling->end() || it->is_null()) continue;
      if (!it->is_string()) return fail("`rope_scaling." + std::string(key) + "` must be a string, not " + Shown(*it));
      kind = it->get<std::string>();
    }
    RopeScaling& rope = config.rope_scaling;
    if (kind == "llama3") {
      rope.kind = RopeScaling::Kind::Llama3;
      rope.factor = 8.0;
      double original = static_cast<double>(rope.original_max_position);
      if (!positive(*scaling, "factor", "rope_scaling.factor", rope.factor) ||
          !positive(*scaling, "low_freq_factor", "rope_scaling.low_freq_factor", rope.low_freq_factor) ||
          !positive(*scaling, "high_freq_factor", "rope_scaling.high_freq_factor", rope.high_freq_factor) ||
          !positive(*scaling, "original_max_position_embeddings", "rope_scaling.original_max_position_embeddings",
                    original)) {
        return std::nullopt;
      }
      if (original != std::floor(original) || original > static_cast<double>(kMaxSize)) {
        return fail("`rope_scaling.original_max_position_embeddings` must be an integer, not " +
                    Shown((*scaling)["original_max_position_embeddings"]));
      }
      rope.original_max_position = static_cast<int64_t>(original);
      if (rope.high_freq_factor <= rope.low_freq_factor) {
        return fail("`rope_scaling.high_freq_factor` must exceed `low_freq_factor`");
      }
    } else if (kind == "linear") {
      rope.kind = RopeScaling::Kind::Linear;
      if (!positive(*scaling, "factor", "rope_scaling.factor", rope.factor)) return std::nullopt;
    } else if (kind != "default") {
      return fail("`rope_scaling` type `" + kind + "` is not supported (llama3 and linear are)");
    }
    if (!InRange(config.rope_scaling.factor, kRopeFactorRange)) {
      return fail(RangeError("rope_scaling.factor", kRopeFactorRange, Number(config.rope_scaling.factor)));
    }
    if (!InRange(config.rope_scaling.low_freq_factor, kRopeFactorRange) ||
        !InRange(config.rope_scaling.high_freq_factor, kRopeFactorRange)) {
      return fail(RangeError("rope_scaling.low_freq_factor` and `high_freq_factor", kRopeFactorRange, ""));
    }
    if (config.rope_scaling.original_max_position < 1) {
      return fail("`rope_scaling.original_max_position_embeddings` must be a positive integer");
    }
  }
  auto token_id = [&](const char* key, const Json& id) -> std::optional<int64_t> {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxSize) {
      *error = "`" + std::string(key) + "` must be a token id (an integer >= 0) or a list of them, not " + Shown(id);
      return std::nullopt;
    }
    return id.get<int64_t>();
  };
  if (auto bos = json.find("bos_token_id"); bos != json.end() && !bos->is_null()) {
    config.bos_token_id = token_id("bos_token_id", *bos);
    if (!config.bos_token_id) return std::nullopt;
  }
  if (auto eos = json.find("eos_token_id"); eos != json.end() && !eos->is_null()) {
    for (const Json& id : eos->is_array() ? *eos : Json::array({*eos})) {
      auto parsed = token_id("eos_token_id", id);
      if (!parsed) return std::nullopt;
      config.eos_token_ids.push_back(*parsed);
    }
  }
  if (auto dtype = string("torch_dtype")) {
    config.torch_dtype = *dtype;
    if (config.torch_dtype != "float32" && config.torch_dtype != "bfloat16" && config.torch_dtype != "float16") {
      return fail("`torch_dtype` " + config.torch_dtype + " is not supported (float32, bfloat16, float16 are)");
    }
  }
  if (!error->empty()) return std::nullopt;
  if (!ModelWeightCount(config)) {
    return fail("describes a model of more than 2^64 weights (`num_hidden_layers` " + std::to_string(config.num_layers) +
                ", `hidden_size` " + std::to_string(config.hidden_size) + ", `intermediate_size` " +
                std::to_string(config.intermediate_size) + ", `vocab_size` " + std::to_string(config.vocab_size) + ")");
  }
  return config;
}

}  // namespace

std::optional<ModelConfig> ReadModelConfig(const std::string& dir, std::string* error) {
  std::filesystem::path path = std::filesystem::path(dir) / "config.json";
  std::error_code ec;
  if (!std::filesystem::is_directory(dir, ec)) {
    *error = dir + ": not a model directory" + (ec && ec != std::errc::no_such_file_or_directory ? " (" + ec.message() + ")" : "");
    return std::nullopt;
  }
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(status)) {
    *error = path.string() + ": is a directory, not a file";
    return std::nullopt;
  }
  auto text = ReadWholeFile(path.string());
  if (!text) {
    *error = path.string() + (ec && ec != std::errc::no_such_file_or_directory
                                  ? ": cannot read: " + ec.message()
                                  : ": no such file (a model directory holds config.json and safetensors weights)");
    return std::nullopt;
  }
  auto config = ParseModelConfig(*text, error);
  if (!config) *error = path.string() + ": " + *error;
  return config;
}

std::optional<ModelConfig> ParseModelConfig(const std::string& text, std::string* error) {
  // Every field's type is checked before it is read; a JSON accessor that still throws is a field this
  // parser forgot, reported without nlohmann's text (which names no field).
  error->clear();
  try {
    return ParseModelConfigUnchecked(text, error);
  } catch (const nlohmann::json::exception&) {
    *error = "has a field of an unexpected JSON type";
    return std::nullopt;
  }
}

std::optional<uint64_t> ModelWeightCount(const ModelConfig& config) {
  // Each size is below 2^31 once parsed, so no product of three overflows 128 bits.
  __extension__ using Wide = unsigned __int128;
  const auto hidden = static_cast<Wide>(config.hidden_size);
  const Wide attention = static_cast<Wide>(config.num_heads) * static_cast<Wide>(config.head_dim);
  const Wide key_value = static_cast<Wide>(config.num_kv_heads) * static_cast<Wide>(config.head_dim);
  const Wide projections = hidden * (2 * attention + 2 * key_value);          // q and o, k and v
  const Wide mlp = hidden * 3 * static_cast<Wide>(config.intermediate_size);  // gate, up, down
  const Wide biases = config.qkv_bias ? attention + 2 * key_value : 0;
  const Wide norms =
      (config.sandwich_norms ? 4 : 2) * hidden + (config.qk_norm ? 2 * static_cast<Wide>(config.head_dim) : 0);
  const Wide layer = projections + mlp + biases + norms;
  const Wide embedding = static_cast<Wide>(config.vocab_size) * hidden;
  const Wide total = layer * static_cast<Wide>(config.num_layers) + embedding * (config.tie_word_embeddings ? 1 : 2) +
                     hidden;  // the final norm
  if (total > std::numeric_limits<uint64_t>::max()) return std::nullopt;
  return static_cast<uint64_t>(total);
}

std::string ModelConfigToJson(const ModelConfig& config) {
  Json json = config.raw;
  json["architectures"] = {config.architecture};
  json["model_type"] = config.model_type;
  json["hidden_size"] = config.hidden_size;
  json["intermediate_size"] = config.intermediate_size;
  json["num_hidden_layers"] = config.num_layers;
  json["num_attention_heads"] = config.num_heads;
  json["num_key_value_heads"] = config.num_kv_heads;
  json["head_dim"] = config.head_dim;
  json["vocab_size"] = config.vocab_size;
  json["max_position_embeddings"] = config.max_position;
  json["rms_norm_eps"] = config.rms_norm_eps;
  json["rope_theta"] = config.rope_theta;
  json["hidden_act"] = config.mlp_activation == MlpActivation::GeluTanh ? "gelu_pytorch_tanh" : "silu";
  if (config.model_type == "gemma2") json["hidden_activation"] = "gelu_pytorch_tanh";
  json["tie_word_embeddings"] = config.tie_word_embeddings;
  json["initializer_range"] = config.initializer_range;
  if (config.model_type == "llama" || config.model_type == "qwen3" || config.model_type == "gemma2") {
    json["attention_bias"] = config.qkv_bias;
  }
  auto optional_number = [](const std::optional<double>& value) { return value ? Json(*value) : Json(nullptr); };
  if (config.model_type == "gemma2") {
    json["query_pre_attn_scalar"] = optional_number(config.query_pre_attn_scalar);
    json["attn_logit_softcapping"] = optional_number(config.attn_logit_softcapping);
    json["final_logit_softcapping"] = optional_number(config.final_logit_softcapping);
  }
  if (config.model_type == "gemma2" || config.model_type == "mistral") {
    json["sliding_window"] = config.sliding_window ? Json(*config.sliding_window) : Json(nullptr);
  }
  switch (config.rope_scaling.kind) {
    case RopeScaling::Kind::None:
      json["rope_scaling"] = nullptr;
      break;
    case RopeScaling::Kind::Linear:
      json["rope_scaling"] = {{"rope_type", "linear"}, {"factor", config.rope_scaling.factor}};
      break;
    case RopeScaling::Kind::Llama3:
      json["rope_scaling"] = {{"rope_type", "llama3"},
                              {"factor", config.rope_scaling.factor},
                              {"low_freq_factor", config.rope_scaling.low_freq_factor},
                              {"high_freq_factor", config.rope_scaling.high_freq_factor},
                              {"original_max_position_embeddings", config.rope_scaling.original_max_position}};
      break;
  }
  if (config.bos_token_id) json["bos_token_id"] = *config.bos_token_id;
  if (config.eos_token_ids.size() == 1) json["eos_token_id"] = config.eos_token_ids[0];
  if (config.eos_token_ids.size() > 1) json["eos_token_id"] = config.eos_token_ids;
  json["torch_dtype"] = config.torch_dtype;
  return json.dump(2) + "\n";
}

}  // namespace fusec::rt
