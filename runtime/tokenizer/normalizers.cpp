#include "runtime/tokenizer/normalizers.h"

#include <unicode/bytestream.h>
#include <unicode/normalizer2.h>
#include <unicode/uchar.h>
#include <unicode/ustring.h>

#include "runtime/support/text.h"

namespace fusec::rt::tok {
namespace {

bool IsAscii(std::string_view text) {
  for (char c : text) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

}  // namespace

bool IsUnicodeWhitespace(uint32_t c) { return u_hasBinaryProperty(static_cast<UChar32>(c), UCHAR_WHITE_SPACE) != 0; }

UnicodeNormalizer::UnicodeNormalizer(Form form) {
  UErrorCode status = U_ZERO_ERROR;
  const icu::Normalizer2* normalizer = nullptr;
  switch (form) {
    case Form::NFC: normalizer = icu::Normalizer2::getNFCInstance(status); break;
    case Form::NFD: normalizer = icu::Normalizer2::getNFDInstance(status); break;
    case Form::NFKC: normalizer = icu::Normalizer2::getNFKCInstance(status); break;
    case Form::NFKD: normalizer = icu::Normalizer2::getNFKDInstance(status); break;
  }
  if (U_FAILURE(status) || normalizer == nullptr) Refuse(std::string("ICU's Unicode normalization data is missing: ") + u_errorName(status));
  normalizer_ = normalizer;
}

void UnicodeNormalizer::Normalize(std::string& text) const {
  if (IsAscii(text)) return;  // ASCII is in every normal form
  const auto* normalizer = static_cast<const icu::Normalizer2*>(normalizer_);
  UErrorCode status = U_ZERO_ERROR;
  if (normalizer->isNormalizedUTF8(text, status) && U_SUCCESS(status)) return;
  std::string out;
  icu::StringByteSink<std::string> sink(&out);
  status = U_ZERO_ERROR;
  normalizer->normalizeUTF8(0, text, sink, nullptr, status);
  if (U_SUCCESS(status)) text = std::move(out);
}

void Lowercase::Normalize(std::string& text) const {
  if (IsAscii(text)) {
    for (char& c : text) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
    return;
  }
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    uint32_t cp = DecodeUtf8(text, i);
    if (cp < 0x80) {
      out.push_back(static_cast<char>(std::tolower(static_cast<int>(cp))));
      continue;
    }
    // The full lower-case mapping of the character alone (U+0130 becomes two characters, as in Rust).
    UChar source[2];
    int32_t source_length = 0;
    U16_APPEND_UNSAFE(source, source_length, static_cast<UChar32>(cp));
    UChar lowered[8];
    UErrorCode status = U_ZERO_ERROR;
    int32_t length = u_strToLower(lowered, 8, source, source_length, "", &status);
    if (U_FAILURE(status)) {
      AppendUtf8(out, cp);
      continue;
    }
    for (int32_t k = 0; k < length;) {
      UChar32 c;
      U16_NEXT(lowered, k, length, c);
      AppendUtf8(out, static_cast<uint32_t>(c));
    }
  }
  text = std::move(out);
}

void Strip::Normalize(std::string& text) const {
  size_t begin = 0;
  size_t end = text.size();
  if (left_) {
    while (begin < end) {
      size_t i = begin;
      if (!IsUnicodeWhitespace(DecodeUtf8(text, i))) break;
      begin = i;
    }
  }
  if (right_) {
    while (end > begin) {
      size_t start = end - 1;
      while (start > begin && (static_cast<unsigned char>(text[start]) & 0xC0) == 0x80) --start;
      size_t i = start;
      if (!IsUnicodeWhitespace(DecodeUtf8(text, i))) break;
      end = start;
    }
  }
  text = text.substr(begin, end - begin);
}

std::unique_ptr<Normalizer> NormalizerFromJson(const Json& json, const std::string& path) {
  const std::string type = ComponentType(json, path);
  using Form = UnicodeNormalizer::Form;
  if (type == "NFC") return std::make_unique<UnicodeNormalizer>(Form::NFC);
  if (type == "NFD") return std::make_unique<UnicodeNormalizer>(Form::NFD);
  if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(Form::NFKC);
  if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(Form::NFKD);
  if (type == "Lowercase") return std::make_unique<Lowercase>();
  if (type == "Strip") {
    return std::make_unique<Strip>(BoolField(json, "strip_left", path + ".strip_left", true),
                                   BoolField(json, "strip_right", path + ".strip_right", true));
  }
  if (type == "Replace") {
    const Json* pattern = Field(json, "pattern");
    if (pattern == nullptr) Refuse("`" + path + "` has no `pattern`");
    return std::make_unique<Replace>(Pattern::FromJson(*pattern, path + ".pattern"),
                                     StringField(json, "content", path + ".content", ""));
  }
  if (type == "Prepend") return std::make_unique<Prepend>(StringField(json, "prepend", path + ".prepend", ""));
  if (type == "Sequence") {
    const Json& list = ListField(json, "normalizers", path + ".normalizers");
    std::vector<std::unique_ptr<Normalizer>> steps;
    for (size_t i = 0; i < list.size(); ++i) steps.push_back(NormalizerFromJson(list[i], Indexed(path + ".normalizers", i)));
    return std::make_unique<NormalizerSequence>(std::move(steps));
  }
  if (type == "Precompiled") {
    std::string error;
    auto precompiled = PrecompiledNormalizer::FromJson(json, path, &error);
    if (!precompiled) Refuse(error);
    return std::make_unique<Precompiled>(std::move(*precompiled));
  }
  Refuse("normalizer `" + type + "` is not supported (`" + path +
         "`; NFC, NFD, NFKC, NFKD, Lowercase, Strip, Replace, Prepend, Precompiled and Sequence are)");
}

}  // namespace fusec::rt::tok
