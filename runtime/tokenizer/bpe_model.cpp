#include "runtime/tokenizer/bpe_model.h"

#include <algorithm>
#include <cstdio>
#include <queue>

namespace fusec::rt::tok {

std::unique_ptr<BpeModel> BpeModel::FromJson(const Json& model, const std::string& path) {
  auto bpe = std::make_unique<BpeModel>();
  if (const Json* dropout = Field(model, "dropout")) {
    if (!dropout->is_number() || dropout->get<double>() != 0.0) {
      Refuse("BPE `dropout` " + Shown(*dropout) + " is not supported (`" + path +
             ".dropout`: it makes tokenizing random; only null or 0 is)");
    }
  }
  bpe->byte_fallback_ = BoolField(model, "byte_fallback", path + ".byte_fallback", false);
  bpe->fuse_unk_ = BoolField(model, "fuse_unk", path + ".fuse_unk", false);
  bpe->ignore_merges_ = BoolField(model, "ignore_merges", path + ".ignore_merges", false);
  bpe->continuing_subword_prefix_ = StringField(model, "continuing_subword_prefix", path + ".continuing_subword_prefix", "");
  bpe->end_of_word_suffix_ = StringField(model, "end_of_word_suffix", path + ".end_of_word_suffix", "");

  const Json* vocab = Field(model, "vocab");
  if (vocab == nullptr) Refuse("model has no `vocab`");
  if (!vocab->is_object()) Malformed(path + ".vocab", "an object of tokens and their ids", *vocab);
  if (vocab->empty()) Refuse("`" + path + ".vocab` is empty");
  int32_t max_id = -1;
  bpe->vocab_.reserve(vocab->size());
  for (const auto& [token, id] : vocab->items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0 || id.get<int64_t>() > kMaxTokenId) {
      Refuse("vocabulary entry `" + token + "` has no valid id (`" + path + ".vocab` maps it to " + Shown(id) + ")");
    }
    bpe->vocab_[token] = id.get<int32_t>();
    max_id = std::max(max_id, id.get<int32_t>());
  }
  bpe->id_to_token_.assign(static_cast<size_t>(max_id + 1), "");
  for (const auto& [token, id] : bpe->vocab_) bpe->id_to_token_[static_cast<size_t>(id)] = token;

  if (const std::string unk = StringField(model, "unk_token", path + ".unk_token", ""); !unk.empty()) {
    bpe->unk_id_ = bpe->Find(unk);
    if (!bpe->unk_id_) Refuse("the BPE `unk_token` `" + unk + "` is not in the vocabulary (`" + path + ".unk_token`)");
  }
  if (bpe->byte_fallback_) {
    bpe->byte_ids_.resize(256);
    for (int b = 0; b < 256; ++b) {
      char name[8];
      std::snprintf(name, sizeof name, "<0x%02X>", b);
      bpe->byte_ids_[static_cast<size_t>(b)] = bpe->Find(name);
    }
  }

  // A missing `merges` is refused by Tokenizer::FromJson, after the components (what is not supported first).
  const Json& merges = ListField(model, "merges", path + ".merges");
  bpe->merges_.reserve(merges.size());
  const size_t prefix_length = bpe->continuing_subword_prefix_.size();
  for (size_t rank = 0; rank < merges.size(); ++rank) {
    const Json& merge = merges[rank];
    std::string_view left;
    std::string_view right;
    if (merge.is_string()) {
      const std::string& text = merge.get_ref<const std::string&>();
      size_t space = text.find(' ', 1);
      if (space == std::string::npos) Refuse("merge `" + text + "` is not two tokens (`" + Indexed(path + ".merges", rank) + "`)");
      left = std::string_view(text).substr(0, space);
      right = std::string_view(text).substr(space + 1);
    } else if (merge.is_array() && merge.size() == 2 && merge[0].is_string() && merge[1].is_string()) {
      left = merge[0].get_ref<const std::string&>();
      right = merge[1].get_ref<const std::string&>();
    } else {
      Refuse("merge " + std::to_string(rank) + " is not two tokens (`" + Indexed(path + ".merges", rank) + "` is " +
             Shown(merge) + ")");
    }
    // The merged token drops the right part's continuing-subword prefix (Hugging Face's rule).
    std::string merged(left);
    merged.append(right.substr(right.starts_with(bpe->continuing_subword_prefix_) ? prefix_length : 0));
    auto a = bpe->Find(left);
    auto b = bpe->Find(right);
    auto m = bpe->Find(merged);
    if (!a || !b || !m) {
      Refuse("merge `" + std::string(left) + " " + std::string(right) + "` uses tokens that are not in the vocabulary (`" +
             Indexed(path + ".merges", rank) + "`)");
    }
    bpe->merges_[PairKey(*a, *b)] = Merge{static_cast<int32_t>(rank), *m};  // a later duplicate wins, as in Rust
  }
  return bpe;
}

std::optional<int32_t> BpeModel::Find(std::string_view token) const {
  auto it = vocab_.find(token);
  if (it == vocab_.end()) return std::nullopt;
  return it->second;
}

std::optional<int32_t> BpeModel::TokenToId(std::string_view token) const { return Find(token); }

const std::string& BpeModel::IdToToken(int32_t id) const {
  static const std::string kNone;
  if (id < 0 || static_cast<size_t>(id) >= id_to_token_.size()) return kNone;
  return id_to_token_[static_cast<size_t>(id)];
}

std::vector<int32_t> BpeModel::Merged(std::string_view piece) const {
  // The initial symbols: one per character (Hugging Face's `BPE::merge_word`).
  std::vector<int32_t> symbols;
  int32_t pending_unk = -1;  // an unknown run not yet added (fused with fuse_unk); -1: none
  for (size_t i = 0; i < piece.size();) {
    const size_t length = Utf8Length(piece, i);
    const bool is_first = i == 0;
    const bool is_last = i + length == piece.size();
    std::string_view character = piece.substr(i, length);
    i += length;
    std::string decorated;
    if ((!is_first && !continuing_subword_prefix_.empty()) || (is_last && !end_of_word_suffix_.empty())) {
      decorated = (is_first ? "" : continuing_subword_prefix_) + std::string(character) + (is_last ? end_of_word_suffix_ : "");
      character = decorated;
    }
    if (auto id = Find(character)) {
      if (pending_unk >= 0) symbols.push_back(pending_unk);
      pending_unk = -1;
      symbols.push_back(*id);
      continue;
    }
    if (byte_fallback_) {
      bool all = std::all_of(character.begin(), character.end(),
                             [&](char c) { return byte_ids_[static_cast<unsigned char>(c)].has_value(); });
      if (all) {  // Hugging Face adds the bytes before a pending unknown token; so does this
        for (char c : character) symbols.push_back(*byte_ids_[static_cast<unsigned char>(c)]);
        continue;
      }
    }
    if (unk_id_) {
      if (pending_unk >= 0 && !fuse_unk_) symbols.push_back(pending_unk);
      pending_unk = *unk_id_;
    }
  }
  if (pending_unk >= 0) symbols.push_back(pending_unk);

  // Merge: lowest rank first, leftmost among equal ranks, over a linked list of symbols.
  const size_t n = symbols.size();
  if (n < 2) return symbols;
  std::vector<int64_t> prev(n);
  std::vector<int64_t> next(n);
  std::vector<bool> removed(n, false);
  for (size_t i = 0; i < n; ++i) {
    prev[i] = static_cast<int64_t>(i) - 1;
    next[i] = i + 1 < n ? static_cast<int64_t>(i + 1) : -1;
  }
  struct Candidate {
    int32_t rank;
    size_t position;
    int32_t merged_id;
    bool operator<(const Candidate& other) const {  // the priority queue's top is the lowest rank, then position
      return rank != other.rank ? rank > other.rank : position > other.position;
    }
  };
  std::priority_queue<Candidate> queue;
  auto push = [&](size_t position, size_t right) {
    auto it = merges_.find(PairKey(symbols[position], symbols[right]));
    if (it != merges_.end()) queue.push({it->second.rank, position, it->second.merged_id});
  };
  for (size_t i = 0; i + 1 < n; ++i) push(i, i + 1);
  while (!queue.empty()) {
    Candidate top = queue.top();
    queue.pop();
    if (removed[top.position] || next[top.position] < 0) continue;
    const auto right = static_cast<size_t>(next[top.position]);
    auto it = merges_.find(PairKey(symbols[top.position], symbols[right]));
    if (it == merges_.end() || it->second.merged_id != top.merged_id) continue;  // an expired candidate
    symbols[top.position] = top.merged_id;
    removed[right] = true;
    next[top.position] = next[right];
    if (next[right] >= 0) prev[static_cast<size_t>(next[right])] = static_cast<int64_t>(top.position);
    if (prev[top.position] >= 0) push(static_cast<size_t>(prev[top.position]), top.position);
    if (next[top.position] >= 0) push(top.position, static_cast<size_t>(next[top.position]));
  }
  std::vector<int32_t> out;
  out.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (!removed[i]) out.push_back(symbols[i]);
  }
  return out;
}

void BpeModel::Tokenize(std::string_view piece, std::vector<int32_t>* ids) const {
  if (piece.empty()) return;
  if (ignore_merges_) {
    if (auto id = Find(piece)) {
      ids->push_back(*id);
      return;
    }
  }
  constexpr size_t kCacheablePiece = 256;  // long pieces are rare and would fill the cache
  if (piece.size() <= kCacheablePiece) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (auto it = cache_.find(std::string(piece)); it != cache_.end()) {
      ids->insert(ids->end(), it->second.begin(), it->second.end());
      return;
    }
  }
  std::vector<int32_t> merged = Merged(piece);
  ids->insert(ids->end(), merged.begin(), merged.end());
  if (piece.size() <= kCacheablePiece) {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    if (cache_.size() > 200000) cache_.clear();
    cache_.emplace(std::string(piece), std::move(merged));
  }
}

}  // namespace fusec::rt::tok
