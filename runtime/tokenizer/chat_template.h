// Chat templates: how a conversation becomes the text a chat model was trained on.
//
// Models ship their template as Jinja in tokenizer_config.json; fusec implements the few that matter here in
// C++ (llama3, chatml as Qwen2 writes it, gemma) and tests each against the Jinja original rendered by an
// independent engine. Rendering keeps the prompt and the response apart: the prompt is everything up to and
// including the generation header (`<|start_header_id|>assistant<|end_header_id|>\n\n`), the response is the
// assistant's content and its end-of-turn marker, so loss masks cover response tokens only and
// prompt + response is exactly what the Jinja template renders for the whole conversation.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusec::rt {

class Tokenizer;

enum class ChatTemplateKind : uint8_t {
  Plain,   // no template: the prompt text as is, the response followed by EOS
  Llama3,  // Meta-Llama-3-Instruct
  ChatMl,  // Qwen2-Instruct (<|im_start|>/<|im_end|>, default system prompt)
  Gemma,   // gemma-2-it (<start_of_turn>/<end_of_turn>, no system role)
};

/// The Jinja source each template reproduces exactly (from the models' tokenizer_config.json).
std::string_view ChatTemplateJinja(ChatTemplateKind kind);

/// The names the language and the command line use: plain, llama3, chatml, gemma (and auto, resolved below).
std::optional<ChatTemplateKind> ChatTemplateByName(std::string_view name);
std::string_view ChatTemplateName(ChatTemplateKind kind);
/// The key of tokenizer_config.json under which fusec records the template a model was written (and trained)
/// with, next to Hugging Face's `chat_template` Jinja: `plain` has no Jinja, and the name is what `auto` reads
/// back first.
inline constexpr const char* kRecordedChatTemplateKey = "fusec_chat_template";

/// `auto`: the template fusec recorded in tokenizer_config.json (kRecordedChatTemplateKey), else the one
/// whose Jinja the tokenizer carries; Plain when it has none. nullopt with `error` set when it has a template
/// fusec does not implement. `warning`, if given, receives what a user should hear about the choice (no
/// tokenizer_config.json, an unusable `chat_template`, a recorded name the Jinja contradicts); empty if nothing.
std::optional<ChatTemplateKind> DetectChatTemplate(const Tokenizer& tokenizer, std::string* error,
                                                   std::string* warning = nullptr);

/// `config_json` (a tokenizer_config.json's text; empty for none) with `kind` recorded: Hugging Face's
/// `chat_template` set to its Jinja (removed for Plain, which has none) and kRecordedChatTemplateKey to its
/// name, so every later reader (`fusec score`, `hf_model()`, transformers) renders as the model was trained.
/// nullopt with `error` when the text is not a JSON object.
std::optional<std::string> RecordChatTemplate(const std::string& config_json, ChatTemplateKind kind,
                                              std::string* error);

struct ChatMessage {
  std::string role;  // system, user, assistant
  std::string content;
};

struct RenderedChat {
  std::string prompt;    // ends with the generation header
  std::string response;  // the assistant's content and the end-of-turn marker (empty when rendering a prompt)
};

struct ChatTemplate {
  ChatTemplateKind kind = ChatTemplateKind::Plain;
  std::string bos_token;
  std::string eos_token;

  /// The prompt for `messages` (which must not end with an assistant turn), with the generation header, and
  /// the assistant's `response`, if given, rendered after it. nullopt with `error` for conversations the
  /// template refuses (gemma: a system turn or roles that do not alternate; plain: more than one message).
  std::optional<RenderedChat> Render(const std::vector<ChatMessage>& messages, std::optional<std::string_view> response,
                                     std::string* error) const;
  /// A plain-text prompt: as a single user turn for chat templates, as is for Plain.
  std::optional<RenderedChat> RenderText(std::string_view prompt, std::optional<std::string_view> response,
                                         std::string* error) const;
  /// The token text that ends an assistant turn (what generation stops at).
  std::string EndOfTurn() const;
};

/// The template for `kind` with the tokenizer's BOS and EOS.
ChatTemplate MakeChatTemplate(ChatTemplateKind kind, const Tokenizer& tokenizer);

}  // namespace fusec::rt
