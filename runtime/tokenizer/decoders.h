// tokenizer.json's `decoder`: turns the tokens of the ids being decoded back into text. As in Hugging Face,
// each decoder maps a list of token strings to a list (`decode_chain`), a Sequence chains them, and the
// final list is joined. ByteLevel turns GPT-2's characters back into bytes (and invalid UTF-8 into U+FFFD);
// ByteFallback turns runs of `<0xNN>` tokens into their bytes (U+FFFD per byte when not UTF-8); Metaspace
// and Replace put spaces back; Fuse joins; Strip cuts characters from each token's ends.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/pattern.h"

namespace fusec::rt::tok {

class Decoder {
 public:
  virtual ~Decoder() = default;
  virtual void DecodeChain(std::vector<std::string>& tokens) const = 0;
};

class ByteLevelDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override;
};

class MetaspaceDecoder final : public Decoder {
 public:
  /// `prepend_first`: the scheme was not `never`, so the first token's replacement characters are dropped.
  MetaspaceDecoder(uint32_t replacement, bool prepend_first);
  void DecodeChain(std::vector<std::string>& tokens) const override;

 private:
  std::string replacement_;
  bool prepend_first_;
};

class ByteFallbackDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override;
};

class FuseDecoder final : public Decoder {
 public:
  void DecodeChain(std::vector<std::string>& tokens) const override;
};

/// Cuts up to `start` leading and `stop` trailing `content` characters from every token.
class StripDecoder final : public Decoder {
 public:
  StripDecoder(uint32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
  void DecodeChain(std::vector<std::string>& tokens) const override;

 private:
  uint32_t content_;
  size_t start_;
  size_t stop_;
};

class ReplaceDecoder final : public Decoder {
 public:
  ReplaceDecoder(Pattern pattern, std::string content) : pattern_(std::move(pattern)), content_(std::move(content)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (std::string& token : tokens) token = pattern_.ReplaceAll(token, content_);
  }

 private:
  Pattern pattern_;
  std::string content_;
};

class DecoderSequence final : public Decoder {
 public:
  explicit DecoderSequence(std::vector<std::unique_ptr<Decoder>> steps) : steps_(std::move(steps)) {}
  void DecodeChain(std::vector<std::string>& tokens) const override {
    for (const auto& step : steps_) step->DecodeChain(tokens);
  }

 private:
  std::vector<std::unique_ptr<Decoder>> steps_;
};

/// The decoder `json` at `path`; throws TokenizerJsonError.
std::unique_ptr<Decoder> DecoderFromJson(const Json& json, const std::string& path);

}  // namespace fusec::rt::tok
