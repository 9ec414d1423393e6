// tokenizer.json's `normalizer`: one class per Hugging Face normalizer, each changing the text of a segment
// (the text between added tokens) before it is pre-tokenized.
//
// Hugging Face normalizes a NormalizedString that keeps the alignment of every byte to the original text
// (for offsets); fusec needs ids only, so a normalizer here maps text to text. The Unicode forms come from
// ICU (the same Unicode data as Rust's unicode-normalization crate, to the version); lower-casing maps each
// character alone, as Rust's `char::to_lowercase` does (no final-sigma context).
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/pattern.h"
#include "runtime/tokenizer/precompiled_normalizer.h"

namespace fusec::rt::tok {

class Normalizer {
 public:
  virtual ~Normalizer() = default;
  virtual void Normalize(std::string& text) const = 0;
};

/// NFC, NFD, NFKC and NFKD (one class: the form is a parameter of ICU's normalizer).
class UnicodeNormalizer final : public Normalizer {
 public:
  enum class Form : uint8_t { NFC, NFD, NFKC, NFKD };
  explicit UnicodeNormalizer(Form form);
  void Normalize(std::string& text) const override;

 private:
  const void* normalizer_;  // icu::Normalizer2, kept out of this header
};

/// SentencePiece's compiled normalization rules (T5's and XLM-R's nmt_nfkc), as precompiled_normalizer.h reads them.
class Precompiled final : public Normalizer {
 public:
  explicit Precompiled(PrecompiledNormalizer rules) : rules_(std::move(rules)) {}
  void Normalize(std::string& text) const override { text = rules_.Normalize(text); }

 private:
  PrecompiledNormalizer rules_;
};

class Lowercase final : public Normalizer {
 public:
  void Normalize(std::string& text) const override;
};

/// Strips Unicode white space (Rust's `char::is_whitespace`) from the left and/or right.
class Strip final : public Normalizer {
 public:
  Strip(bool left, bool right) : left_(left), right_(right) {}
  void Normalize(std::string& text) const override;

 private:
  bool left_;
  bool right_;
};

class Replace final : public Normalizer {
 public:
  Replace(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void Normalize(std::string& text) const override { text = pattern_.ReplaceAll(text, content_); }

 private:
  Pattern pattern_;
  std::string content_;
};

/// Prepends `prepend` to a non-empty text.
class Prepend final : public Normalizer {
 public:
  explicit Prepend(std::string prepend) : prepend_(std::move(prepend)) {}
  void Normalize(std::string& text) const override {
    if (!text.empty()) text.insert(0, prepend_);
  }

 private:
  std::string prepend_;
};

/// The normalizers in order; an empty Sequence (DeepSeek-V3's) changes nothing.
class NormalizerSequence final : public Normalizer {
 public:
  explicit NormalizerSequence(std::vector<std::unique_ptr<Normalizer>> steps) : steps_(std::move(steps)) {}
  void Normalize(std::string& text) const override {
    for (const auto& step : steps_) step->Normalize(text);
  }

 private:
  std::vector<std::unique_ptr<Normalizer>> steps_;
};

/// The normalizer `json` at `path` (`normalizer`, `normalizer.normalizers[2]`); throws TokenizerJsonError for
/// a malformed field or a normalizer that is not implemented.
std::unique_ptr<Normalizer> NormalizerFromJson(const Json& json, const std::string& path);

/// Whether `c` is white space to Rust's `char::is_whitespace` (Unicode's White_Space property).
bool IsUnicodeWhitespace(uint32_t c);

}  // namespace fusec::rt::tok
