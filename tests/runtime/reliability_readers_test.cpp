// Issue 14, the runtime's readers of files: config.json, safetensors headers, tokenizer.json and
// tokenizer_config.json, JSONL data. Each case is an input that crashed, was silently accepted, or gave library
// text without the file and field; each must now be an error naming the file and what is wrong. No LibTorch:
// these also run under the dev preset's sanitizers.
#include <gtest/gtest.h>
#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>
#include <nlohmann/json.hpp>

#include "runtime/data/jsonl.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors.h"
#include "runtime/support/json_text.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ScratchDir;
using testing::WriteFile;

constexpr const char* kTinyConfig = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 260, "max_position_embeddings": 256})";

std::string Nested(size_t depth) { return std::string(depth, '[') + std::string(depth, ']'); }

/// A safetensors file from a header text and `data_bytes` zero bytes of data.
std::string FileWithHeader(const std::string& header, size_t data_bytes) {
  std::string out(8, '\0');
  uint64_t length = header.size();
  for (int i = 0; i < 8; ++i) out[static_cast<size_t>(i)] = static_cast<char>((length >> (8 * i)) & 0xFF);
  return out + header + std::string(data_bytes, '\0');
}

#define EXPECT_HAS(text, part) EXPECT_NE(std::string(text).find(part), std::string::npos) << (text)

// --- 1. Nesting bounded before parsing -------------------------------------------------------------------------

TEST(ReadersNesting, JsonNestingErrorCountsBracketsOutsideStringsOnly) {
  EXPECT_FALSE(JsonNestingError(Nested(kMaxJsonNesting)));
  EXPECT_TRUE(JsonNestingError(Nested(kMaxJsonNesting + 1)));
  EXPECT_FALSE(JsonNestingError("\"" + std::string(10000, '[') + "\""));             // inside a string
  EXPECT_FALSE(JsonNestingError("[\"\\\"" + std::string(10000, '{') + "\"]"));       // after an escaped quote
  EXPECT_HAS(JsonNestingError(Nested(200000)).value_or(""), "more than 128 deep");
}

TEST(ReadersNesting, ADeepConfigJsonIsAnErrorNamingTheFile) {
  ScratchDir dir("deep_config");
  std::string config = kTinyConfig;
  config.insert(1, "\"deep\": " + Nested(200000) + ", ");
  WriteFile(dir / "config.json", config);
  std::string error;
  EXPECT_FALSE(ReadModelConfig(dir.path().string(), &error));  // crashed with SIGSEGV
  EXPECT_HAS(error, dir / "config.json");
  EXPECT_HAS(error, "nests arrays and objects more than 128 deep");
}

TEST(ReadersNesting, DeepTokenizerFilesAreErrorsNamingTheFile) {
  ScratchDir dir("deep_tokenizer");
  auto [tokenizer_json, config_json] = ByteTokenizerFiles();
  WriteFile(dir / "tokenizer.json", "{\"deep\": " + Nested(200000) + ", " + tokenizer_json.substr(1));
  WriteFile(dir / "tokenizer_config.json", config_json);
  std::string error;
  EXPECT_FALSE(Tokenizer::Load(dir.path().string(), &error));
  EXPECT_HAS(error, dir / "tokenizer.json");
  EXPECT_HAS(error, "more than 128 deep");

  WriteFile(dir / "tokenizer.json", tokenizer_json);
  WriteFile(dir / "tokenizer_config.json", "{\"deep\": " + Nested(200000) + "}");
  EXPECT_FALSE(Tokenizer::Load(dir.path().string(), &error));
  EXPECT_HAS(error, dir / "tokenizer_config.json");
  EXPECT_HAS(error, "more than 128 deep");
}

TEST(ReadersNesting, ADeepSafetensorsHeaderAndADeepJsonlLineAreErrors) {
  std::string error;
  std::string file = FileWithHeader("{\"__metadata__\": {\"x\": " + Nested(200000) + "}}", 0);
  EXPECT_FALSE(ParseSafetensorsHeader(file, file.size(), &error));
  EXPECT_HAS(error, "more than 128 deep");

  ScratchDir dir("deep_jsonl");
  WriteFile(dir / "d.jsonl", "{\"id\": 1, \"prompt\": \"p\", \"x\": " + Nested(200000) + "}\n");
  auto reader = JsonlReader::Open(dir / "d.jsonl", JsonlOptions{}, &error);
  ASSERT_TRUE(reader) << error;
  PromptRecord record;
  EXPECT_FALSE(reader->Next(&record));
  EXPECT_HAS(reader->error(), dir / "d.jsonl" + ":1:");
}

// --- 2. config.json fields validated, with the field and its value --------------------------------------------

TEST(ReadersConfig, AbsurdOrMistypedSizesNameTheFieldAndTheValue) {
  struct Case {
    const char* key;
    const char* value;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"num_hidden_layers", "2147483648", "`num_hidden_layers` must be an integer >= 1 and <= 2147483647, not 2147483648"},
      {"num_hidden_layers", "-2", "`num_hidden_layers` must be an integer >= 1 and <= 2147483647, not -2"},
      {"hidden_size", "32.5", "`hidden_size` must be an integer >= 1 and <= 2147483647, not 32.5"},
      {"hidden_size", "\"32\"", "`hidden_size` must be an integer >= 1 and <= 2147483647, not \"32\""},
      {"vocab_size", "9223372036854775807", "`vocab_size` must be an integer >= 1 and <= 2147483647, not 9223372036854775807"},
      {"intermediate_size", "18446744073709551615", "`intermediate_size` must be an integer"},
      {"num_attention_heads", "3", "`hidden_size` 32 is not a multiple of `num_attention_heads` 3"},
      {"tie_word_embeddings", "\"yes\"", "`tie_word_embeddings` must be true or false, not \"yes\""},
      {"attention_bias", "1", "`attention_bias` must be true or false, not 1"},
      {"hidden_act", "7", "`hidden_act` must be a string, not 7"},
      {"eos_token_id", "\"</s>\"", "`eos_token_id` must be a token id (an integer >= 0) or a list of them, not \"</s>\""},
      {"eos_token_id", "[2, -1]", "`eos_token_id` must be a token id (an integer >= 0) or a list of them, not -1"},
      {"bos_token_id", "1.5", "`bos_token_id` must be a token id"},
      {"rope_theta", "\"big\"", "`rope_theta` must be a positive number in [1, 1e+12] (got \"big\")"},
      {"rope_scaling", "[1]", "`rope_scaling` must be an object or null, not [1]"},
      {"rope_scaling", R"({"rope_type": 3})", "`rope_scaling.rope_type` must be a string, not 3"},
      {"rope_scaling", R"({"rope_type": "llama3", "original_max_position_embeddings": 8192.5})",
       "`rope_scaling.original_max_position_embeddings` must be an integer, not 8192.5"},
      {"torch_dtype", "16", "`torch_dtype` must be a string, not 16"},
      {"pretraining_tp", "\"1\"", "`pretraining_tp` \"1\" is not supported"},
  };
  for (const Case& c : cases) {
    auto json = nlohmann::ordered_json::parse(kTinyConfig);
    json[c.key] = nlohmann::ordered_json::parse(c.value);
    std::string error;
    EXPECT_FALSE(ParseModelConfig(json.dump(), &error)) << c.key << " = " << c.value;
    EXPECT_HAS(error, c.expected);
    EXPECT_EQ(error.find("json.exception"), std::string::npos) << error;
  }
}

TEST(ReadersConfig, AModelOfMoreThan2To64WeightsIsRefusedWithItsSizes) {
  auto json = nlohmann::ordered_json::parse(kTinyConfig);
  json["hidden_size"] = 2147483520;  // a multiple of 4 heads
  json["intermediate_size"] = 2147483647;
  json["num_hidden_layers"] = 2147483647;
  std::string error;
  EXPECT_FALSE(ParseModelConfig(json.dump(), &error));  // Storage size calculation overflowed, or SIGSEGV
  EXPECT_HAS(error, "more than 2^64 weights");
  EXPECT_HAS(error, "`num_hidden_layers` 2147483647");
}

TEST(ReadersConfig, WeightCountIsTheParametersTheDecoderHas) {
  std::string error;
  auto config = ParseModelConfig(kTinyConfig, &error);
  ASSERT_TRUE(config) << error;
  // embed 260*32, per layer q 32*32, k and v 32*16 each, o 32*32, mlp 3*32*64, two norms 2*32; final norm 32;
  // lm_head 260*32.
  const uint64_t layer = 32 * 32 * 2 + 32 * 16 * 2 + 3 * 32 * 64 + 2 * 32;
  EXPECT_EQ(ModelWeightCount(*config), 2 * 260 * 32 + 2 * layer + 32);
  config->tie_word_embeddings = true;
  config->qkv_bias = true;
  EXPECT_EQ(ModelWeightCount(*config), 260 * 32 + 2 * (layer + 32 + 16 + 16) + 32);
}

// --- 3. safetensors headers must describe their data exactly -------------------------------------------------

TEST(ReadersSafetensors, AHeaderThatDoesNotCoverItsDataExactlyIsRefused) {
  struct Case {
    const char* name;
    std::string file;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"a gap between tensors",
       FileWithHeader(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [8, 12]}})",
                      12),
       "bytes [4, 8) of the data region belong to no tensor (a gap before `b`)"},
      {"a gap at the start", FileWithHeader(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})", 8),
       "bytes [0, 4) of the data region belong to no tensor"},
      {"data after the last tensor",
       FileWithHeader(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})", 12),
       "has 12 data bytes but its tensors cover only 4 (the last, `a`, ends there)"},
      {"data and no tensors", FileWithHeader(R"({"__metadata__": {"format": "pt"}})", 16),
       "has 16 data bytes but its tensors cover only 0"},
      {"overlapping tensors",
       FileWithHeader(R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                          "b": {"dtype": "F32", "shape": [1], "data_offsets": [4, 8]}})",
                      8),
       "tensors `a` and `b` overlap"},
  };
  for (const Case& c : cases) {
    std::string error;
    EXPECT_FALSE(ParseSafetensorsHeader(c.file, c.file.size(), &error)) << c.name;  // accepted silently before
    EXPECT_HAS(error, c.expected);
  }
  std::string error;
  std::string exact = FileWithHeader(R"({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]},
      "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]},
      "b": {"dtype": "BF16", "shape": [2], "data_offsets": [4, 8]}})", 8);
  EXPECT_TRUE(ParseSafetensorsHeader(exact, exact.size(), &error)) << error;
}

TEST(ReadersSafetensors, ASymlinkLoopIsAnErrorNamingTheFile) {
  ScratchDir dir("safetensors_loop");
  std::filesystem::create_symlink("model.safetensors", dir.path() / "model.safetensors");
  std::string error;
  EXPECT_FALSE(SafetensorsFile::Open(dir / "model.safetensors", &error));
  EXPECT_HAS(error, dir / "model.safetensors");
  EXPECT_HAS(error, "symbolic links");
}

// --- 4. tokenizer.json: malformed fields are refused, naming the file and the field ---------------------------

TEST(ReadersTokenizer, MalformedFieldsAreRefusedNotIgnored) {
  using Json = nlohmann::json;
  const Json good = Json::parse(ByteTokenizerFiles().first);
  struct Case {
    const char* name;
    std::function<void(Json&)> mutate;
    const char* expected;
  };
  const std::vector<Case> cases = {
      {"an empty vocab", [](Json& j) { j["model"]["vocab"] = Json::object(); }, "`model.vocab` is empty"},
      {"a vocab list", [](Json& j) { j["model"]["vocab"] = Json::array({"a"}); },
       "`model.vocab` must be an object of tokens and their ids, not [\"a\"]"},
      {"added_tokens an object", [](Json& j) { j["added_tokens"] = Json::object({{"id", 1}}); },
       "`added_tokens` must be a list, not {\"id\":1}"},
      {"an added token a string", [](Json& j) { j["added_tokens"][0] = "<s>"; },
       "`added_tokens[0]` must be an object with `id` and `content`, not \"<s>\""},
      {"an added token id far out", [](Json& j) { j["added_tokens"][1]["id"] = 2147483647; },
       "`added_tokens[1].id` must be a token id"},
      {"an added token flag not a boolean", [](Json& j) { j["added_tokens"][0]["special"] = "yes"; },
       "`added_tokens[0].special` must be true or false, not \"yes\""},
      {"a post_processor string", [](Json& j) { j["post_processor"] = "bos"; },
       "`post_processor` must be an object or null, not \"bos\""},
      {"a post_processor template not a list",
       [](Json& j) { j["post_processor"] = {{"type", "TemplateProcessing"}, {"single", "$A"}}; },
       "`post_processor.single` must be a list, not \"$A\""},
      {"a post_processor token outside the vocabulary",
       [](Json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", {{{"SpecialToken", {{"id", "<s>"}}}}, {{"Sequence", {{"id", "A"}}}}}},
                                {"special_tokens", {{"<s>", {{"ids", {999999}}}}}}};
       },
       "post-processor token `<s>` has id 999999, which is not in the vocabulary"},
      {"a post_processor id a string",
       [](Json& j) {
         j["post_processor"] = {{"type", "TemplateProcessing"},
                                {"single", {{{"SpecialToken", {{"id", "<s>"}}}}}},
                                {"special_tokens", {{"<s>", {{"ids", {"1"}}}}}}};
       },
       "`post_processor.special_tokens.<s>.ids[0]` must be a token id"},
      {"no merges", [](Json& j) { j["model"].erase("merges"); }, "the BPE model has no `model.merges`"},
      {"merges an object", [](Json& j) { j["model"]["merges"] = Json::object(); },
       "`model.merges` must be a list, not {}"},
      {"the model a list", [](Json& j) { j["model"] = Json::array(); }, "`model` must be an object, not []"},
      {"a pre_tokenizer flag not a boolean", [](Json& j) { j["pre_tokenizer"]["add_prefix_space"] = 0; },
       "`pre_tokenizer.add_prefix_space` must be true or false, not 0"},
  };
  ScratchDir dir("malformed_tokenizer");
  WriteFile(dir / "tokenizer_config.json", ByteTokenizerFiles().second);
  for (const Case& c : cases) {
    Json json = good;
    c.mutate(json);
    WriteFile(dir / "tokenizer.json", json.dump());
    std::string error;
    EXPECT_FALSE(Tokenizer::Load(dir.path().string(), &error)) << c.name;
    EXPECT_HAS(error, dir / "tokenizer.json: ");
    EXPECT_HAS(error, c.expected);
    EXPECT_EQ(error.find("json.exception"), std::string::npos) << error;
  }
}

TEST(ReadersTokenizer, MalformedTokenizerConfigFieldsNameThatFile) {
  ScratchDir dir("malformed_tokenizer_config");
  auto [tokenizer_json, config_json] = ByteTokenizerFiles();
  WriteFile(dir / "tokenizer.json", tokenizer_json);
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"[1, 2]", "is not a JSON object"},
      {R"({"bos_token": 3})", "`bos_token` must be a token (a string or an object with `content`), not 3"},
      {R"({"eos_token": {"content": 5}})", "`eos_token.content` must be a string, not 5"},
      {R"({"add_bos_token": "true"})", "`add_bos_token` must be true or false, not \"true\""},
      {R"({"clean_up_tokenization_spaces": 1})", "`clean_up_tokenization_spaces` must be true or false"},
  };
  for (const auto& [config, expected] : cases) {
    WriteFile(dir / "tokenizer_config.json", config);
    std::string error;
    EXPECT_FALSE(Tokenizer::Load(dir.path().string(), &error)) << config;
    EXPECT_HAS(error, dir / "tokenizer_config.json: ");
    EXPECT_HAS(error, expected);
  }
}

// --- 5. JSONL files: BOM, directories, permissions, empty files, line endings ---------------------------------

std::vector<PromptRecord> ReadAll(const std::string& path, std::string* error) {
  std::vector<PromptRecord> records;
  auto reader = JsonlReader::Open(path, JsonlOptions{}, error);
  if (!reader) return records;
  PromptRecord record;
  while (reader->Next(&record)) records.push_back(record);
  *error = reader->error();
  return records;
}

constexpr const char* kLine = R"({"id": "a", "prompt": "p", "responses": [{"source": "s", "text": "t"}]})";

TEST(ReadersJsonl, AByteOrderMarkIsSkipped) {
  ScratchDir dir("jsonl_bom");
  WriteFile(dir / "d.jsonl", std::string("\xEF\xBB\xBF") + kLine + "\n" + kLine + "\n");
  std::string error;
  auto records = ReadAll(dir / "d.jsonl", &error);
  EXPECT_EQ(error, "");  // was: d.jsonl:1: not valid JSON
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[0].id, "a");
  // Only at the start of the file: a BOM inside is not white space.
  WriteFile(dir / "d.jsonl", std::string(kLine) + "\n\xEF\xBB\xBF" + kLine + "\n");
  records = ReadAll(dir / "d.jsonl", &error);
  EXPECT_HAS(error, dir / "d.jsonl" + ":2:");
}

TEST(ReadersJsonl, ADirectoryOrAMissingFileIsAnErrorNamingThePath) {
  ScratchDir dir("jsonl_directory");
  std::filesystem::create_directories(dir.path() / "data.jsonl");
  std::string error;
  EXPECT_FALSE(JsonlReader::Open(dir / "data.jsonl", JsonlOptions{}, &error));  // was `:0: read error`
  EXPECT_EQ(error, dir / "data.jsonl" + ": is a directory, not a data file");
  EXPECT_FALSE(JsonlReader::Open(dir / "none.jsonl", JsonlOptions{}, &error));
  EXPECT_EQ(error, dir / "none.jsonl" + ": cannot open the data file: no such file");
}

TEST(ReadersJsonl, AnUnreadableFileSaysWhy) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files without permission";
  ScratchDir dir("jsonl_unreadable");
  WriteFile(dir / "d.jsonl", std::string(kLine) + "\n");
  ::chmod((dir / "d.jsonl").c_str(), 0);
  std::string error;
  EXPECT_FALSE(JsonlReader::Open(dir / "d.jsonl", JsonlOptions{}, &error));
  EXPECT_EQ(error, dir / "d.jsonl" + ": cannot open the data file: Permission denied");
}

TEST(ReadersJsonl, EmptyFilesCrlfAndAMissingFinalNewlineReadAsTheirLines) {
  ScratchDir dir("jsonl_endings");
  std::string error;
  WriteFile(dir / "empty.jsonl", "");
  EXPECT_TRUE(ReadAll(dir / "empty.jsonl", &error).empty());
  EXPECT_EQ(error, "");
  WriteFile(dir / "crlf.jsonl", std::string(kLine) + "\r\n\r\n" + kLine);  // CRLF, a blank line, no final newline
  auto records = ReadAll(dir / "crlf.jsonl", &error);
  EXPECT_EQ(error, "");
  ASSERT_EQ(records.size(), 2U);
  EXPECT_EQ(records[1].line, 3);
  EXPECT_EQ(records[1].responses[0].text, "t");
}

}  // namespace
}  // namespace fusec::rt
