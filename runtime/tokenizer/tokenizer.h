// Hugging Face tokenizers: `tokenizer.json` run as the `tokenizers` library runs it, for every family fusec
// trains or samples (Llama-3, Qwen2/Qwen3, Gemma, Llama-2/Mistral's SentencePiece BPE, DeepSeek-V3, GPT-2).
//
// Encoding follows the library step by step, because ids must equal Hugging Face's on real tokenizers: added
// tokens (specials such as `<|eot_id|>`) are split out first; each segment between them goes through the
// normalizer, the pre-tokenizer and the model (BPE), and the post-processor adds BOS. Decoding runs the
// decoder over the tokens. Each of those is a small class named after its Hugging Face counterpart, one file
// per concern beside this one (normalizers.h, pre_tokenizers.h, bpe_model.h, post_processors.h, decoders.h,
// added_vocabulary.h); tokenizer.cpp composes them. Whatever a tokenizer.json asks for that is not
// implemented is an error naming it and its JSON path, never a silently different tokenization. No LibTorch
// here: tokenizing is text work.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fusec::rt {

struct AddedToken {
  int32_t id = 0;
  std::string content;
  bool special = false;
  bool lstrip = false;
  bool rstrip = false;
  bool single_word = false;
};

class Tokenizer {
 public:
  /// `path` is a directory holding tokenizer.json (and optionally tokenizer_config.json) or the file itself.
  static std::optional<Tokenizer> Load(const std::string& path, std::string* error);
  /// From the texts of tokenizer.json and tokenizer_config.json (which may be empty).
  static std::optional<Tokenizer> FromJson(const std::string& tokenizer_json, const std::string& config_json,
                                           std::string* error);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  /// Token ids of `text` (invalid UTF-8 is read as U+FFFD). With `add_special_tokens`, the post-processor's tokens (BOS) are added.
  std::vector<int32_t> Encode(std::string_view text, bool add_special_tokens) const;
  /// Text of `ids`; invalid UTF-8 from partial byte sequences becomes U+FFFD, as in Hugging Face.
  std::string Decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

  std::optional<int32_t> TokenId(std::string_view token) const;
  /// The token's text as stored in the vocabulary (byte-level characters for normal tokens).
  std::string TokenText(int32_t id) const;
  int32_t vocab_size() const;  // one more than the largest id

  const std::string& bos_token() const;
  const std::string& eos_token() const;
  std::optional<int32_t> bos_id() const;
  std::optional<int32_t> eos_id() const;
  /// SHA-256 of the tokenizer's files: two tokenizers with equal fingerprints tokenize alike.
  const std::string& fingerprint() const;
  /// The Jinja chat template of tokenizer_config.json, if any.
  const std::string& chat_template() const;
  /// Whether a tokenizer_config.json came with tokenizer.json (without one there is no chat template to read).
  bool has_config() const;
  /// Why tokenizer_config.json's `chat_template` cannot be used (not a string, e.g. a list of named
  /// templates); empty when it can, or when there is none.
  const std::string& chat_template_problem() const;
  /// The template fusec recorded when it wrote the model (`fusec_chat_template`: plain, llama3, ...); empty
  /// for tokenizers fusec did not write.
  const std::string& recorded_chat_template() const;
  const std::vector<AddedToken>& added_tokens() const;

 private:
  struct State;
  static std::optional<Tokenizer> FromJsonUnchecked(const std::string& tokenizer_json, const std::string& config_json,
                                                    std::string* error);
  explicit Tokenizer(std::unique_ptr<State> state);
  std::unique_ptr<State> state_;
};

/// GPT-2's byte-to-character table: each byte maps to a printable Unicode character.
const std::vector<std::string>& ByteLevelAlphabet();

/// The tokenizer.json and tokenizer_config.json of a byte-level tokenizer with no merges: 256 byte tokens and
/// the specials `<s>`, `</s>`, `<|im_start|>`, `<|im_end|>`, with a chatml chat template. For the tiny models
/// tests and the demo create; Hugging Face tools load it.
std::pair<std::string, std::string> ByteTokenizerFiles();

}  // namespace fusec::rt
