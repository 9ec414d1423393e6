#include "runtime/tokenizer/unigram_model.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>

#include "runtime/support/text.h"

namespace fusec::rt {
namespace {

using Json = nlohmann::json;

/// A JSON value as an error message shows it: its text, cut short when long.
std::string Shown(const Json& value) {
  std::string text = value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
  return text.size() <= 40 ? text : text.substr(0, 37) + "...";
}

std::string ShownPiece(std::string_view piece) { return Shown(Json(std::string(piece))); }

/// The length of the UTF-8 character at `text[pos]`; 1 for a byte that starts no valid sequence (so invalid
/// input is read byte by byte and never past its end).
size_t CharLength(std::string_view text, size_t pos) {
  const Utf8Prefix prefix = Utf8PrefixAt(text, pos);
  return prefix.complete ? prefix.valid : 1;
}

}  // namespace

std::optional<UnigramModel> UnigramModel::FromJson(const nlohmann::json& model, const std::string& path,
                                                   std::string* error) {
  auto fail = [&](const std::string& what) -> std::optional<UnigramModel> {
    *error = what;
    return std::nullopt;
  };
  if (!model.is_object()) return fail(path + " must be an object, not " + Shown(model));
  if (auto type = model.find("type"); type != model.end() && !type->is_null()) {
    if (!type->is_string() || type->get<std::string>() != "Unigram") {
      return fail(path + ".type must be \"Unigram\", not " + Shown(*type));
    }
  }
  auto vocab = model.find("vocab");
  if (vocab == model.end() || vocab->is_null()) return fail(path + " has no `vocab`");
  if (!vocab->is_array()) return fail(path + ".vocab must be a list of [piece, score] pairs, not " + Shown(*vocab));
  std::vector<std::pair<std::string, double>> pieces;
  pieces.reserve(vocab->size());
  for (size_t i = 0; i < vocab->size(); ++i) {
    const Json& entry = (*vocab)[i];
    const std::string entry_path = path + ".vocab[" + std::to_string(i) + "]";
    if (!entry.is_array() || entry.size() != 2 || !entry[0].is_string() || !entry[1].is_number()) {
      return fail(entry_path + " must be a [piece, score] pair, not " + Shown(entry));
    }
    pieces.emplace_back(entry[0].get<std::string>(), entry[1].get<double>());
  }
  if (pieces.empty()) return fail(path + ".vocab is empty");
  std::optional<int32_t> unk_id;
  if (auto unk = model.find("unk_id"); unk != model.end() && !unk->is_null()) {
    if (!unk->is_number_integer() || (!unk->is_number_unsigned() && unk->get<int64_t>() < 0)) {
      return fail(path + ".unk_id must be a piece's index or null, not " + Shown(*unk));
    }
    const uint64_t value =
        unk->is_number_unsigned() ? unk->get<uint64_t>() : static_cast<uint64_t>(unk->get<int64_t>());
    if (value >= pieces.size()) {
      return fail(path + ".unk_id is " + std::to_string(value) + " but the vocabulary has " +
                  std::to_string(pieces.size()) + " pieces");
    }
    unk_id = static_cast<int32_t>(value);
  }
  bool byte_fallback = false;
  if (auto flag = model.find("byte_fallback"); flag != model.end() && !flag->is_null()) {
    if (!flag->is_boolean()) return fail(path + ".byte_fallback must be true or false, not " + Shown(*flag));
    byte_fallback = flag->get<bool>();
  }
  return FromPieces(std::move(pieces), unk_id, byte_fallback, path, error);
}

std::optional<UnigramModel> UnigramModel::FromPieces(std::vector<std::pair<std::string, double>> pieces,
                                                     std::optional<int32_t> unk_id, bool byte_fallback,
                                                     const std::string& path, std::string* error) {
  auto fail = [&](const std::string& what) -> std::optional<UnigramModel> {
    *error = what;
    return std::nullopt;
  };
  if (pieces.empty()) return fail(path + ".vocab is empty");
  if (pieces.size() > static_cast<size_t>(std::numeric_limits<int32_t>::max())) {
    return fail(path + ".vocab has more pieces than token ids can number");
  }
  if (unk_id && (*unk_id < 0 || static_cast<size_t>(*unk_id) >= pieces.size())) {
    return fail(path + ".unk_id is " + std::to_string(*unk_id) + " but the vocabulary has " +
                std::to_string(pieces.size()) + " pieces");
  }
  UnigramModel result;
  result.path_ = path;
  result.unk_id_ = unk_id;
  result.byte_fallback_ = byte_fallback;
  result.pieces_.reserve(pieces.size());
  result.scores_.reserve(pieces.size());
  result.ids_.reserve(pieces.size());
  result.min_score_ = std::numeric_limits<double>::infinity();
  for (size_t i = 0; i < pieces.size(); ++i) {
    auto& [piece, score] = pieces[i];
    const std::string entry_path = path + ".vocab[" + std::to_string(i) + "]";
    if (!std::isfinite(score)) return fail(entry_path + " has a score that is not a finite number");
    auto [it, inserted] = result.ids_.emplace(piece, static_cast<int32_t>(i));
    if (!inserted) {
      return fail(entry_path + " repeats the piece " + ShownPiece(piece) + " of " + path + ".vocab[" +
                  std::to_string(it->second) + "]");
    }
    result.min_score_ = std::min(result.min_score_, score);
    result.pieces_.push_back(std::move(piece));
    result.scores_.push_back(score);
  }
  for (int byte = 0; byte < 256; ++byte) {
    char name[8];
    std::snprintf(name, sizeof(name), "<0x%02X>", byte);
    auto it = result.ids_.find(std::string_view(name));
    result.byte_pieces_[byte] = it == result.ids_.end() ? -1 : it->second;
  }
  result.BuildTrie();
  return result;
}

void UnigramModel::BuildTrie() {
  // Pieces sorted by their bytes: the pieces below one trie node are a contiguous range, the one that ends
  // at the node (if any) first. Breadth first, each node's children are created together, so they are
  // contiguous and the node after a node tells where its children end.
  std::vector<int32_t> order(pieces_.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = static_cast<int32_t>(i);
  std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return pieces_[a] < pieces_[b]; });
  struct Pending {
    size_t begin;
    size_t end;
    size_t depth;
  };
  nodes_.assign(1, TrieNode{});
  labels_.assign(1, 0);
  std::vector<Pending> pending = {{0, order.size(), 0}};  // pending[n] is node n's range of pieces
  for (size_t node = 0; node < pending.size(); ++node) {
    const auto [begin, end, depth] = pending[node];
    size_t i = begin;
    if (i < end && pieces_[order[i]].size() == depth) nodes_[node].piece = order[i++];
    nodes_[node].first_child = static_cast<int32_t>(nodes_.size());
    while (i < end) {
      const uint8_t label = static_cast<uint8_t>(pieces_[order[i]][depth]);
      size_t j = i + 1;
      while (j < end && static_cast<uint8_t>(pieces_[order[j]][depth]) == label) ++j;
      nodes_.push_back(TrieNode{});
      labels_.push_back(label);
      pending.push_back({i, j, depth + 1});
      i = j;
    }
  }
  nodes_.push_back(TrieNode{static_cast<int32_t>(nodes_.size()), -1});
  std::fill(std::begin(root_children_), std::end(root_children_), 0);
  for (int32_t child = nodes_[0].first_child; child < nodes_[1].first_child; ++child) {
    root_children_[labels_[static_cast<size_t>(child)]] = child;
  }
}

int32_t UnigramModel::Child(int32_t node, uint8_t label) const {
  const int32_t first = nodes_[static_cast<size_t>(node)].first_child;
  const int32_t last = nodes_[static_cast<size_t>(node) + 1].first_child;
  if (last - first <= 8) {
    for (int32_t child = first; child < last; ++child) {
      if (labels_[static_cast<size_t>(child)] == label) return child;
    }
    return 0;
  }
  const uint8_t* begin = labels_.data() + first;
  const uint8_t* found = std::lower_bound(begin, labels_.data() + last, label);
  return found != labels_.data() + last && *found == label ? first + static_cast<int32_t>(found - begin) : 0;
}

bool UnigramModel::BestPath(std::string_view text, std::vector<Segment>* path, std::string* error) const {
  // best_path_ends_at of model.rs: for each byte position, the best path's score up to it, where the last
  // segment of that path starts (kUnset: no path ends there yet) and that segment's id. Kept per thread, so
  // tokenizing word by word allocates nothing.
  constexpr size_t kUnset = std::numeric_limits<size_t>::max();
  struct BestPathNode {
    double score = 0.0;
    size_t starts_at = kUnset;
    int32_t id = 0;
  };
  thread_local std::vector<BestPathNode> best;
  const size_t size = text.size();
  best.assign(size + 1, BestPathNode{});
  best[0].score = 0.0;
  const double unk_score = min_score_ - kUnkPenalty;
  auto offer = [&](size_t end, size_t start, double score, int32_t id) {
    if (best[end].starts_at == kUnset || score > best[end].score) {
      best[end] = BestPathNode{score, start, id};
    }
  };
  for (size_t start = 0; start < size;) {
    const double score_till_here = best[start].score;
    const size_t char_length = CharLength(text, start);
    bool has_single_node = false;
    // The pieces that are prefixes of text[start..], shortest first (the trie's common prefix search).
    int32_t node = root_children_[static_cast<uint8_t>(text[start])];
    for (size_t end = start + 1; node != 0; ++end) {
      if (const int32_t id = nodes_[static_cast<size_t>(node)].piece; id >= 0) {
        offer(end, start, scores_[static_cast<size_t>(id)] + score_till_here, id);
        if (end - start == char_length) has_single_node = true;
      }
      if (end == size) break;
      node = Child(node, static_cast<uint8_t>(text[end]));
    }
    if (!has_single_node) {
      const size_t end = start + char_length;
      const double candidate = unk_score + score_till_here;
      if (best[end].starts_at == kUnset || candidate > best[end].score) {
        if (!unk_id_) {
          *error = path_ + " has no `unk_id` for the character " + ShownPiece(text.substr(start, char_length)) +
                   " (byte " + std::to_string(start) + "), which no piece covers";
          return false;
        }
        offer(end, start, candidate, *unk_id_);
      }
    }
    start += char_length;
  }
  // Every character boundary is reached (each start offers a piece or an unknown one character long), so the
  // walk back always lands on 0; the check keeps a broken invariant from reading out of bounds.
  path->clear();
  for (size_t end = size; end > 0; end = best[end].starts_at) {
    if (best[end].starts_at >= end) {
      *error = path_ + ": the Unigram lattice has no path through byte " + std::to_string(end);
      return false;
    }
    path->push_back(Segment{best[end].starts_at, end, best[end].id});
  }
  std::reverse(path->begin(), path->end());
  return true;
}

bool UnigramModel::TryTokenize(std::string_view normalized_piece, std::vector<int32_t>* ids, std::string* error) const {
  if (normalized_piece.empty()) return true;
  thread_local std::vector<Segment> path;  // reused: no allocation per word
  if (!BestPath(normalized_piece, &path, error)) return false;
  for (size_t i = 0; i < path.size(); ++i) {
    if (!unk_id_ || path[i].id != *unk_id_) {
      ids->push_back(path[i].id);
      continue;
    }
    // A run of unknown segments is fused into one, and its text read again: a piece if it is one (the
    // unknown piece itself, say), its bytes with byte_fallback when every `<0xNN>` exists, else unknown.
    const size_t begin = path[i].begin;
    while (i + 1 < path.size() && path[i + 1].id == *unk_id_) ++i;
    const std::string_view fused = normalized_piece.substr(begin, path[i].end - begin);
    if (auto it = ids_.find(fused); it != ids_.end()) {
      ids->push_back(it->second);
      continue;
    }
    if (byte_fallback_ &&
        std::all_of(fused.begin(), fused.end(), [&](char c) { return byte_pieces_[static_cast<uint8_t>(c)] >= 0; })) {
      for (char c : fused) ids->push_back(byte_pieces_[static_cast<uint8_t>(c)]);
      continue;
    }
    ids->push_back(*unk_id_);
  }
  return true;
}

void UnigramModel::Tokenize(std::string_view normalized_piece, std::vector<int32_t>* ids) const {
  std::string error;
  if (!TryTokenize(normalized_piece, ids, &error)) throw MissingUnk(error);
}

std::optional<int32_t> UnigramModel::TokenToId(std::string_view token) const {
  auto it = ids_.find(token);
  if (it == ids_.end()) return std::nullopt;
  return it->second;
}

const std::string& UnigramModel::IdToToken(int32_t id) const {
  static const std::string none;
  if (id < 0 || static_cast<size_t>(id) >= pieces_.size()) return none;
  return pieces_[static_cast<size_t>(id)];
}

}  // namespace fusec::rt
