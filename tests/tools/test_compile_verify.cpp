// compile and verify as a CI job uses them: exit codes decide the build, the
// JSON report has DESIGN.md's keys, bytes per token agree with the packed
// file's tensor sizes, a corrupted packed file is refused.
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <cstdlib>
#include <iterator>

#include "libcompress/io/onnx.h"

#include "libcompress/io/packed_format.h"
#include "tests/passes/cnn_graph.h"
#include "tests/tools/cli_test_util.h"

using namespace slim_test;

namespace {

const std::string kKjv = kModels + "kjv-byte";
const std::string kData = kModels + "kjv-byte/calib_tokens.json";

// Compiles the bundled kjv-byte model once per test program.
const std::string& Int4Model() {
  static const std::string path = [] {
    const std::string out = "/tmp/slimpack_cli_kjv_int4.slim";
    const Result r = Slimpack("compile " + kKjv + " -o " + out + " --preset int4 --quiet");
    INFO(r.out);
    REQUIRE(r.code == 0);
    return out;
  }();
  return path;
}

}  // namespace

TEST_CASE("compile writes a packed file and a report with provenance", "[cli][compile]") {
  auto j = SlimpackJson("compile " + kKjv + " -o /tmp/slimpack_cli_c.slim --preset int4 --quiet");
  CHECK(j["provenance"]["source_sha256"].get<std::string>().size() == 64);
  CHECK(j["provenance"]["tool_version"].is_string());
  CHECK(j["output"]["content_sha256"].get<std::string>().size() == 64);
  CHECK(j["totals"]["bits_per_weight_after"].get<double>() < 5.0);
  // Same input and options: byte-identical output.
  auto again = SlimpackJson("compile " + kKjv + " -o /tmp/slimpack_cli_c2.slim --preset int4 --quiet --threads 2");
  CHECK(again["output"]["content_sha256"] == j["output"]["content_sha256"]);
}

TEST_CASE("compile without --calib says what calibration would gain, only where it would", "[cli][compile][calib]") {
  Result r = Slimpack("compile " + kKjv + " -o /tmp/slimpack_cli_hint.slim");  // default preset: int4
  CHECK(r.code == 0);
  CHECK_THAT(r.out, Catch::Contains("no --calib: --preset int4-gptq with calibration data measured 0.37x"));
  r = Slimpack("compile " + kKjv + " -o /tmp/slimpack_cli_hint.slim --preset int4 --calib " + kData +
               " --calib-sequences 2");
  CHECK(r.code == 0);
  CHECK(r.out.find("no --calib") == std::string::npos);
  r = Slimpack("compile " + kKjv + " -o /tmp/slimpack_cli_hint.slim --preset int8");
  CHECK(r.code == 0);
  CHECK(r.out.find("no --calib") == std::string::npos);
}

TEST_CASE("compile --calib: statistics weight the search, the report has output errors, GPTQ",
          "[cli][compile][calib]") {
  const std::string calib = " --calib " + kData + " --calib-skip 64 --calib-sequences 8 --quiet";
  auto j = SlimpackJson("compile " + kKjv + " -o /tmp/slimpack_cli_cal.slim --preset int4" + calib);
  CHECK(j["calibration"]["sequences"] == 8);
  CHECK(j["calibration"]["tokens"] == 8 * 256);
  CHECK(j["provenance"]["calib_sha256"].get<std::string>().size() == 64);
  CHECK(j["provenance"]["calib_sequences"]["first"] == 64);
  int linear = 0;
  for (const auto& t : j["passes"][0]["tensors"]) {
    INFO(t["name"]);
    if (t["role"] != "linear") continue;
    ++linear;
    CHECK(t["importance"] == "activations");
    CHECK(t["method"] == "search");
    REQUIRE(t["output_rel_error"].is_number());
    CHECK(t["output_rel_error"].get<double>() > 0.0);
    CHECK(t["output_rel_error"].get<double>() < 0.1);
  }
  CHECK(linear > 0);
  auto g1 = SlimpackJson("compile " + kKjv + " -o /tmp/slimpack_cli_g1.slim --preset int4-gptq" + calib);
  auto g2 = SlimpackJson("compile " + kKjv + " -o /tmp/slimpack_cli_g2.slim --preset int4-gptq --threads 2" + calib);
  CHECK(g1["output"]["content_sha256"] == g2["output"]["content_sha256"]);
  CHECK(g1["output"]["content_sha256"] != j["output"]["content_sha256"]);
  CHECK(g1["passes"][0]["tensors"][1]["method"] == "gptq");
  // GPTQ without data, or data with nothing left after --calib-skip: exit 2
  // before any work, nothing written.
  const std::string out = "/tmp/slimpack_cli_nocal.slim";
  std::remove(out.c_str());
  const Result no_data = Slimpack("compile " + kKjv + " -o " + out + " --preset int4-gptq");
  CHECK(no_data.code == 2);
  CHECK_THAT(no_data.out, Catch::Contains("needs calibration data"));
  const Result skip_all = Slimpack("compile " + kKjv + " -o " + out + " --preset int4 --calib " + kData +
                                   " --calib-skip 128");
  CHECK(skip_all.code == 2);
  CHECK_THAT(skip_all.out, Catch::Contains("calib_tokens.json") && Catch::Contains("leaves none"));
  CHECK_FALSE(std::ifstream(out).good());
}

TEST_CASE("compile --dry-run writes nothing, bad options fail before work", "[cli][compile]") {
  const std::string out = "/tmp/slimpack_cli_dry.slim";
  std::remove(out.c_str());
  const Result dry = Slimpack("compile " + kKjv + " -o " + out + " --preset int8 --dry-run --quiet");
  CHECK(dry.code == 0);
  CHECK_THAT(dry.out, Catch::Contains("dry run"));
  CHECK_FALSE(std::ifstream(out).good());
  CHECK(Slimpack("compile " + kKjv + " -o " + out + " --preset int3").code == 2);
  CHECK(Slimpack("compile " + kKjv + " -o " + out + " --target no-such-target").code == 2);
  CHECK_FALSE(std::ifstream(out).good());
  // An already quantized input is refused unless asked for.
  const Result requant = Slimpack("compile " + Int4Model() + " -o " + out + " --preset int8");
  CHECK(requant.code == 2);
  CHECK_THAT(requant.out, Catch::Contains("already quantized"));
}

TEST_CASE("verify exits 0 when every check holds and 1 when one fails", "[cli][verify]") {
  const std::string base = "verify " + Int4Model() + " --reference " + kKjv + " --data " + kData + " --limit 4 --quiet";
  auto j = SlimpackJson(base + " --max-kl 0.05 --min-top1 0.9 --max-ppl-ratio 1.1");
  CHECK(j["pass"] == true);
  for (const char* key : {"tokens_evaluated", "kl_mean", "kl_p99", "top1_agreement", "nll_reference", "nll", "ppl_ratio"}) {
    CHECK(j["accuracy"].contains(key));
  }
  for (const char* key : {"params", "bytes_per_token", "budget_gbps", "target_tokens_per_s", "required_gbps",
                          "max_tokens_per_s_under_budget", "host_tokens_per_s", "host_gbps", "target"}) {
    CHECK(j["bandwidth"].contains(key));
  }
  CHECK(j["checks"].size() == 3);
  const Result fail = Slimpack(base + " --max-kl 0.0000001");
  CHECK(fail.code == 1);
  CHECK_THAT(fail.out, Catch::Contains("FAIL"));
  // A target rate the budget cannot carry fails the bandwidth check: the
  // 1.5 GB/s-per-1B rule gives this 0.86M-parameter model 1.3 kB/s.
  CHECK(Slimpack(base + " --tokens-per-s 10").code == 1);
  CHECK(Slimpack(base + " --budget-gbps 100 --tokens-per-s 10").code == 0);
}

TEST_CASE("the default packing takes the i8-dot path for int4, int8 keeps float activations unless the recipe asks",
          "[cli][verify][kernels]") {
  const std::string verify = " --reference " + kKjv + " --data " + kData + " --limit 8 --quiet";
  auto int4 = SlimpackJson("verify " + Int4Model() + verify);
  CHECK(int4["runtime"]["kernels"]["q4g32_nl_x8"]["compute_path"] == "i8-dot");
  CHECK(int4["runtime"]["kernels"]["q8_row"]["compute_path"] == "f32-dequant-fma");

  REQUIRE(Slimpack("compile " + kKjv + " -o /tmp/slimpack_cli_i8.slim --preset int8 --quiet").code == 0);
  const std::string recipe = "/tmp/slimpack_cli_int8_path.json";
  std::ofstream(recipe) << R"({"passes": [{"pass": "select_layout", "options": {"int8_path": "i8-dot"}}]})";
  REQUIRE(Slimpack("compile " + kKjv + " -o /tmp/slimpack_cli_i8dot.slim --preset int8 --recipe " + recipe +
                   " --quiet")
              .code == 0);
  auto f32 = SlimpackJson("verify /tmp/slimpack_cli_i8.slim" + verify);
  auto i8 = SlimpackJson("verify /tmp/slimpack_cli_i8dot.slim" + verify);
  CHECK(f32["runtime"]["kernels"]["q8_row"]["compute_path"] == "f32-dequant-fma");
  CHECK(i8["runtime"]["kernels"]["q8_row"]["compute_path"] == "i8-dot");
  // Same weights, activations rounded to int8: a little more error, still int8-grade.
  const double kl_f32 = f32["accuracy"]["kl_mean"], kl_i8 = i8["accuracy"]["kl_mean"];
  CHECK(kl_i8 > kl_f32);
  CHECK(kl_i8 < 1e-3);
}

TEST_CASE("verify's bytes per token match the packed file's tensor sizes", "[cli][verify]") {
  auto j = SlimpackJson("verify " + Int4Model() + " --reference " + kKjv + " --data " + kData + " --limit 1 --quiet");
  auto info = slim::ReadPackedInfo(Int4Model());
  REQUIRE(info.ok());
  // Every tensor is read once per token except the embedding table, of which
  // GatherQ reads one row: 1/264 of it.
  uint64_t expected = 0;
  for (const auto& t : info->tensors) {
    expected += t.name == "model.embed_tokens.weight" ? t.nbytes / 264 : t.nbytes;
  }
  // KV cache: 4 layers x (key + value) x 2 kv heads x 32 dims x fp32, for
  // each token in the cache at the measured step.
  const uint64_t context = j["bandwidth"]["context"].get<uint64_t>();
  expected += 4 * 2 * 2 * 32 * 4 * context;
  CHECK(j["bandwidth"]["bytes_per_token"].get<uint64_t>() == expected);
}

TEST_CASE("a corrupted packed file is refused with exit 2 naming the tensor", "[cli][verify]") {
  std::ifstream in(Int4Model(), std::ios::binary);
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  auto info = slim::ReadPackedInfo(Int4Model());
  REQUIRE(info.ok());
  const auto& victim = info->tensors[info->tensors.size() / 2];
  bytes[victim.offset + victim.nbytes / 2] ^= 0x01;
  const std::string bad = "/tmp/slimpack_cli_corrupt.slim";
  std::ofstream(bad, std::ios::binary) << bytes;
  const Result r = Slimpack("run " + bad + " -n 1");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains(victim.name));
}

TEST_CASE("verify compares the outputs of a non-language graph on ONNX test data", "[cli][verify]") {
  using namespace slim;
  // x [2, 64] -> Gemm(W1 [16, 64], transB) -> Relu -> MatMul(W2 [16, 10]) -> y
  const std::string dir = "/tmp/slimpack_cli_mlp";
  REQUIRE(std::system(("rm -rf " + dir + " && mkdir -p " + dir + "/test_data_set_0 " + dir + "/test_data_set_1").c_str()) == 0);
  uint32_t seed = 7;
  auto random = [&](std::vector<int64_t> shape) {
    std::vector<float> v(static_cast<size_t>(ShapeNumel(shape)));
    for (float& f : v) {
      seed = seed * 1664525u + 1013904223u;
      f = static_cast<float>(seed >> 8) / 16777216.0f - 0.5f;
    }
    return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
  };
  Graph g;
  g.opset_imports[""] = 17;
  g.inputs.push_back({"x", DType::kFloat32, Shape{"batch", 64}});
  g.outputs.push_back({"y", DType::kFloat32, Shape{"batch", 10}});
  g.AddInitializer("w1", random({16, 64}));
  g.AddInitializer("w2", random({16, 10}));
  Node gemm;
  gemm.name = "fc1";
  gemm.op_type = "Gemm";
  gemm.inputs = {"x", "w1"};
  gemm.outputs = {"h"};
  gemm.attrs["transB"] = Attribute::Int(1);
  Node relu;
  relu.name = "act";
  relu.op_type = "Relu";
  relu.inputs = {"h"};
  relu.outputs = {"hr"};
  Node mm;
  mm.name = "fc2";
  mm.op_type = "MatMul";
  mm.inputs = {"hr", "w2"};
  mm.outputs = {"y"};
  g.nodes = {gemm, relu, mm};
  REQUIRE(WriteOnnx(g, dir + "/model.onnx").ok());
  REQUIRE(WriteTensorProtoFile(dir + "/test_data_set_0/input_0.pb", random({2, 64}), "x").ok());
  REQUIRE(WriteTensorProtoFile(dir + "/test_data_set_1/input_0.pb", random({3, 64}), "x").ok());

  const std::string packed = dir + "/mlp.int8.slim";
  const Result c = Slimpack("compile " + dir + "/model.onnx -o " + packed + " --preset int8 --quiet");
  INFO(c.out);
  REQUIRE(c.code == 0);
  const std::string base = "verify " + packed + " --reference " + dir + "/model.onnx --data " + dir + " --quiet";
  auto j = SlimpackJson(base + " --min-cosine 0.999 --max-rel-l2 0.05");
  CHECK(j["pass"] == true);
  REQUIRE(j["outputs"].size() == 1);
  CHECK(j["outputs"][0]["name"] == "y");
  CHECK(j["outputs"][0]["cosine_min"].get<double>() > 0.999);
  CHECK(j["outputs"][0]["rel_l2_max"].get<double>() > 0);  // int8 is not exact
  CHECK(j["bandwidth"]["bytes_per_run"].get<uint64_t>() < 16 * 64 * 4);
  CHECK(Slimpack(base + " --max-rel-l2 1e-9").code == 1);
  CHECK(Slimpack("verify " + packed + " --reference " + dir + "/model.onnx --data /tmp/slimpack_cli_nodata").code == 2);
}

TEST_CASE("compile --calib reads ONNX test data sets for a CNN, conv channel pruning verifies on held-out sets",
          "[cli][conv]") {
  using namespace slim;
  const std::string dir = "/tmp/slimpack_cli_cnn";
  REQUIRE(std::system(("rm -rf " + dir + " && mkdir -p " + dir + "/calib " + dir + "/eval").c_str()) == 0);
  REQUIRE(WriteOnnx(test::MakeCnn(), dir + "/model.onnx").ok());
  std::mt19937 rng(21);
  for (int s = 0; s < 6; ++s) {
    const std::string set = StrCat(dir, s < 4 ? "/calib" : "/eval", "/test_data_set_", s);
    REQUIRE(std::system(("mkdir -p " + set).c_str()) == 0);
    REQUIRE(WriteTensorProtoFile(set + "/input_0.pb", test::Images(rng, 8), "x").ok());
  }
  {
    std::ofstream r(dir + "/conv25.json");
    r << R"({"passes": [{"pass": "prune_structured", "options": {"conv_ratio": 0.25}}]})";
  }
  const std::string packed = dir + "/cnn.slim";
  auto c = SlimpackJson("compile " + dir + "/model.onnx -o " + packed + " --recipe " + dir + "/conv25.json --calib " +
                        dir + "/calib --quiet");
  CHECK(c["passes"][0]["counters"]["conv_channels_removed"] == 16);
  CHECK(c["passes"][0]["counters"]["conv_refitted"] == 2);
  CHECK(c["calibration"]["sequences"] == 4);
  CHECK(c["provenance"]["calib_sha256"].get<std::string>().size() == 64);
  const std::string base = "verify " + packed + " --reference " + dir + "/model.onnx --data " + dir + "/eval --quiet";
  auto v = SlimpackJson(base + " --min-cosine 0.99");
  CHECK(v["pass"] == true);
  WARN("CNN conv_ratio 0.25 with refit, held-out sets 4..5: cosine_min "
       << v["outputs"][0]["cosine_min"] << ", rel_l2_max " << v["outputs"][0]["rel_l2_max"]);
  // Without calibration: weight norms only, a worse model.
  const Result plain = Slimpack("compile " + dir + "/model.onnx -o " + dir + "/plain.slim --recipe " + dir +
                                "/conv25.json --quiet");
  REQUIRE(plain.code == 0);
  auto pv = SlimpackJson("verify " + dir + "/plain.slim --reference " + dir + "/model.onnx --data " + dir + "/eval --quiet");
  CHECK(pv["outputs"][0]["rel_l2_max"].get<double>() > v["outputs"][0]["rel_l2_max"].get<double>());
  // A calibration directory without test data sets is exit 2.
  REQUIRE(std::system(("mkdir -p " + dir + "/empty").c_str()) == 0);
  CHECK(Slimpack("compile " + dir + "/model.onnx -o " + dir + "/x.slim --recipe " + dir + "/conv25.json --calib " + dir +
                 "/empty --quiet").code == 2);
}

TEST_CASE("compile: one KV group removed from stories260K shrinks the file and the KV cache by what the shapes say",
          "[cli][heads]") {
  const TempDir dir("heads");
  const std::string model = kModels + "stories260k";
  auto recipe = [&](const std::string& name, const std::string& extra) {
    const std::string path = dir / (name + ".json");
    std::ofstream(path) << R"({"passes": [{"pass": "prune_structured", "options": {"ffn_ratio": 0)" << extra << "}}]}";
    return path;
  };
  auto base = SlimpackJson("compile " + model + " -o " + (dir / "a.slim") + " --recipe " + recipe("none", "") + " --quiet");
  auto kv1 = SlimpackJson("compile " + model + " -o " + (dir / "b.slim") + " --recipe " +
                          recipe("kv1", ", \"kv_groups\": 1") + " --calib " + model +
                          "/calib_tokens.json --calib-skip 64 --quiet");
  // 5 layers x (16 + 8 + 8 rows + 16 columns) x 64, FP16.
  CHECK(base["plan"]["weight_bytes"].get<int64_t>() - kv1["plan"]["weight_bytes"].get<int64_t>() == 5 * 48 * 64 * 2);
  // The file: the same, up to the provenance header (which records the recipe and calibration data).
  const int64_t file_drop = base["output"]["bytes"].get<int64_t>() - kv1["output"]["bytes"].get<int64_t>();
  CHECK(std::abs(file_drop - 5 * 48 * 64 * 2) < 256);
  CHECK(kv1["passes"][0]["counters"]["kv_heads_removed"] == 5);
  CHECK(kv1["passes"][0]["counters"]["attention_refitted"] == 5);
  auto a = SlimpackJson("inspect " + (dir / "a.slim"));
  auto b = SlimpackJson("inspect " + (dir / "b.slim"));
  CHECK(b["decoder"]["heads"] == 6);
  CHECK(b["decoder"]["kv_heads"] == 3);
  // The verify figures run on the smaller KV cache.
  auto v = SlimpackJson("verify " + (dir / "b.slim") + " --reference " + model + " --data " + model +
                        "/calib_tokens.json --limit 8 --quiet");
  CHECK(v["accuracy"]["tokens_evaluated"].get<int64_t>() > 0);
}
