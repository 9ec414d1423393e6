#include <gtest/gtest.h>

#include "runtime/data/data_checks.h"
#include "runtime/data/examples.h"
#include "runtime/data/jsonl.h"
#include "runtime/data/jsonl_writer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ScratchDir;
using testing::WriteFile;

std::optional<PromptRecord> ParseOne(const std::string& line, std::string* error, JsonlOptions options = {}) {
  return JsonlReader::ParseLine(line, options, 1, error);
}

TEST(Jsonl, ReadsPromptsMessagesIdsAndRewards) {
  std::string error;
  auto record = ParseOne(
      R"({"id": "p1", "prompt": "Q?", "responses": [{"source": "a", "text": "A", "reward": 0.5}, {"source": "b", "text": "B"}]})",
      &error);
  ASSERT_TRUE(record) << error;
  EXPECT_EQ(record->id, "p1");
  EXPECT_EQ(record->prompt, "Q?");
  ASSERT_EQ(record->responses.size(), 2U);
  EXPECT_EQ(record->responses[0].reward, 0.5);
  EXPECT_EQ(record->responses[1].reward, std::nullopt);

  record = ParseOne(R"({"id": 42, "messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}],
                        "responses": [{"source": "a", "text": "A", "reward": -1}]})",
                    &error);
  ASSERT_TRUE(record) << error;
  EXPECT_EQ(record->id, "42");
  ASSERT_EQ(record->messages.size(), 2U);
  EXPECT_EQ(record->messages[1].content, "U");

  // No id: the line number stands in.
  record = JsonlReader::ParseLine(R"({"prompt": "x", "responses": [{"source": "a", "text": "b"}]})", {}, 17, &error);
  ASSERT_TRUE(record) << error;
  EXPECT_EQ(record->id, "17");
}

TEST(JsonlWriter, RecordsReadBackAsTheyWereWritten) {
  std::string error;
  PromptRecord chat;
  chat.id = "c1";
  chat.messages = {{"system", "S"}, {"user", "line\nbreak \"quoted\""}};
  chat.responses = {{"a", "first", 0.25, std::nullopt}, {"b", "", std::nullopt, std::nullopt}};
  chat.gold = "gold";
  chat.family = "sort";
  PromptRecord plain;
  plain.id = "7";
  plain.prompt = "caf\xC3\xA9";
  const std::string line = RecordJsonLine(chat);
  EXPECT_EQ(line.back(), '\n');
  EXPECT_EQ(line.find("\"reward\"", line.find("\"b\"")), std::string::npos) << "no reward key without a reward";
  JsonlOptions options;
  options.require_responses = false;
  for (const PromptRecord& written : {chat, plain}) {
    auto read = ParseOne(RecordJsonLine(written), &error, options);
    ASSERT_TRUE(read) << error;
    EXPECT_EQ(read->id, written.id);
    EXPECT_EQ(read->prompt, written.prompt);
    ASSERT_EQ(read->messages.size(), written.messages.size());
    for (size_t m = 0; m < written.messages.size(); ++m) {
      EXPECT_EQ(read->messages[m].role, written.messages[m].role);
      EXPECT_EQ(read->messages[m].content, written.messages[m].content);
    }
    ASSERT_EQ(read->responses.size(), written.responses.size());
    for (size_t r = 0; r < written.responses.size(); ++r) {
      EXPECT_EQ(read->responses[r].source, written.responses[r].source);
      EXPECT_EQ(read->responses[r].text, written.responses[r].text);
      EXPECT_EQ(read->responses[r].reward, written.responses[r].reward);
    }
    EXPECT_EQ(read->gold, written.gold);
    EXPECT_EQ(read->family, written.family);
  }
  // The whole file, written atomically: no temporary file is left beside it.
  ScratchDir dir("jsonl_writer");
  ASSERT_TRUE(WriteRecordsJsonl(dir / "records.jsonl", {chat, plain}, &error)) << error;
  EXPECT_EQ(testing::ReadFile(dir / "records.jsonl"), RecordJsonLine(chat) + RecordJsonLine(plain));
  EXPECT_FALSE(std::filesystem::exists(dir / "records.jsonl.tmp"));
  EXPECT_FALSE(WriteRecordsJsonl(dir / "missing/records.jsonl", {chat}, &error));
  EXPECT_NE(error.find("missing/records.jsonl"), std::string::npos) << error;
}

TEST(Jsonl, MapsFieldNames) {
  JsonlOptions options;
  options.fields.prompt = "question";
  options.fields.responses = "samples";
  options.fields.source = "model";
  options.fields.text = "completion";
  options.fields.reward = "score";
  std::string error;
  auto record = ParseOne(R"({"question": "Q", "samples": [{"model": "m", "completion": "C", "score": 2}]})", &error,
                         options);
  ASSERT_TRUE(record) << error;
  EXPECT_EQ(record->prompt, "Q");
  EXPECT_EQ(record->responses[0].source, "m");
  EXPECT_EQ(record->responses[0].text, "C");
  EXPECT_EQ(record->responses[0].reward, 2.0);
  EXPECT_FALSE(ParseOne(R"({"prompt": "Q", "samples": []})", &error, options));
  EXPECT_NE(error.find("`question`"), std::string::npos) << "errors use the mapped names: " << error;
}

TEST(Jsonl, SaysWhatIsWrongWithALine) {
  JsonlOptions training;
  training.require_reward = true;
  struct Case {
    std::string line;
    const char* expected;
  };
  std::vector<Case> cases = {
      {R"({"prompt": "Q", "responses": [)", "not valid JSON"},
      {R"([1, 2])", "the line is a list, not an object"},
      {R"("text")", "the line is a string"},
      {R"({"responses": []})", "has neither `prompt` nor `messages`"},
      {R"({"prompt": "Q", "messages": [], "responses": []})", "has both"},
      {R"({"prompt": 3, "responses": []})", "`prompt` is a number, not a string"},
      {R"({"prompt": "Q"})", "has no `responses`"},
      {R"({"prompt": "Q", "responses": {}})", "`responses` is an object, not a list"},
      {R"({"prompt": "Q", "responses": []})", "`responses` is empty"},
      {R"({"prompt": "Q", "responses": [3]})", "`responses` item 1 is a number"},
      {R"({"prompt": "Q", "responses": [{"text": "A", "reward": 1}]})", "`responses` item 1 has no `source`"},
      {R"({"prompt": "Q", "responses": [{"source": "s", "reward": 1}]})", "has no `text`"},
      {R"({"prompt": "Q", "responses": [{"source": "s", "text": "A"}]})", "has no `reward`"},
      {R"({"prompt": "Q", "responses": [{"source": "s", "text": "A", "reward": "high"}]})",
       "`reward` is a string, not a number"},
      {R"({"prompt": "Q", "responses": [{"source": "s", "text": "A", "reward": 1}, {"source": 2, "text": "B", "reward": 1}]})",
       "`responses` item 2 `source` is a number"},
      {R"({"messages": "hi", "responses": []})", "`messages` is a string, not a list"},
      {R"({"messages": [], "responses": []})", "`messages` is empty"},
      {R"({"messages": [{"role": "user"}], "responses": []})", "`messages` item 1 has no `content`"},
      {R"({"messages": [{"role": "robot", "content": "x"}], "responses": []})", "role `robot`"},
      {R"({"id": [1], "prompt": "Q", "responses": []})", "`id` is a list"},
      {R"({"prompt": "Q", "responses": [{"source": "s", "text": "A", "reward": 1e999}]})", "not valid JSON"},
  };
  for (const Case& c : cases) {
    std::string error;
    EXPECT_FALSE(ParseOne(c.line, &error, training)) << c.line;
    EXPECT_NE(error.find(c.expected), std::string::npos) << c.line << "\n  said: " << error;
  }
}

TEST(Jsonl, StopsAtTheFirstBadLineWithFileAndLine) {
  ScratchDir dir("jsonl");
  std::string path = dir / "data.jsonl";
  WriteFile(path,
            "{\"prompt\": \"a\", \"responses\": [{\"source\": \"s\", \"text\": \"t\"}]}\n"
            "\n"
            "{\"prompt\": \"b\", \"responses\": [{\"source\": \"s\", \"text\": \"t\"}]}\r\n"
            "{broken\n"
            "{\"prompt\": \"c\", \"responses\": [{\"source\": \"s\", \"text\": \"t\"}]}\n");
  std::string error;
  auto reader = JsonlReader::Open(path, {}, &error);
  ASSERT_TRUE(reader) << error;
  PromptRecord record;
  ASSERT_TRUE(reader->Next(&record));
  EXPECT_EQ(record.prompt, "a");
  ASSERT_TRUE(reader->Next(&record));
  EXPECT_EQ(record.prompt, "b");  // the blank line is skipped, the CR dropped
  EXPECT_EQ(record.line, 3);
  EXPECT_FALSE(reader->Next(&record));
  EXPECT_EQ(reader->error().rfind(path + ":4: not valid JSON", 0), 0U) << reader->error();
  EXPECT_NE(reader->error().find("bad_lines = skip"), std::string::npos) << reader->error();

  JsonlOptions skip;
  skip.bad_lines = BadLines::Skip;
  reader = JsonlReader::Open(path, skip, &error);
  std::vector<std::string> prompts;
  while (reader->Next(&record)) prompts.push_back(*record.prompt);
  EXPECT_EQ(reader->error(), "");
  EXPECT_EQ(prompts, (std::vector<std::string>{"a", "b", "c"}));
  EXPECT_EQ(reader->skipped(), 1);
  ASSERT_EQ(reader->skipped_messages().size(), 1U);
  EXPECT_EQ(reader->skipped_messages()[0].rfind(path + ":4:", 0), 0U);

  JsonlOptions limited;
  limited.limit = 1;
  reader = JsonlReader::Open(path, limited, &error);
  int count = 0;
  while (reader->Next(&record)) ++count;
  EXPECT_EQ(count, 1);

  EXPECT_FALSE(JsonlReader::Open(dir / "missing.jsonl", {}, &error));
  EXPECT_NE(error.find("missing.jsonl: cannot open"), std::string::npos) << error;
}

// --- Tokenized examples ---

Tokenizer ByteTokenizer() {
  auto [tokenizer_json, config_json] = ByteTokenizerFiles();
  std::string error;
  return std::move(*Tokenizer::FromJson(tokenizer_json, config_json, &error));
}

std::string Line(const std::string& prompt, const std::vector<std::pair<std::string, std::string>>& responses) {
  nlohmann::json json = {{"prompt", prompt}, {"responses", nlohmann::json::array()}};
  for (const auto& [source, text] : responses) json["responses"].push_back({{"source", source}, {"text", text}, {"reward", 1.0}});
  return json.dump() + "\n";
}

TEST(TokenizedExamples, KeepPromptAndResponseApart) {
  ScratchDir dir("examples");
  std::string path = dir / "data.jsonl";
  WriteFile(path, Line("Hi", {{"a", "Hello"}, {"b", "Hey"}}));
  Tokenizer tokenizer = ByteTokenizer();
  TokenizeOptions options;
  options.chat = MakeChatTemplate(ChatTemplateKind::ChatMl, tokenizer);
  std::string error;
  auto dataset = TokenizeJsonl(path, tokenizer, options, &error);
  ASSERT_TRUE(dataset) << error;
  ASSERT_EQ(dataset->prompts.size(), 1U);
  const TokenizedPrompt& prompt = dataset->prompts[0];
  auto rendered = options.chat.RenderText("Hi", std::string_view("Hello"), &error);
  EXPECT_EQ(prompt.prompt_ids, tokenizer.Encode(rendered->prompt, false));
  EXPECT_EQ(prompt.responses[0].ids, tokenizer.Encode("Hello<|im_end|>\n", false));
  EXPECT_EQ(prompt.Sequence(0), tokenizer.Encode(rendered->prompt + rendered->response, false));
  std::vector<uint8_t> mask = prompt.ResponseMask(0);
  ASSERT_EQ(mask.size(), prompt.Sequence(0).size());
  EXPECT_EQ(std::count(mask.begin(), mask.end(), 1), static_cast<long>(prompt.responses[0].ids.size()));
  EXPECT_EQ(mask[prompt.prompt_ids.size() - 1], 0);
  EXPECT_EQ(mask[prompt.prompt_ids.size()], 1);
  EXPECT_EQ(prompt.responses[1].source, "b");
  EXPECT_EQ(prompt.responses[1].index, 1);
  EXPECT_EQ(dataset->stats.responses, 2);
}

TEST(TokenizedExamples, DropTooLongPromptsAndResponses) {
  ScratchDir dir("examples_lengths");
  std::string path = dir / "data.jsonl";
  WriteFile(path, Line("short", {{"a", "ok"}, {"b", std::string(100, 'x')}}) + Line(std::string(200, 'p'), {{"a", "ok"}}));
  Tokenizer tokenizer = ByteTokenizer();
  TokenizeOptions options;
  options.chat = MakeChatTemplate(ChatTemplateKind::Plain, tokenizer);
  options.max_len = 50;
  options.max_prompt_len = 100;
  std::string error;
  auto dataset = TokenizeJsonl(path, tokenizer, options, &error);
  ASSERT_TRUE(dataset) << error;
  ASSERT_EQ(dataset->prompts.size(), 1U);
  EXPECT_EQ(dataset->prompts[0].responses.size(), 1U);
  EXPECT_EQ(dataset->stats.responses_too_long, 1);
  EXPECT_EQ(dataset->stats.prompts_too_long, 1);
  EXPECT_NE(dataset->stats.Summary().find("1 responses over max_len"), std::string::npos) << dataset->stats.Summary();
}

TEST(TokenizedExamples, TemplateRefusalsAreBadLines) {
  ScratchDir dir("examples_template");
  std::string path = dir / "data.jsonl";
  WriteFile(path, "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", \"content\": \"u\"}], "
                  "\"responses\": [{\"source\": \"a\", \"text\": \"r\"}]}\n" +
                      Line("fine", {{"a", "r"}}));
  Tokenizer tokenizer = ByteTokenizer();
  TokenizeOptions options;
  options.chat = ChatTemplate{ChatTemplateKind::Gemma, "<s>", "</s>"};
  std::string error;
  EXPECT_FALSE(TokenizeJsonl(path, tokenizer, options, &error));
  EXPECT_EQ(error.rfind(path + ":1: gemma's template has no system role", 0), 0U) << error;
  options.jsonl.bad_lines = BadLines::Skip;
  auto dataset = TokenizeJsonl(path, tokenizer, options, &error);
  ASSERT_TRUE(dataset) << error;
  EXPECT_EQ(dataset->prompts.size(), 1U);
  EXPECT_EQ(dataset->stats.bad_lines, 1);
}

TEST(TokenizedExamples, AreCachedByContentHash) {
  ScratchDir dir("examples_cache");
  std::string path = dir / "data.jsonl";
  WriteFile(path, Line("a", {{"s", "one"}}) + Line("b", {{"s", "two"}, {"t", "three"}}));
  Tokenizer tokenizer = ByteTokenizer();
  TokenizeOptions options;
  options.chat = MakeChatTemplate(ChatTemplateKind::ChatMl, tokenizer);
  std::string cache = dir / "cache";
  std::string error;
  bool from_cache = true;
  auto first = TokenizeJsonlCached(path, tokenizer, options, cache, &from_cache, &error);
  ASSERT_TRUE(first) << error;
  EXPECT_FALSE(from_cache);
  auto second = TokenizeJsonlCached(path, tokenizer, options, cache, &from_cache, &error);
  ASSERT_TRUE(second) << error;
  EXPECT_TRUE(from_cache);
  ASSERT_EQ(second->prompts.size(), first->prompts.size());
  for (size_t p = 0; p < first->prompts.size(); ++p) {
    EXPECT_EQ(second->prompts[p].id, first->prompts[p].id);
    EXPECT_EQ(second->prompts[p].prompt_ids, first->prompts[p].prompt_ids);
    ASSERT_EQ(second->prompts[p].responses.size(), first->prompts[p].responses.size());
    for (size_t r = 0; r < first->prompts[p].responses.size(); ++r) {
      EXPECT_EQ(second->prompts[p].responses[r].ids, first->prompts[p].responses[r].ids);
      EXPECT_EQ(second->prompts[p].responses[r].reward, first->prompts[p].responses[r].reward);
      EXPECT_EQ(second->prompts[p].responses[r].source, first->prompts[p].responses[r].source);
    }
  }
  EXPECT_EQ(second->stats.response_tokens, first->stats.response_tokens);

  // Anything the result depends on changes the key: the template, a limit, the data.
  std::string key = TokenizedCacheKey(path, tokenizer, options, &error);
  TokenizeOptions other = options;
  other.chat = MakeChatTemplate(ChatTemplateKind::Plain, tokenizer);
  EXPECT_NE(TokenizedCacheKey(path, tokenizer, other, &error), key);
  other = options;
  other.max_len = 10;
  EXPECT_NE(TokenizedCacheKey(path, tokenizer, other, &error), key);
  WriteFile(path, Line("a", {{"s", "changed"}}));
  EXPECT_NE(TokenizedCacheKey(path, tokenizer, options, &error), key);
  auto third = TokenizeJsonlCached(path, tokenizer, options, cache, &from_cache, &error);
  ASSERT_TRUE(third);
  EXPECT_FALSE(from_cache);
  EXPECT_EQ(third->prompts.size(), 1U);

  // A damaged cache file is ignored and rewritten.
  std::string file = cache + "/tokens/" + TokenizedCacheKey(path, tokenizer, options, &error) + ".bin";
  std::string bytes = testing::ReadFile(file);
  ASSERT_FALSE(bytes.empty());
  WriteFile(file, bytes.substr(0, bytes.size() / 2));
  auto fourth = TokenizeJsonlCached(path, tokenizer, options, cache, &from_cache, &error);
  ASSERT_TRUE(fourth);
  EXPECT_FALSE(from_cache);
  EXPECT_EQ(testing::ReadFile(file), bytes);
}

TEST(TokenizedExamples, DamagedCacheBytesAreRefusedNotTrusted) {
  TokenizedDataset dataset;
  dataset.prompts.push_back({"id", 3, {1, 2, 3}, {{"src", 0, 0.5, {4, 5}}, {"src2", 1, std::nullopt, {}}}});
  dataset.stats.prompts = 1;
  std::string bytes = SerializeTokenized(dataset);
  std::string error;
  auto back = DeserializeTokenized(bytes, &error);
  ASSERT_TRUE(back) << error;
  EXPECT_EQ(back->prompts[0].responses[0].reward, 0.5);
  EXPECT_EQ(back->prompts[0].responses[1].reward, std::nullopt);
  for (size_t cut = 0; cut < bytes.size(); cut += 7) EXPECT_FALSE(DeserializeTokenized(bytes.substr(0, cut), &error));
  std::string flipped = bytes;
  flipped[flipped.size() - 3] ^= 1;
  EXPECT_FALSE(DeserializeTokenized(flipped, &error));
  EXPECT_NE(error.find("checksum"), std::string::npos);
}

TEST(DataChecks, AMappedIdKeyThatNoRecordHasIsAnError) {
  std::vector<PromptRecord> records(3);
  for (size_t i = 0; i < records.size(); ++i) {
    records[i].id = std::to_string(i + 1);  // the line numbers the reader gives records without an id
    records[i].line = static_cast<int64_t>(i + 1);
    records[i].prompt = "p";
  }
  JsonlFields fields;
  fields.id = "uid";
  DataCheckReport report = CheckRecords(records, fields, 0);
  ASSERT_TRUE(report.error.has_value());
  EXPECT_EQ(report.error->message, "`id: \"uid\"` maps a key that no record of the 3 records has");
  records[1].has_id = true;
  EXPECT_FALSE(CheckRecords(records, fields, 0).error.has_value());
}

}  // namespace
}  // namespace fusec::rt
