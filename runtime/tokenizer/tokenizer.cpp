#include "runtime/tokenizer/tokenizer.h"

#include <filesystem>
#include <nlohmann/json.hpp>

#include "compiler/support/sha256.h"
#include "runtime/support/json_text.h"
#include "runtime/support/text.h"
#include "runtime/tokenizer/added_vocabulary.h"
#include "runtime/tokenizer/bpe_model.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/decoders.h"
#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/normalizers.h"
#include "runtime/tokenizer/post_processors.h"
#include "runtime/tokenizer/pre_tokenizers.h"
#include "runtime/tokenizer/tokenizer_model.h"
#include "runtime/tokenizer/unigram_model.h"

namespace fusec::rt {
namespace {

using tok::BoolField;
using tok::Field;
using tok::Indexed;
using tok::Json;
using tok::Malformed;
using tok::Refuse;
using tok::StringField;

/// transformers' clean_up_tokenization: drops the space before punctuation and English contractions.
std::string CleanUpTokenizationSpaces(const std::string& text) {
  static const std::pair<std::string_view, std::string_view> kReplacements[] = {
      {" .", "."}, {" ?", "?"}, {" !", "!"}, {" ,", ","}, {" ' ", "'"}, {" n't", "n't"},
      {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
  std::string out = text;
  for (auto [from, to] : kReplacements) {
    std::string next;
    size_t position = 0;
    while (true) {
      size_t found = out.find(from, position);
      if (found == std::string::npos) break;
      next.append(out, position, found - position);
      next.append(to);
      position = found + from.size();
    }
    next.append(out, position, std::string::npos);
    out = std::move(next);
  }
  return out;
}

/// tokenizer.json's `model`. A model type is one line here.
std::unique_ptr<tok::TokenizerModel> ModelFromJson(const Json& model, const std::string& path) {
  if (!model.is_object()) Malformed(path, "an object", model);
  const std::string type = StringField(model, "type", path + ".type", "BPE");
  if (type == "BPE") return tok::BpeModel::FromJson(model, path);
  if (type == "Unigram") {
    std::string error;
    auto unigram = UnigramModel::FromJson(model, path, &error);
    // Without an unknown piece Hugging Face fails the whole encode at a character no piece covers; Encode has
    // no error to give, so such a model is refused here rather than failing on some later text.
    if (unigram && !unigram->unk_id()) {
      Refuse("`" + path + ".unk_id` is null: a Unigram model without an unknown piece cannot encode text "
             "outside its vocabulary, and fusec does not load one");
    }
    return tok::AdaptedModelOrRefuse(std::move(unigram), error);
  }
  Refuse("model type `" + type + "` is not supported (BPE and Unigram are)");
}

}  // namespace

const std::vector<std::string>& ByteLevelAlphabet() { return tok::ByteLevelChars(); }

/// The pipeline, in Hugging Face's order: added tokens split out, then normalizer -> pre-tokenizer -> model ->
/// post-processor; decoding: tokens -> decoder.
struct Tokenizer::State {
  std::unique_ptr<tok::TokenizerModel> model;
  std::unique_ptr<tok::Normalizer> normalizer;      // null: none
  std::unique_ptr<tok::PreTokenizer> pre_tokenizer;  // null: the segment is one piece
  std::unique_ptr<tok::PostProcessor> post_processor;
  std::unique_ptr<tok::Decoder> decoder;  // null: tokens joined by spaces (Hugging Face's rule)
  std::vector<AddedToken> added_tokens;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::unordered_map<std::string, int32_t> added_by_content;
  tok::AddedTokenMatcher raw_added;         // `normalized: false`, found in the raw text
  tok::AddedTokenMatcher normalized_added;  // `normalized: true`, found in normalized segments
  std::vector<bool> special;                // by id
  int32_t vocab_size = 0;
  std::string bos_token;
  std::string eos_token;
  std::string chat_template;
  bool has_config = false;
  std::string chat_template_problem;
  std::string recorded_chat_template;
  bool clean_up_tokenization_spaces = false;
  std::string fingerprint;

  std::optional<int32_t> FindToken(std::string_view token) const {
    if (auto it = added_by_content.find(std::string(token)); it != added_by_content.end()) return it->second;
    return model->TokenToId(token);
  }

  const std::string& Token(int32_t id) const {
    if (auto it = added_by_id.find(id); it != added_by_id.end()) return added_tokens[it->second].content;
    return model->IdToToken(id);
  }

  /// Pre-tokenizes and tokenizes a normalized piece without added tokens.
  void EncodeNormalized(std::string text, bool at_start, std::vector<int32_t>& ids) const {
    std::vector<tok::Piece> pieces;
    pieces.push_back({std::move(text), at_start});
    if (pre_tokenizer) pre_tokenizer->PreTokenize(pieces);
    for (const tok::Piece& piece : pieces) model->Tokenize(piece.text, &ids);
  }

  /// A segment of the raw text between added tokens: normalized, then split on the normalized added tokens.
  void EncodeSegment(std::string_view segment, bool at_start, std::vector<int32_t>& ids) const {
    std::string normalized(segment);
    if (normalizer) normalizer->Normalize(normalized);
    if (normalized_added.empty()) {
      EncodeNormalized(std::move(normalized), at_start, ids);
      return;
    }
    size_t position = 0;
    while (position < normalized.size()) {
      auto added = normalized_added.Next(normalized, position);
      size_t plain_end = added ? added->begin : normalized.size();
      if (plain_end > position) EncodeNormalized(normalized.substr(position, plain_end - position), at_start && position == 0, ids);
      if (!added) break;
      ids.push_back(added->token->id);
      position = added->end;
    }
  }
};

Tokenizer::Tokenizer(std::unique_ptr<State> state) : state_(std::move(state)) {}
Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::optional<Tokenizer> Tokenizer::Load(const std::string& path, std::string* error) {
  namespace fs = std::filesystem;
  std::error_code ec;
  fs::path file = fs::is_directory(path, ec) ? fs::path(path) / "tokenizer.json" : fs::path(path);
  if (fs::is_directory(file, ec)) {
    *error = file.string() + ": is a directory, not tokenizer.json";
    return std::nullopt;
  }
  auto text = ReadWholeFile(file.string());
  if (!text) {
    (void)fs::status(file, ec);  // why it cannot be read
    *error = file.string() + ": " + (ec ? ec.message() : std::string("cannot read"));
    if (ec == std::errc::no_such_file_or_directory) *error = file.string() + ": no such file";
    return std::nullopt;
  }
  const fs::path config_path = file.parent_path() / "tokenizer_config.json";
  std::string config = ReadWholeFile(config_path.string()).value_or("");
  auto tokenizer = FromJson(*text, config, error);
  if (!tokenizer) {
    // FromJson says which of the two files is wrong by its name; here it becomes the path.
    constexpr std::string_view kConfigName = "tokenizer_config.json: ";
    if (error->starts_with(kConfigName)) {
      *error = config_path.string() + ": " + error->substr(kConfigName.size());
    } else {
      *error = file.string() + ": " + *error;
    }
  }
  return tokenizer;
}

std::optional<Tokenizer> Tokenizer::FromJson(const std::string& tokenizer_json, const std::string& config_json,
                                             std::string* error) {
  // The typed reads throw TokenizerJsonError naming the field; a JSON accessor that still throws is a read
  // this code forgot to type, reported without nlohmann's text (which names no field).
  try {
    return FromJsonUnchecked(tokenizer_json, config_json, error);
  } catch (const tok::TokenizerJsonError& malformed) {
    *error = malformed.message;
    return std::nullopt;
  } catch (const nlohmann::json::exception&) {
    *error = "has a field of an unexpected JSON type";
    return std::nullopt;
  }
}

std::optional<Tokenizer> Tokenizer::FromJsonUnchecked(const std::string& tokenizer_json, const std::string& config_json,
                                                      std::string* error) {
  auto fail = [&](const std::string& what) -> std::optional<Tokenizer> {
    *error = what;
    return std::nullopt;
  };
  if (auto nesting = JsonNestingError(tokenizer_json)) return fail(*nesting);
  Json json = Json::parse(tokenizer_json, nullptr, false);
  if (json.is_discarded() || !json.is_object()) return fail("tokenizer.json is not a JSON object");
  auto state = std::make_unique<State>();
  state->fingerprint = Sha256Hex(tokenizer_json + std::string(1, '\0') + config_json);

  const Json* model = Field(json, "model");
  if (model == nullptr) return fail("has no `model`");
  state->model = ModelFromJson(*model, "model");
  // Every BPE tokenizer.json lists its merges (an empty list for a byte-level vocabulary); a file without
  // them is cut short or not what it claims, and tokenizing with none would silently give other ids.
  const bool lacks_merges = StringField(*model, "type", "model.type", "BPE") == "BPE" && Field(*model, "merges") == nullptr;
  json.erase("model");  // the vocabulary and merges are read; free them before the rest is built
  state->vocab_size = state->model->vocab_size();

  // Each component, or null when tokenizer.json has none.
  auto component = [&](const char* key) -> const Json* {
    const Json* value = Field(json, key);
    if (value != nullptr && !value->is_object()) Malformed(key, "an object or null", *value);
    return value;
  };
  if (const Json* normalizer = component("normalizer")) state->normalizer = tok::NormalizerFromJson(*normalizer, "normalizer");
  if (const Json* pre = component("pre_tokenizer")) state->pre_tokenizer = tok::PreTokenizerFromJson(*pre, "pre_tokenizer");
  if (const Json* decoder = component("decoder")) state->decoder = tok::DecoderFromJson(*decoder, "decoder");

  // Added tokens.
  const Json& added_tokens = tok::ListField(json, "added_tokens", "added_tokens");
  std::vector<bool> normalized_flags;
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const Json& entry = added_tokens[i];
    const std::string where = Indexed("added_tokens", i);
    if (!entry.is_object()) Malformed(where, "an object with `id` and `content`", entry);
    const Json* id = Field(entry, "id");
    const Json* content = Field(entry, "content");
    if (id == nullptr || content == nullptr) return fail("an added token has no id or content (`" + where + "`)");
    AddedToken token;
    token.id = tok::TokenIdValue(*id, where + ".id");
    if (!content->is_string() || content->get<std::string>().empty()) {
      Malformed(where + ".content", "a non-empty string", *content);
    }
    token.content = content->get<std::string>();
    token.special = BoolField(entry, "special", where + ".special", false);
    token.lstrip = BoolField(entry, "lstrip", where + ".lstrip", false);
    token.rstrip = BoolField(entry, "rstrip", where + ".rstrip", false);
    token.single_word = BoolField(entry, "single_word", where + ".single_word", false);
    normalized_flags.push_back(BoolField(entry, "normalized", where + ".normalized", !token.special));
    state->vocab_size = std::max(state->vocab_size, token.id + 1);
    state->added_by_id[token.id] = state->added_tokens.size();
    state->added_by_content.emplace(token.content, token.id);
    state->added_tokens.push_back(std::move(token));
  }
  state->special.assign(static_cast<size_t>(state->vocab_size), false);
  for (size_t i = 0; i < state->added_tokens.size(); ++i) {
    const AddedToken& token = state->added_tokens[i];
    if (token.special) state->special[static_cast<size_t>(token.id)] = true;
    if (normalized_flags[i] && state->normalizer) {
      std::string text = token.content;
      state->normalizer->Normalize(text);
      state->normalized_added.Add(&token, std::move(text));
    } else if (normalized_flags[i]) {
      state->normalized_added.Add(&token, token.content);
    } else {
      state->raw_added.Add(&token, token.content);
    }
  }

  if (const Json* post = component("post_processor")) {
    state->post_processor = tok::PostProcessorFromJson(*post, "post_processor", state->vocab_size);
  }
  if (lacks_merges) return fail("the BPE model has no `model.merges` (a byte-level vocabulary without merges lists none: [])");

  // tokenizer_config.json: BOS, EOS and the chat template. Its errors start with the file's name, which Load
  // turns into its path.
  if (!config_json.empty()) {
    const std::string kConfig = "tokenizer_config.json: ";
    if (auto nesting = JsonNestingError(config_json)) return fail(kConfig + *nesting);
    Json config = Json::parse(config_json, nullptr, false);
    if (config.is_discarded() || !config.is_object()) return fail(kConfig + "is not a JSON object");
    state->has_config = true;
    try {
      auto token_text = [](const Json& value, const std::string& path) -> std::string {
        if (value.is_null()) return "";
        if (value.is_string()) return value.get<std::string>();
        if (value.is_object()) return StringField(value, "content", path + ".content", "");
        Malformed(path, "a token (a string or an object with `content`)", value);
      };
      if (config.contains("bos_token")) state->bos_token = token_text(config["bos_token"], "bos_token");
      if (config.contains("eos_token")) state->eos_token = token_text(config["eos_token"], "eos_token");
      state->clean_up_tokenization_spaces =
          BoolField(config, "clean_up_tokenization_spaces", "clean_up_tokenization_spaces", false);
      if (const Json* chat = Field(config, "chat_template"); chat != nullptr && chat->is_string()) {
        state->chat_template = chat->get<std::string>();
      } else if (chat != nullptr && !chat->is_null()) {
        state->chat_template_problem = "`chat_template` is not a string (a list of named templates is not supported)";
      }
      if (config.contains(kRecordedChatTemplateKey) && config[kRecordedChatTemplateKey].is_string()) {
        state->recorded_chat_template = config[kRecordedChatTemplateKey].get<std::string>();
      }
      // Without a post-processor, tokenizers that say so add BOS themselves (LlamaTokenizerFast's flags).
      const bool add_bos = BoolField(config, "add_bos_token", "add_bos_token", false);
      if (state->post_processor == nullptr && add_bos && !state->bos_token.empty()) {
        std::optional<int32_t> bos = state->FindToken(state->bos_token);
        if (bos) state->post_processor = std::make_unique<tok::TemplateProcessing>(std::vector<int32_t>{*bos}, std::vector<int32_t>{});
      }
    } catch (const tok::TokenizerJsonError& malformed) {
      return fail(kConfig + malformed.message);
    }
  }
  return Tokenizer(std::move(state));
}

std::vector<int32_t> Tokenizer::Encode(std::string_view input, bool add_special_tokens) const {
  // Hugging Face works on Rust strings, always valid UTF-8; invalid bytes become U+FFFD here first (the regex
  // matcher is then run without re-checking every call).
  std::string repaired;
  std::string_view text = input;
  if (!IsValidUtf8(input)) {
    repaired = LossyUtf8(input);
    text = repaired;
  }
  std::vector<int32_t> ids;
  size_t position = 0;
  while (position < text.size()) {
    auto added = state_->raw_added.Next(text, position);
    size_t plain_end = added ? added->begin : text.size();
    if (plain_end > position) state_->EncodeSegment(text.substr(position, plain_end - position), position == 0, ids);
    if (!added) break;
    ids.push_back(added->token->id);
    position = added->end;
  }
  if (add_special_tokens && state_->post_processor) state_->post_processor->Process(ids);
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::vector<std::string> tokens;
  tokens.reserve(ids.size());
  for (int32_t id : ids) {
    if (id < 0 || id >= state_->vocab_size) continue;
    if (skip_special_tokens && state_->special[static_cast<size_t>(id)]) continue;
    const std::string& token = state_->Token(id);
    if (token.empty()) continue;  // an id between the model's and the added tokens'
    tokens.push_back(token);
  }
  std::string text;
  if (state_->decoder) {
    state_->decoder->DecodeChain(tokens);
    for (const std::string& token : tokens) text += token;
  } else {
    for (size_t i = 0; i < tokens.size(); ++i) text += (i == 0 ? "" : " ") + tokens[i];
  }
  text = LossyUtf8(text);
  if (state_->clean_up_tokenization_spaces) text = CleanUpTokenizationSpaces(text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const { return state_->FindToken(token); }

std::string Tokenizer::TokenText(int32_t id) const {
  if (id < 0 || id >= state_->vocab_size) return "";
  return state_->Token(id);
}

int32_t Tokenizer::vocab_size() const { return state_->vocab_size; }
const std::string& Tokenizer::bos_token() const { return state_->bos_token; }
const std::string& Tokenizer::eos_token() const { return state_->eos_token; }
std::optional<int32_t> Tokenizer::bos_id() const { return state_->bos_token.empty() ? std::nullopt : TokenId(state_->bos_token); }
std::optional<int32_t> Tokenizer::eos_id() const { return state_->eos_token.empty() ? std::nullopt : TokenId(state_->eos_token); }
const std::string& Tokenizer::fingerprint() const { return state_->fingerprint; }
const std::string& Tokenizer::chat_template() const { return state_->chat_template; }
bool Tokenizer::has_config() const { return state_->has_config; }
const std::string& Tokenizer::chat_template_problem() const { return state_->chat_template_problem; }
const std::string& Tokenizer::recorded_chat_template() const { return state_->recorded_chat_template; }
const std::vector<AddedToken>& Tokenizer::added_tokens() const { return state_->added_tokens; }

std::pair<std::string, std::string> ByteTokenizerFiles() {
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  const auto& alphabet = ByteLevelAlphabet();
  for (int b = 0; b < 256; ++b) vocab[alphabet[static_cast<size_t>(b)]] = b;
  nlohmann::ordered_json added = nlohmann::ordered_json::array();
  const char* specials[] = {"<s>", "</s>", "<|im_start|>", "<|im_end|>"};
  for (int i = 0; i < 4; ++i) {
    added.push_back({{"id", 256 + i}, {"content", specials[i]}, {"single_word", false}, {"lstrip", false},
                     {"rstrip", false}, {"normalized", false}, {"special", true}});
  }
  nlohmann::ordered_json tokenizer = {
      {"version", "1.0"},
      {"truncation", nullptr},
      {"padding", nullptr},
      {"added_tokens", added},
      {"normalizer", nullptr},
      {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"post_processor",
       {{"type", "TemplateProcessing"},
        {"single", {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}}, {{"Sequence", {{"id", "A"}, {"type_id", 0}}}}}},
        {"pair",
         {{{"SpecialToken", {{"id", "<s>"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "A"}, {"type_id", 0}}}},
          {{"Sequence", {{"id", "B"}, {"type_id", 1}}}}}},
        {"special_tokens", {{"<s>", {{"id", "<s>"}, {"ids", {256}}, {"tokens", {"<s>"}}}}}}}},
      {"decoder", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", true}, {"use_regex", false}}},
      {"model",
       {{"type", "BPE"},
        {"dropout", nullptr},
        {"unk_token", nullptr},
        {"continuing_subword_prefix", nullptr},
        {"end_of_word_suffix", nullptr},
        {"fuse_unk", false},
        {"byte_fallback", false},
        {"ignore_merges", false},
        {"vocab", vocab},
        {"merges", nlohmann::ordered_json::array()}}}};
  nlohmann::ordered_json config = {
      {"tokenizer_class", "PreTrainedTokenizerFast"},
      {"bos_token", "<s>"},
      {"eos_token", "<|im_end|>"},
      {"pad_token", "</s>"},
      {"model_max_length", 4096},
      {"chat_template", std::string(ChatTemplateJinja(ChatTemplateKind::ChatMl))}};
  return {tokenizer.dump(2) + "\n", config.dump(2) + "\n"};
}

}  // namespace fusec::rt
