// compile --calib-mode sequential on kjv-byte (calibration sequences
// 64..71): a complete report (one row per weight, from the step of its
// layer), identical bytes at 1 and 2 threads, and clear refusals.
#include <filesystem>
#include <fstream>
#include <iterator>

#include "tests/tools/cli_test_util.h"

using namespace slim_test;

namespace {
const std::string kKjv = kModels + "kjv-byte";
const std::string kCalib = " --calib " + kKjv + "/calib_tokens.json --calib-skip 64 --calib-sequences 8 --quiet";

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}
}  // namespace

TEST_CASE("compile --calib-mode sequential: report, determinism", "[cli][sequential]") {
  const TempDir dir("cli_sequential");
  const std::string a = dir / "a.slim", b = dir / "b.slim";
  const nlohmann::json j = SlimpackJson("compile " + kKjv + " -o " + a + " --preset int4-gptq --calib-mode sequential" +
                                        kCalib + " --threads 1");
  CHECK(j["calibration"]["mode"] == "sequential");
  CHECK(j["calibration"]["steps"] == 5);
  CHECK(j["provenance"]["calib_mode"] == "sequential");
  const auto& quant = j["passes"][0];
  CHECK(quant["name"] == "quantize_int4");
  CHECK(quant["tensors"].size() == 30);
  CHECK(quant["counters"]["weights"] == 30);
  CHECK(quant["counters"]["kept"] == 0);
  CHECK(quant["counters"]["quantized"] == 30);
  for (const auto& t : quant["tensors"]) {
    INFO(t["name"]);
    CHECK(t["reason"] != "outside this sequential-calibration step");
    if (t["role"] == "linear") CHECK(t["method"] == "gptq");
  }
  SlimpackJson("compile " + kKjv + " -o " + b + " --preset int4-gptq --calib-mode sequential" + kCalib +
               " --threads 2");
  CHECK(ReadAll(a) == ReadAll(b));
  // One-pass statistics give other codes for the layers after the first.
  const std::string c = dir / "c.slim";
  SlimpackJson("compile " + kKjv + " -o " + c + " --preset int4-gptq" + kCalib);
  CHECK(ReadAll(a) != ReadAll(c));
  const nlohmann::json v = SlimpackJson("verify " + a + " --reference " + kKjv + " --limit 8 --data " + kKjv +
                                        "/calib_tokens.json --quiet");
  CHECK(v["accuracy"]["kl_mean"].get<double>() < 0.01);
}

TEST_CASE("compile --calib-mode sequential: refusals name the reason, nothing written", "[cli][sequential]") {
  const TempDir dir("cli_sequential_errors");
  const std::string out = dir / "m.slim";
  Result r = Slimpack("compile " + kKjv + " -o " + out + " --preset int4-gptq --calib-mode sequential --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("--calib"));
  r = Slimpack("compile " + kKjv + " -o " + out + " --preset mixed --bpw 5 --calib-mode sequential" + kCalib);
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("pass 'mixed' works on the whole model"));
  r = Slimpack("compile " + kKjv + " -o " + out + " --preset int4-gptq --calib-mode layered" + kCalib);
  CHECK(r.code == 2);
  const std::string recipe = dir / "global.json";
  std::ofstream(recipe) << R"({"passes": [{"pass": "prune", "options": {"sparsity": 0.5, "scope": "global"}},
                                          {"pass": "quantize_int8"}]})";
  r = Slimpack("compile " + kKjv + " -o " + out + " --recipe " + recipe + " --calib-mode sequential" + kCalib);
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("scope 'global'"));
  // A dry run refuses what the real run would.
  r = Slimpack("compile " + kKjv + " --dry-run --preset mixed --bpw 5 --calib-mode sequential" + kCalib);
  CHECK(r.code == 2);
  CHECK_FALSE(std::filesystem::exists(out));
}
