// Hugging Face's BPE model (`model.type: BPE`), as its `tokenizers` crate runs it: each character of a piece
// becomes a token (or its `<0xNN>` byte tokens with `byte_fallback`, or `unk_token`, fused with `fuse_unk`),
// then adjacent pairs merge, lowest merge rank first (leftmost among equals), until none is left.
// `ignore_merges` takes a piece that is itself a token whole; `continuing_subword_prefix` and
// `end_of_word_suffix` mark non-first and last characters. Dropout is random, so only none (or 0) is taken.
//
// Merging uses a heap over a linked list of symbols (as the crate's `Word::merge_all`), so a long piece (a
// page of CJK without spaces is one Gemma piece) costs n log n, not n squared. Pieces already merged are
// cached (bounded); the cache is shared between threads under a mutex.
#pragma once

#include <memory>
#include <mutex>
#include <unordered_map>

#include "runtime/tokenizer/json_fields.h"
#include "runtime/tokenizer/tokenizer_model.h"

namespace fusec::rt::tok {

class BpeModel final : public TokenizerModel {
 public:
  /// The model at `json` (tokenizer.json's `model`); throws TokenizerJsonError naming the field.
  static std::unique_ptr<BpeModel> FromJson(const Json& json, const std::string& path);

  void Tokenize(std::string_view piece, std::vector<int32_t>* ids) const override;
  std::optional<int32_t> TokenToId(std::string_view token) const override;
  const std::string& IdToToken(int32_t id) const override;
  int32_t vocab_size() const override { return static_cast<int32_t>(id_to_token_.size()); }

 private:
  struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const { return std::hash<std::string_view>{}(s); }
  };
  struct Merge {
    int32_t rank;
    int32_t merged_id;
  };
  static uint64_t PairKey(int32_t a, int32_t b) {
    return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
  }
  std::optional<int32_t> Find(std::string_view token) const;
  std::vector<int32_t> Merged(std::string_view piece) const;

  std::unordered_map<std::string, int32_t, StringHash, std::equal_to<>> vocab_;
  std::vector<std::string> id_to_token_;
  std::unordered_map<uint64_t, Merge> merges_;
  std::optional<int32_t> unk_id_;
  bool fuse_unk_ = false;
  bool byte_fallback_ = false;
  bool ignore_merges_ = false;
  std::string continuing_subword_prefix_;
  std::string end_of_word_suffix_;
  std::vector<std::optional<int32_t>> byte_ids_;  // `<0xNN>` for each byte, with byte_fallback
  mutable std::mutex cache_mutex_;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

}  // namespace fusec::rt::tok
