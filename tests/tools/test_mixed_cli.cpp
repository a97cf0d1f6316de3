// compile --preset mixed from the command line on kjv-byte: budget flags and
// their errors (exit 2, nothing written), the scorer's estimates with token
// calibration (sequences 64..71), identical bytes at 1 and 2 threads, a
// bytes-per-token budget that verify's own count confirms, and held-out
// quality (sequences 0..7) against uniform int4-gptq.
#include <filesystem>
#include <fstream>

#include "tests/tools/cli_test_util.h"

using namespace slim_test;

namespace {
const std::string kKjv = kModels + "kjv-byte";
const std::string kCalib = " --calib " + kKjv + "/calib_tokens.json --calib-skip 64 --calib-sequences 8 --quiet";

nlohmann::json Verify(const std::string& packed) {
  return SlimpackJson("verify " + packed + " --reference " + kKjv + " --limit 8 --data " + kKjv +
                      "/calib_tokens.json --quiet");
}
}  // namespace

TEST_CASE("compile --preset mixed: budget flags and their errors", "[cli][mixed]") {
  const TempDir dir("cli_mixed_errors");
  const std::string out = dir / "m.slim";
  Result r = Slimpack("compile " + kKjv + " -o " + out + " --preset mixed --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("exactly one budget"));
  r = Slimpack("compile " + kKjv + " -o " + out + " --preset int4 --bpw 5 --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("has none"));
  r = Slimpack("compile " + kKjv + " -o " + out + " --preset mixed --max-size 12Q --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("--max-size 12Q"));
  // DESIGN.md's rule of thumb (1.5 GB/s per 1e9 parameters) at 10 tokens/s
  // gives this model 128 kB per token, less than its KV cache alone.
  r = Slimpack("compile " + kKjv + " -o " + out + " --preset mixed --budget-per-b 1.5 --tokens-per-s 10 --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("smallest reachable is"));
  CHECK_FALSE(std::filesystem::exists(out));
}

TEST_CASE("compile --preset mixed --bpw 5 with calibration: within budget, identical at 1 and 2 threads, "
          "better than int4-gptq on held-out sequences",
          "[cli][mixed]") {
  const TempDir dir("cli_mixed");
  const Result one = Slimpack("compile " + kKjv + " -o " + (dir / "a.slim") + " --preset mixed --bpw 5 --threads 1" +
                              kCalib + " --json " + (dir / "a.json"));
  INFO(one.out);
  REQUIRE(one.code == 0);
  REQUIRE(Slimpack("compile " + kKjv + " -o " + (dir / "b.slim") + " --preset mixed --bpw 5 --threads 2" + kCalib)
              .code == 0);
  CHECK(ReadFile(dir / "a.slim") == ReadFile(dir / "b.slim"));
  std::ifstream in(dir / "a.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  CHECK(j["totals"]["bits_per_weight_after"].get<double>() <= 5.0);
  const auto& details = j["passes"][0]["details"];
  CHECK_THAT(details["scorer"].get<std::string>(), Catch::Contains("KL"));
  CHECK(details["model_runs"].get<int>() >= 29);  // one gain measurement per tensor
  const auto& pareto = details["pareto"];
  REQUIRE(pareto.size() == 12);
  for (size_t i = 1; i < pareto.size(); ++i) {
    CHECK(pareto[i]["estimated_loss"].get<double>() <= pareto[i - 1]["estimated_loss"].get<double>());
  }
  REQUIRE(Slimpack("compile " + kKjv + " -o " + (dir / "g.slim") + " --preset int4-gptq" + kCalib).code == 0);
  const double kl_mixed = Verify(dir / "a.slim")["accuracy"]["kl_mean"].get<double>();
  const double kl_gptq = Verify(dir / "g.slim")["accuracy"]["kl_mean"].get<double>();
  INFO("mixed " << kl_mixed << ", int4-gptq " << kl_gptq);
  CHECK(kl_mixed < kl_gptq);
}

TEST_CASE("compile --preset mixed --max-bytes-per-token: verify counts at most the budget", "[cli][mixed]") {
  const TempDir dir("cli_mixed_bpt");
  // Weights plus the KV cache at the calibration length (256): about 900 kB
  // as int4, 1.36 MB as int8.
  const Result r = Slimpack("compile " + kKjv + " -o " + (dir / "m.slim") + " --preset mixed --max-bytes-per-token 1.1M" +
                            kCalib);
  INFO(r.out);
  REQUIRE(r.code == 0);
  const nlohmann::json v = Verify(dir / "m.slim");
  INFO(v.dump());
  CHECK(v["bandwidth"]["bytes_per_token"].get<double>() <= 1.1e6);
  CHECK(v["bandwidth"]["bytes_per_token"].get<double>() >= 1.0e6);
}
