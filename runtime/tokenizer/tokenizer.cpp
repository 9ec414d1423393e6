#include "runtime/tokenizer/tokenizer.h"

#include "compiler/support/sha256.h"
#include "runtime/support/json_text.h"
#include "runtime/support/text.h"
#include "runtime/tokenizer/chat_template.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <mutex>
#include <nlohmann/json.hpp>
#include <sstream>

namespace fusec::rt {
namespace {

using Json = nlohmann::json;

/// A field of tokenizer.json or tokenizer_config.json that is there but malformed; the message names the field
/// by its path (`model.merges[3]`). Thrown by the typed reads below, caught in Tokenizer::FromJson.
struct MalformedField {
  std::string message;
};

/// A JSON value as an error message shows it: its text, cut short when long.
std::string Shown(const Json& value) {
  std::string text = value.dump();
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

[[noreturn]] void Malformed(const std::string& path, const std::string& expected, const Json& value) {
  throw MalformedField{"`" + path + "` must be " + expected + ", not " + Shown(value)};
}

/// The field `key` of `object`; nullptr when it is absent or null.
const Json* Field(const Json& object, const char* key) {
  auto it = object.find(key);
  return it == object.end() || it->is_null() ? nullptr : &*it;
}

std::string StringField(const Json& object, const char* key, const std::string& path, std::string fallback) {
  const Json* value = Field(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_string()) Malformed(path, "a string", *value);
  return value->get<std::string>();
}

bool BoolField(const Json& object, const char* key, const std::string& path, bool fallback) {
  const Json* value = Field(object, key);
  if (value == nullptr) return fallback;
  if (!value->is_boolean()) Malformed(path, "true or false", *value);
  return value->get<bool>();
}

/// An object-valued field; an empty object when absent.
const Json& ObjectField(const Json& object, const char* key, const std::string& path) {
  static const Json kEmpty = Json::object();
  const Json* value = Field(object, key);
  if (value == nullptr) return kEmpty;
  if (!value->is_object()) Malformed(path, "an object", *value);
  return *value;
}

/// A list-valued field; an empty list when absent.
const Json& ListField(const Json& object, const char* key, const std::string& path) {
  static const Json kEmpty = Json::array();
  const Json* value = Field(object, key);
  if (value == nullptr) return kEmpty;
  if (!value->is_array()) Malformed(path, "a list", *value);
  return *value;
}

/// Token ids are bounded so that the id-to-token table stays a plausible size.
constexpr int64_t kMaxTokenId = 10'000'000;

int32_t TokenIdValue(const Json& value, const std::string& path) {
  if (!value.is_number_integer() || value.get<int64_t>() < 0 || value.get<int64_t>() > kMaxTokenId) {
    Malformed(path, "a token id (an integer from 0 to " + std::to_string(kMaxTokenId) + ")", value);
  }
  return value.get<int32_t>();
}

std::string Indexed(const std::string& path, size_t index) { return path + "[" + std::to_string(index) + "]"; }

/// The length of the UTF-8 sequence starting at `text[i]` (1 for invalid lead bytes).
size_t Utf8Length(std::string_view text, size_t i) {
  auto c = static_cast<unsigned char>(text[i]);
  size_t length = c < 0x80 ? 1 : (c >> 5) == 0x6 ? 2 : (c >> 4) == 0xE ? 3 : (c >> 3) == 0x1E ? 4 : 1;
  return std::min(length, text.size() - i);
}

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

bool IsWordByte(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80) != 0; }

/// A compiled PCRE2 pattern; matching data is created per call, so one regex serves several threads.
class Regex {
 public:
  static std::unique_ptr<Regex> Compile(const std::string& pattern, std::string* error) {
    int code = 0;
    PCRE2_SIZE offset = 0;
    pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                                         PCRE2_UTF | PCRE2_UCP, &code, &offset, nullptr);
    if (compiled == nullptr) {
      PCRE2_UCHAR message[256];
      pcre2_get_error_message(code, message, sizeof message);
      *error = "its pre-tokenizer regex does not compile at offset " + std::to_string(offset) + ": " +
               reinterpret_cast<const char*>(message);
      return nullptr;
    }
    pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
    return std::unique_ptr<Regex>(new Regex(compiled));
  }
  ~Regex() { pcre2_code_free(code_); }

  /// Byte ranges of all non-overlapping matches, left to right.
  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> matches;
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start,
                           PCRE2_NO_UTF_CHECK, data, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
      size_t begin = ovector[0];
      size_t end = ovector[1];
      if (end == begin) {  // an empty match: step over one character
        start = begin + (begin < text.size() ? Utf8Length(text, begin) : 1);
        continue;
      }
      matches.emplace_back(begin, end);
      start = end;
    }
    pcre2_match_data_free(data);
    return matches;
  }

 private:
  explicit Regex(pcre2_code* code) : code_(code) {}
  pcre2_code* code_;
};

/// GPT-2's pattern, used by ByteLevel pre-tokenizers with `use_regex`.
constexpr const char* kGpt2Pattern =
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";

struct PreTokenizerStep {
  enum class Kind : uint8_t { Split, ByteLevel };
  Kind kind;
  std::unique_ptr<Regex> regex;  // Split, or ByteLevel with use_regex
  bool add_prefix_space = false;
};

uint64_t PairKey(int32_t a, int32_t b) { return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b); }

}  // namespace

const std::vector<std::string>& ByteLevelAlphabet() {
  static const std::vector<std::string> alphabet = [] {
    std::vector<uint32_t> code_point(256, 0);
    std::vector<bool> printable(256, false);
    for (int b = '!'; b <= '~'; ++b) printable[static_cast<size_t>(b)] = true;
    for (int b = 0xA1; b <= 0xAC; ++b) printable[static_cast<size_t>(b)] = true;
    for (int b = 0xAE; b <= 0xFF; ++b) printable[static_cast<size_t>(b)] = true;
    uint32_t next = 256;
    for (int b = 0; b < 256; ++b) code_point[static_cast<size_t>(b)] = printable[static_cast<size_t>(b)] ? static_cast<uint32_t>(b) : next++;
    std::vector<std::string> out(256);
    for (int b = 0; b < 256; ++b) AppendUtf8(out[static_cast<size_t>(b)], code_point[static_cast<size_t>(b)]);
    return out;
  }();
  return alphabet;
}

struct Tokenizer::State {
  std::unordered_map<std::string, int32_t> vocab;
  std::vector<std::string> id_to_token;
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // pair -> (rank, merged id)
  bool ignore_merges = false;
  std::optional<int32_t> unk_id;
  std::vector<PreTokenizerStep> pre_tokenizer;
  std::vector<AddedToken> added_tokens;
  std::unordered_map<int32_t, size_t> added_by_id;
  std::vector<int32_t> prefix_ids;  // added by the post-processor
  std::vector<int32_t> suffix_ids;
  std::string bos_token;
  std::string eos_token;
  std::string chat_template;
  bool has_config = false;
  std::string chat_template_problem;
  std::string recorded_chat_template;
  bool clean_up_tokenization_spaces = false;
  std::string fingerprint;
  std::unordered_map<uint32_t, uint8_t> char_to_byte;
  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> word_cache;

  /// BPE of one pre-tokenized piece (already byte-level characters).
  std::vector<int32_t> Bpe(const std::string& word) const {
    if (ignore_merges) {
      if (auto it = vocab.find(word); it != vocab.end()) return {it->second};
    }
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      if (auto it = word_cache.find(word); it != word_cache.end()) return it->second;
    }
    std::vector<int32_t> symbols;
    for (size_t i = 0; i < word.size();) {
      size_t length = Utf8Length(word, i);
      auto it = vocab.find(word.substr(i, length));
      if (it != vocab.end()) {
        symbols.push_back(it->second);
      } else if (unk_id) {
        symbols.push_back(*unk_id);
      }
      i += length;
    }
    while (symbols.size() > 1) {
      int32_t best_rank = INT32_MAX;
      size_t best = 0;
      int32_t merged = 0;
      for (size_t i = 0; i + 1 < symbols.size(); ++i) {
        auto it = merges.find(PairKey(symbols[i], symbols[i + 1]));
        if (it != merges.end() && it->second.first < best_rank) {
          best_rank = it->second.first;
          best = i;
          merged = it->second.second;
        }
      }
      if (best_rank == INT32_MAX) break;
      symbols[best] = merged;
      symbols.erase(symbols.begin() + static_cast<std::ptrdiff_t>(best) + 1);
    }
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (word_cache.size() > 200000) word_cache.clear();
    word_cache.emplace(word, symbols);
    return symbols;
  }

  /// Pre-tokenizes and merges a text without added tokens.
  void EncodePlain(std::string_view text, std::vector<int32_t>& out) const {
    std::vector<std::string> pieces = {std::string(text)};
    for (const PreTokenizerStep& step : pre_tokenizer) {
      std::vector<std::string> next;
      for (const std::string& piece : pieces) {
        std::string source = piece;
        if (step.kind == PreTokenizerStep::Kind::ByteLevel && step.add_prefix_space && !source.empty() &&
            source[0] != ' ') {
          source.insert(source.begin(), ' ');
        }
        std::vector<std::string> split;
        if (step.regex) {
          size_t last = 0;
          for (auto [begin, end] : step.regex->FindAll(source)) {
            if (begin > last) split.push_back(source.substr(last, begin - last));  // Isolated keeps the gaps
            split.push_back(source.substr(begin, end - begin));
            last = end;
          }
          if (last < source.size()) split.push_back(source.substr(last));
        } else {
          split.push_back(source);
        }
        for (std::string& s : split) {
          if (step.kind == PreTokenizerStep::Kind::ByteLevel) {
            std::string mapped;
            for (unsigned char c : s) mapped += ByteLevelAlphabet()[c];
            s = std::move(mapped);
          }
          if (!s.empty()) next.push_back(std::move(s));
        }
      }
      pieces = std::move(next);
    }
    for (const std::string& piece : pieces) {
      std::vector<int32_t> ids = Bpe(piece);
      out.insert(out.end(), ids.begin(), ids.end());
    }
  }

  /// The leftmost-longest added token at or after `from`: (start, end of match incl. stripped spaces, token).
  std::optional<std::tuple<size_t, size_t, const AddedToken*>> NextAdded(std::string_view text, size_t from) const {
    for (size_t i = from; i < text.size(); ++i) {
      const AddedToken* best = nullptr;
      for (const AddedToken& token : added_tokens) {
        if (token.content.empty() || text.compare(i, token.content.size(), token.content) != 0) continue;
        if (token.single_word) {
          bool before = i > 0 && IsWordByte(text[i - 1]);
          size_t after_index = i + token.content.size();
          bool after = after_index < text.size() && IsWordByte(text[after_index]);
          if (before || after) continue;
        }
        if (best == nullptr || token.content.size() > best->content.size()) best = &token;
      }
      if (best == nullptr) continue;
      size_t begin = i;
      size_t end = i + best->content.size();
      if (best->lstrip) {
        while (begin > from && text[begin - 1] == ' ') --begin;
      }
      if (best->rstrip) {
        while (end < text.size() && (text[end] == ' ' || text[end] == '\n' || text[end] == '\t')) ++end;
      }
      return std::make_tuple(begin, end, best);
    }
    return std::nullopt;
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
  // The typed reads throw MalformedField naming the field; a JSON accessor that still throws is a read this
  // code forgot to type, reported without nlohmann's text (which names no field).
  try {
    return FromJsonUnchecked(tokenizer_json, config_json, error);
  } catch (const MalformedField& malformed) {
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

  // The model: byte-level BPE.
  const Json* model_field = Field(json, "model");
  if (model_field == nullptr) return fail("has no `model`");
  if (!model_field->is_object()) Malformed("model", "an object", *model_field);
  const Json& model = *model_field;
  const std::string model_type = StringField(model, "type", "model.type", "BPE");
  if (model_type != "BPE") return fail("model type `" + model_type + "` is not supported (BPE is)");
  if (BoolField(model, "byte_fallback", "model.byte_fallback", false)) {
    return fail("BPE `byte_fallback` is not supported (byte-level BPE is)");
  }
  if (Field(model, "dropout") != nullptr) return fail("BPE `dropout` is not supported");
  for (const char* key : {"continuing_subword_prefix", "end_of_word_suffix"}) {
    if (!StringField(model, key, "model." + std::string(key), "").empty()) {
      return fail("BPE `" + std::string(key) + "` is not supported");
    }
  }
  const Json* vocab = Field(model, "vocab");
  if (vocab == nullptr) return fail("model has no `vocab`");
  if (!vocab->is_object()) Malformed("model.vocab", "an object of tokens and their ids", *vocab);
  if (vocab->empty()) return fail("`model.vocab` is empty");
  int32_t max_id = -1;
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
      return fail("vocabulary entry `" + token + "` has no valid id (`model.vocab` maps it to " + Shown(id) + ")");
    }
    state->vocab[token] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int32_t>());
  }
  state->ignore_merges = BoolField(model, "ignore_merges", "model.ignore_merges", false);
  if (const std::string unk = StringField(model, "unk_token", "model.unk_token", ""); !unk.empty()) {
    auto it = state->vocab.find(unk);
    if (it != state->vocab.end()) state->unk_id = it->second;
  }
  const bool has_merges = Field(model, "merges") != nullptr;  // checked below, after what is not supported
  const Json& merges = ListField(model, "merges", "model.merges");
  int32_t rank = 0;
  for (const Json& merge : merges) {
    std::string left;
    std::string right;
    if (merge.is_string()) {
      std::string text = merge.get<std::string>();
      size_t space = text.find(' ', 1);
      if (space == std::string::npos) return fail("merge `" + text + "` is not two tokens");
      left = text.substr(0, space);
      right = text.substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get<std::string>();
      right = merge[1].get<std::string>();
    } else {
      return fail("merge " + std::to_string(rank) + " is not two tokens (`" + Indexed("model.merges", static_cast<size_t>(rank)) +
                  "` is " + Shown(merge) + ")");
    }
    auto a = state->vocab.find(left);
    auto b = state->vocab.find(right);
    auto merged = state->vocab.find(left + right);
    if (a == state->vocab.end() || b == state->vocab.end() || merged == state->vocab.end()) {
      return fail("merge `" + left + " " + right + "` uses tokens that are not in the vocabulary");
    }
    state->merges.emplace(PairKey(a->second, b->second), std::make_pair(rank++, merged->second));
  }

  // Added tokens.
  const Json& added_tokens = ListField(json, "added_tokens", "added_tokens");
  for (size_t i = 0; i < added_tokens.size(); ++i) {
    const Json& entry = added_tokens[i];
    const std::string where = Indexed("added_tokens", i);
    if (!entry.is_object()) Malformed(where, "an object with `id` and `content`", entry);
    const Json* id = Field(entry, "id");
    const Json* content = Field(entry, "content");
    if (id == nullptr || content == nullptr) return fail("an added token has no id or content (`" + where + "`)");
    AddedToken token;
    token.id = TokenIdValue(*id, where + ".id");
    if (!content->is_string() || content->get<std::string>().empty()) {
      Malformed(where + ".content", "a non-empty string", *content);
    }
    token.content = content->get<std::string>();
    token.special = BoolField(entry, "special", where + ".special", false);
    token.lstrip = BoolField(entry, "lstrip", where + ".lstrip", false);
    token.rstrip = BoolField(entry, "rstrip", where + ".rstrip", false);
    token.single_word = BoolField(entry, "single_word", where + ".single_word", false);
    max_id = std::max(max_id, token.id);
    state->added_by_id[token.id] = state->added_tokens.size();
    state->added_tokens.push_back(std::move(token));
  }
  state->id_to_token.assign(static_cast<size_t>(max_id + 1), "");
  for (const auto& [token, id] : state->vocab) state->id_to_token[static_cast<size_t>(id)] = token;
  for (const AddedToken& token : state->added_tokens) state->id_to_token[static_cast<size_t>(token.id)] = token.content;

  // Normalizer and pre-tokenizer.
  if (const Json* normalizer = Field(json, "normalizer")) {
    if (!normalizer->is_object()) Malformed("normalizer", "an object or null", *normalizer);
    return fail("normalizer `" + StringField(*normalizer, "type", "normalizer.type", "?") + "` is not supported");
  }
  std::vector<std::pair<Json, std::string>> steps;  // each step and its path
  if (const Json* pre = Field(json, "pre_tokenizer")) {
    if (!pre->is_object()) Malformed("pre_tokenizer", "an object or null", *pre);
    if (StringField(*pre, "type", "pre_tokenizer.type", "") == "Sequence") {
      const Json& list = ListField(*pre, "pretokenizers", "pre_tokenizer.pretokenizers");
      for (size_t i = 0; i < list.size(); ++i) steps.emplace_back(list[i], Indexed("pre_tokenizer.pretokenizers", i));
    } else {
      steps.emplace_back(*pre, "pre_tokenizer");
    }
  }
  for (const auto& [step, where] : steps) {
    if (!step.is_object()) Malformed(where, "an object", step);
    std::string type = StringField(step, "type", where + ".type", "");
    PreTokenizerStep parsed;
    if (type == "Split") {
      parsed.kind = PreTokenizerStep::Kind::Split;
      std::string behavior = StringField(step, "behavior", where + ".behavior", "Isolated");
      if (behavior != "Isolated") return fail("Split behavior `" + behavior + "` is not supported (Isolated is)");
      if (BoolField(step, "invert", where + ".invert", false)) return fail("an inverted Split is not supported");
      const Json& pattern = ObjectField(step, "pattern", where + ".pattern");
      if (!pattern.contains("Regex") || !pattern["Regex"].is_string()) return fail("a Split without a Regex is not supported");
      parsed.regex = Regex::Compile(pattern["Regex"].get<std::string>(), error);
      if (!parsed.regex) return std::nullopt;
    } else if (type == "ByteLevel") {
      parsed.kind = PreTokenizerStep::Kind::ByteLevel;
      parsed.add_prefix_space = BoolField(step, "add_prefix_space", where + ".add_prefix_space", false);
      if (BoolField(step, "use_regex", where + ".use_regex", true)) {
        parsed.regex = Regex::Compile(kGpt2Pattern, error);
        if (!parsed.regex) return std::nullopt;
      }
    } else {
      return fail("pre-tokenizer `" + type + "` is not supported (Split and ByteLevel are)");
    }
    state->pre_tokenizer.push_back(std::move(parsed));
  }
  bool has_byte_level = std::any_of(state->pre_tokenizer.begin(), state->pre_tokenizer.end(),
                                    [](const PreTokenizerStep& s) { return s.kind == PreTokenizerStep::Kind::ByteLevel; });
  if (!has_byte_level) return fail("only byte-level tokenizers are supported (the pre-tokenizer has no ByteLevel)");

  // Post-processor: the tokens it adds around a single sequence.
  std::vector<std::pair<Json, std::string>> processors;
  if (const Json* post = Field(json, "post_processor")) {
    if (!post->is_object()) Malformed("post_processor", "an object or null", *post);
    if (StringField(*post, "type", "post_processor.type", "") == "Sequence") {
      const Json& list = ListField(*post, "processors", "post_processor.processors");
      for (size_t i = 0; i < list.size(); ++i) processors.emplace_back(list[i], Indexed("post_processor.processors", i));
    } else {
      processors.emplace_back(*post, "post_processor");
    }
  }
  for (const auto& [processor, where] : processors) {
    if (!processor.is_object()) Malformed(where, "an object", processor);
    std::string type = StringField(processor, "type", where + ".type", "");
    if (type == "ByteLevel") continue;  // offsets only
    if (type != "TemplateProcessing") return fail("post-processor `" + type + "` is not supported");
    const Json& special = ObjectField(processor, "special_tokens", where + ".special_tokens");
    const Json& single = ListField(processor, "single", where + ".single");
    bool after = false;
    for (size_t i = 0; i < single.size(); ++i) {
      const Json& piece = single[i];
      const std::string piece_path = Indexed(where + ".single", i);
      if (!piece.is_object()) Malformed(piece_path, "an object (`Sequence` or `SpecialToken`)", piece);
      if (piece.contains("Sequence")) {
        after = true;
        continue;
      }
      if (!piece.contains("SpecialToken")) return fail("`" + piece_path + "` is neither a `Sequence` nor a `SpecialToken`");
      const Json& token = ObjectField(piece, "SpecialToken", piece_path + ".SpecialToken");
      std::string id = StringField(token, "id", piece_path + ".SpecialToken.id", "");
      if (!special.contains(id) || !special[id].is_object() || !special[id].contains("ids")) {
        return fail("post-processor token `" + id + "` has no id (`" + where + ".special_tokens` does not give it)");
      }
      const std::string ids_path = where + ".special_tokens." + id + ".ids";
      const Json& ids = ListField(special[id], "ids", ids_path);
      for (size_t k = 0; k < ids.size(); ++k) {
        int32_t token_id = TokenIdValue(ids[k], Indexed(ids_path, k));
        if (token_id > max_id) {
          return fail("post-processor token `" + id + "` has id " + std::to_string(token_id) +
                      ", which is not in the vocabulary (`" + Indexed(ids_path, k) + "`)");
        }
        (after ? state->suffix_ids : state->prefix_ids).push_back(token_id);
      }
    }
  }

  // Every BPE tokenizer.json lists its merges (an empty list for a byte-level vocabulary); a file without
  // them is cut short or not what it claims, and tokenizing with none would silently give other ids.
  if (!has_merges) return fail("the BPE model has no `model.merges` (a byte-level vocabulary without merges lists none: [])");

  // Byte-level decoding table.
  const auto& alphabet = ByteLevelAlphabet();
  for (int b = 0; b < 256; ++b) {
    size_t i = 0;
    state->char_to_byte[DecodeUtf8(alphabet[static_cast<size_t>(b)], i)] = static_cast<uint8_t>(b);
  }

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
      if (processors.empty() && add_bos && !state->bos_token.empty()) {
        auto it = state->vocab.find(state->bos_token);
        for (const AddedToken& token : state->added_tokens) {
          if (token.content == state->bos_token) state->prefix_ids = {token.id};
        }
        if (state->prefix_ids.empty() && it != state->vocab.end()) state->prefix_ids = {it->second};
      }
    } catch (const MalformedField& malformed) {
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
  if (add_special_tokens) ids = state_->prefix_ids;
  size_t position = 0;
  while (position < text.size()) {
    auto added = state_->NextAdded(text, position);
    size_t plain_end = added ? std::get<0>(*added) : text.size();
    if (plain_end > position) state_->EncodePlain(text.substr(position, plain_end - position), ids);
    if (!added) break;
    ids.push_back(std::get<2>(*added)->id);
    position = std::get<1>(*added);
  }
  if (add_special_tokens) ids.insert(ids.end(), state_->suffix_ids.begin(), state_->suffix_ids.end());
  return ids;
}

std::string Tokenizer::Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
  std::string bytes;
  for (int32_t id : ids) {
    if (id < 0 || static_cast<size_t>(id) >= state_->id_to_token.size()) continue;
    auto added = state_->added_by_id.find(id);
    if (added != state_->added_by_id.end()) {
      const AddedToken& token = state_->added_tokens[added->second];
      if (skip_special_tokens && token.special) continue;
      bytes += token.content;
      continue;
    }
    const std::string& text = state_->id_to_token[static_cast<size_t>(id)];
    for (size_t i = 0; i < text.size();) {
      size_t start = i;
      uint32_t cp = DecodeUtf8(text, i);
      auto it = state_->char_to_byte.find(cp);
      if (it != state_->char_to_byte.end()) {
        bytes.push_back(static_cast<char>(it->second));
      } else {
        bytes.append(text, start, i - start);
      }
    }
  }
  std::string text = LossyUtf8(bytes);
  if (state_->clean_up_tokenization_spaces) text = CleanUpTokenizationSpaces(text);
  return text;
}

std::optional<int32_t> Tokenizer::TokenId(std::string_view token) const {
  for (const AddedToken& added : state_->added_tokens) {
    if (added.content == token) return added.id;
  }
  auto it = state_->vocab.find(std::string(token));
  if (it == state_->vocab.end()) return std::nullopt;
  return it->second;
}

std::string Tokenizer::TokenText(int32_t id) const {
  if (id < 0 || static_cast<size_t>(id) >= state_->id_to_token.size()) return "";
  return state_->id_to_token[static_cast<size_t>(id)];
}

int32_t Tokenizer::vocab_size() const { return static_cast<int32_t>(state_->id_to_token.size()); }
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
