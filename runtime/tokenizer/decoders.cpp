#include "runtime/tokenizer/decoders.h"

#include <unordered_map>

#include "runtime/support/text.h"
#include "runtime/tokenizer/pre_tokenizers.h"

namespace fusec::rt::tok {
namespace {

const std::unordered_map<uint32_t, uint8_t>& ByteLevelBytes() {
  static const std::unordered_map<uint32_t, uint8_t> table = [] {
    std::unordered_map<uint32_t, uint8_t> out;
    const auto& chars = ByteLevelChars();
    for (size_t b = 0; b < 256; ++b) {
      size_t i = 0;
      out[DecodeUtf8(chars[b], i)] = static_cast<uint8_t>(b);
    }
    return out;
  }();
  return table;
}

/// The code points of a token.
std::vector<uint32_t> CodePoints(std::string_view text) {
  std::vector<uint32_t> out;
  for (size_t i = 0; i < text.size();) out.push_back(DecodeUtf8(text, i));
  return out;
}

}  // namespace

void ByteLevelDecoder::DecodeChain(std::vector<std::string>& tokens) const {
  // A token with a character outside GPT-2's table (an added token such as DeepSeek's `<｜begin▁of▁sentence｜>`)
  // is kept as its own bytes, whole (Hugging Face's rule).
  const auto& table = ByteLevelBytes();
  std::string bytes;
  for (const std::string& token : tokens) {
    std::string mapped;
    bool all = true;
    for (size_t i = 0; i < token.size() && all;) {
      auto it = table.find(DecodeUtf8(token, i));
      if (it == table.end()) {
        all = false;
      } else {
        mapped.push_back(static_cast<char>(it->second));
      }
    }
    bytes += all ? mapped : token;
  }
  tokens = {LossyUtf8(bytes)};
}

MetaspaceDecoder::MetaspaceDecoder(uint32_t replacement, bool prepend_first) : prepend_first_(prepend_first) {
  AppendUtf8(replacement_, replacement);
}

void MetaspaceDecoder::DecodeChain(std::vector<std::string>& tokens) const {
  for (size_t t = 0; t < tokens.size(); ++t) {
    std::string out;
    const std::string& token = tokens[t];
    for (size_t i = 0; i < token.size();) {
      if (token.compare(i, replacement_.size(), replacement_) == 0) {
        if (!(t == 0 && prepend_first_)) out.push_back(' ');
        i += replacement_.size();
      } else {
        out.push_back(token[i++]);
      }
    }
    tokens[t] = std::move(out);
  }
}

void ByteFallbackDecoder::DecodeChain(std::vector<std::string>& tokens) const {
  std::vector<std::string> out;
  std::string bytes;
  size_t byte_tokens = 0;
  auto flush = [&] {
    if (byte_tokens == 0) return;
    if (IsValidUtf8(bytes)) {
      out.push_back(bytes);
    } else {
      for (size_t i = 0; i < byte_tokens; ++i) out.emplace_back("\xEF\xBF\xBD");
    }
    bytes.clear();
    byte_tokens = 0;
  };
  for (std::string& token : tokens) {
    auto hex = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      return -1;
    };
    if (token.size() == 6 && token.starts_with("<0x") && token[5] == '>' && hex(token[3]) >= 0 && hex(token[4]) >= 0) {
      bytes.push_back(static_cast<char>(hex(token[3]) * 16 + hex(token[4])));
      ++byte_tokens;
      continue;
    }
    flush();
    out.push_back(std::move(token));
  }
  flush();
  tokens = std::move(out);
}

void FuseDecoder::DecodeChain(std::vector<std::string>& tokens) const {
  std::string joined;
  for (const std::string& token : tokens) joined += token;
  tokens = {joined};
}

void StripDecoder::DecodeChain(std::vector<std::string>& tokens) const {
  for (std::string& token : tokens) {
    std::vector<uint32_t> chars = CodePoints(token);
    size_t begin = 0;
    while (begin < start_ && begin < chars.size() && chars[begin] == content_) ++begin;
    size_t end = chars.size();
    while (chars.size() - end < stop_ && end > begin && chars[end - 1] == content_) --end;
    std::string out;
    for (size_t i = begin; i < end; ++i) AppendUtf8(out, chars[i]);
    token = std::move(out);
  }
}

std::unique_ptr<Decoder> DecoderFromJson(const Json& json, const std::string& path) {
  const std::string type = ComponentType(json, path);
  if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
  if (type == "Metaspace") {
    const uint32_t replacement = CharField(json, "replacement", path + ".replacement", 0x2581);
    const bool add_prefix_space = BoolField(json, "add_prefix_space", path + ".add_prefix_space", true);
    const std::string scheme = StringField(json, "prepend_scheme", path + ".prepend_scheme", add_prefix_space ? "always" : "never");
    if (scheme != "always" && scheme != "first" && scheme != "never") {
      Malformed(path + ".prepend_scheme", "one of always, first, never", json["prepend_scheme"]);
    }
    return std::make_unique<MetaspaceDecoder>(replacement, scheme != "never");
  }
  if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
  if (type == "Fuse") return std::make_unique<FuseDecoder>();
  if (type == "Strip") {
    return std::make_unique<StripDecoder>(CharField(json, "content", path + ".content", ' '),
                                          static_cast<size_t>(IntField(json, "start", path + ".start", 0)),
                                          static_cast<size_t>(IntField(json, "stop", path + ".stop", 0)));
  }
  if (type == "Replace") {
    const Json* pattern = Field(json, "pattern");
    if (pattern == nullptr) Refuse("`" + path + "` has no `pattern`");
    return std::make_unique<ReplaceDecoder>(Pattern::FromJson(*pattern, path + ".pattern"),
                                            StringField(json, "content", path + ".content", ""));
  }
  if (type == "Sequence") {
    const Json& list = ListField(json, "decoders", path + ".decoders");
    std::vector<std::unique_ptr<Decoder>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(DecoderFromJson(list[i], Indexed(path + ".decoders", i)));
    return std::make_unique<DecoderSequence>(std::move(steps));
  }
  Refuse("decoder `" + type + "` is not supported (`" + path +
         "`; ByteLevel, Metaspace, ByteFallback, Fuse, Strip, Replace and Sequence are)");
}

}  // namespace fusec::rt::tok
