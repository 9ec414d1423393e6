#include "runtime/data/jsonl.h"

#include <simdjson.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <filesystem>

namespace fusec::rt {
namespace {

using simdjson::dom::element;
using simdjson::dom::element_type;

std::string TypeName(element_type type) {
  switch (type) {
    case element_type::ARRAY:
      return "a list";
    case element_type::OBJECT:
      return "an object";
    case element_type::INT64:
    case element_type::UINT64:
    case element_type::DOUBLE:
      return "a number";
    case element_type::STRING:
      return "a string";
    case element_type::BOOL:
      return "a boolean";
    case element_type::NULL_VALUE:
      return "null";
  }
  return "a value";
}

std::string Quoted(const std::string& key) { return "`" + key + "`"; }

/// A string field of an object; sets `error` when it is missing (if required) or not a string.
bool StringField(const simdjson::dom::object& object, const std::string& key, const std::string& where, bool required,
                 std::optional<std::string>* into, std::string* error) {
  element value;
  if (object.at_key(key).get(value) != simdjson::SUCCESS) {
    if (required) *error = where + "has no " + Quoted(key);
    return !required;
  }
  std::string_view text;
  if (value.get(text) != simdjson::SUCCESS) {
    *error = where + Quoted(key) + " is " + TypeName(value.type()) + ", not a string";
    return false;
  }
  *into = std::string(text);
  return true;
}

}  // namespace

JsonlReader::JsonlReader(std::string path, JsonlOptions options) : path_(std::move(path)), options_(std::move(options)) {}
JsonlReader::~JsonlReader() = default;

std::unique_ptr<JsonlReader> JsonlReader::Open(const std::string& path, JsonlOptions options, std::string* error) {
  // A directory opens as a stream and then fails its first read; say what it is instead.
  std::error_code ec;
  const auto status = std::filesystem::status(path, ec);
  if (std::filesystem::is_directory(status)) {
    *error = path + ": is a directory, not a data file";
    return nullptr;
  }
  std::unique_ptr<JsonlReader> reader(new JsonlReader(path, std::move(options)));
  errno = 0;
  reader->in_.open(path, std::ios::binary);
  if (!reader->in_) {
    const int cause = errno;
    *error = path + ": cannot open the data file" +
             (ec == std::errc::no_such_file_or_directory || cause == ENOENT ? std::string(": no such file")
              : cause != 0                                                  ? ": " + std::string(std::strerror(cause))
                                                                            : std::string());
    return nullptr;
  }
  return reader;
}

bool JsonlReader::Next(PromptRecord* record) {
  std::string text;
  while (!(options_.limit && records_ >= *options_.limit) && std::getline(in_, text)) {
    ++line_;
    if (line_ == 1 && text.starts_with("\xEF\xBB\xBF")) text.erase(0, 3);  // a UTF-8 byte-order mark
    if (!text.empty() && text.back() == '\r') text.pop_back();
    if (text.find_first_not_of(" \t") == std::string::npos) continue;  // blank lines carry nothing
    std::string what;
    auto parsed = ParseLine(text, options_, line_, &what);
    if (parsed) {
      *record = std::move(*parsed);
      ++records_;
      return true;
    }
    std::string message = path_ + ":" + std::to_string(line_) + ": " + what;
    if (options_.bad_lines == BadLines::Stop) {
      error_line_ = line_;
      error_detail_ = options_.skip_hint.empty() ? what : what + " " + options_.skip_hint;
      error_ = path_ + ":" + std::to_string(line_) + ": " + error_detail_;
      return false;
    }
    ++skipped_;
    if (skipped_messages_.size() < 5) skipped_messages_.push_back(message);
  }
  if (in_.bad()) {
    error_line_ = line_;
    error_detail_ = "cannot read the file after line " + std::to_string(line_);
    error_ = path_ + ":" + std::to_string(line_) + ": " + error_detail_;
  }
  return false;
}

std::optional<PromptRecord> JsonlReader::ParseLine(const std::string& text, const JsonlOptions& options, int64_t line,
                                                   std::string* error) {
  const JsonlFields& fields = options.fields;
  thread_local simdjson::dom::parser parser;  // keeps its buffers from line to line
  element root;
  if (auto code = parser.parse(text).get(root); code != simdjson::SUCCESS) {
    *error = std::string("not valid JSON: ") + simdjson::error_message(code);
    return std::nullopt;
  }
  simdjson::dom::object object;
  if (root.get(object) != simdjson::SUCCESS) {
    *error = "the line is " + TypeName(root.type()) + ", not an object";
    return std::nullopt;
  }
  PromptRecord record;
  record.line = line;
  record.id = std::to_string(line);
  if (element id; object.at_key(fields.id).get(id) == simdjson::SUCCESS) {
    record.has_id = true;
    std::string_view id_text;
    int64_t id_number = 0;
    if (id.get(id_text) == simdjson::SUCCESS) {
      record.id = std::string(id_text);
    } else if (id.get(id_number) == simdjson::SUCCESS) {
      record.id = std::to_string(id_number);
    } else {
      *error = Quoted(fields.id) + " is " + TypeName(id.type()) + ", not a string or an integer";
      return std::nullopt;
    }
  }

  element messages;
  bool has_messages = object.at_key(fields.messages).get(messages) == simdjson::SUCCESS;
  if (!StringField(object, fields.prompt, "", false, &record.prompt, error)) return std::nullopt;
  if (record.prompt && has_messages) {
    *error = "has both " + Quoted(fields.prompt) + " and " + Quoted(fields.messages) + "; give one";
    return std::nullopt;
  }
  if (!record.prompt && !has_messages) {
    *error = "has neither " + Quoted(fields.prompt) + " nor " + Quoted(fields.messages);
    return std::nullopt;
  }
  if (!StringField(object, fields.gold, "", false, &record.gold, error) ||
      !StringField(object, fields.family, "", false, &record.family, error)) {
    return std::nullopt;
  }
  if (has_messages) {
    simdjson::dom::array list;
    if (messages.get(list) != simdjson::SUCCESS) {
      *error = Quoted(fields.messages) + " is " + TypeName(messages.type()) + ", not a list";
      return std::nullopt;
    }
    size_t index = 0;
    for (element message : list) {
      ++index;
      std::string where = Quoted(fields.messages) + " item " + std::to_string(index) + " ";
      simdjson::dom::object message_object;
      if (message.get(message_object) != simdjson::SUCCESS) {
        *error = where + "is " + TypeName(message.type()) + ", not an object with `role` and `content`";
        return std::nullopt;
      }
      std::optional<std::string> role;
      std::optional<std::string> content;
      if (!StringField(message_object, "role", where, true, &role, error) ||
          !StringField(message_object, "content", where, true, &content, error)) {
        return std::nullopt;
      }
      if (*role != "system" && *role != "user" && *role != "assistant") {
        *error = where + "has role `" + *role + "` (system, user and assistant are known)";
        return std::nullopt;
      }
      record.messages.push_back(ChatMessage{std::move(*role), std::move(*content)});
    }
    if (record.messages.empty()) {
      *error = Quoted(fields.messages) + " is empty";
      return std::nullopt;
    }
  }

  element responses;
  if (object.at_key(fields.responses).get(responses) != simdjson::SUCCESS) {
    if (options.require_responses) {
      *error = "has no " + Quoted(fields.responses);
      return std::nullopt;
    }
    return record;
  }
  simdjson::dom::array list;
  if (responses.get(list) != simdjson::SUCCESS) {
    *error = Quoted(fields.responses) + " is " + TypeName(responses.type()) + ", not a list";
    return std::nullopt;
  }
  size_t index = 0;
  for (element response : list) {
    ++index;
    std::string where = Quoted(fields.responses) + " item " + std::to_string(index) + " ";
    simdjson::dom::object response_object;
    if (response.get(response_object) != simdjson::SUCCESS) {
      *error = where + "is " + TypeName(response.type()) + ", not an object";
      return std::nullopt;
    }
    ResponseRecord parsed;
    std::optional<std::string> source;
    std::optional<std::string> response_text;
    if (!StringField(response_object, fields.source, where, true, &source, error) ||
        !StringField(response_object, fields.text, where, true, &response_text, error)) {
      return std::nullopt;
    }
    parsed.source = std::move(*source);
    parsed.text = std::move(*response_text);
    element reward;
    if (response_object.at_key(fields.reward).get(reward) == simdjson::SUCCESS && !reward.is_null()) {
      double value = 0;
      if (reward.get(value) != simdjson::SUCCESS) {
        *error = where + Quoted(fields.reward) + " is " + TypeName(reward.type()) + ", not a number";
        return std::nullopt;
      }
      if (!std::isfinite(value)) {
        *error = where + Quoted(fields.reward) + " is not finite";
        return std::nullopt;
      }
      parsed.reward = value;
    } else if (options.require_reward) {
      *error = where + "has no " + Quoted(fields.reward);
      return std::nullopt;
    }
    record.responses.push_back(std::move(parsed));
  }
  if (record.responses.empty() && options.require_responses) {
    *error = Quoted(fields.responses) + " is empty";
    return std::nullopt;
  }
  return record;
}

}  // namespace fusec::rt
