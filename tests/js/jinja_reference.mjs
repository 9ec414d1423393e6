// The Jinja reference for fusec's interpreter tests (tests/runtime/jinja_test.cpp): renders every template
// of a batch with @huggingface/jinja, so the test binary starts Node.js once. Reads a JSON request on stdin,
// writes the answer on stdout:
//   {"renders": [{"template": "...", "context": {...}}, ...]}  ->  {"renders": ["text" | {"error": "..."}, ...]}
// A template that does not parse is an error too ({"error": ..., "parse": true}). With "now" (Unix seconds),
// the clock that strftime_now reads is fixed there (local time: the caller sets TZ).
import { Template } from "@huggingface/jinja";
import { readFileSync } from "node:fs";

const request = JSON.parse(readFileSync(0, "utf8"));
if (request.now !== undefined) {
  const fixed = request.now * 1000;
  const RealDate = Date;
  globalThis.Date = class extends RealDate {
    constructor(...args) {
      if (args.length === 0) super(fixed);
      else super(...args);
    }
    static now() {
      return fixed;
    }
  };
}
const parsed = new Map();  // the same template source is parsed once
const renders = (request.renders ?? []).map(({ template, context }) => {
  let compiled = parsed.get(template);
  if (compiled === undefined) {
    try {
      compiled = new Template(template);
    } catch (error) {
      compiled = { parseError: String(error?.message ?? error) };
    }
    parsed.set(template, compiled);
  }
  if (compiled.parseError !== undefined) return { error: compiled.parseError, parse: true };
  try {
    return compiled.render(context);
  } catch (error) {
    return { error: String(error?.message ?? error) };
  }
});
process.stdout.write(JSON.stringify({ renders }));
