// Writes tests/text/corpus.txt: lines of varied text for the tokenizer
// agreement test (tests/text/README.md). Deterministic (a seeded PRNG), so
// the file can be regenerated and diffed. Run: node tests/text/make_corpus.mjs
import { writeFileSync } from "node:fs";
import { fileURLToPath } from "node:url";

let state = 0x9e3779b9;
const rand = () => {
  // xorshift32
  state ^= state << 13; state >>>= 0;
  state ^= state >>> 17;
  state ^= state << 5; state >>>= 0;
  return state / 4294967296;
};
const pick = (a) => a[Math.floor(rand() * a.length)];

const fragments = {
  english: [
    "The quick brown fox jumps over the lazy dog.", "In the beginning was the Word.",
    "It's a truth universally acknowledged, isn't it?", "They'll say we'd've done it; I'm sure you're right.",
    "HELLO WORLD!!!", "Don't STOP... believing", "e-mail me at someone@example.com or visit https://example.org/a?b=c&d=e",
    "Mr. O'Neil's dog", "rock'n'roll", "He said: \"no\" -- then left.", "A (parenthetical) remark; a [bracketed] one; {braces}.",
    "naïve café résumé coöperate", "   leading spaces", "trailing spaces   ", "tabs\tbetween\twords",
    "And God said, Let there be light: and there was light.", "Once upon a time, there was a little girl named Lily.",
  ],
  accents: [
    "Français: où est la bibliothèque ? Ça va très bien, merci.", "Deutsch: Größe, Straße, Äpfel, Übermaß, Öl.",
    "Español: ¿Dónde está el niño? ¡Qué bien!", "Português: São Paulo, coração, não.", "Tiếng Việt: Xin chào, tôi là người Việt Nam.",
    "Čeština: Příliš žluťoučký kůň úpěl ďábelské ódy.", "Polski: Zażółć gęślą jaźń.", "Ελληνικά: Καλημέρα κόσμε, τί κάνεις;",
    "Русский: Съешь же ещё этих мягких французских булок, да выпей чаю.", "Türkçe: İstanbul, ığdır, şişe, çiçek.",
    "decomposed: e\u0301 a\u0308 n\u0303 o\u0302", "Å vs A\u030A vs \u212B (angstrom)", "ﬁ ligature, ① circled, ｆｕｌｌｗｉｄｔｈ",
  ],
  cjk: [
    "中文：我爱自然语言处理。今天天气很好！", "日本語：東京は日本の首都です。ひらがな、カタカナ。", "한국어: 안녕하세요, 세계! 반갑습니다.",
    "混合 mixed 文字 text 123 テスト", "「引用」『二重』【括弧】〔記号〕", "全角　スペース　と　句読点、。",
    "繁體中文：臺灣，電腦，資訊。", "數字１２３４５ and ６７８",
  ],
  other_scripts: [
    "العربية: مرحبا بالعالم", "עברית: שלום עולם", "हिन्दी: नमस्ते दुनिया", "ไทย: สวัสดีชาวโลก", "ქართული: გამარჯობა",
    "Ethiopic: ሰላም ዓለም", "Tamil: வணக்கம் உலகம்", "Bengali: ওহে বিশ্ব", "Armenian: Բարեւ աշխարհ",
  ],
  emoji: [
    "I ❤️ Unicode 😀😃😄", "family: 👨‍👩‍👧‍👦 and 👩🏽‍💻 coder", "flags 🇫🇷🇯🇵🇺🇸 🏳️‍🌈", "🤖 robots 🚀 rockets ✨",
    "keycaps 1️⃣ #️⃣ *️⃣", "skin tones 👋🏻👋🏼👋🏽👋🏾👋🏿", "zwj 🧑‍🤝‍🧑 🐻‍❄️", "math ∑∫∂√∞≠≤≥ ±×÷", "arrows ←↑→↓↔ ⇒ ⇔",
  ],
  code: [
    "int main(int argc, char** argv) { return 0; }", "def f(x):\n    return x ** 2  # square", "for (size_t i = 0; i < n; ++i) sum += a[i];",
    "const re = /^[a-z0-9_-]{3,16}$/u;", "SELECT id, name FROM users WHERE age >= 18 ORDER BY name;", "    if (x) {\n        y();\n    }",
    "#include <vector>", "git commit -m \"fix: off-by-one\"", "x = {'a': 1, \"b\": [2, 3.5e-7, None]}", "<div class=\"a\">&amp; &lt;tag&gt;</div>",
    "printf(\"%d%%\\n\", 42);", "λx. x + 1", "a:=b; c+=d; e->f; g::h; i<<=2; j>>>=1",
  ],
  numbers: [
    "1234567890", "3.14159265358979", "1,000,000 and 1.000.000", "2026-12-02T03:04:05Z", "+1 (555) 123-4567",
    "0x1F 0b1010 0o777", "12345678901234567890123", "v1.2.3-rc.4", "50% off, $19.99, €5, £3, ¥100", "١٢٣ ٤٥٦ (Arabic-Indic)",
    "Ⅻ Roman ⅻ", "½ ¼ ¾ ⅓",
  ],
  whitespace: [
    "  ", "\t\t", "a  b   c    d", "word\u00a0nbsp", "thin\u2009space", "ideographic\u3000space", "line\u2028sep",
    "zero\u200bwidth", "bom\ufeffinside", "nel\u0085char", "mongolian\u180evowel", " \t \t ", "\r", "cr\rin middle", "end\r",
    "vertical\u000btab", "form\u000cfeed",
  ],
  special: [
    "<s>", "</s>", "<unk>", "<|endoftext|>", "<|im_start|>user\nhi<|im_end|>", "<|begin_of_text|>hello",
    "text<|endoftext|>more text", "<s> spaced </s>", "<0x41> byte literal", "<<s>>", "<|eot_id|>",
  ],
  contractions: ["'s 'S 't 'T 're 'RE 've 'm 'll 'd", "WE'LL", "she'S", "y'all'd've", "'tis", "don’t (curly)"],
};

const categories = Object.keys(fragments);
const separators = [" ", " ", " ", "  ", "\t", ", ", " - ", "   ", ""];
const lines = [];
// Every fragment once on its own.
for (const c of categories) for (const f of fragments[c]) lines.push(f.replace(/\n/g, " "));
// Then random mixtures: 1 to 5 fragments, sometimes case-changed or with digits.
while (lines.length < 2600) {
  const n = 1 + Math.floor(rand() * 5);
  let parts = [];
  for (let i = 0; i < n; ++i) {
    let f = pick(fragments[pick(categories)]).replace(/\n/g, " ");
    const r = rand();
    if (r < 0.08) f = f.toUpperCase();
    else if (r < 0.14) f = f.toLowerCase();
    else if (r < 0.2) f = f.slice(0, 1 + Math.floor(rand() * f.length));
    else if (r < 0.25) f = String(Math.floor(rand() * 1e9)) + f;
    parts.push(f);
  }
  let line = parts[0];
  for (let i = 1; i < parts.length; ++i) line += pick(separators) + parts[i];
  lines.push(line);
}
// Long lines (SentencePiece-style tokenizers see a whole line as one word).
for (let i = 0; i < 20; ++i) {
  let line = "";
  while (line.length < 2000) line += pick(fragments[pick(categories)]).replace(/\n/g, " ") + " ";
  lines.push(line);
}
lines.push("a".repeat(300), "ab".repeat(200), " ".repeat(100) + "x", "9".repeat(100), "😀".repeat(50));

const text = Buffer.from(lines.join("\n") + "\n", "utf8");
// Lines of ill-formed UTF-8 (raw bytes): a TextDecoder turns each maximal
// bad subpart into U+FFFD; slimpack must do the same before tokenizing.
const bad = [
  [0x61, 0x80, 0x62], [0xc3], [0xc3, 0x28], [0xe2, 0x82], [0xe2, 0x82, 0x41], [0xf0, 0x9f, 0x98], [0xf0, 0x9f, 0x98, 0x41],
  [0xed, 0xa0, 0x80], [0xc0, 0xaf], [0xf8, 0x88, 0x80, 0x80, 0x80], [0xff, 0xfe], [0xf4, 0x90, 0x80, 0x80],
  [0x48, 0x69, 0xe0, 0x80, 0xaf, 0x21], [0x20, 0xc2, 0x20, 0xa0], [0xef, 0xbb, 0xbf, 0x42, 0x4f, 0x4d],
];
const badLines = Buffer.concat(bad.map((b) => Buffer.concat([Buffer.from("bad: "), Buffer.from(b), Buffer.from(" end\n")])));
const out = fileURLToPath(new URL("corpus.txt", import.meta.url));
writeFileSync(out, Buffer.concat([text, badLines]));
console.log(`wrote ${out}: ${lines.length + bad.length} lines`);
