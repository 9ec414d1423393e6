// Chat templates: how a conversation becomes the text a chat model was trained on.
//
// Models ship their template as Jinja in tokenizer_config.json, and by default (`auto`) fusec renders that
// very template with its own Jinja interpreter (runtime/tokenizer/jinja), so every model family gets the text
// it was trained on. Three templates are also written out in C++ (llama3, chatml as Qwen2 writes it, gemma),
// as named choices for models that ship none. Rendering keeps the prompt and the response apart: the prompt
// is the conversation rendered with the generation prompt, the response is what rendering the conversation
// with the assistant's reply adds after it (the reply and its end-of-turn marker), so loss masks cover
// response tokens only, for every template, and prompt + response is exactly what the template renders for
// the whole conversation.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fusec::rt {

class Tokenizer;
namespace jinja {
class Template;
}

enum class ChatTemplateKind : uint8_t {
  Plain,   // no template: the prompt text as is, the response followed by EOS
  Llama3,  // Meta-Llama-3-Instruct
  ChatMl,  // Qwen2-Instruct (<|im_start|>/<|im_end|>, default system prompt)
  Gemma,   // gemma-2-it (<start_of_turn>/<end_of_turn>, no system role)
  Jinja,   // the model's own: tokenizer_config.json's `chat_template`, rendered by the Jinja interpreter
};

/// The Jinja source each hand-written template reproduces exactly (from the models' tokenizer_config.json);
/// empty for Plain and Jinja.
std::string_view ChatTemplateJinja(ChatTemplateKind kind);

/// The names the language and the command line use: plain, llama3, chatml, gemma (and auto, resolved below).
/// `jinja` is not one of them: it is what `auto` finds, and the name recorded for it.
std::optional<ChatTemplateKind> ChatTemplateByName(std::string_view name);
std::string_view ChatTemplateName(ChatTemplateKind kind);
/// The key of tokenizer_config.json under which fusec records the template a model was written (and trained)
/// with, next to Hugging Face's `chat_template` Jinja: `plain` has no Jinja, and the name is what `auto` reads
/// back first.
inline constexpr const char* kRecordedChatTemplateKey = "fusec_chat_template";

/// `auto`: the template fusec recorded in tokenizer_config.json (kRecordedChatTemplateKey), else the
/// tokenizer's own Jinja (ChatTemplateKind::Jinja); Plain when it has none. nullopt with `error` set when the
/// recorded name is unknown. `warning`, if given, receives what a user should hear about the choice (no
/// tokenizer_config.json, an unusable `chat_template`, a recorded name the Jinja contradicts); empty if nothing.
std::optional<ChatTemplateKind> DetectChatTemplate(const Tokenizer& tokenizer, std::string* error,
                                                   std::string* warning = nullptr);

/// `config_json` (a tokenizer_config.json's text; empty for none) with `kind` recorded: Hugging Face's
/// `chat_template` set to its Jinja (removed for Plain, which has none; kept as it is for Jinja) and
/// kRecordedChatTemplateKey to its name, so every later reader (`fusec score`, `hf_model()`, transformers) renders as the model was trained.
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
  /// Jinja only: the parsed template, where it came from (the tokenizer's directory, for errors) and the
  /// end-of-turn marker found by rendering a probe reply (what follows the reply).
  std::shared_ptr<const jinja::Template> jinja;
  std::string source;
  std::string end_of_turn;

  /// The prompt for `messages` (which must not end with an assistant turn), with the generation header, and
  /// the assistant's `response`, if given, rendered after it. nullopt with `error` for conversations the
  /// template refuses (gemma: a system turn or roles that do not alternate; plain: more than one message; a
  /// Jinja template that raises, named with its source).
  std::optional<RenderedChat> Render(const std::vector<ChatMessage>& messages, std::optional<std::string_view> response,
                                     std::string* error) const;
  /// A plain-text prompt: as a single user turn for chat templates, as is for Plain.
  std::optional<RenderedChat> RenderText(std::string_view prompt, std::optional<std::string_view> response,
                                         std::string* error) const;
  /// The token text that ends an assistant turn (what generation stops at).
  std::string EndOfTurn() const;

 private:
  std::optional<RenderedChat> RenderJinja(const std::vector<ChatMessage>& messages,
                                          std::optional<std::string_view> response, std::string* error) const;
};

/// The hand-written template `kind` (not Jinja) with the tokenizer's BOS and EOS.
ChatTemplate MakeChatTemplate(ChatTemplateKind kind, const Tokenizer& tokenizer);

/// The tokenizer's own template, parsed: nullopt with `error` (naming `source`, the tokenizer's directory) when
/// it has none or uses what the Jinja interpreter lacks.
std::optional<ChatTemplate> MakeJinjaChatTemplate(const Tokenizer& tokenizer, const std::string& source,
                                                  std::string* error);

/// The template a user names (`auto`, `plain`, `llama3`, `chatml`, `gemma`) for the tokenizer loaded from
/// `source`: what `fusec run` and every command resolve. nullopt with `error` for an unknown name, an unknown
/// recorded name or a Jinja template the interpreter refuses; `warning` as DetectChatTemplate's.
std::optional<ChatTemplate> ResolveChatTemplate(std::string_view name, const Tokenizer& tokenizer,
                                                const std::string& source, std::string* error,
                                                std::string* warning = nullptr);

}  // namespace fusec::rt
