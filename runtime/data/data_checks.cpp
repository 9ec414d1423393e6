#include "runtime/data/data_checks.h"

#include <unordered_map>

namespace fusec::rt {
namespace {

std::string Key(const std::string& name) { return "`" + name + "`"; }

/// An optional key the experiment renamed and no record has: the mapping is surely wrong (a typo, or the
/// key of another file), and without the check every value would silently be missing.
std::optional<DataProblem> MissingMappedKey(const std::vector<PromptRecord>& records, const JsonlFields& fields) {
  const JsonlFields defaults;
  bool any_response = false, any_reward = false, any_gold = false, any_family = false, any_id = false;
  for (const PromptRecord& record : records) {
    any_id = any_id || record.has_id;
    any_gold = any_gold || record.gold.has_value();
    any_family = any_family || record.family.has_value();
    for (const ResponseRecord& response : record.responses) {
      any_response = true;
      any_reward = any_reward || response.reward.has_value();
    }
  }
  struct Mapped {
    const char* argument;
    const std::string& key;
    const std::string& default_key;
    bool present;
    bool applies;
    const char* where;
  };
  const Mapped mapped[] = {
      {"id", fields.id, defaults.id, any_id, true, "record"},
      {"reward", fields.reward, defaults.reward, any_reward, any_response, "response"},
      {"gold", fields.gold, defaults.gold, any_gold, true, "record"},
      {"family", fields.family, defaults.family, any_family, true, "record"},
  };
  for (const Mapped& m : mapped) {
    if (m.key == m.default_key || m.present || !m.applies) continue;
    return DataProblem{"`" + std::string(m.argument) + ": \"" + m.key + "\"` maps a key that no " + m.where +
                           " of the " + std::to_string(records.size()) + " records has",
                       "check the key name in jsonl(...), or leave `" + std::string(m.argument) +
                           ":` out to read the default key " + Key(m.default_key)};
  }
  return std::nullopt;
}

}  // namespace

DataCheckReport CheckRecords(const std::vector<PromptRecord>& records, const JsonlFields& fields, int64_t skipped) {
  DataCheckReport report;
  if (records.empty()) {
    report.error = DataProblem{skipped > 0 ? "every line was bad: " + std::to_string(skipped) +
                                                 " skipped, no records left"
                                           : "the file has no records",
                               skipped > 0 ? "the skipped lines are listed above; `bad_lines = stop` stops at the "
                                             "first with its reason"
                                           : ""};
    return report;
  }
  if (auto wrong = MissingMappedKey(records, fields)) {
    report.error = std::move(*wrong);
    return report;
  }

  // Duplicate ids: ids are read as text, so an integer id 1 and a string id "1" collide here too.
  std::unordered_map<std::string, int64_t> first_line;
  int64_t repeated = 0;
  std::string example;
  for (const PromptRecord& record : records) {
    auto [it, inserted] = first_line.emplace(record.id, record.line);
    if (inserted) continue;
    if (repeated++ == 0) {
      example = "e.g. " + Key(record.id) + " on lines " + std::to_string(it->second) + " and " +
                std::to_string(record.line);
    }
  }
  if (repeated > 0) {
    report.warnings.push_back(
        {std::to_string(repeated) + " of " + std::to_string(records.size()) +
             " records repeat an earlier record's id (" + example + "; an integer id and the same id as a string "
             "are one id)",
         "give every prompt its own id: splits and results are keyed by it"});
  }

  int64_t without_responses = 0;
  for (const PromptRecord& record : records) without_responses += record.responses.empty() ? 1 : 0;
  // Evaluation files have no responses at all; a mix means some prompts cannot be trained on.
  if (without_responses > 0 && without_responses < static_cast<int64_t>(records.size())) {
    report.warnings.push_back({std::to_string(without_responses) + " of " + std::to_string(records.size()) +
                                   " prompts have no responses: no training stage can use them",
                               ""});
  }
  return report;
}

}  // namespace fusec::rt
