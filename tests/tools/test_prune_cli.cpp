// compile with the pruning presets: calibration requirements before any
// work, sparsity in the JSON report, byte-identical output at 1 and 2 threads.
#include <filesystem>
#include <fstream>
#include <sstream>

#include "tests/tools/cli_test_util.h"

using namespace slim_test;

TEST_CASE("compile --preset prune50/prune24 without --calib is exit 2 and writes nothing", "[cli][prune]") {
  const TempDir dir("cli_prune_nocalib");
  for (const char* preset : {"prune50", "prune24", "prune24-int4"}) {
    INFO(preset);
    const Result r = Slimpack("compile " + kModels + "kjv-byte -o " + (dir / "out.slim") + " --preset " + preset);
    CHECK(r.code == 2);
    CHECK_THAT(r.out, Catch::Contains("--calib"));
    CHECK_FALSE(std::filesystem::exists(dir / "out.slim"));
  }
  // magnitude needs nothing.
  std::ofstream(dir / "mag.json") << R"({"passes": [{"pass": "prune", "options": {"method": "magnitude"}}]})";
  CHECK(Slimpack("compile " + kModels + "kjv-byte -o " + (dir / "out.slim") + " --recipe " + (dir / "mag.json") +
                 " --quiet")
            .code == 0);
}

TEST_CASE("compile --preset prune24-int4: report sparsity, identical bytes at 1 and 2 threads", "[cli][prune]") {
  const TempDir dir("cli_prune");
  const std::string model = kModels + "kjv-byte";
  const std::string calib = " --calib " + model + "/calib_tokens.json --calib-skip 64 --calib-sequences 8 --quiet";
  const Result one = Slimpack("compile " + model + " -o " + (dir / "a.slim") + " --preset prune24-int4 --threads 1" +
                              calib + " --report " + (dir / "a.json"));
  INFO(one.out);
  REQUIRE(one.code == 0);
  REQUIRE(Slimpack("compile " + model + " -o " + (dir / "b.slim") + " --preset prune24-int4 --threads 2" + calib)
              .code == 0);
  CHECK(ReadFile(dir / "a.slim") == ReadFile(dir / "b.slim"));
  std::ifstream in(dir / "a.json");
  const nlohmann::json j = nlohmann::json::parse(in);
  size_t sparse = 0;
  for (const auto& pass : j["passes"]) {
    for (const auto& t : pass["tensors"]) {
      if (t["sparsity_pattern"] == "2:4") {
        ++sparse;
        CHECK(t["sparsity"].get<double>() == Approx(0.5));
      }
    }
  }
  CHECK(sparse == 56);  // 28 linear weights in the prune and in the int4 pass
  // inspect reads the packed file back: the 2:4 layout and the zeros.
  const nlohmann::json info = SlimpackJson("inspect " + (dir / "a.slim"));
  CHECK(info["sparsity"]["sparse_layout_tensors"] == 28);
  CHECK(info["sparsity"]["zero_fraction"].get<double>() >= 0.45);
  CHECK(info["sparsity"]["zero_fraction"].get<double>() <= 0.5);
}

TEST_CASE("compile --preset prune50-int8: bitmask int8 layout, smaller than int8, identical at 1 and 2 threads, "
          "verifies",
          "[cli][prune][sparse]") {
  const TempDir dir("cli_prune50_int8");
  const std::string model = kModels + "kjv-byte";
  const std::string calib = " --calib " + model + "/calib_tokens.json --calib-skip 64 --calib-sequences 8 --quiet";
  REQUIRE(Slimpack("compile " + model + " -o " + (dir / "a.slim") + " --preset prune50-int8 --threads 1" + calib)
              .code == 0);
  REQUIRE(Slimpack("compile " + model + " -o " + (dir / "b.slim") + " --preset prune50-int8 --threads 2" + calib)
              .code == 0);
  REQUIRE(Slimpack("compile " + model + " -o " + (dir / "i8.slim") + " --preset int8 --quiet").code == 0);
  CHECK(ReadFile(dir / "a.slim") == ReadFile(dir / "b.slim"));
  const auto sparse_bytes = std::filesystem::file_size(dir / "a.slim");
  const auto int8_bytes = std::filesystem::file_size(dir / "i8.slim");
  CHECK(4 * sparse_bytes < 3 * int8_bytes);  // below 0.75x
  const nlohmann::json info = SlimpackJson("inspect " + (dir / "a.slim"));
  CHECK(info["sparsity"]["sparse_layouts"]["q8_bm_row"] == 28);
  // The sparse kernels run in verify (held-out sequences 0..7).
  const Result v = Slimpack("verify " + (dir / "a.slim") + " --reference " + model + " --limit 8 --data " + model +
                            "/calib_tokens.json --quiet");
  INFO(v.out);
  CHECK(v.code == 0);
}

TEST_CASE("export --format hf writes a structurally pruned model back as config.json + safetensors", "[cli][export]") {
  const TempDir dir("export_hf");
  const std::string kjv = kModels + "kjv-byte";
  const std::string recipe = dir / "r.json";
  std::ofstream(recipe) << R"({"passes": [{"pass": "prune_structured", "options": {"ffn_ratio": 0.25, "head_ratio": 0.5}}]})";
  REQUIRE(Slimpack("compile " + kjv + " -o " + (dir / "p.slim") + " --recipe " + recipe + " --calib " + kjv +
                   "/calib_tokens.json --calib-skip 64 --quiet").code == 0);
  const std::string hf = dir / "hf";
  const Result r = Slimpack("export " + (dir / "p.slim") + " --format hf -o " + hf);
  INFO(r.out);
  REQUIRE(r.code == 0);
  std::ifstream in(hf + "/config.json");
  const auto cfg = nlohmann::json::parse(in);
  CHECK(cfg["intermediate_size"] == 288);
  CHECK(cfg["num_attention_heads"] == 2);
  CHECK(cfg["num_key_value_heads"] == 2);
  CHECK(cfg["architectures"][0] == "LlamaForCausalLM");
  // Read back by the Hugging Face reader, it computes what the packed file does.
  auto v = SlimpackJson("verify " + hf + " --reference " + (dir / "p.slim") + " --data " + kjv +
                        "/calib_tokens.json --limit 4 --quiet");
  CHECK(v["accuracy"]["kl_mean"].get<double>() < 1e-9);
  CHECK(v["accuracy"]["top1_agreement"].get<double>() == 1.0);
  // Quantized weights, or a source that is not a Hugging Face directory: exit 2, nothing written.
  REQUIRE(Slimpack("compile " + kjv + " -o " + (dir / "q.slim") + " --preset int8 --quiet").code == 0);
  const Result q = Slimpack("export " + (dir / "q.slim") + " --format hf -o " + (dir / "hfq"));
  CHECK(q.code == 2);
  CHECK_THAT(q.out, Catch::Contains("float models"));
  CHECK(!std::filesystem::exists(dir / "hfq/model.safetensors"));
  const Result o = Slimpack("export " + kjv + "/model.onnx --format hf -o " + (dir / "hfo"));
  CHECK(o.code == 2);
  CHECK_THAT(o.out, Catch::Contains("Hugging Face"));
  // The source directory itself is refused (its files are the inputs), on
  // a copy so that a failure cannot touch the bundled model.
  const std::string copy = dir / "src";
  std::filesystem::create_directory(copy);
  for (const char* f : {"config.json", "model.safetensors"}) std::filesystem::copy_file(kjv + "/" + f, copy + "/" + f);
  const std::string before = ReadFile(copy + "/model.safetensors");
  CHECK(Slimpack("export " + copy + " --format hf -o " + copy).code == 2);
  CHECK((ReadFile(copy + "/model.safetensors") == before));
}
