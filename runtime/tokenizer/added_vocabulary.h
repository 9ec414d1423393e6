// The added tokens of a tokenizer.json (`added_tokens`: specials such as `<|eot_id|>`, and Gemma's thousands
// of ordinary ones), which are split out of the text before anything else sees it.
//
// As in Hugging Face's AddedVocabulary, tokens with `normalized: false` are found in the raw text and those
// with `normalized: true` in each segment after the normalizer, with their own text normalized too; matching
// is leftmost-longest over a byte trie (Hugging Face uses Aho-Corasick with the same rule), so Gemma's 6415
// added tokens cost one trie walk per position, not one comparison per token. `lstrip`/`rstrip` take the
// white space beside a match with it; `single_word` refuses a match inside a word.
#pragma once

#include <optional>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "runtime/tokenizer/tokenizer.h"

namespace fusec::rt::tok {

/// A match: the bytes [begin, end) it takes (stripped white space included) and the token.
struct AddedMatch {
  size_t begin;
  size_t end;
  const AddedToken* token;
};

class AddedTokenMatcher {
 public:
  /// Tokens to look for, each with the text to look for (its content, or its normalized content).
  void Add(const AddedToken* token, std::string text);
  bool empty() const { return terminal_.size() <= 1 && terminal_[0] == nullptr; }
  /// The leftmost-longest match at or after `from`.
  std::optional<AddedMatch> Next(std::string_view text, size_t from) const;

 private:
  int32_t Child(int32_t node, unsigned char byte) const;
  std::unordered_map<uint64_t, int32_t> edges_;          // node << 8 | byte -> node
  std::vector<const AddedToken*> terminal_ = {nullptr};  // the token that ends at each node (node 0: the root)
  bool first_byte_[256] = {};
};

}  // namespace fusec::rt::tok
