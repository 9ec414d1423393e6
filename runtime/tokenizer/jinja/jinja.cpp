#include "runtime/tokenizer/jinja/jinja.h"

#include "runtime/tokenizer/jinja/evaluator.h"
#include "runtime/tokenizer/jinja/lexer.h"
#include "runtime/tokenizer/jinja/parser.h"

namespace fusec::rt::jinja {

struct Template::Program {
  Body body;
};

namespace {

constexpr int kMaxContextDepth = 256;

/// The context's JSON as values; either nlohmann flavour (sorted or insertion-ordered objects).
template <typename Json>
Value FromJson(const Json& json, int depth) {
  if (depth > kMaxContextDepth)
    throw Failure{0, "the context nests deeper than " + std::to_string(kMaxContextDepth), false};
  using Type = typename Json::value_t;
  switch (json.type()) {
    case Type::null:
      return Value::None();
    case Type::boolean:
      return Value::Bool(json.template get<bool>());
    case Type::number_integer:
      return Value::Int(json.template get<int64_t>());
    case Type::number_unsigned: {
      uint64_t u = json.template get<uint64_t>();
      return u <= static_cast<uint64_t>(INT64_MAX) ? Value::Int(static_cast<int64_t>(u))
                                                   : Value::Float(static_cast<double>(u));
    }
    case Type::number_float:
      return Value::Float(json.template get<double>());
    case Type::string:
      return Value::String(json.template get<std::string>());
    case Type::array: {
      std::vector<Value> items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJson(item, depth + 1));
      return Value::List(std::move(items));
    }
    case Type::object: {
      std::vector<std::pair<std::string, Value>> entries;
      entries.reserve(json.size());
      for (auto it = json.begin(); it != json.end(); ++it)
        entries.emplace_back(it.key(), FromJson(it.value(), depth + 1));
      return Value::Dict(std::move(entries));
    }
    default:
      return Value::Undefined();
  }
}

TemplateError ToError(const Failure& f) {
  TemplateError error;
  error.raised = f.raised;
  error.message = f.raised || f.line <= 0 ? f.message : "line " + std::to_string(f.line) + ": " + f.message;
  return error;
}

template <typename Json>
std::optional<std::string> RenderWith(const Body& body, const Json& context, const RenderOptions& options,
                                      TemplateError* error) {
  try {
    if (!context.is_object()) throw Failure{0, "the context must be a JSON object", false};
    std::vector<std::pair<std::string, Value>> variables;
    for (auto it = context.begin(); it != context.end(); ++it)
      variables.emplace_back(it.key(), FromJson(it.value(), 1));
    Evaluator evaluator(std::move(variables), options.now ? *options.now : std::time(nullptr), options.limits);
    return evaluator.Render(body);
  } catch (const Failure& f) {
    if (error) *error = ToError(f);
  } catch (const std::bad_alloc&) {
    if (error) *error = TemplateError{false, "out of memory while rendering the template"};
  }
  return std::nullopt;
}

}  // namespace

std::optional<Template> Template::Parse(std::string_view source, TemplateError* error) {
  try {
    auto program = std::make_shared<Program>();
    program->body = jinja::Parse(Lex(source));
    return Template(std::move(program));
  } catch (const Failure& f) {
    if (error) *error = ToError(f);
  }
  return std::nullopt;
}

std::optional<std::string> Template::Render(const nlohmann::json& context, TemplateError* error) const {
  return RenderWith(program_->body, context, RenderOptions{}, error);
}

std::optional<std::string> Template::Render(const nlohmann::ordered_json& context, const RenderOptions& options,
                                            TemplateError* error) const {
  return RenderWith(program_->body, context, options, error);
}

Template::Template(std::shared_ptr<const Program> program) : program_(std::move(program)) {}
Template::Template(const Template&) = default;
Template& Template::operator=(const Template&) = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;
Template::~Template() = default;

}  // namespace fusec::rt::jinja
