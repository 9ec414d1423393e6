// The Unigram model of Hugging Face `tokenizers` (SentencePiece-unigram vocabularies: T5, XLM-R, ALBERT, ...).
//
// A piece of text is segmented into the vocabulary's pieces by Viterbi: the segmentation whose summed piece
// scores (log-probabilities) is highest. The rules are the Rust library's (models/unigram/model.rs,
// `encode_optimized` and `Model::tokenize`), because ids must equal Hugging Face's:
// - a character that no one-character piece covers may be read as the unknown token, scored
//   `min score - 10` (kUnkPenalty);
// - consecutive unknown segments are fused into one (fuse_unk is always on for Unigram), and the fused text
//   is looked up again: a vocabulary piece if it is one, otherwise with `byte_fallback` its UTF-8 bytes as
//   `<0xNN>` pieces when all of them exist, otherwise the unknown id;
// - ties keep the segmentation found first (the piece that starts earliest).
// Pieces are found with a byte trie whose nodes keep their children contiguous, so each position costs one
// walk bounded by the longest piece, whatever the vocabulary's size (XLM-R has 250k pieces). The model knows
// nothing of normalizers or pre-tokenizers: it gets one normalized, pre-tokenized piece at a time. Tokenizing
// is const and thread-safe (the Viterbi scratch is per thread, so word after word allocates nothing).
#pragma once

#include <cstdint>
#include <functional>
#include <nlohmann/json_fwd.hpp>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace fusec::rt {

class UnigramModel {
 public:
  /// The score of the unknown token below the vocabulary's lowest (model.rs `K_UNK_PENALTY`).
  static constexpr double kUnkPenalty = 10.0;

  /// `model` is the "model" object of tokenizer.json ({"type":"Unigram","unk_id":..,"vocab":[["piece",score],...],
  /// "byte_fallback":..}); `path` the JSON path for errors ("tokenizer.json: model").
  static std::optional<UnigramModel> FromJson(const nlohmann::json& model, const std::string& path, std::string* error);
  /// A model from pieces and scores, checked as FromJson checks them (for tests and synthetic vocabularies).
  static std::optional<UnigramModel> FromPieces(std::vector<std::pair<std::string, double>> pieces,
                                                std::optional<int32_t> unk_id, bool byte_fallback,
                                                const std::string& path, std::string* error);

  /// Appends the ids of one normalized, pre-tokenized piece. Hugging Face fails the whole encode when a
  /// character no piece covers meets a model without `unk_id`; TryTokenize then returns false with the
  /// reason (appending nothing), Tokenize throws UnigramModel::MissingUnk. Invalid UTF-8 bytes are read one
  /// byte at a time, never past the end.
  void Tokenize(std::string_view normalized_piece, std::vector<int32_t>* ids) const;
  bool TryTokenize(std::string_view normalized_piece, std::vector<int32_t>* ids, std::string* error) const;
  struct MissingUnk : std::runtime_error {
    using std::runtime_error::runtime_error;
  };

  std::optional<int32_t> TokenToId(std::string_view token) const;
  /// The piece of `id`; an empty string for an id outside the vocabulary.
  const std::string& IdToToken(int32_t id) const;
  int32_t vocab_size() const { return static_cast<int32_t>(pieces_.size()); }
  std::optional<int32_t> unk_id() const { return unk_id_; }
  bool byte_fallback() const { return byte_fallback_; }
  /// The score of `id` (in [0, vocab_size())) as the vocabulary gives it.
  double score(int32_t id) const { return scores_[static_cast<size_t>(id)]; }
  /// The score an unknown character gets: the lowest score minus kUnkPenalty.
  double unk_score() const { return min_score_ - kUnkPenalty; }
  /// The byte trie's size, for measurements (9 bytes a node).
  size_t trie_nodes() const { return nodes_.size() - 1; }

 private:
  /// One node of the byte trie. Nodes are numbered breadth first and each node's children are created
  /// together, so they are the nodes [first_child, next node's first_child), sorted by label; `piece` is the
  /// id of the piece that ends here, or -1.
  struct TrieNode {
    int32_t first_child = 0;
    int32_t piece = -1;
  };
  /// A segment of the best path: bytes [begin, end) read as `id`.
  struct Segment {
    size_t begin = 0;
    size_t end = 0;
    int32_t id = 0;
  };

  UnigramModel() = default;
  void BuildTrie();
  int32_t Child(int32_t node, uint8_t label) const;
  /// The best path over `text` as segments in order; false (with `error`) where an unknown character meets a
  /// model without unk_id.
  bool BestPath(std::string_view text, std::vector<Segment>* path, std::string* error) const;

  std::string path_;  // for errors while tokenizing
  std::vector<std::string> pieces_;
  std::vector<double> scores_;
  struct PieceHash {
    using is_transparent = void;
    size_t operator()(std::string_view text) const { return std::hash<std::string_view>{}(text); }
  };
  std::unordered_map<std::string, int32_t, PieceHash, std::equal_to<>> ids_;
  std::optional<int32_t> unk_id_;
  bool byte_fallback_ = false;
  double min_score_ = 0;
  std::vector<TrieNode> nodes_;      // nodes_[0] is the root; the last one only ends the last node's children
  std::vector<uint8_t> labels_;      // the byte that leads to each node from its parent
  int32_t root_children_[256] = {};  // the root's child for each first byte, or 0 (the root is no one's child)
  int32_t byte_pieces_[256] = {};    // the id of `<0xNN>`, or -1 (byte_fallback)
};

}  // namespace fusec::rt
