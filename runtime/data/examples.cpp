#include "runtime/data/examples.h"

#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <sstream>

#include "compiler/support/sha256.h"
#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

constexpr std::string_view kMagic = "FUSETOK2";  // bump when the format or tokenization changes

/// Little-endian writer and bounds-checked reader for the cache file.
class ByteWriter {
 public:
  void U64(uint64_t value) {
    for (int i = 0; i < 8; ++i) bytes_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
  }
  void I64(int64_t value) { U64(static_cast<uint64_t>(value)); }
  void F64(double value) {
    uint64_t bits = 0;
    std::memcpy(&bits, &value, sizeof bits);
    U64(bits);
  }
  void Str(const std::string& text) {
    U64(text.size());
    bytes_ += text;
  }
  void Ids(const std::vector<int32_t>& ids) {
    U64(ids.size());
    for (int32_t id : ids) {
      auto value = static_cast<uint32_t>(id);
      for (int i = 0; i < 4; ++i) bytes_.push_back(static_cast<char>((value >> (8 * i)) & 0xFF));
    }
  }
  std::string& bytes() { return bytes_; }

 private:
  std::string bytes_;
};

class ByteReader {
 public:
  explicit ByteReader(std::string_view bytes) : bytes_(bytes) {}
  bool ok() const { return ok_; }
  bool at_end() const { return position_ == bytes_.size(); }

  uint64_t U64() {
    if (!Need(8)) return 0;
    uint64_t value = 0;
    for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes_[position_ + static_cast<size_t>(i)]);
    position_ += 8;
    return value;
  }
  int64_t I64() { return static_cast<int64_t>(U64()); }
  double F64() {
    uint64_t bits = U64();
    double value = 0;
    std::memcpy(&value, &bits, sizeof value);
    return value;
  }
  std::string Str() {
    uint64_t size = U64();
    if (!Need(size)) return {};
    std::string text(bytes_.substr(position_, size));
    position_ += size;
    return text;
  }
  std::vector<int32_t> Ids() {
    uint64_t count = U64();
    if (count > bytes_.size() / 4 || !Need(count * 4)) {
      ok_ = false;
      return {};
    }
    std::vector<int32_t> ids(count);
    for (uint64_t k = 0; k < count; ++k) {
      uint32_t value = 0;
      for (int i = 3; i >= 0; --i) value = (value << 8) | static_cast<uint8_t>(bytes_[position_ + static_cast<size_t>(i)]);
      ids[k] = static_cast<int32_t>(value);
      position_ += 4;
    }
    return ids;
  }
  /// A count of items that each take at least `min_bytes`; fails when the rest of the file cannot hold them.
  uint64_t Count(uint64_t min_bytes) {
    uint64_t count = U64();
    if (count > (bytes_.size() - position_) / min_bytes) ok_ = false;
    return ok_ ? count : 0;
  }

 private:
  bool Need(uint64_t size) {
    if (!ok_ || size > bytes_.size() - position_) ok_ = false;
    return ok_;
  }
  std::string_view bytes_;
  size_t position_ = 0;
  bool ok_ = true;
};

std::vector<int32_t> EncodeRendered(const Tokenizer& tokenizer, const std::string& text) {
  return tokenizer.Encode(text, /*add_special_tokens=*/false);  // BOS, if any, is in the rendered text
}

std::optional<RenderedChat> RenderRecord(const PromptRecord& record, const ChatTemplate& chat,
                                         std::optional<std::string_view> response, std::string* error) {
  return record.prompt ? chat.RenderText(*record.prompt, response, error) : chat.Render(record.messages, response, error);
}

}  // namespace

std::vector<int32_t> TokenizedPrompt::Sequence(size_t r) const {
  std::vector<int32_t> ids = prompt_ids;
  ids.insert(ids.end(), responses[r].ids.begin(), responses[r].ids.end());
  return ids;
}

std::vector<uint8_t> TokenizedPrompt::ResponseMask(size_t r) const {
  std::vector<uint8_t> mask(prompt_ids.size(), 0);
  mask.resize(prompt_ids.size() + responses[r].ids.size(), 1);
  return mask;
}

std::string TokenizeStats::Summary() const {
  std::ostringstream out;
  out << prompts << " prompts, " << responses << " responses, " << prompt_tokens + response_tokens << " tokens";
  std::vector<std::string> dropped;
  if (prompts_too_long > 0) dropped.push_back(std::to_string(prompts_too_long) + " prompts over max_prompt_len");
  if (responses_too_long > 0) dropped.push_back(std::to_string(responses_too_long) + " responses over max_len");
  if (bad_lines > 0) dropped.push_back(std::to_string(bad_lines) + " bad lines");
  for (size_t i = 0; i < dropped.size(); ++i) out << (i == 0 ? " (dropped: " : ", ") << dropped[i];
  if (!dropped.empty()) out << ")";
  return out.str();
}

std::optional<std::vector<int32_t>> TokenizePrompt(const PromptRecord& record, const Tokenizer& tokenizer,
                                                   const ChatTemplate& chat, std::string* error) {
  auto rendered = RenderRecord(record, chat, std::nullopt, error);
  if (!rendered) return std::nullopt;
  return EncodeRendered(tokenizer, rendered->prompt);
}

std::optional<std::vector<int32_t>> TokenizeResponse(const PromptRecord& record, std::string_view response,
                                                     const Tokenizer& tokenizer, const ChatTemplate& chat,
                                                     std::string* error) {
  auto rendered = RenderRecord(record, chat, response, error);
  if (!rendered) return std::nullopt;
  return EncodeRendered(tokenizer, rendered->response);
}

bool TokenizeRecord(const PromptRecord& record, const Tokenizer& tokenizer, const TokenizeOptions& options,
                    std::vector<TokenizedPrompt>* out, TokenizeStats* stats, std::string* error) {
  auto rendered = RenderRecord(record, options.chat, std::nullopt, error);
  if (!rendered) return false;
  TokenizedPrompt prompt;
  prompt.id = record.id;
  prompt.line = record.line;
  prompt.prompt_ids = EncodeRendered(tokenizer, rendered->prompt);
  if (options.max_prompt_len > 0 && static_cast<int64_t>(prompt.prompt_ids.size()) > options.max_prompt_len) {
    ++stats->prompts_too_long;
    return true;
  }
  for (size_t r = 0; r < record.responses.size(); ++r) {
    const ResponseRecord& response = record.responses[r];
    auto full = RenderRecord(record, options.chat, response.text, error);
    if (!full) return false;  // cannot happen once the prompt rendered, but never drop silently
    TokenizedResponse tokenized{response.source, static_cast<int32_t>(r), response.reward,
                                EncodeRendered(tokenizer, full->response)};
    if (options.max_len > 0 && static_cast<int64_t>(prompt.prompt_ids.size() + tokenized.ids.size()) > options.max_len) {
      ++stats->responses_too_long;
      continue;
    }
    stats->response_tokens += static_cast<int64_t>(tokenized.ids.size());
    ++stats->responses;
    prompt.responses.push_back(std::move(tokenized));
  }
  if (prompt.responses.empty() && options.jsonl.require_responses) return true;
  stats->prompt_tokens += static_cast<int64_t>(prompt.prompt_ids.size());
  ++stats->prompts;
  out->push_back(std::move(prompt));
  return true;
}

std::optional<TokenizedDataset> TokenizeJsonl(const std::string& path, const Tokenizer& tokenizer,
                                              const TokenizeOptions& options, std::string* error) {
  auto reader = JsonlReader::Open(path, options.jsonl, error);
  if (!reader) return std::nullopt;
  TokenizedDataset dataset;
  PromptRecord record;
  while (reader->Next(&record)) {
    std::string what;
    if (TokenizeRecord(record, tokenizer, options, &dataset.prompts, &dataset.stats, &what)) continue;
    // The template refused the line: a bad line like any other.
    if (options.jsonl.bad_lines == BadLines::Stop) {
      *error = path + ":" + std::to_string(record.line) + ": " + what;
      return std::nullopt;
    }
    ++dataset.stats.bad_lines;
  }
  if (!reader->error().empty()) {
    *error = reader->error();
    return std::nullopt;
  }
  dataset.stats.bad_lines += reader->skipped();
  return dataset;
}

std::string TokenizedCacheKey(const std::string& path, const Tokenizer& tokenizer, const TokenizeOptions& options,
                              std::string* error) {
  std::string data_hash = Sha256File(path);
  if (data_hash.empty()) {
    *error = path + ": cannot read the data file";
    return "";
  }
  const JsonlFields& f = options.jsonl.fields;
  std::ostringstream key;
  key << kMagic << "\n" << data_hash << "\n" << tokenizer.fingerprint() << "\n"
      << ChatTemplateName(options.chat.kind) << "\n" << options.chat.bos_token << "\n" << options.chat.eos_token << "\n"
      << options.max_len << " " << options.max_prompt_len << "\n"
      << f.id << "\n" << f.prompt << "\n" << f.messages << "\n" << f.responses << "\n" << f.source << "\n" << f.text << "\n"
      << f.reward << "\n" << static_cast<int>(options.jsonl.bad_lines) << options.jsonl.require_responses
      << options.jsonl.require_reward << " " << options.jsonl.limit.value_or(-1);
  return Sha256Hex(key.str());
}

std::string SerializeTokenized(const TokenizedDataset& dataset) {
  ByteWriter body;
  const TokenizeStats& s = dataset.stats;
  for (int64_t value : {s.prompts, s.responses, s.prompts_too_long, s.responses_too_long, s.bad_lines, s.prompt_tokens,
                        s.response_tokens}) {
    body.I64(value);
  }
  body.U64(dataset.prompts.size());
  for (const TokenizedPrompt& prompt : dataset.prompts) {
    body.Str(prompt.id);
    body.I64(prompt.line);
    body.Ids(prompt.prompt_ids);
    body.U64(prompt.responses.size());
    for (const TokenizedResponse& response : prompt.responses) {
      body.Str(response.source);
      body.I64(response.index);
      body.U64(response.reward ? 1 : 0);
      body.F64(response.reward.value_or(0.0));
      body.Ids(response.ids);
    }
  }
  std::string out(kMagic);
  out += Sha256Hex(body.bytes());
  out += body.bytes();
  return out;
}

std::optional<TokenizedDataset> DeserializeTokenized(const std::string& bytes, std::string* error) {
  constexpr size_t kHeader = 8 + 64;
  if (bytes.size() < kHeader || bytes.compare(0, kMagic.size(), kMagic) != 0) {
    *error = "not a tokenized-examples file of this version";
    return std::nullopt;
  }
  std::string_view body = std::string_view(bytes).substr(kHeader);
  if (Sha256Hex(body) != bytes.substr(8, 64)) {
    *error = "its checksum does not match (a partial or damaged file)";
    return std::nullopt;
  }
  ByteReader in(body);
  TokenizedDataset dataset;
  TokenizeStats& s = dataset.stats;
  for (int64_t* value : {&s.prompts, &s.responses, &s.prompts_too_long, &s.responses_too_long, &s.bad_lines,
                         &s.prompt_tokens, &s.response_tokens}) {
    *value = in.I64();
  }
  uint64_t prompts = in.Count(8 * 4);
  for (uint64_t p = 0; p < prompts && in.ok(); ++p) {
    TokenizedPrompt prompt;
    prompt.id = in.Str();
    prompt.line = in.I64();
    prompt.prompt_ids = in.Ids();
    uint64_t responses = in.Count(8 * 5);
    for (uint64_t r = 0; r < responses && in.ok(); ++r) {
      TokenizedResponse response;
      response.source = in.Str();
      response.index = static_cast<int32_t>(in.I64());
      bool has_reward = in.U64() != 0;
      double reward = in.F64();
      if (has_reward) response.reward = reward;
      response.ids = in.Ids();
      prompt.responses.push_back(std::move(response));
    }
    dataset.prompts.push_back(std::move(prompt));
  }
  if (!in.ok() || !in.at_end()) {
    *error = "its contents are malformed";
    return std::nullopt;
  }
  return dataset;
}

std::optional<TokenizedDataset> TokenizeJsonlCached(const std::string& path, const Tokenizer& tokenizer,
                                                    const TokenizeOptions& options, const std::string& cache_dir,
                                                    bool* from_cache, std::string* error) {
  namespace fs = std::filesystem;
  *from_cache = false;
  std::string key = TokenizedCacheKey(path, tokenizer, options, error);
  if (key.empty()) return std::nullopt;
  fs::path file = fs::path(cache_dir) / "tokens" / (key + ".bin");
  if (auto bytes = ReadWholeFile(file.string())) {
    std::string ignored;
    if (auto cached = DeserializeTokenized(*bytes, &ignored)) {
      *from_cache = true;
      return cached;
    }
  }
  auto dataset = TokenizeJsonl(path, tokenizer, options, error);
  if (!dataset) return std::nullopt;
  // Written to a temporary name and renamed, so a reader never sees half a file. A cache that cannot be
  // written costs time later, not correctness now: the result is returned either way.
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  fs::path tmp = file;
  tmp += ".tmp" + std::to_string(::getpid());
  if (WriteWholeFile(tmp.string(), SerializeTokenized(*dataset))) fs::rename(tmp, file, ec);
  fs::remove(tmp, ec);  // left only when writing or renaming failed
  return dataset;
}

}  // namespace fusec::rt
