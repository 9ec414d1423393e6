// The independent reference for fusec's Unigram model (tests/runtime/unigram_model_test.cpp): the Unigram of
// @lenml/tokenizers (a JavaScript port of transformers.js, itself a port of Hugging Face `tokenizers`).
// Reads a JSON request on stdin, writes the answer on stdout:
//   {"cases": [{"tokenizer": <tokenizer.json object>, "texts": ["text", ...]}, ...]}
//     -> {"cases": [{"ids": [[id, ...], ...], "pieces": [["piece", ...], ...], "rust_ids": [[id, ...], ...]}, ...]}
//   {"normalize": {"normalizer": <tokenizer.json normalizer>, "texts": ["text", ...]}}
//     -> {"normalize": ["normalized text", ...]}   (for the Precompiled normalizer's test)
// `ids` are the port's own encode (no special tokens); `pieces` its segmentation after fusing unknowns.
// The port has no Unigram `byte_fallback`, so `rust_ids` applies the Rust library's rule (model.rs,
// `Model::tokenize`) to the port's pieces: a piece not in the vocabulary becomes its UTF-8 bytes as
// `<0xNN>` pieces when every one exists, otherwise the unknown id.
import { tokenizers } from "@lenml/tokenizers";
import { readFileSync } from "node:fs";

const request = JSON.parse(readFileSync(0, "utf8"));
const answer = {};
answer.cases = (request.cases ?? []).map(({ tokenizer: json, texts }) => {
  const tokenizer = new tokenizers.PreTrainedTokenizer(json, {});
  const ids_of = new Map(json.model.vocab.map(([piece], id) => [piece, id]));
  const unk_id = json.model.unk_id;
  const rust_id = (piece) => {
    if (ids_of.has(piece)) return [ids_of.get(piece)];
    if (json.model.byte_fallback) {
      const bytes = Array.from(new TextEncoder().encode(piece), (b) =>
        ids_of.get(`<0x${b.toString(16).toUpperCase().padStart(2, "0")}>`));
      if (bytes.every((id) => id !== undefined)) return bytes;
    }
    return [unk_id];
  };
  const pieces = texts.map((text) => tokenizer.tokenize(text));
  return {
    ids: texts.map((text) => Array.from(tokenizer.encode(text, { add_special_tokens: false }))),
    pieces,
    rust_ids: pieces.map((list) => list.flatMap(rust_id)),
  };
});
if (request.normalize) {
  const { normalizer, texts } = request.normalize;
  const json = { added_tokens: [], normalizer, pre_tokenizer: null, post_processor: null, decoder: null,
                 model: { type: "Unigram", unk_id: 0, vocab: [["<unk>", 0]] } };
  const tokenizer = new tokenizers.PreTrainedTokenizer(json, {});
  answer.normalize = texts.map((text) => tokenizer.normalizer(text));
}
process.stdout.write(JSON.stringify(answer));
