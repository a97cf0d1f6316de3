// The slimpack program as users and CI scripts see it: exit codes, JSON keys,
// error messages naming the file.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "tests/tools/cli_test_util.h"

using namespace slim_test;

TEST_CASE("usage errors and bad input exit 2 with a message naming the file", "[cli]") {
  CHECK(Slimpack("").code == 2);
  CHECK(Slimpack("frobnicate").code == 2);
  CHECK(Slimpack("eval " + kModels + "stories260k").code == 2);  // --data missing
  Result missing = Slimpack("inspect /nonexistent/model.onnx");
  CHECK(missing.code == 2);
  CHECK_THAT(missing.out, Catch::Contains("/nonexistent/model.onnx"));

  const std::string garbage = "/tmp/slimpack_cli_garbage.onnx";
  std::ofstream(garbage) << "this is not a protobuf";
  Result bad = Slimpack("inspect " + garbage);
  CHECK(bad.code == 2);
  CHECK_THAT(bad.out, Catch::Contains(garbage));

  const std::string truncated = "/tmp/slimpack_cli_truncated.safetensors";
  std::ofstream(truncated) << "abc";
  Result trunc = Slimpack("inspect " + truncated);
  CHECK(trunc.code == 2);
  CHECK_THAT(trunc.out, Catch::Contains(truncated));

  Result bad_data = Slimpack("eval " + kModels + "stories260k --data /nonexistent/tokens.json");
  CHECK(bad_data.code == 2);
  CHECK_THAT(bad_data.out, Catch::Contains("/nonexistent/tokens.json"));
  CHECK(Slimpack("run " + kModels + "stories260k --tokens '1 x'").code == 2);
  CHECK(Slimpack("run " + kModels + "stories260k --tokens '1 99999'").code == 2);
  Result no_vocab = Slimpack("run " + kModels + "stories260k --prompt hello");
  CHECK(no_vocab.code == 2);
  CHECK_THAT(no_vocab.out, Catch::Contains("byte vocabulary"));
}

TEST_CASE("every subcommand has --help", "[cli]") {
  for (const char* cmd : {"inspect", "run", "eval", "synth", "compile", "verify"}) {
    Result r = Slimpack(std::string(cmd) + " --help");
    INFO(cmd);
    CHECK(r.code == 0);
    CHECK_THAT(r.out, Catch::Contains("Example"));
  }
}

TEST_CASE("inspect reports parameters and the decoder", "[cli]") {
  auto j = SlimpackJson("inspect " + kModels + "stories260k");
  CHECK(j["format"] == "safetensors");
  // 260,032 weights (models/stories260k/README.md) + the 4 RoPE inverse
  // frequencies the graph keeps as a constant (head_dim / 2).
  CHECK(j["parameters"] == 260032 + 4);
  CHECK(j["decoder"]["layers"] == 5);
  CHECK(j["decoder"]["kv_heads"] == 4);
  CHECK(j["bytes_per_token"]["weights"].get<uint64_t>() > 0);
  auto k = SlimpackJson("inspect " + kModels + "kjv-byte");
  CHECK(k["parameters"] == 855168 + 16);  // + head_dim / 2 RoPE frequencies
  CHECK(k["vocab"]["kind"] == "bytes");
}

TEST_CASE("eval and run write the DESIGN.md JSON keys", "[cli]") {
  auto e = SlimpackJson("eval " + kModels + "stories260k --data " + kModels +
                        "stories260k/calib_tokens.json --limit 2 --quiet");
  CHECK(e["tokens_evaluated"] == 2 * 255);
  CHECK(e["nll"].get<double>() > 1.0);
  CHECK(e["perplexity"].get<double>() == Approx(std::exp(e["nll"].get<double>())));

  auto r = SlimpackJson("run " + kModels + "kjv-byte --prompt 'In the beginning' -n 12");
  CHECK(r["tokens"].size() == 12);
  CHECK(r["tokens_per_s"].get<double>() > 0);
  CHECK(r["prefill_tokens_per_s"].get<double>() > 0);
  CHECK(r["bytes_per_token"].get<uint64_t>() > 0);
  CHECK(r["text"].get<std::string>().size() == 12);
  // Greedy decoding is deterministic: the README's sample continues with " of the LORD".
  CHECK(r["text"].get<std::string>().rfind(" of the LORD", 0) == 0);
}
