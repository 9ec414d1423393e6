#include "runtime/model/config.h"

#include <cmath>
#include <cstdio>

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

struct Architecture {
  const char* name;
  const char* model_type;
  bool qkv_bias;
};

constexpr Architecture kArchitectures[] = {
    {"LlamaForCausalLM", "llama", false},
    {"MistralForCausalLM", "mistral", false},
    {"Qwen2ForCausalLM", "qwen2", true},
};

std::optional<ModelConfig> ParseModelConfigUnchecked(const std::string& text, std::string* error) {
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
  auto integer = [&](const char* key, int64_t& into, bool required, int64_t minimum) -> bool {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) {
      if (required) *error = "has no `" + std::string(key) + "`";
      return !required;
    }
    if (!it->is_number_integer() || it->get<int64_t>() < minimum) {
      *error = "`" + std::string(key) + "` must be an integer >= " + std::to_string(minimum);
      return false;
    }
    into = it->get<int64_t>();
    return true;
  };
  auto number = [&](const char* key, double& into, FloatRange range) -> bool {
    auto it = json.find(key);
    if (it == json.end() || it->is_null()) return true;
    if (!it->is_number() || !InRange(it->get<double>(), range)) {
      *error = RangeError(key, range, it->dump());
      return false;
    }
    into = it->get<double>();
    return true;
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
    return fail("architecture `" + config.architecture +
                "` is not supported (LlamaForCausalLM, MistralForCausalLM and Qwen2ForCausalLM are)");
  }
  config.model_type = architecture->model_type;
  config.qkv_bias = architecture->qkv_bias;
  if (!integer("hidden_size", config.hidden_size, true, 1) ||
      !integer("intermediate_size", config.intermediate_size, true, 1) ||
      !integer("num_hidden_layers", config.num_layers, true, 1) ||
      !integer("num_attention_heads", config.num_heads, true, 1) || !integer("vocab_size", config.vocab_size, true, 1) ||
      !integer("max_position_embeddings", config.max_position, false, 1)) {
    return std::nullopt;
  }
  config.num_kv_heads = config.num_heads;
  if (!integer("num_key_value_heads", config.num_kv_heads, false, 1)) return std::nullopt;
  config.head_dim = config.hidden_size / config.num_heads;
  if (!integer("head_dim", config.head_dim, false, 1)) return std::nullopt;
  if (json.find("head_dim") == json.end() && config.hidden_size % config.num_heads != 0) {
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
  if (auto act = json.find("hidden_act"); act != json.end() && act->is_string() && act->get<std::string>() != "silu") {
    return fail("`hidden_act` " + act->get<std::string>() + " is not supported (the decoder uses SwiGLU with silu)");
  }
  if (auto bias = json.find("attention_bias"); bias != json.end() && bias->is_boolean() && bias->get<bool>()) {
    config.qkv_bias = true;
  }
  if (auto bias = json.find("mlp_bias"); bias != json.end() && bias->is_boolean() && bias->get<bool>()) {
    return fail("`mlp_bias` true is not supported");
  }
  if (auto tp = json.find("pretraining_tp"); tp != json.end() && tp->is_number_integer() && tp->get<int64_t>() != 1) {
    return fail("`pretraining_tp` " + std::to_string(tp->get<int64_t>()) + " is not supported (only 1 is)");
  }
  if (auto window = json.find("use_sliding_window"); window != json.end() && window->is_boolean() && window->get<bool>()) {
    return fail("`use_sliding_window` true is not supported");
  }
  if (auto tie = json.find("tie_word_embeddings"); tie != json.end() && tie->is_boolean()) {
    config.tie_word_embeddings = tie->get<bool>();
  }
  if (auto scaling = json.find("rope_scaling"); scaling != json.end() && !scaling->is_null()) {
    if (!scaling->is_object()) return fail("`rope_scaling` must be an object or null");
    std::string kind = scaling->value("rope_type", scaling->value("type", std::string("default")));
    if (kind == "llama3") {
      config.rope_scaling.kind = RopeScaling::Kind::Llama3;
      config.rope_scaling.factor = scaling->value("factor", 8.0);
      config.rope_scaling.low_freq_factor = scaling->value("low_freq_factor", 1.0);
      config.rope_scaling.high_freq_factor = scaling->value("high_freq_factor", 4.0);
      config.rope_scaling.original_max_position = scaling->value("original_max_position_embeddings", int64_t{8192});
      if (config.rope_scaling.high_freq_factor <= config.rope_scaling.low_freq_factor) {
        return fail("`rope_scaling.high_freq_factor` must exceed `low_freq_factor`");
      }
    } else if (kind == "linear") {
      config.rope_scaling.kind = RopeScaling::Kind::Linear;
      config.rope_scaling.factor = scaling->value("factor", 1.0);
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
  if (auto bos = json.find("bos_token_id"); bos != json.end() && bos->is_number_integer()) {
    config.bos_token_id = bos->get<int64_t>();
  }
  if (auto eos = json.find("eos_token_id"); eos != json.end()) {
    if (eos->is_number_integer()) config.eos_token_ids.push_back(eos->get<int64_t>());
    if (eos->is_array()) {
      for (const auto& id : *eos) {
        if (id.is_number_integer()) config.eos_token_ids.push_back(id.get<int64_t>());
      }
    }
  }
  if (auto dtype = json.find("torch_dtype"); dtype != json.end() && dtype->is_string()) {
    config.torch_dtype = dtype->get<std::string>();
    if (config.torch_dtype != "float32" && config.torch_dtype != "bfloat16" && config.torch_dtype != "float16") {
      return fail("`torch_dtype` " + config.torch_dtype + " is not supported (float32, bfloat16, float16 are)");
    }
  }
  return config;
}

}  // namespace

std::optional<ModelConfig> ParseModelConfig(const std::string& text, std::string* error) {
  // Fields of the wrong JSON type surface as exceptions from nlohmann's accessors.
  try {
    return ParseModelConfigUnchecked(text, error);
  } catch (const nlohmann::json::exception& exception) {
    *error = std::string("has a field of the wrong type: ") + exception.what();
    return std::nullopt;
  }
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
  json["hidden_act"] = "silu";
  json["tie_word_embeddings"] = config.tie_word_embeddings;
  json["initializer_range"] = config.initializer_range;
  if (config.model_type == "llama") json["attention_bias"] = config.qkv_bias;
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
