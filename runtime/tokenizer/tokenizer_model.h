// The model of a tokenizer.json (`model`): what turns one pre-tokenized piece into token ids. The pipeline
// (tokenizer.cpp) calls only this interface, so a model type is one class: BPE (bpe_model.h) today; a
// Unigram model plugs in with an adapter over its own class (see ModelFromJson in tokenizer.cpp).
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/tokenizer/json_fields.h"

namespace fusec::rt::tok {

class TokenizerModel {
 public:
  virtual ~TokenizerModel() = default;
  /// Appends the ids of one piece (normalized and pre-tokenized) to `ids`.
  virtual void Tokenize(std::string_view piece, std::vector<int32_t>* ids) const = 0;
  virtual std::optional<int32_t> TokenToId(std::string_view token) const = 0;
  /// The token's text; empty for an id the model does not have.
  virtual const std::string& IdToToken(int32_t id) const = 0;
  /// One more than the model's largest id.
  virtual int32_t vocab_size() const = 0;
};

}  // namespace fusec::rt::tok

namespace fusec::rt::tok {

/// Any class with the TokenizerModel methods (UnigramModel) as a TokenizerModel, without a base class of
/// its own.
template <typename Model>
class AdaptedModel final : public TokenizerModel {
 public:
  explicit AdaptedModel(Model model) : model_(std::move(model)) {}
  void Tokenize(std::string_view piece, std::vector<int32_t>* ids) const override { model_.Tokenize(piece, ids); }
  std::optional<int32_t> TokenToId(std::string_view token) const override { return model_.TokenToId(token); }
  const std::string& IdToToken(int32_t id) const override { return model_.IdToToken(id); }
  int32_t vocab_size() const override { return model_.vocab_size(); }

 private:
  Model model_;
};

/// A model read by a `FromJson(json, path, &error)` that returns std::optional, or the refusal it gave.
template <typename Model>
std::unique_ptr<TokenizerModel> AdaptedModelOrRefuse(std::optional<Model> model, const std::string& error) {
  if (!model) Refuse(error);
  return std::make_unique<AdaptedModel<Model>>(std::move(*model));
}

}  // namespace fusec::rt::tok
