// The reference for tests/runtime/tokenizer_families_test.cpp and bench/tokenizer_bench.cpp: tokenizers
// built by @lenml/tokenizers (transformers.js's tokenizers) from a tokenizer.json and tokenizer_config.json,
// given by path (the real files of the @lenml/tokenizer-* packages) or inline (small hand-written ones).
// Reads a JSON request on stdin, writes a JSON answer on stdout:
//   {"cases": [{"tokenizer_path" | "tokenizer_json", "config_path" | "config_json",
//               "texts": [...], "decode": [[ids...], ...]}, ...],
//    "bench": {"tokenizers": [{"tokenizer_path", "config_path"}, ...], "texts": [...]}}
//   -> {"cases": [{"encode": [{"plain": [...], "special": [...]}, ...],           (add_special_tokens off, on)
//                  "decode": [{"keep": "...", "skip": "..."}, ...],             (skip_special_tokens off, on)
//                  "error": "..." when the tokenizer does not load}],
//       "bench": [{"seconds": s, "tokens": n}, ...]}     (one cold encode of every text, per tokenizer)
// Each text's ids with special tokens are also decoded (appended to "decode", after the given id lists).
import { TokenizerLoader } from "@lenml/tokenizers";
import { readFileSync } from "node:fs";

function load(spec) {
  const tokenizerJSON = spec.tokenizer_json ?? JSON.parse(readFileSync(spec.tokenizer_path, "utf8"));
  const tokenizerConfig = spec.config_json ?? (spec.config_path ? JSON.parse(readFileSync(spec.config_path, "utf8")) : {});
  return TokenizerLoader.fromPreTrained({ tokenizerJSON, tokenizerConfig });
}

const request = JSON.parse(readFileSync(0, "utf8"));
const answer = {};
if (request.cases) {
  answer.cases = request.cases.map((spec) => {
    let tokenizer;
    try {
      tokenizer = load(spec);
    } catch (error) {
      return { error: String(error.message ?? error) };
    }
    const encode = (spec.texts ?? []).map((text) => ({
      plain: Array.from(tokenizer.encode(text, { add_special_tokens: false })),
      special: Array.from(tokenizer.encode(text, { add_special_tokens: true })),
    }));
    const lists = [...(spec.decode ?? []), ...encode.map((e) => e.special)];
    // transformers.js refuses to decode an empty list; Hugging Face decodes it to "".
    const decode = lists.map((ids) => ids.length === 0 ? { keep: "", skip: "" } : {
      keep: tokenizer.decode(ids, { skip_special_tokens: false }),
      skip: tokenizer.decode(ids, { skip_special_tokens: true }),
    });
    return { encode, decode };
  });
}
if (request.bench) {
  // One cold run per tokenizer (no warm-up: fusec's side is timed cold too), loading not counted.
  answer.bench = request.bench.tokenizers.map((spec) => {
    const tokenizer = load(spec);
    const start = process.hrtime.bigint();
    let tokens = 0;
    for (const text of request.bench.texts) tokens += tokenizer.encode(text, { add_special_tokens: false }).length;
    const seconds = Number(process.hrtime.bigint() - start) / 1e9;
    return { seconds, tokens };
  });
}
process.stdout.write(JSON.stringify(answer));
