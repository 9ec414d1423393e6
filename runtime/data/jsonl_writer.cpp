// Records back to JSONL (jsonl_writer.h).

#include "runtime/data/jsonl_writer.h"

#include <nlohmann/json.hpp>

#include "runtime/support/checked_write.h"

namespace fusec::rt {

std::string RecordJsonLine(const PromptRecord& record) {
  nlohmann::ordered_json line;
  line["id"] = record.id;
  if (record.prompt) {
    line["prompt"] = *record.prompt;
  } else {
    nlohmann::ordered_json messages = nlohmann::ordered_json::array();
    for (const ChatMessage& m : record.messages) messages.push_back({{"role", m.role}, {"content", m.content}});
    line["messages"] = messages;
  }
  nlohmann::ordered_json responses = nlohmann::ordered_json::array();
  for (const ResponseRecord& r : record.responses) {
    nlohmann::ordered_json response = {{"source", r.source}, {"text", r.text}};
    if (r.reward) response["reward"] = *r.reward;
    responses.push_back(std::move(response));
  }
  line["responses"] = responses;
  if (record.gold) line["gold"] = *record.gold;
  if (record.family) line["family"] = *record.family;
  return line.dump(-1, ' ', false, nlohmann::ordered_json::error_handler_t::replace) + "\n";
}

bool WriteRecordsJsonl(const std::string& path, const std::vector<PromptRecord>& records, std::string* error) {
  std::string lines;
  for (const PromptRecord& record : records) lines += RecordJsonLine(record);
  return WriteFileAtomically(path, lines, error);
}

}  // namespace fusec::rt
