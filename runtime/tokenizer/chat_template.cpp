#include "runtime/tokenizer/chat_template.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/support/text.h"
#include "runtime/tokenizer/jinja/jinja.h"
#include "runtime/tokenizer/tokenizer.h"

namespace fusec::rt {
namespace {

constexpr const char* kQwen2DefaultSystem = "You are a helpful assistant.";

}  // namespace

std::optional<ChatTemplateKind> ChatTemplateByName(std::string_view name) {
  if (name == "plain") return ChatTemplateKind::Plain;
  if (name == "llama3") return ChatTemplateKind::Llama3;
  if (name == "chatml") return ChatTemplateKind::ChatMl;
  if (name == "gemma") return ChatTemplateKind::Gemma;
  return std::nullopt;
}

std::string_view ChatTemplateName(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::Plain:
      return "plain";
    case ChatTemplateKind::Llama3:
      return "llama3";
    case ChatTemplateKind::ChatMl:
      return "chatml";
    case ChatTemplateKind::Gemma:
      return "gemma";
    case ChatTemplateKind::Jinja:
      return "jinja";
  }
  return "?";
}

std::string_view ChatTemplateJinja(ChatTemplateKind kind) {
  switch (kind) {
    case ChatTemplateKind::Plain:
      return "";
    case ChatTemplateKind::Llama3:
      return "{% set loop_messages = messages %}{% for message in loop_messages %}{% set content = "
             "'<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n'+ message['content'] | trim + "
             "'<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}{{ content }}"
             "{% endfor %}{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}"
             "{% endif %}";
    case ChatTemplateKind::ChatMl:
      return "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ "
             "'<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + "
             "message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if "
             "add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    case ChatTemplateKind::Gemma:
      return "{{ bos_token }}{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not "
             "supported') }}{% endif %}{% for message in messages %}{% if (message['role'] == 'user') != "
             "(loop.index0 % 2 == 0) %}{{ raise_exception('Conversation roles must alternate "
             "user/assistant/user/assistant/...') }}{% endif %}{% if (message['role'] == 'assistant') %}{% set role "
             "= 'model' %}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\n' + "
             "message['content'] | trim + '<end_of_turn>\n' }}{% endfor %}{% if add_generation_prompt "
             "%}{{'<start_of_turn>model\n'}}{% endif %}";
    case ChatTemplateKind::Jinja:
      return "";
  }
  return "";
}

namespace {

/// The implemented template whose Jinja `jinja` is (whitespace aside); Plain for no Jinja; nullopt for another.
std::optional<ChatTemplateKind> TemplateOfJinja(const std::string& jinja) {
  if (jinja.empty()) return ChatTemplateKind::Plain;
  auto squeeze = [](std::string_view text) {
    std::string out;
    for (char c : text) {
      if (c != ' ' && c != '\n' && c != '\t') out.push_back(c);
    }
    return out;
  };
  std::string squeezed = squeeze(jinja);
  for (ChatTemplateKind kind : {ChatTemplateKind::Llama3, ChatTemplateKind::ChatMl, ChatTemplateKind::Gemma}) {
    if (squeezed == squeeze(ChatTemplateJinja(kind))) return kind;
  }
  return std::nullopt;
}

}  // namespace

std::optional<ChatTemplateKind> DetectChatTemplate(const Tokenizer& tokenizer, std::string* error,
                                                   std::string* warning) {
  std::string ignored;
  std::string& said = warning != nullptr ? *warning : ignored;
  said.clear();
  const std::string& jinja = tokenizer.chat_template();
  // What fusec recorded when it wrote the model wins: it is the template the model was trained with.
  if (const std::string& recorded = tokenizer.recorded_chat_template(); !recorded.empty()) {
    std::optional<ChatTemplateKind> kind =
        recorded == ChatTemplateName(ChatTemplateKind::Jinja) ? ChatTemplateKind::Jinja : ChatTemplateByName(recorded);
    if (!kind) {
      *error = "tokenizer_config.json's `" + std::string(kRecordedChatTemplateKey) + "` is `" + recorded +
               "`, not one of plain, llama3, chatml, gemma, jinja";
      return std::nullopt;
    }
    if (*kind == ChatTemplateKind::Jinja && jinja.empty()) {
      *error = "tokenizer_config.json records the model's own `jinja` template but has no `chat_template`";
      return std::nullopt;
    }
    std::optional<ChatTemplateKind> from_jinja = TemplateOfJinja(jinja);
    if (*kind != ChatTemplateKind::Jinja && from_jinja != kind) {
      said = "tokenizer_config.json records the `" + recorded + "` template but its `chat_template` Jinja is " +
             (from_jinja ? "`" + std::string(ChatTemplateName(*from_jinja)) + "`'s" : "another") + "; using `" +
             recorded + "`";
    }
    return kind;
  }
  if (!tokenizer.has_config()) {
    said = "there is no tokenizer_config.json (it holds the chat template): using the `plain` template";
    return ChatTemplateKind::Plain;
  }
  if (!tokenizer.chat_template_problem().empty()) {
    said = "tokenizer_config.json's " + tokenizer.chat_template_problem() + ": using the `plain` template";
    return ChatTemplateKind::Plain;
  }
  if (jinja.empty()) {
    said = "tokenizer_config.json has no `chat_template`: using the `plain` template";
    return ChatTemplateKind::Plain;
  }
  return ChatTemplateKind::Jinja;
}

std::optional<std::string> RecordChatTemplate(const std::string& config_json, ChatTemplateKind kind,
                                              std::string* error) {
  nlohmann::ordered_json config = config_json.empty() ? nlohmann::ordered_json::object()
                                                      : nlohmann::ordered_json::parse(config_json, nullptr, false);
  if (config.is_discarded() || !config.is_object()) {
    *error = "tokenizer_config.json is not a JSON object";
    return std::nullopt;
  }
  if (kind == ChatTemplateKind::Plain) {
    config.erase("chat_template");
  } else if (kind != ChatTemplateKind::Jinja) {
    config["chat_template"] = std::string(ChatTemplateJinja(kind));
  }
  config[kRecordedChatTemplateKey] = std::string(ChatTemplateName(kind));
  return config.dump(2) + "\n";
}

ChatTemplate MakeChatTemplate(ChatTemplateKind kind, const Tokenizer& tokenizer) {
  ChatTemplate chat;
  chat.kind = kind;
  chat.bos_token = tokenizer.bos_token();
  chat.eos_token = tokenizer.eos_token();
  return chat;
}

namespace {

/// What follows a reply in the template's rendering of it (Qwen's `<|im_end|>`, Mistral's `</s>`), found by
/// rendering a probe conversation; the EOS token when the template adds nothing after the reply.
std::string FindEndOfTurn(const ChatTemplate& chat) {
  constexpr std::string_view kProbe = "fusec-probe-reply";
  std::string ignored;
  auto rendered = chat.Render({ChatMessage{"user", "Hi"}}, kProbe, &ignored);
  if (!rendered) return chat.eos_token;
  size_t at = rendered->response.rfind(kProbe);
  if (at == std::string::npos) return chat.eos_token;
  std::string after = TrimPythonSpace(rendered->response.substr(at + kProbe.size()));
  return after.empty() ? chat.eos_token : after;
}

}  // namespace

std::optional<ChatTemplate> MakeJinjaChatTemplate(const Tokenizer& tokenizer, const std::string& source,
                                                  std::string* error) {
  if (tokenizer.chat_template().empty()) {
    *error = source + ": tokenizer_config.json has no `chat_template`";
    return std::nullopt;
  }
  jinja::TemplateError parse_error;
  auto parsed = jinja::Template::Parse(tokenizer.chat_template(), &parse_error);
  if (!parsed) {
    *error = source + ": tokenizer_config.json's `chat_template`: " + parse_error.message;
    return std::nullopt;
  }
  ChatTemplate chat = MakeChatTemplate(ChatTemplateKind::Jinja, tokenizer);
  chat.jinja = std::make_shared<const jinja::Template>(std::move(*parsed));
  chat.source = source;
  chat.end_of_turn = FindEndOfTurn(chat);
  return chat;
}

std::optional<ChatTemplate> ResolveChatTemplate(std::string_view name, const Tokenizer& tokenizer,
                                                const std::string& source, std::string* error,
                                                std::string* warning) {
  if (warning != nullptr) warning->clear();
  std::optional<ChatTemplateKind> kind;
  if (name == "auto") {
    kind = DetectChatTemplate(tokenizer, error, warning);
    if (!kind) {
      *error = source + ": " + *error;
      return std::nullopt;
    }
  } else {
    kind = ChatTemplateByName(name);
    if (!kind) {
      *error = "`" + std::string(name) + "` is not a chat template: name one of auto, plain, llama3, chatml, gemma";
      return std::nullopt;
    }
  }
  if (*kind == ChatTemplateKind::Jinja) return MakeJinjaChatTemplate(tokenizer, source, error);
  return MakeChatTemplate(*kind, tokenizer);
}

std::string ChatTemplate::EndOfTurn() const {
  switch (kind) {
    case ChatTemplateKind::Jinja:
      return end_of_turn.empty() ? eos_token : end_of_turn;
    case ChatTemplateKind::Plain:
      return eos_token;
    case ChatTemplateKind::Llama3:
      return "<|eot_id|>";
    case ChatTemplateKind::ChatMl:
      return "<|im_end|>";
    case ChatTemplateKind::Gemma:
      return "<end_of_turn>";
  }
  return eos_token;
}

std::optional<RenderedChat> ChatTemplate::Render(const std::vector<ChatMessage>& messages,
                                                 std::optional<std::string_view> response,
                                                 std::string* error) const {
  if (messages.empty()) {
    *error = "the conversation has no messages";
    return std::nullopt;
  }
  if (messages.back().role == "assistant") {
    *error = "the prompt's last message is the assistant's; the response to learn or score comes separately";
    return std::nullopt;
  }
  RenderedChat out;
  switch (kind) {
    case ChatTemplateKind::Jinja:
      return RenderJinja(messages, response, error);
    case ChatTemplateKind::Plain:
      if (messages.size() != 1 || messages[0].role != "user") {
        *error = "the plain template takes one user message; name a chat template for conversations";
        return std::nullopt;
      }
      return RenderText(messages[0].content, response, error);
    case ChatTemplateKind::Llama3:
      out.prompt = bos_token;
      for (const ChatMessage& message : messages) {
        out.prompt += "<|start_header_id|>" + message.role + "<|end_header_id|>\n\n" +
                      TrimPythonSpace(message.content) + "<|eot_id|>";
      }
      out.prompt += "<|start_header_id|>assistant<|end_header_id|>\n\n";
      if (response) out.response = TrimPythonSpace(*response) + "<|eot_id|>";
      return out;
    case ChatTemplateKind::ChatMl:
      if (messages[0].role != "system") {
        out.prompt = std::string("<|im_start|>system\n") + kQwen2DefaultSystem + "<|im_end|>\n";
      }
      for (const ChatMessage& message : messages) {
        out.prompt += "<|im_start|>" + message.role + "\n" + message.content + "<|im_end|>\n";
      }
      out.prompt += "<|im_start|>assistant\n";
      if (response) out.response = std::string(*response) + "<|im_end|>\n";
      return out;
    case ChatTemplateKind::Gemma:
      out.prompt = bos_token;
      for (size_t i = 0; i < messages.size(); ++i) {
        const ChatMessage& message = messages[i];
        if (message.role == "system") {
          *error = "gemma's template has no system role";
          return std::nullopt;
        }
        if ((message.role == "user") != (i % 2 == 0)) {
          *error = "gemma's template needs roles alternating user/assistant, starting with user (message " +
                   std::to_string(i + 1) + " is `" + message.role + "`)";
          return std::nullopt;
        }
        std::string role = message.role == "assistant" ? "model" : message.role;
        out.prompt += "<start_of_turn>" + role + "\n" + TrimPythonSpace(message.content) + "<end_of_turn>\n";
      }
      out.prompt += "<start_of_turn>model\n";
      if (response) out.response = TrimPythonSpace(*response) + "<end_of_turn>\n";
      return out;
  }
  return std::nullopt;
}

std::optional<RenderedChat> ChatTemplate::RenderJinja(const std::vector<ChatMessage>& messages,
                                                      std::optional<std::string_view> response,
                                                      std::string* error) const {
  if (!jinja) {
    *error = "the model's own chat template was not loaded";
    return std::nullopt;
  }
  nlohmann::json conversation = nlohmann::json::array();
  for (const ChatMessage& message : messages) {
    conversation.push_back({{"role", message.role}, {"content", message.content}});
  }
  // The conversation with the generation prompt, or followed by the assistant's `reply` without it.
  auto render = [&](std::optional<std::string_view> reply) -> std::optional<std::string> {
    nlohmann::json context = {{"messages", conversation},
                              {"add_generation_prompt", !reply},
                              {"bos_token", bos_token},
                              {"eos_token", eos_token}};
    if (reply) context["messages"].push_back({{"role", "assistant"}, {"content", std::string(*reply)}});
    jinja::TemplateError failure;
    auto text = jinja->Render(context, &failure);
    if (!text) {
      *error = "the chat template of " + source + (failure.raised ? " refuses " : " failed on ") +
               (reply ? "this conversation with its reply: " : "this conversation: ") + failure.message;
    }
    return text;
  };
  RenderedChat out;
  auto prompt = render(std::nullopt);
  if (!prompt) return std::nullopt;
  out.prompt = std::move(*prompt);
  if (!response) return out;
  auto whole = render(*response);
  if (!whole) return std::nullopt;
  // Usually the conversation with its reply renders the prompt and then the reply: the response is what
  // follows the prompt (end-of-turn marker, and whatever the template puts before the reply, such as Qwen3's
  // empty think block).
  if (whole->compare(0, out.prompt.size(), out.prompt) == 0) {
    out.response = whole->substr(out.prompt.size());
    return out;
  }
  // Some templates render the earlier turns differently once a reply follows (Mistral's put the system
  // message into the last user turn only while it is the last message). The prompt stays what generation
  // sees; the response is what the template writes from the reply on, found where two probe replies part.
  auto probe_x = render("x");
  auto probe_y = render("y");
  if (!probe_x || !probe_y) return std::nullopt;
  size_t reply_at = 0;
  while (reply_at < probe_x->size() && reply_at < probe_y->size() && (*probe_x)[reply_at] == (*probe_y)[reply_at]) {
    ++reply_at;
  }
  if (reply_at > whole->size() || whole->compare(0, reply_at, *probe_x, 0, reply_at) != 0) {
    *error = "the chat template of " + source +
             " renders the turns before the reply in a way that depends on the reply, so the prompt and the reply "
             "cannot be told apart; name one of llama3, chatml, gemma or plain";
    return std::nullopt;
  }
  out.response = whole->substr(reply_at);
  return out;
}

std::optional<RenderedChat> ChatTemplate::RenderText(std::string_view prompt, std::optional<std::string_view> response,
                                                     std::string* error) const {
  if (kind != ChatTemplateKind::Plain) return Render({ChatMessage{"user", std::string(prompt)}}, response, error);
  RenderedChat out;
  out.prompt = bos_token + std::string(prompt);
  if (response) out.response = std::string(*response) + eos_token;
  return out;
}

}  // namespace fusec::rt
