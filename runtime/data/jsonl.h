// The multi-source JSONL data format, read one line at a time.
//
// One prompt a line: {"id", "prompt" | "messages", "responses": [{"source", "text", "reward"}]} (DESIGN.md),
// with other key names mapped by the experiment's `jsonl(...)` arguments. Files of sampled responses are
// large, so the reader streams: it holds one line, never the file. Every malformed line is reported as
// `file:line: what is wrong`; the experiment's `bad_lines` decides whether the first one stops the run
// (default) or bad lines are skipped and counted.
#pragma once

#include <cstdint>
#include <fstream>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "runtime/tokenizer/chat_template.h"

namespace fusec::rt {

/// The keys of a line, as `jsonl(path, id = "id", prompt = "prompt", ...)` names them.
struct JsonlFields {
  std::string id = "id";
  std::string prompt = "prompt";
  std::string messages = "messages";
  std::string responses = "responses";
  std::string source = "source";
  std::string text = "text";
  std::string reward = "reward";
  std::string gold = "gold";      // optional: the prompt's correct answer, for evaluation only
  std::string family = "family";  // optional: the prompt's task family, for per-family evaluation
};

enum class BadLines : uint8_t { Stop, Skip };

struct JsonlOptions {
  JsonlFields fields;
  BadLines bad_lines = BadLines::Stop;
  bool require_responses = true;  // false for prompt files (generation)
  bool require_reward = false;    // true for training data
  std::optional<int64_t> limit;   // read at most this many records
  /// Appended to the error of a bad line that stops the run: how to skip such lines instead.
  std::string skip_hint = "(`bad_lines = skip` in the experiment's jsonl(...) skips such lines)";
};

struct ResponseRecord {
  std::string source;
  std::string text;
  std::optional<double> reward;
  /// The response's token count (end-of-turn marker included, as training sees it) under a stage's tokenizer:
  /// set by the executor before a data rule that reads `len`, never by the reader.
  std::optional<int64_t> tokens;
};

struct PromptRecord {
  std::string id;  // the line's id (a string or an integer in the file); its line number when it has none
  bool has_id = false;  // whether the file gave the id (a mapped id key no record has is an error)
  int64_t line = 0;
  std::optional<std::string> prompt;  // exactly one of prompt and messages is set
  std::vector<ChatMessage> messages;
  std::vector<ResponseRecord> responses;
  std::optional<std::string> gold;    // the correct answer, when the file gives one (evaluation splits)
  std::optional<std::string> family;  // the task family, when the file gives one
};

class JsonlReader {
 public:
  /// nullptr with `error` as `path: why` when the file cannot be opened (missing, a directory, no permission).
  /// A UTF-8 byte-order mark before the first line is skipped; lines may end in CRLF, the last without one.
  static std::unique_ptr<JsonlReader> Open(const std::string& path, JsonlOptions options, std::string* error);
  ~JsonlReader();

  /// The next good record. False at the end of the file (error() empty) or at a bad line when bad lines stop
  /// the run (error() says `file:line: what is wrong`).
  bool Next(PromptRecord* record);
  const std::string& error() const { return error_; }
  /// The same error in parts: the line it is at (0 when none) and what is wrong there, without `file:line: `.
  int64_t error_line() const { return error_line_; }
  const std::string& error_detail() const { return error_detail_; }
  /// Bad lines skipped so far, and the messages of the first few.
  int64_t skipped() const { return skipped_; }
  const std::vector<std::string>& skipped_messages() const { return skipped_messages_; }
  int64_t lines_read() const { return line_; }
  const std::string& path() const { return path_; }

  /// Parses one line's text; nullopt with `error` (without the file:line prefix) when it is malformed.
  static std::optional<PromptRecord> ParseLine(const std::string& text, const JsonlOptions& options, int64_t line,
                                               std::string* error);

 private:
  JsonlReader(std::string path, JsonlOptions options);

  std::string path_;
  JsonlOptions options_;
  std::ifstream in_;
  int64_t line_ = 0;
  int64_t records_ = 0;
  int64_t skipped_ = 0;
  std::vector<std::string> skipped_messages_;
  std::string error_;
  int64_t error_line_ = 0;
  std::string error_detail_;
};

}  // namespace fusec::rt
