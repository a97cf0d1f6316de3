// Text end to end: a tiny random model with a real tokenizer (synth
// --tokenizer), calibrated on plain text, verified on JSON Lines, prompted
// with text; slimpack tokenize; the errors a user meets on the way.
#include <catch2/catch.hpp>
#include <fstream>

#include "tests/test_util.h"
#include "tests/tools/cli_test_util.h"

using slim_test::Slimpack;
using slim_test::SlimpackJson;
using slim_test::TempDir;
using slim_test::WriteFile;

namespace {

const std::string kTokenizers = SLIMPACK_SOURCE_DIR "/tests/text/tokenizers/";

nlohmann::json ReadJson(const std::string& path) {
  std::ifstream in(path);
  REQUIRE(in.good());
  return nlohmann::json::parse(in);
}

// Held-out text: not the corpus the tokenizer test uses.
const char* kText =
    "It was the best of times, it was the worst of times, it was the age of wisdom, it was the age of\n"
    "foolishness, it was the epoch of belief, it was the epoch of incredulity, it was the season of Light,\n"
    "it was the season of Darkness, it was the spring of hope, it was the winter of despair.\n";

}  // namespace

TEST_CASE("synth --tokenizer, compile --calib TEXT, verify --data JSONL, run --prompt", "[tools][text]") {
  const TempDir dir("text_e2e");
  const std::string model = dir / "m";
  REQUIRE(Slimpack("synth -o " + model + " --tokenizer " + kTokenizers +
                   "gpt2 --hidden 32 --intermediate 64 --layers 2 --heads 2 --kv-heads 1")
              .code == 0);
  const nlohmann::json config = ReadJson(model + "/config.json");
  CHECK(config["vocab_size"] == 50257);
  CHECK(config["bos_token_id"] == 50256);  // <|endoftext|> (tokenizer_config.json)
  CHECK(config["eos_token_id"] == 50256);

  std::string text;
  for (int i = 0; i < 8; ++i) text += kText;
  WriteFile(dir / "calib.txt", text);
  const std::string packed = dir / "m.slim";
  const slim_test::Result c = Slimpack("compile " + model + " -o " + packed + " --preset int8 --calib " +
                                      dir / "calib.txt" + " --seq-len 32 --quiet --report " + dir / "r.json");
  INFO(c.out);
  REQUIRE(c.code == 0);
  const nlohmann::json report = ReadJson(dir / "r.json");
  const nlohmann::json tok_json = SlimpackJson("tokenize " + model + " --file " + dir / "calib.txt");
  // GPT-2 adds no special tokens, so the windows are the text's ids cut in 32s.
  size_t text_tokens = 0;
  for (const auto& line : tok_json["ids"]) text_tokens += line.size();
  CHECK(report["calibration"]["sequences"].get<size_t>() >= 1);
  CHECK(report["provenance"]["calib_tokenizer_sha256"].get<std::string>().size() == 64);
  CHECK(text_tokens > 32);

  // The packed file carries the tokenizer: same ids from it as from the directory.
  CHECK(SlimpackJson("tokenize " + packed + " --text 'Hello, world'") ==
        SlimpackJson("tokenize " + model + " --text 'Hello, world'"));

  WriteFile(dir / "held_out.jsonl",
            "{\"text\": \"Call me Ishmael. Some years ago, never mind how long precisely.\"}\n\n"
            "{\"text\": \"Happy families are all alike; every unhappy family is unhappy in its own way.\"}\n");
  const nlohmann::json v = SlimpackJson("verify " + packed + " --reference " + model + " --data " +
                                        dir / "held_out.jsonl" + " --max-kl 0.01 --quiet");
  CHECK(v["pass"] == true);
  CHECK(v["data"]["kind"] == "jsonl");
  CHECK(v["data"]["sequences"] == 2);
  CHECK(v["data"]["tokenizer_sha256"] == report["provenance"]["calib_tokenizer_sha256"]);

  const nlohmann::json run = SlimpackJson("run " + packed + " --prompt 'Hello, world' -n 4");
  CHECK(run["prompt_tokens"] == SlimpackJson("tokenize " + model + " --text 'Hello, world' --add-special")["ids"][0]);
  CHECK(run["text"].is_string());
}

TEST_CASE("tokenize: one line of ids per input line, special tokens only on request", "[tools][text]") {
  const TempDir dir("tokenize");
  WriteFile(dir / "lines.txt", "Hello world\n\nsecond line\n");
  const nlohmann::json j = SlimpackJson("tokenize " + kTokenizers + "gpt2/tokenizer.json --file " + dir / "lines.txt");
  REQUIRE(j["ids"].size() == 3);
  CHECK(j["ids"][0] == nlohmann::json({15496, 995}));  // "Hello", " world"
  CHECK(j["ids"][1].empty());
  const slim_test::Result r = Slimpack("tokenize " + kTokenizers + "qwen2_5 --text 'Hello world'");
  CHECK(r.code == 0);
  CHECK(r.out == "9707 1879\n");
}

TEST_CASE("tokenize --decode: ids back to text, per line, errors naming the line and column", "[tools][text]") {
  const TempDir dir("detokenize");
  const std::string gpt2 = kTokenizers + "gpt2/tokenizer.json";
  slim_test::Result r = Slimpack("tokenize " + gpt2 + " --decode --text '15496 995'");
  CHECK(r.code == 0);
  CHECK(r.out == "Hello world\n");
  // Spaces, commas and a JSON array's brackets all separate ids; an empty
  // line is the empty text; <|endoftext|> (50256) is special.
  WriteFile(dir / "ids.txt", "15496, 995\n\n[50256, 15496]\n");
  nlohmann::json j = SlimpackJson("tokenize " + gpt2 + " --decode --file " + dir / "ids.txt");
  CHECK(j["texts"] == nlohmann::json({"Hello world", "", "<|endoftext|>Hello"}));
  j = SlimpackJson("tokenize " + gpt2 + " --decode --skip-special --file " + dir / "ids.txt");
  CHECK(j["texts"][2] == "Hello");
  // Round trip through the encoder on the held-out text.
  WriteFile(dir / "text.txt", kText);
  const nlohmann::json ids = SlimpackJson("tokenize " + gpt2 + " --file " + dir / "text.txt");
  std::string id_lines;
  for (const auto& line : ids["ids"]) id_lines += line.dump() + "\n";
  WriteFile(dir / "text_ids.txt", id_lines);
  const nlohmann::json back = SlimpackJson("tokenize " + gpt2 + " --decode --file " + dir / "text_ids.txt");
  std::string joined;
  for (const auto& t : back["texts"]) joined += t.get<std::string>() + "\n";
  CHECK(joined == kText);

  WriteFile(dir / "bad.txt", "15496\n15496 12x\n");
  r = Slimpack("tokenize " + gpt2 + " --decode --file " + dir / "bad.txt");
  CHECK(r.code == 2);
  CHECK(r.out.find("bad.txt:2: '12x' (column 7) is not a token id") != std::string::npos);
  r = Slimpack("tokenize " + gpt2 + " --decode --text '15496 99999999'");
  CHECK(r.code == 2);
  CHECK(r.out.find("token id 99999999 is outside the vocabulary") != std::string::npos);
  // Qwen2.5 has no unknown token either; a negative id is not an id.
  r = Slimpack("tokenize " + kTokenizers + "qwen2_5 --decode --text '9707 -1'");
  CHECK(r.code == 2);
  CHECK(r.out.find("'-1' (column 6) is not a token id") != std::string::npos);
  CHECK(Slimpack("tokenize " + gpt2 + " --decode --add-special --text 1").code == 2);
  CHECK(Slimpack("tokenize " + gpt2 + " --skip-special --text hi").code == 2);
}

TEST_CASE("text data errors name the file, the line and what is missing", "[tools][text]") {
  const TempDir dir("text_errors");
  WriteFile(dir / "a.txt", kText);
  // A model without a tokenizer.json cannot read text.
  slim_test::Result r = Slimpack("compile " + slim_test::kModels + "kjv-byte -o " + dir / "o.slim" +
                                " --preset int8 --calib " + dir / "a.txt");
  CHECK(r.code == 2);
  CHECK(r.out.find("tokenizer.json") != std::string::npos);
  CHECK(!std::ifstream(dir / "o.slim").good());

  const std::string model = dir / "m";
  REQUIRE(Slimpack("synth -o " + model + " --tokenizer " + kTokenizers + "gpt2 --hidden 32 --intermediate 64 --layers 1 "
                   "--heads 2 --kv-heads 1").code == 0);
  WriteFile(dir / "bad.jsonl", "{\"text\": \"fine\"}\n{\"txt\": \"typo\"}\n");
  r = Slimpack("eval " + model + " --data " + dir / "bad.jsonl");
  CHECK(r.code == 2);
  CHECK(r.out.find("bad.jsonl:2") != std::string::npos);
  r = Slimpack("tokenize " + model);
  CHECK(r.code == 2);
  r = Slimpack("tokenize " + slim_test::kModels + "kjv-byte --text hi");
  CHECK(r.code == 2);
  CHECK(r.out.find("no tokenizer") != std::string::npos);
  r = Slimpack("synth -o " + dir / "m2" + " --tokenizer " + kTokenizers + "gpt2 --vocab 100");
  CHECK(r.code == 2);
  CHECK(r.out.find("smaller than the tokenizer") != std::string::npos);
}
