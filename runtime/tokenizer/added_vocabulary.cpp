#include "runtime/tokenizer/added_vocabulary.h"

#include "runtime/support/text.h"
#include "runtime/tokenizer/normalizers.h"

namespace fusec::rt::tok {
namespace {

bool IsWordByte(char c) { return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || (c & 0x80) != 0; }

/// The code point that ends just before `end`.
uint32_t CodePointBefore(std::string_view text, size_t end, size_t* start) {
  size_t i = end - 1;
  while (i > 0 && (static_cast<unsigned char>(text[i]) & 0xC0) == 0x80) --i;
  *start = i;
  size_t j = i;
  return DecodeUtf8(text, j);
}

}  // namespace

void AddedTokenMatcher::Add(const AddedToken* token, std::string text) {
  if (text.empty()) return;
  int32_t node = 0;
  first_byte_[static_cast<unsigned char>(text[0])] = true;
  for (unsigned char byte : text) {
    int32_t child = Child(node, byte);
    if (child < 0) {
      child = static_cast<int32_t>(terminal_.size());
      terminal_.push_back(nullptr);
      edges_[(static_cast<uint64_t>(node) << 8) | byte] = child;
    }
    node = child;
  }
  if (terminal_[static_cast<size_t>(node)] == nullptr) terminal_[static_cast<size_t>(node)] = token;  // first wins
}

int32_t AddedTokenMatcher::Child(int32_t node, unsigned char byte) const {
  auto it = edges_.find((static_cast<uint64_t>(node) << 8) | byte);
  return it == edges_.end() ? -1 : it->second;
}

std::optional<AddedMatch> AddedTokenMatcher::Next(std::string_view text, size_t from) const {
  for (size_t i = from; i < text.size(); ++i) {
    if (!first_byte_[static_cast<unsigned char>(text[i])]) continue;
    const AddedToken* best = nullptr;
    size_t best_end = 0;
    int32_t node = 0;
    for (size_t k = i; k < text.size(); ++k) {
      node = Child(node, static_cast<unsigned char>(text[k]));
      if (node < 0) break;
      if (const AddedToken* token = terminal_[static_cast<size_t>(node)]) {
        if (token->single_word) {
          bool before = i > 0 && IsWordByte(text[i - 1]);
          bool after = k + 1 < text.size() && IsWordByte(text[k + 1]);
          if (before || after) continue;
        }
        best = token;
        best_end = k + 1;
      }
    }
    if (best == nullptr) continue;
    size_t begin = i;
    size_t end = best_end;
    if (best->lstrip) {
      while (begin > from) {
        size_t start = 0;
        if (!IsUnicodeWhitespace(CodePointBefore(text, begin, &start))) break;
        begin = start;
      }
    }
    if (best->rstrip) {
      while (end < text.size()) {
        size_t next = end;
        if (!IsUnicodeWhitespace(DecodeUtf8(text, next))) break;
        end = next;
      }
    }
    return AddedMatch{begin, end, best};
  }
  return std::nullopt;
}

}  // namespace fusec::rt::tok
