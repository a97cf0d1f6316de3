// Reference token ids for tests/text/corpus.txt from an independent
// implementation, @huggingface/tokenizers (the JavaScript tokenizers of
// transformers.js). tests/text/README.md says how to install it and which
// tokenizer files are used.
//   node tests/text/make_reference.mjs NODE_MODULES_DIR NAME=TOKENIZER_DIR...
// writes tests/text/ref/NAME.json (or $REF_OUT/NAME.json): for every corpus line its ids without
// special tokens and their decoded text; for the first 64 lines the ids with
// the post-processor's special tokens.
import { readFileSync, writeFileSync, mkdirSync } from "node:fs";
import { createHash } from "node:crypto";
import { createRequire } from "node:module";
import path from "node:path";
import { fileURLToPath } from "node:url";

const [modules, ...specs] = process.argv.slice(2);
if (!modules || specs.length === 0) {
  console.error("usage: node make_reference.mjs NODE_MODULES_DIR NAME=TOKENIZER_DIR...");
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(modules), "noop.js"));
const { Tokenizer } = require("@huggingface/tokenizers");
const version = JSON.parse(
  readFileSync(path.join(path.resolve(modules), "@huggingface/tokenizers/package.json"), "utf8")).version;

const here = path.dirname(fileURLToPath(import.meta.url));
const bytes = readFileSync(path.join(here, "corpus.txt"));
// WHATWG decoding: ill-formed sequences become U+FFFD, as slimpack does.
let text = new TextDecoder("utf-8", { fatal: false, ignoreBOM: true }).decode(bytes);
if (text.endsWith("\n")) text = text.slice(0, -1);
const lines = text.split("\n");
// REF_OUT: another output directory (check_reference.sh compares with the committed files).
const outDir = process.env.REF_OUT || path.join(here, "ref");
mkdirSync(outDir, { recursive: true });

for (const spec of specs) {
  const [name, dir] = spec.split("=");
  const json = readFileSync(path.join(dir, "tokenizer.json"));
  let configText = "{}";
  try { configText = readFileSync(path.join(dir, "tokenizer_config.json"), "utf8"); } catch {}
  const tok = new Tokenizer(JSON.parse(json.toString("utf8")), JSON.parse(configText));
  const ids = [], decoded = [], special = [];
  let tokens = 0;
  for (let i = 0; i < lines.length; ++i) {
    const e = tok.encode(lines[i], { add_special_tokens: false }).ids;
    ids.push(e);
    tokens += e.length;
    decoded.push(e.length ? tok.decode(e) : "");
    if (i < 64) special.push(tok.encode(lines[i], { add_special_tokens: true }).ids);
  }
  const out = {
    reference: `@huggingface/tokenizers ${version}`,
    tokenizer_sha256: createHash("sha256").update(json).digest("hex"),
    corpus_sha256: createHash("sha256").update(bytes).digest("hex"),
    lines: lines.length, tokens, ids, decoded, ids_with_special: special,
  };
  writeFileSync(path.join(outDir, `${name}.json`), JSON.stringify(out));
  console.log(`${name}: ${lines.length} lines, ${tokens} tokens`);
}
