#include "runtime/tokenizer/chat_template.h"

#include <algorithm>
#include <nlohmann/json.hpp>

#include "runtime/support/text.h"
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
  std::optional<ChatTemplateKind> from_jinja = TemplateOfJinja(jinja);
  // What fusec recorded when it wrote the model wins: it is the template the model was trained with.
  if (const std::string& recorded = tokenizer.recorded_chat_template(); !recorded.empty()) {
    std::optional<ChatTemplateKind> kind = ChatTemplateByName(recorded);
    if (!kind) {
      *error = "tokenizer_config.json's `" + std::string(kRecordedChatTemplateKey) + "` is `" + recorded +
               "`, not one of plain, llama3, chatml, gemma";
      return std::nullopt;
    }
    if (from_jinja != kind) {
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
  if (from_jinja) return from_jinja;
  // A template with familiar markers but other text (Llama-3.1's adds a dated system turn, Qwen2.5's another
  // default system prompt) would render differently: refuse rather than train on the wrong text.
  std::string near;
  if (jinja.find("<|start_header_id|>") != std::string::npos) near = "llama3";
  if (jinja.find("<|im_start|>") != std::string::npos) near = "chatml";
  if (jinja.find("<start_of_turn>") != std::string::npos) near = "gemma";
  *error = "the tokenizer's chat template is not one fusec implements exactly";
  if (!near.empty()) {
    *error += " (it looks like " + near + " but differs from it; name `" + near +
              "` explicitly to render with fusec's " + near + " template)";
  } else {
    *error += "; name one of llama3, chatml, gemma or plain";
  }
  return std::nullopt;
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
  } else {
    config["chat_template"] = std::string(ChatTemplateJinja(kind));
  }
  config[kRecordedChatTemplateKey] = std::string(ChatTemplateName(kind));
  return config.dump(2) + "\n";
}

ChatTemplate MakeChatTemplate(ChatTemplateKind kind, const Tokenizer& tokenizer) {
  return ChatTemplate{kind, tokenizer.bos_token(), tokenizer.eos_token()};
}

std::string ChatTemplate::EndOfTurn() const {
  switch (kind) {
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

std::optional<RenderedChat> ChatTemplate::RenderText(std::string_view prompt, std::optional<std::string_view> response,
                                                     std::string* error) const {
  if (kind != ChatTemplateKind::Plain) return Render({ChatMessage{"user", std::string(prompt)}}, response, error);
  RenderedChat out;
  out.prompt = bos_token + std::string(prompt);
  if (response) out.response = std::string(*response) + eos_token;
  return out;
}

}  // namespace fusec::rt
