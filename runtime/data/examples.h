// Tokenized examples: prompts rendered with the chat template and tokenized once, each with its responses.
//
// A prompt's tokens are stored once for all its responses (the runtime packs one prompt copy behind several
// responses), and response tokens are kept apart from them: they are exactly what the loss covers, so the
// response mask is the boundary between the two lists. Length limits drop, never truncate: a cut response
// would teach the model to stop mid-sentence. Tokenizing a large file is slow, so the result is cached on disk
// under the content hash of everything it depends on (the data file's bytes, the tokenizer files, the template,
// the limits and the field names) and reused by every run that asks for the same thing.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "runtime/data/jsonl.h"
#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"

namespace fusec::rt {

struct TokenizedResponse {
  std::string source;
  int32_t index = 0;  // its position in the line's `responses`
  std::optional<double> reward;
  std::vector<int32_t> ids;  // the response's tokens, end-of-turn included
};

struct TokenizedPrompt {
  std::string id;
  int64_t line = 0;
  std::vector<int32_t> prompt_ids;
  std::vector<TokenizedResponse> responses;

  /// Prompt then response `r`: the ids of one training sequence, and a mask that is 1 on response tokens.
  std::vector<int32_t> Sequence(size_t r) const;
  std::vector<uint8_t> ResponseMask(size_t r) const;
};

struct TokenizeStats {
  int64_t prompts = 0;  // kept
  int64_t responses = 0;
  int64_t prompts_too_long = 0;  // dropped, with all their responses
  int64_t responses_too_long = 0;
  int64_t bad_lines = 0;  // skipped (bad_lines = skip)
  int64_t prompt_tokens = 0;
  int64_t response_tokens = 0;

  /// One line for progress output: "1000 prompts, 4000 responses (3 responses over max_len dropped)".
  std::string Summary() const;
};

struct TokenizedDataset {
  std::vector<TokenizedPrompt> prompts;
  TokenizeStats stats;
};

struct TokenizeOptions {
  JsonlOptions jsonl;
  ChatTemplate chat;
  int64_t max_len = 0;         // prompt + response tokens; 0 for no limit
  int64_t max_prompt_len = 0;  // 0 for no limit
};

/// Renders and tokenizes a prompt (without a response) as generation sees it.
std::optional<std::vector<int32_t>> TokenizePrompt(const PromptRecord& record, const Tokenizer& tokenizer,
                                                   const ChatTemplate& chat, std::string* error);

/// Renders and tokenizes one response of a record (end-of-turn marker included), as training sees it.
std::optional<std::vector<int32_t>> TokenizeResponse(const PromptRecord& record, std::string_view response,
                                                     const Tokenizer& tokenizer, const ChatTemplate& chat,
                                                     std::string* error);

/// Tokenizes one record, appending it to `out` unless a length limit drops it (counted in `stats`). False with
/// `error` when the chat template refuses the conversation.
bool TokenizeRecord(const PromptRecord& record, const Tokenizer& tokenizer, const TokenizeOptions& options,
                    std::vector<TokenizedPrompt>* out, TokenizeStats* stats, std::string* error);

/// Reads and tokenizes a whole JSONL file. nullopt with `error` (`file:line: ...`) on a bad line when bad lines
/// stop the run, or when the file cannot be read.
std::optional<TokenizedDataset> TokenizeJsonl(const std::string& path, const Tokenizer& tokenizer,
                                              const TokenizeOptions& options, std::string* error);

/// The cache key of TokenizeJsonl(path, tokenizer, options): SHA-256 over the data file's bytes, the
/// tokenizer's files and every option. Empty with `error` when the file cannot be read.
std::string TokenizedCacheKey(const std::string& path, const Tokenizer& tokenizer, const TokenizeOptions& options,
                              std::string* error);

/// TokenizeJsonl through a cache directory (`<cache_dir>/tokens/<key>.bin`). A corrupt cache file is ignored
/// (and rewritten); `from_cache` says whether the result was read from the cache.
std::optional<TokenizedDataset> TokenizeJsonlCached(const std::string& path, const Tokenizer& tokenizer,
                                                    const TokenizeOptions& options, const std::string& cache_dir,
                                                    bool* from_cache, std::string* error);

/// The cache file format, exposed for its tests.
std::string SerializeTokenized(const TokenizedDataset& dataset);
std::optional<TokenizedDataset> DeserializeTokenized(const std::string& bytes, std::string* error);

}  // namespace fusec::rt
