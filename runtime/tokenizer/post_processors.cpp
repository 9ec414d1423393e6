#include "runtime/tokenizer/post_processors.h"

namespace fusec::rt::tok {

void TemplateProcessing::Process(std::vector<int32_t>& ids) const {
  ids.insert(ids.begin(), prefix_.begin(), prefix_.end());
  ids.insert(ids.end(), suffix_.begin(), suffix_.end());
}

namespace {

/// TemplateProcessing: `single` is a list of `{"SpecialToken": {"id": name}}` and `{"Sequence": {"id": "A"}}`;
/// each special token's ids come from `special_tokens[name].ids`.
std::unique_ptr<PostProcessor> TemplateFromJson(const Json& json, const std::string& where, int32_t vocab_size) {
  const Json& special = ObjectField(json, "special_tokens", where + ".special_tokens");
  const Json& single = ListField(json, "single", where + ".single");
  std::vector<int32_t> prefix;
  std::vector<int32_t> suffix;
  bool after = false;
  for (size_t i = 0; i < single.size(); ++i) {
    const Json& piece = single[i];
    const std::string piece_path = Indexed(where + ".single", i);
    if (!piece.is_object()) Malformed(piece_path, "an object (`Sequence` or `SpecialToken`)", piece);
    if (piece.contains("Sequence")) {
      after = true;
      continue;
    }
    if (!piece.contains("SpecialToken")) Refuse("`" + piece_path + "` is neither a `Sequence` nor a `SpecialToken`");
    const Json& token = ObjectField(piece, "SpecialToken", piece_path + ".SpecialToken");
    std::string id = StringField(token, "id", piece_path + ".SpecialToken.id", "");
    if (!special.contains(id) || !special[id].is_object() || !special[id].contains("ids")) {
      Refuse("post-processor token `" + id + "` has no id (`" + where + ".special_tokens` does not give it)");
    }
    const std::string ids_path = where + ".special_tokens." + id + ".ids";
    const Json& ids = ListField(special[id], "ids", ids_path);
    for (size_t k = 0; k < ids.size(); ++k) {
      int32_t token_id = TokenIdValue(ids[k], Indexed(ids_path, k));
      if (token_id >= vocab_size) {
        Refuse("post-processor token `" + id + "` has id " + std::to_string(token_id) +
               ", which is not in the vocabulary (`" + Indexed(ids_path, k) + "`)");
      }
      (after ? suffix : prefix).push_back(token_id);
    }
  }
  return std::make_unique<TemplateProcessing>(std::move(prefix), std::move(suffix));
}

}  // namespace

std::unique_ptr<PostProcessor> PostProcessorFromJson(const Json& json, const std::string& path, int32_t vocab_size) {
  const std::string type = ComponentType(json, path);
  if (type == "TemplateProcessing") return TemplateFromJson(json, path, vocab_size);
  if (type == "ByteLevel") return std::make_unique<ByteLevelProcessor>();
  if (type == "Sequence") {
    const Json& list = ListField(json, "processors", path + ".processors");
    std::vector<std::unique_ptr<PostProcessor>> steps;
    for (size_t i = 0; i < list.size(); ++i) {
      steps.push_back(PostProcessorFromJson(list[i], Indexed(path + ".processors", i), vocab_size));
    }
    return std::make_unique<PostProcessorSequence>(std::move(steps));
  }
  Refuse("post-processor `" + type + "` is not supported (`" + path + "`; TemplateProcessing, ByteLevel and Sequence are)");
}

}  // namespace fusec::rt::tok
