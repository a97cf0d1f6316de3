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
