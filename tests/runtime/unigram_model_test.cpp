// The Unigram model (runtime/tokenizer/unigram_model.h): hand-worked cases that pin the Rust library's rules
// (model.rs: the unknown score, fusing, byte_fallback, ties), hostile vocabularies (also run under the dev
// preset's sanitizers), equal ids to the JavaScript port @lenml/tokenizers (tests/js/unigram_reference.mjs,
// one node process per test binary run) on hand-written and generated vocabularies, and the speed on a
// synthetic vocabulary of XLM-R's size.
#include "runtime/tokenizer/unigram_model.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using Json = nlohmann::json;
constexpr char kPath[] = "tokenizer.json: model";

Json ModelJson(const std::vector<std::pair<std::string, double>>& pieces, Json unk_id, bool byte_fallback) {
  Json vocab = Json::array();
  for (const auto& [piece, score] : pieces) vocab.push_back(Json::array({piece, score}));
  return {{"type", "Unigram"}, {"unk_id", unk_id}, {"vocab", vocab}, {"byte_fallback", byte_fallback}};
}

UnigramModel Load(const Json& model) {
  std::string error;
  auto loaded = UnigramModel::FromJson(model, kPath, &error);
  EXPECT_TRUE(loaded) << error;
  if (!loaded) std::abort();
  return *std::move(loaded);
}

std::vector<int32_t> Ids(const UnigramModel& model, std::string_view text) {
  std::vector<int32_t> ids;
  model.Tokenize(text, &ids);
  return ids;
}

// --- The rules, worked by hand ------------------------------------------------------------------------------

TEST(UnigramModel, PicksTheSegmentationWithTheHighestScoreSum) {
  UnigramModel joined = Load(ModelJson({{"<unk>", 0}, {"a", -1}, {"b", -2}, {"ab", -2.5}}, 0, false));
  EXPECT_EQ(Ids(joined, "ab"), (std::vector<int32_t>{3}));  // -2.5 > -1 + -2
  EXPECT_EQ(Ids(joined, "abab"), (std::vector<int32_t>{3, 3}));
  EXPECT_EQ(Ids(joined, "ba"), (std::vector<int32_t>{2, 1}));
  UnigramModel split = Load(ModelJson({{"<unk>", 0}, {"a", -1}, {"b", -2}, {"ab", -3.5}}, 0, false));
  EXPECT_EQ(Ids(split, "ab"), (std::vector<int32_t>{1, 2}));  // -3 > -3.5
  EXPECT_EQ(Ids(split, ""), (std::vector<int32_t>{}));
  EXPECT_EQ(split.vocab_size(), 4);
  EXPECT_EQ(split.TokenToId("ab"), 3);
  EXPECT_EQ(split.TokenToId("abc"), std::nullopt);
  EXPECT_EQ(split.IdToToken(2), "b");
  EXPECT_EQ(split.IdToToken(4), "");
  EXPECT_EQ(split.IdToToken(-1), "");
  EXPECT_EQ(split.unk_id(), 0);
  EXPECT_FALSE(split.byte_fallback());
}

TEST(UnigramModel, TiesKeepTheSegmentThatStartsFirst) {
  // "ab" (-2) and "a" + "b" (-1 + -1) score alike: the path found first, through "ab", stays.
  UnigramModel model = Load(ModelJson({{"<unk>", 0}, {"a", -1}, {"b", -1}, {"ab", -2}}, 0, false));
  EXPECT_EQ(Ids(model, "ab"), (std::vector<int32_t>{3}));
}

TEST(UnigramModel, AnUnknownCharacterScoresTheLowestScoreMinusTen) {
  // `z` has no piece: it is unknown (the lowest score, m's -40, minus 10: -50) unless "zq" covers it.
  // unk + "q" = -50 + 15 = -35, so "zq" wins at -34.5 and loses at -35.5; a penalty of 9 or 11 would flip
  // one of the two.
  auto with_zq = [](double score) {
    return Load(ModelJson({{"<unk>", 0}, {"q", 15}, {"m", -40}, {"zq", score}}, 0, false));
  };
  EXPECT_EQ(Ids(with_zq(-34.5), "zq"), (std::vector<int32_t>{3}));
  EXPECT_EQ(Ids(with_zq(-35.5), "zq"), (std::vector<int32_t>{0, 1}));
  EXPECT_DOUBLE_EQ(with_zq(-35.5).unk_score(), -50);
  // The lowest score counts every piece, the unknown piece's own too.
  EXPECT_DOUBLE_EQ(Load(ModelJson({{"<unk>", -70}, {"q", -1}}, 0, false)).unk_score(), -80);
}

TEST(UnigramModel, ConsecutiveUnknownsAreFusedIntoOne) {
  UnigramModel model = Load(ModelJson({{"<unk>", 0}, {"a", -1}, {"b", -2}}, 0, false));
  EXPECT_EQ(Ids(model, "☃☃a"), (std::vector<int32_t>{0, 1}));
  EXPECT_EQ(Ids(model, "☃a☃é🙂b"), (std::vector<int32_t>{0, 1, 0, 2}));
  EXPECT_EQ(Ids(model, "xyz"), (std::vector<int32_t>{0}));
}

TEST(UnigramModel, AFusedUnknownThatIsAPieceIsThatPiece) {
  // Positive scores: unk = 30 - 10 = 20 a character, so two unknowns (40) beat the piece "ab" (30); the fused
  // text "ab" is then looked up again and is a piece.
  UnigramModel model = Load(ModelJson({{"<unk>", 50}, {"ab", 30}}, 0, false));
  EXPECT_EQ(Ids(model, "ab"), (std::vector<int32_t>{1}));
  EXPECT_EQ(Ids(model, "abc"), (std::vector<int32_t>{0}));
}

TEST(UnigramModel, TheUnknownPieceInTheTextKeepsItsOwnScore) {
  // The Rust library scores a literal "<unk>" with its vocabulary score (0), which beats "<un" + "k>" (-2).
  // (The JavaScript port gives it the unknown score, -11, and answers "<un" "k>".)
  UnigramModel model = Load(ModelJson({{"<unk>", 0}, {"<un", -1}, {"k>", -1}}, 0, false));
  EXPECT_EQ(Ids(model, "<unk>"), (std::vector<int32_t>{0}));
  EXPECT_EQ(Ids(model, "<un"), (std::vector<int32_t>{1}));
}

TEST(UnigramModel, ByteFallbackSpellsAnUnknownRunInBytesWhenEveryByteHasAPiece) {
  // model.rs's own test: "é" is C3 A9; "?é" fuses into one unknown whose `?` (3F) has no byte piece.
  UnigramModel model = Load(ModelJson({{"<unk>", 0}, {"<0xC3>", -0.01}, {"<0xA9>", -0.03}}, 0, true));
  EXPECT_TRUE(model.byte_fallback());
  EXPECT_EQ(Ids(model, "é"), (std::vector<int32_t>{1, 2}));
  EXPECT_EQ(Ids(model, "?é"), (std::vector<int32_t>{0}));
  EXPECT_EQ(Ids(model, "éé"), (std::vector<int32_t>{1, 2, 1, 2}));
  // Without the flag the same vocabulary answers unknown.
  UnigramModel plain = Load(ModelJson({{"<unk>", 0}, {"<0xC3>", -0.01}, {"<0xA9>", -0.03}}, 0, false));
  EXPECT_EQ(Ids(plain, "é"), (std::vector<int32_t>{0}));
}

TEST(UnigramModel, WithoutUnkIdAnUncoveredCharacterIsAnError) {
  UnigramModel model = Load(ModelJson({{"a", -1}, {"b", -2}, {"bc", -1}, {"cb", -1}}, nullptr, true));
  EXPECT_EQ(model.unk_id(), std::nullopt);
  EXPECT_EQ(Ids(model, "abab"), (std::vector<int32_t>{0, 1, 0, 1}));
  std::vector<int32_t> ids = {7};
  std::string error;
  EXPECT_FALSE(model.TryTokenize("a☃", &ids, &error));
  EXPECT_EQ(ids, (std::vector<int32_t>{7}));  // nothing appended
  EXPECT_NE(error.find("tokenizer.json: model has no `unk_id`"), std::string::npos) << error;
  EXPECT_NE(error.find("\"☃\""), std::string::npos) << error;
  EXPECT_THROW(Ids(model, "☃"), UnigramModel::MissingUnk);
  // As in model.rs, the error comes when an unknown is offered, before the best path is known: in "cb",
  // `c` alone has no piece and no path ends after it yet, though "cb" covers it. In "bc" the path through
  // "bc" already ends after `c` and beats the unknown, so none is offered.
  EXPECT_FALSE(model.TryTokenize("cb", &ids, &error));
  EXPECT_EQ(ids, (std::vector<int32_t>{7}));
  EXPECT_TRUE(model.TryTokenize("bc", &ids, &error));
  EXPECT_EQ(ids, (std::vector<int32_t>{7, 2}));
}

TEST(UnigramModel, InvalidUtf8IsReadByteByByte) {
  UnigramModel model = Load(ModelJson({{"<unk>", 0}, {"a", -1}}, 0, false));
  EXPECT_EQ(Ids(model, std::string("a\xff", 2)), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(Ids(model, std::string("a\xc3", 2)), (std::vector<int32_t>{1, 0}));
  EXPECT_EQ(Ids(model, std::string("\xe2\x98", 2)), (std::vector<int32_t>{0}));
  EXPECT_EQ(Ids(model, std::string("\xed\xa0\x80"
                                   "a",
                                   4)),
            (std::vector<int32_t>{0, 1}));  // a surrogate
}

// --- Hostile vocabularies --------------------------------------------------------------------------------------

std::string LoadError(const Json& model) {
  std::string error;
  auto loaded = UnigramModel::FromJson(model, kPath, &error);
  EXPECT_FALSE(loaded) << model.dump();
  return error;
}

TEST(UnigramModel, RefusesMalformedModelsNamingTheField) {
  const Json good = ModelJson({{"<unk>", 0}, {"a", -1}}, 0, false);
  auto with = [&](const char* key, Json value) {
    Json model = good;
    model[key] = std::move(value);
    return model;
  };
  struct Case {
    Json model;
    std::string message;
  };
  const std::vector<Case> cases = {
      {Json::array(), "tokenizer.json: model must be an object, not []"},
      {with("type", "BPE"), "tokenizer.json: model.type must be \"Unigram\", not \"BPE\""},
      {Json{{"type", "Unigram"}, {"unk_id", 0}}, "tokenizer.json: model has no `vocab`"},
      {with("vocab", Json::object()), "tokenizer.json: model.vocab must be a list of [piece, score] pairs, not {}"},
      {with("vocab", Json::array()), "tokenizer.json: model.vocab is empty"},
      {with("vocab", Json::parse(R"([["a", -1], "b"])")),
       "tokenizer.json: model.vocab[1] must be a [piece, score] pair, not \"b\""},
      {with("vocab", Json::parse(R"([["a", -1], [2, -1]])")),
       "tokenizer.json: model.vocab[1] must be a [piece, score] pair, not [2,-1]"},
      {with("vocab", Json::parse(R"([["a", "-1"]])")),
       "tokenizer.json: model.vocab[0] must be a [piece, score] pair, not [\"a\",\"-1\"]"},
      {with("vocab", Json::parse(R"([["a", -1, 3]])")),
       "tokenizer.json: model.vocab[0] must be a [piece, score] pair, not [\"a\",-1,3]"},
      {with("vocab", Json::parse(R"([["a"]])")), "tokenizer.json: model.vocab[0] must be a [piece, score] pair"},
      {with("vocab", Json::parse(R"([["a", null]])")), "tokenizer.json: model.vocab[0] must be a [piece, score] pair"},
      {with("vocab", Json::parse(R"([["a", -1], ["b", -2], ["a", -3]])")),
       "tokenizer.json: model.vocab[2] repeats the piece \"a\" of tokenizer.json: model.vocab[0]"},
      {with("unk_id", 2), "tokenizer.json: model.unk_id is 2 but the vocabulary has 2 pieces"},
      {with("unk_id", -1), "tokenizer.json: model.unk_id must be a piece's index or null, not -1"},
      {with("unk_id", 0.5), "tokenizer.json: model.unk_id must be a piece's index or null, not 0.5"},
      {with("unk_id", "0"), "tokenizer.json: model.unk_id must be a piece's index or null, not \"0\""},
      {with("unk_id", Json::parse("18446744073709551615")),
       "tokenizer.json: model.unk_id is 18446744073709551615 but the vocabulary has 2 pieces"},
      {with("byte_fallback", 1), "tokenizer.json: model.byte_fallback must be true or false, not 1"},
  };
  for (const Case& c : cases) EXPECT_EQ(LoadError(c.model).substr(0, c.message.size()), c.message) << c.model.dump();
}

TEST(UnigramModel, RefusesScoresThatAreNotFinite) {
  std::string error;
  for (double bad : {std::numeric_limits<double>::infinity(), -std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    EXPECT_FALSE(UnigramModel::FromPieces({{"<unk>", 0}, {"a", bad}}, 0, false, kPath, &error));
    EXPECT_EQ(error, "tokenizer.json: model.vocab[1] has a score that is not a finite number");
  }
  // JSON has no infinity, but a number too large for a double reads as one.
  Json parsed =
      Json::parse(R"({"type": "Unigram", "unk_id": 0, "vocab": [["<unk>", 0], ["a", -1e999]]})", nullptr, false);
  if (!parsed.is_discarded()) {
    EXPECT_EQ(LoadError(parsed), "tokenizer.json: model.vocab[1] has a score that is not a finite number");
  }
  EXPECT_FALSE(UnigramModel::FromPieces({}, std::nullopt, false, kPath, &error));
  EXPECT_EQ(error, "tokenizer.json: model.vocab is empty");
  EXPECT_FALSE(UnigramModel::FromPieces({{"a", 0}}, -1, false, kPath, &error));
  EXPECT_EQ(error, "tokenizer.json: model.unk_id is -1 but the vocabulary has 1 pieces");
}

TEST(UnigramModel, AcceptsWhatTheRustLibraryAccepts) {
  // Absent `type`, `unk_id` and `byte_fallback`, integer scores, unknown keys; an empty piece is never matched.
  Json model = Json::parse(R"({"vocab": [["", 0], ["a", -1], ["b", -2]], "extra": 1})");
  UnigramModel loaded = Load(model);
  EXPECT_EQ(loaded.unk_id(), std::nullopt);
  EXPECT_FALSE(loaded.byte_fallback());
  EXPECT_EQ(Ids(loaded, "ab"), (std::vector<int32_t>{1, 2}));
}

TEST(UnigramModel, RandomBytesNeverReadOutOfBounds) {
  // Under the dev preset's sanitizers: arbitrary bytes (invalid UTF-8 most of the time) against vocabularies
  // with and without byte pieces give ids in range, and the same ids twice.
  std::mt19937 rng(5);
  std::vector<std::pair<std::string, double>> pieces = {{"<unk>", 0}, {"\xc3\xa9", -2}, {"a", -1}, {"ab", -1.5}};
  for (int b = 0; b < 256; b += 2) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", b);
    pieces.emplace_back(name, -5);
  }
  for (const bool byte_fallback : {false, true}) {
    UnigramModel model = Load(ModelJson(pieces, 0, byte_fallback));
    for (int i = 0; i < 2000; ++i) {
      std::string text(rng() % 12, '\0');
      for (char& c : text) c = static_cast<char>(rng() % 4 == 0 ? 'a' + rng() % 2 : rng() % 256);
      const std::vector<int32_t> ids = Ids(model, text);
      EXPECT_EQ(ids, Ids(model, text));
      EXPECT_EQ(ids.empty(), text.empty());
      for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < model.vocab_size()) << id;
    }
  }
}

// --- Equal ids to the JavaScript port --------------------------------------------------------------------------

std::string Utf8(char32_t c) {
  std::string out;
  if (c < 0x80) {
    out += static_cast<char>(c);
  } else if (c < 0x800) {
    out += static_cast<char>(0xC0 | (c >> 6));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else if (c < 0x10000) {
    out += static_cast<char>(0xE0 | (c >> 12));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  } else {
    out += static_cast<char>(0xF0 | (c >> 18));
    out += static_cast<char>(0x80 | ((c >> 12) & 0x3F));
    out += static_cast<char>(0x80 | ((c >> 6) & 0x3F));
    out += static_cast<char>(0x80 | (c & 0x3F));
  }
  return out;
}

/// Code point ranges of the scripts the generated texts mix.
constexpr std::pair<char32_t, char32_t> kScripts[] = {
    {U'a', U'z'},       {U'A', U'Z'},     {U'0', U'9'},     {0x00E0, 0x00FF},  // Latin, accents
    {0x0391, 0x03C9},   {0x0410, 0x044F},                                      // Greek, Cyrillic
    {0x05D0, 0x05EA},   {0x0627, 0x064A}, {0x0905, 0x0939},                    // Hebrew, Arabic, Devanagari
    {0x4E00, 0x4E60},   {0x3041, 0x3096}, {0xAC00, 0xAC60},                    // CJK, Hiragana, Hangul
    {0x1F600, 0x1F640},                                                        // emoji
};

std::string RandomWord(std::mt19937& rng) {
  const auto& [first, last] = kScripts[rng() % std::size(kScripts)];
  std::string word;
  const int length = 1 + static_cast<int>(rng() % 7);
  for (int i = 0; i < length; ++i) word += Utf8(first + static_cast<char32_t>(rng() % (last - first + 1)));
  return word;
}

/// Texts for the comparison: fixed ones for the cases that matter and random mixtures of words, separators and
/// characters outside any script above.
std::vector<std::string> Corpus() {
  std::vector<std::string> corpus = {
      "Hello world",
      "▁Hello▁world",
      "héllo wörld",
      "he\u0301llo",
      "Ｆｕｌｌｗｉｄｔｈ",
      "日本語のテキスト",
      "한국어 텍스트",
      "Ελληνικά",
      "русский текст",
      "עברית",
      "العربية",
      "हिन्दी",
      "👩‍👩‍👧‍👦 family",
      "🇫🇷🇯🇵 flags",
      "tabs\tand\t\ttabs",
      "CRLF\r\nline",
      "many     spaces",
      " lead",
      "trail ",
      "\n\n",
      "x = f(y) + 12345678901234567890;",
      "ÿ€✓☃",
      "\x01\x02\x7f control",
      "<s> </s> <pad>",
      "a",
      "",
      "zzzzzzzz",
      "𝔘𝔫𝔦𝔠𝔬𝔡𝔢",
      "Ω≈ç√∫",
      "¡¿",
      "ŉŀĳ",
  };
  std::mt19937 rng(15);
  const std::vector<std::string> separators = {" ", "▁", "  ", "\t", "\n", "\r\n", ",", ".", "\u00a0", ""};
  const std::vector<std::string> rare = {"☃", "✓", "\u200d", "🇩🇪", "𝔘", "\x03", "₿", "ß", "ﬁ"};
  for (int i = 0; i < 250; ++i) {
    std::string text;
    const int words = 1 + static_cast<int>(rng() % 8);
    for (int w = 0; w < words; ++w) {
      text += rng() % 6 == 0 ? rare[rng() % rare.size()] : RandomWord(rng);
      text += separators[rng() % separators.size()];
    }
    corpus.push_back(text);
  }
  return corpus;
}

/// A vocabulary generated from a seed: substrings of random words of the scripts above (with and without a
/// leading "▁"), scored at random, and most single characters of the scripts (the rest are unknown).
std::vector<std::pair<std::string, double>> GeneratedVocabulary(uint32_t seed, size_t size, bool byte_pieces) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<double> score(-16.0, -1.0);
  std::vector<std::pair<std::string, double>> pieces = {{"<unk>", 0}, {"<s>", 0}, {"</s>", 0}};
  std::set<std::string> seen = {"<unk>", "<s>", "</s>"};
  auto add = [&](const std::string& piece) {
    if (!piece.empty() && seen.insert(piece).second) pieces.emplace_back(piece, score(rng));
  };
  if (byte_pieces) {
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof(name), "<0x%02X>", b);
      add(name);
    }
  }
  for (const auto& [first, last] : kScripts) {
    for (char32_t c = first; c <= last; ++c) {
      if (rng() % 10 != 0) add(Utf8(c));
    }
  }
  for (const char* piece : {" ", "▁", ",", ".", "\t", "\n"}) add(piece);
  while (pieces.size() < size) {
    std::string word = RandomWord(rng);
    if (rng() % 2 == 0) word = "▁" + word;
    add(word);
  }
  return pieces;
}

Json TokenizerJson(const Json& model) {
  return {{"version", "1.0"},      {"truncation", nullptr},    {"padding", nullptr}, {"added_tokens", Json::array()},
          {"normalizer", nullptr}, {"pre_tokenizer", nullptr}, {"model", model},     {"post_processor", nullptr},
          {"decoder", nullptr}};
}

/// The models compared with the JavaScript port.
const std::vector<std::pair<std::string, Json>>& ComparedModels() {
  static const std::vector<std::pair<std::string, Json>> models = {
      {"hand-written", ModelJson({{"<unk>", 0}, {"▁", -2},   {"a", -3},  {"b", -4},       {"ab", -5}, {"▁ab", -5.5},
                                  {"c", -4.5},  {"abc", -7}, {"é", -6},  {"日本", -8},    {"日", -7}, {"本", -7.5},
                                  {"語", -9},   {" ", -3},   {"he", -4}, {"llo", -6},     {"l", -3},  {"o", -3.5},
                                  {"h", -4},    {"e", -2.5}, {"👩", -9},  {"\u200d", -9.5}},
                                 0, false)},
      {"hand-written, byte_fallback",
       [] {
         std::vector<std::pair<std::string, double>> pieces = {
             {"<unk>", 0}, {"▁", -2}, {"a", -3}, {"ab", -5}, {"é", -6}};
         for (int b = 0; b < 256; b += (b < 0x80 ? 3 : 1)) {  // every byte from 0x80 up, a third of ASCII
           char name[8];
           std::snprintf(name, sizeof(name), "<0x%02X>", b);
           pieces.emplace_back(name, -10 - b / 64.0);
         }
         return ModelJson(pieces, 0, true);
       }()},
      {"generated 3000", ModelJson(GeneratedVocabulary(1, 3000, false), 0, false)},
      {"generated 5000, byte_fallback", ModelJson(GeneratedVocabulary(2, 5000, true), 0, true)},
      {"generated 4000, unk last",
       [] {
         auto pieces = GeneratedVocabulary(3, 4000, false);
         std::swap(pieces.front(), pieces.back());
         return ModelJson(pieces, static_cast<int>(pieces.size()) - 1, false);
       }()},
  };
  return models;
}

/// The port's answers for every compared model on the corpus: one node process for the whole test binary.
const Json& JavaScriptAnswers() {
  static const Json answers = [] {
    Json request = {{"cases", Json::array()}};
    for (const auto& [name, model] : ComparedModels()) {
      request["cases"].push_back({{"tokenizer", TokenizerJson(model)}, {"texts", Corpus()}});
    }
    testing::ScratchDir dir("unigram_reference");
    testing::WriteFile(dir / "request.json", request.dump());
    const std::string js = FUSEC_TESTS_JS_DIR;
    const int status = testing::RunCommand("node " + js + "/unigram_reference.mjs < " + (dir / "request.json") + " > " +
                                           (dir / "answer.json"));
    if (status != 0) return Json();
    Json answer = Json::parse(testing::ReadFile(dir / "answer.json"), nullptr, false);
    return answer.is_object() && answer.contains("cases") ? answer["cases"] : Json();
  }();
  return answers;
}

TEST(UnigramModel, MatchesTheJavaScriptPortOnEveryComparedModel) {
  const Json& answers = JavaScriptAnswers();
  ASSERT_TRUE(answers.is_array()) << "node tests/js/unigram_reference.mjs failed (run scripts/install-js-deps.sh)";
  ASSERT_EQ(answers.size(), ComparedModels().size());
  const std::vector<std::string> corpus = Corpus();
  for (size_t m = 0; m < ComparedModels().size(); ++m) {
    const auto& [name, model_json] = ComparedModels()[m];
    UnigramModel model = Load(model_json);
    const Json& answer = answers[m];
    size_t differing = 0;
    size_t unknowns = 0;
    size_t byte_pieces = 0;
    for (size_t i = 0; i < corpus.size(); ++i) {
      const std::vector<int32_t> ids = Ids(model, corpus[i]);
      // The port's own ids where it has the feature; with byte_fallback its segmentation under Rust's rule.
      const auto expected = answer[model.byte_fallback() ? "rust_ids" : "ids"][i].get<std::vector<int32_t>>();
      EXPECT_EQ(ids, expected) << name << ", text " << Json(corpus[i]).dump() << ", port's pieces "
                               << answer["pieces"][i].dump();
      differing += ids != expected;
      for (int32_t id : ids) {
        unknowns += id == *model.unk_id();
        byte_pieces += model.IdToToken(id).rfind("<0x", 0) == 0;
      }
    }
    EXPECT_EQ(differing, 0u) << name;
    // The corpus reaches the rules: unknown characters, as the unknown id or as byte pieces.
    EXPECT_GT(model.byte_fallback() ? byte_pieces : unknowns, 10u) << name;
  }
}

// --- In the tokenizer pipeline ---------------------------------------------------------------------------------

// tokenizer.json with a Unigram model loads as a Tokenizer and encodes as the model does (so as the port does).
TEST(UnigramModel, TheTokenizerEncodesWithItAsTheModelDoes) {
  const Json& answers = JavaScriptAnswers();
  ASSERT_TRUE(answers.is_array()) << "node tests/js/unigram_reference.mjs failed (run scripts/install-js-deps.sh)";
  const std::vector<std::string> corpus = Corpus();
  for (size_t m = 0; m < ComparedModels().size(); ++m) {
    const auto& [name, model_json] = ComparedModels()[m];
    std::string error;
    auto tokenizer = Tokenizer::FromJson(TokenizerJson(model_json).dump(), "", &error);
    ASSERT_TRUE(tokenizer) << name << ": " << error;
    const bool byte_fallback = model_json.value("byte_fallback", false);
    for (size_t i = 0; i < corpus.size(); ++i) {
      EXPECT_EQ(tokenizer->Encode(corpus[i], false),
                answers[m][byte_fallback ? "rust_ids" : "ids"][i].get<std::vector<int32_t>>())
          << name << ", text " << Json(corpus[i]).dump();
    }
  }
}

// T5's and XLM-R's shape: the Precompiled normalizer (the real nmt_nfkc charsmap), WhitespaceSplit and
// Metaspace before a Unigram model, the Metaspace decoder after. On plain text, where the port's own NFKC
// stand-in for the charsmap agrees with it, ids equal the port's and decoding gives the text back.
TEST(UnigramModel, AT5ShapedTokenizerEncodesAsThePortDoes) {
  const std::string charsmap = testing::ReadFile(std::string(FUSEC_TESTS_RUNTIME_DIR) + "/testdata/nmt_nfkc.charsmap");
  const std::string base64 = testing::EncodeBase64(charsmap);
  std::vector<std::pair<std::string, double>> pieces = {{"<unk>", 0}, {"▁", -3}};
  std::set<std::string> seen = {"<unk>", "▁"};
  for (const auto& [piece, score] : GeneratedVocabulary(7, 3000, false)) {
    if (seen.insert(piece).second) pieces.emplace_back(piece, score);
    if (seen.insert("▁" + piece).second) pieces.emplace_back("▁" + piece, score - 0.5);
  }
  Json t5 = TokenizerJson(ModelJson(pieces, 0, false));
  t5["normalizer"] = {{"type", "Precompiled"}, {"precompiled_charsmap", base64}};
  t5["pre_tokenizer"] = {{"type", "Sequence"},
                         {"pretokenizers",
                          {{{"type", "WhitespaceSplit"}},
                           {{"type", "Metaspace"}, {"replacement", "▁"}, {"add_prefix_space", true},
                            {"prepend_scheme", "always"}, {"split", true}}}}};
  // `add_prefix_space` as older files (and the port) spell `prepend_scheme: always`.
  t5["decoder"] = {{"type", "Metaspace"}, {"replacement", "▁"}, {"add_prefix_space", true}, {"prepend_scheme", "always"},
                   {"split", true}};
  std::vector<std::string> texts;
  for (const std::string& text : Corpus()) {
    bool plain = !text.empty() && text.find("  ") == std::string::npos && text.front() != ' ' && text.back() != ' ';
    for (unsigned char c : text) plain = plain && ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == ' ');
    if (plain) texts.push_back(text);
  }
  for (const char* sentence : {"Hello world from a T5 shaped tokenizer", "translate English to German That is good",
                               "The quick brown fox jumps over the lazy dog", "summarize studies have shown that owning a dog",
                               "Hello\tworld", "a\nnew line", "x"}) {
    texts.push_back(sentence);
  }
  Json request = {{"cases", {{{"tokenizer", t5}, {"texts", texts}}}}};
  testing::ScratchDir dir("unigram_t5_reference");
  testing::WriteFile(dir / "request.json", request.dump());
  ASSERT_EQ(testing::RunCommand("node " + std::string(FUSEC_TESTS_JS_DIR) + "/unigram_reference.mjs < " +
                                (dir / "request.json") + " > " + (dir / "answer.json")),
            0);
  Json answer = Json::parse(testing::ReadFile(dir / "answer.json"));
  std::string error;
  auto tokenizer = Tokenizer::FromJson(t5.dump(), "", &error);
  ASSERT_TRUE(tokenizer) << error;
  int decoded = 0;
  for (size_t i = 0; i < texts.size(); ++i) {
    std::vector<int32_t> ids = tokenizer->Encode(texts[i], false);
    EXPECT_EQ(ids, answer["cases"][0]["ids"][i].get<std::vector<int32_t>>()) << Json(texts[i]).dump();
    bool lossless = texts[i].find_first_of("\t\n") == std::string::npos &&
                    std::find(ids.begin(), ids.end(), 0) == ids.end();  // no <unk>, no white space but spaces
    if (lossless) {
      EXPECT_EQ(tokenizer->Decode(ids, false), texts[i]);
      ++decoded;
    }
  }
  EXPECT_GT(decoded, 3);
}

// --- Speed on a vocabulary of XLM-R's size ---------------------------------------------------------------------

TEST(UnigramModel, TokenizesFastWithAQuarterMillionPieces) {
  auto pieces = GeneratedVocabulary(250, 250000, true);
  const auto load_start = std::chrono::steady_clock::now();
  Json model_json = ModelJson(pieces, 0, true);
  UnigramModel model = Load(model_json);
  const double load_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - load_start).count();
  ASSERT_EQ(model.vocab_size(), 250000);

  // About a megabyte of words, tokenized word by word as a Metaspace pre-tokenizer would hand them over.
  std::mt19937 rng(99);
  std::vector<std::string> words;
  size_t bytes = 0;
  while (bytes < (1u << 20)) {
    words.push_back("▁" + RandomWord(rng) + (rng() % 3 == 0 ? RandomWord(rng) : ""));
    bytes += words.back().size();
  }
  std::vector<int32_t> ids;
  ids.reserve(bytes);
  const auto start = std::chrono::steady_clock::now();
  for (const std::string& word : words) model.Tokenize(word, &ids);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf(
      "[ unigram ] 250000 pieces, %zu trie nodes: load %.2f s; %zu bytes, %zu words -> %zu tokens in %.3f s: %.0f "
      "tokens/s, %.1f MB/s\n",
      model.trie_nodes(), load_seconds, bytes, words.size(), ids.size(), seconds, ids.size() / seconds,
      bytes / seconds / 1e6);
  ASSERT_GE(ids.size(), words.size());
  for (int32_t id : ids) ASSERT_TRUE(id >= 0 && id < model.vocab_size());
}

}  // namespace
}  // namespace fusec::rt
