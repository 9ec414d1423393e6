// A Jinja interpreter for chat templates: the model's own `chat_template` from tokenizer_config.json,
// rendered as Hugging Face's `apply_chat_template` renders it (jinja2 with trim_blocks and lstrip_blocks).
//
// Written for what real chat templates use, not for all of Jinja: statements for/if/elif/else/set/macro/
// call/filter/break/continue/raw, `namespace()`, loop variables, the filters and string methods chat
// templates call, tests, slicing, `raise_exception` and `strftime_now`, with Python's semantics (jinja2, not
// @huggingface/jinja, where the two differ). A statement, filter or test the interpreter lacks is refused by
// name when the template is parsed; a Python method it lacks fails by name when called; nothing is rendered
// differently. The context is a JSON object; no LibTorch here. The files of this folder, in pipeline order:
// lexer (whitespace rules applied), parser -> ast, evaluator over value, with builtins (filters, tests,
// methods, globals) and pystr (Python's str operations on UTF-8).
#pragma once

#include <ctime>
#include <memory>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <string_view>

namespace fusec::rt::jinja {

struct TemplateError {
  /// The template called `raise_exception(message)` (Gemma's "System role not supported"): the
  /// conversation is one the template refuses, not a defect of the template.
  bool raised = false;
  std::string message;  // e.g. "line 3: filter `wordwrap` is not supported", or the raised message as is
};

/// Bounds on one render, so a hostile template ends with an error instead of exhausting time or memory.
struct RenderLimits {
  size_t max_output_bytes = size_t{64} << 20;  // also bounds any one string built
  int64_t max_iterations = 1'000'000;          // loop iterations and range() items (100 turns take ~1000)
  int max_call_depth = 100;                    // macro calls inside macro calls
};

struct RenderOptions {
  /// The clock `strftime_now` reads (local time); nullopt: now. Tests fix it.
  std::optional<std::time_t> now;
  RenderLimits limits;
};

class Template {
 public:
  /// nullopt with `error` when `source` does not parse or uses a statement, filter, test, method or global
  /// the interpreter does not implement (named in the message, with its line).
  static std::optional<Template> Parse(std::string_view source, TemplateError* error);

  /// The rendered text for `context` (an object: messages, add_generation_prompt, bos_token, eos_token, ...).
  /// nullopt with `error` when the template raises or fails at run time (an undefined value called, a type
  /// error), with the line.
  std::optional<std::string> Render(const nlohmann::json& context, TemplateError* error) const;
  /// The same with the context's key order kept (nlohmann::json sorts keys; Python's dicts, and so `tojson`
  /// of a tool's schema, keep the order they were written in), and options.
  std::optional<std::string> Render(const nlohmann::ordered_json& context, const RenderOptions& options,
                                    TemplateError* error) const;

  Template(const Template&);
  Template& operator=(const Template&);
  Template(Template&&) noexcept;
  Template& operator=(Template&&) noexcept;
  ~Template();

 private:
  struct Program;
  explicit Template(std::shared_ptr<const Program> program);
  std::shared_ptr<const Program> program_;  // shared: a Template is cheap to copy and immutable
};

}  // namespace fusec::rt::jinja
