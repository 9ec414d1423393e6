// A fuzz budget for the runtime's readers of files (issue 14): deterministic mutations (a fixed seed, a bounded
// number of rounds, a few seconds in all, also under the sanitizers) of a valid config.json, safetensors file,
// tokenizer.json, tokenizer_config.json and JSONL file, each written to disk and read through the same entry
// point the runtime uses. Every round must end without a crash, without an exception escaping the reader, and
// when the input is refused, with a message that names the file that was mutated.
#include <gtest/gtest.h>

#include <functional>
#include <random>

#include "runtime/data/jsonl.h"
#include "runtime/model/config.h"
#include "runtime/model/safetensors.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using testing::ReadFile;
using testing::ScratchDir;
using testing::WriteFile;

/// One mutation of `text`: a byte changed, a JSON-significant character or a hostile literal put in, a range
/// deleted or repeated, the end cut off, or a deep nest inserted.
void Mutate(std::string& text, std::mt19937& rng) {
  static const char* const kLiterals[] = {"-1",  "0",     "2147483648", "1e309",  "-0.5", "\"x\"", "null", "[]",
                                          "{}",  "true",  "\"\\u0000\"", "99999999999999999999", "[[[[", "\xEF\xBB\xBF"};
  if (text.empty()) text = "{}";
  const size_t at = rng() % text.size();
  switch (rng() % 7) {
    case 0:
      text[at] = static_cast<char>(rng());
      break;
    case 1:
      text[at] = "0123456789[]{},:\"-e. \\"[rng() % 22];
      break;
    case 2:
      text.insert(at, kLiterals[rng() % std::size(kLiterals)]);
      break;
    case 3:
      text.erase(at, 1 + rng() % 16);
      break;
    case 4:
      text.insert(at, text.substr(at, 1 + rng() % 64));
      break;
    case 5:
      text.resize(at);
      break;
    case 6:
      text.insert(at, std::string(200 + rng() % 3000, "[{"[rng() % 2]));
      break;
  }
}

/// Runs `read` on `rounds` mutants of `original` written to `path`; `read` returns the error ("" if accepted).
void Fuzz(const std::string& what, const std::string& original, const std::string& path, int rounds, uint32_t seed,
          const std::function<std::string()>& read) {
  std::mt19937 rng(seed);
  int refused = 0;
  for (int round = 0; round < rounds; ++round) {
    std::string text = original;
    for (int m = 1 + static_cast<int>(rng() % 3); m > 0; --m) Mutate(text, rng);
    WriteFile(path, text);
    std::string error;
    try {
      error = read();
    } catch (const std::exception& exception) {
      ADD_FAILURE() << what << " round " << round << ": an exception escaped: " << exception.what();
      continue;
    }
    if (error.empty()) continue;
    ++refused;
    if (error.find(path) == std::string::npos) {
      ADD_FAILURE() << what << " round " << round << ": the error does not name " << path << ": " << error;
    }
  }
  EXPECT_GT(refused, rounds / 10) << what << ": the mutations should break most inputs";
}

TEST(ReadersFuzz, ConfigJson) {
  ScratchDir dir("fuzz_config");
  const std::string original = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32, "intermediate_size": 64,
    "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2, "vocab_size": 260,
    "max_position_embeddings": 256, "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": false,
    "bos_token_id": 256, "eos_token_id": [257, 259], "torch_dtype": "float32", "hidden_act": "silu",
    "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                     "original_max_position_embeddings": 8192}})";
  std::string error;
  WriteFile(dir / "config.json", original);
  ASSERT_TRUE(ReadModelConfig(dir.path().string(), &error)) << error;
  Fuzz("config.json", original, dir / "config.json", 1500, 14, [&] {
    std::string message;
    auto config = ReadModelConfig(dir.path().string(), &message);
    if (config) {
      EXPECT_TRUE(ModelWeightCount(*config));
      EXPECT_GE(config->num_layers, 1);
      EXPECT_EQ(config->num_heads % config->num_kv_heads, 0);
    }
    return config ? std::string() : message;
  });
}

TEST(ReadersFuzz, SafetensorsFile) {
  ScratchDir dir("fuzz_safetensors");
  std::vector<float> a(12, 0.5F);
  std::vector<uint16_t> b(7, 0x3F80);
  std::string error;
  ASSERT_TRUE(WriteSafetensors(dir / "model.safetensors",
                               {{"model.a", DType::F32, {3, 4}, a.data()}, {"model.b", DType::BF16, {7}, b.data()}},
                               {{"format", "pt"}}, &error));
  const std::string original = ReadFile(dir / "model.safetensors");
  Fuzz("model.safetensors", original, dir / "model.safetensors", 1500, 15, [&] {
    std::string message;
    auto file = SafetensorsFile::Open(dir / "model.safetensors", &message);
    if (file && !file->tensors().empty()) {  // what is accepted tiles the file's data exactly
      const TensorInfo& first = file->tensors().front();
      const auto data_offset = static_cast<uint64_t>(file->Data(first) - file->mapping()->data()) - first.begin;
      uint64_t bytes = 0;
      for (const TensorInfo& tensor : file->tensors()) bytes += tensor.end - tensor.begin;
      EXPECT_EQ(data_offset + bytes, file->mapping()->size());
    }
    return file ? std::string() : message;
  });
}

TEST(ReadersFuzz, TokenizerJsonAndTokenizerConfigJson) {
  ScratchDir dir("fuzz_tokenizer");
  auto [tokenizer_json, config_json] = ByteTokenizerFiles();
  auto load = [&] {
    std::string message;
    auto tokenizer = Tokenizer::Load(dir.path().string(), &message);
    if (tokenizer) tokenizer->Encode("héllo <s> wörld", /*add_special_tokens=*/true);  // usable when accepted
    return tokenizer ? std::string() : message;
  };
  WriteFile(dir / "tokenizer_config.json", config_json);
  Fuzz("tokenizer.json", tokenizer_json, dir / "tokenizer.json", 200, 16, load);
  WriteFile(dir / "tokenizer.json", tokenizer_json);
  Fuzz("tokenizer_config.json", config_json, dir / "tokenizer_config.json", 800, 17, load);
}

TEST(ReadersFuzz, JsonlData) {
  ScratchDir dir("fuzz_jsonl");
  const std::string original =
      "\xEF\xBB\xBF"
      R"({"id": "q1", "prompt": "2+2=", "gold": "4", "responses": [{"source": "a", "text": "4", "reward": 1.0}]})"
      "\r\n"
      R"({"id": 7, "messages": [{"role": "user", "content": "hi"}], "responses": [{"source": "b", "text": "yo", "reward": -0.5}]})"
      "\n\n"
      R"({"id": "q3", "prompt": "p", "family": "f", "responses": []})";
  JsonlOptions options;
  options.require_responses = false;
  Fuzz("data.jsonl", original, dir / "data.jsonl", 1500, 18, [&] {
    std::string message;
    auto reader = JsonlReader::Open(dir / "data.jsonl", options, &message);
    if (!reader) return message;
    PromptRecord record;
    while (reader->Next(&record)) {
    }
    return reader->error();
  });
}

}  // namespace
}  // namespace fusec::rt
