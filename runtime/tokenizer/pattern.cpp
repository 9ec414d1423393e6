#include "runtime/tokenizer/pattern.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

namespace fusec::rt::tok {

class Regex {
 public:
  explicit Regex(pcre2_code* code) : code_(code) {}
  Regex(const Regex&) = delete;
  Regex& operator=(const Regex&) = delete;
  ~Regex() { pcre2_code_free(code_); }

  std::vector<std::pair<size_t, size_t>> FindAll(std::string_view text) const {
    std::vector<std::pair<size_t, size_t>> matches;
    pcre2_match_data* data = pcre2_match_data_create_from_pattern(code_, nullptr);
    size_t start = 0;
    while (start <= text.size()) {
      int rc = pcre2_match(code_, reinterpret_cast<PCRE2_SPTR>(text.data()), text.size(), start, PCRE2_NO_UTF_CHECK,
                           data, nullptr);
      if (rc < 0) break;
      PCRE2_SIZE* ovector = pcre2_get_ovector_pointer(data);
      size_t begin = ovector[0];
      size_t end = ovector[1];
      if (end == begin) {  // an empty match: Hugging Face drops empty pieces; step over one character
        start = begin + (begin < text.size() ? Utf8Length(text, begin) : 1);
        continue;
      }
      matches.emplace_back(begin, end);
      start = end;
    }
    pcre2_match_data_free(data);
    return matches;
  }

 private:
  pcre2_code* code_;
};

Pattern Pattern::Literal(std::string text) {
  Pattern pattern;
  pattern.literal_ = std::move(text);
  return pattern;
}

Pattern Pattern::FromRegex(const std::string& regex, const std::string& path) {
  int code = 0;
  PCRE2_SIZE offset = 0;
  pcre2_code* compiled = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(regex.data()), regex.size(), PCRE2_UTF | PCRE2_UCP,
                                       &code, &offset, nullptr);
  if (compiled == nullptr) {
    PCRE2_UCHAR message[256];
    pcre2_get_error_message(code, message, sizeof message);
    Refuse("the regex `" + path + "` does not compile at offset " + std::to_string(offset) + ": " +
           reinterpret_cast<const char*>(message));
  }
  pcre2_jit_compile(compiled, PCRE2_JIT_COMPLETE);  // optional speed-up; falls back to the interpreter
  Pattern pattern;
  pattern.regex_ = std::make_shared<const Regex>(compiled);
  return pattern;
}

Pattern Pattern::FromJson(const Json& pattern, const std::string& path) {
  if (!pattern.is_object()) Malformed(path, "an object (`String` or `Regex`)", pattern);
  if (const Json* literal = Field(pattern, "String")) {
    if (!literal->is_string()) Malformed(path + ".String", "a string", *literal);
    return Literal(literal->get<std::string>());
  }
  if (const Json* regex = Field(pattern, "Regex")) {
    if (!regex->is_string()) Malformed(path + ".Regex", "a string", *regex);
    return FromRegex(regex->get<std::string>(), path + ".Regex");
  }
  Malformed(path, "an object (`String` or `Regex`)", pattern);
}

std::vector<std::pair<size_t, size_t>> Pattern::FindAll(std::string_view text) const {
  if (regex_) return regex_->FindAll(text);
  std::vector<std::pair<size_t, size_t>> matches;
  if (literal_.empty()) return matches;  // an empty String matches nothing (Hugging Face's rule)
  for (size_t found = text.find(literal_); found != std::string_view::npos; found = text.find(literal_, found + literal_.size())) {
    matches.emplace_back(found, found + literal_.size());
  }
  return matches;
}

std::string Pattern::ReplaceAll(std::string_view text, std::string_view content) const {
  std::string out;
  size_t last = 0;
  for (auto [begin, end] : FindAll(text)) {
    out.append(text.substr(last, begin - last));
    out.append(content);
    last = end;
  }
  out.append(text.substr(last));
  return out;
}

}  // namespace fusec::rt::tok
