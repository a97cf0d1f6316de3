// Reproducibility (docs/FORMAT.md "Compatibility"): the same input, recipe
// and seed give byte-identical packed files and reports (timing fields
// aside) twice in a row and at 1 and 2 threads, for every preset; and the
// golden packed file in tests/golden keeps reading, running, and being what
// the writer produces.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>

#include "tests/tools/cli_test_util.h"

using namespace slim_test;
using nlohmann::json;

namespace {

// The golden model's shape (tests/golden/make.sh runs the same commands).
const std::string kTinySynth =
    "synth -o tiny --hidden 32 --intermediate 64 --layers 1 --heads 2 --kv-heads 1 --vocab 64 --max-positions 32 "
    "--seed 7";

// A report without what legitimately differs between runs: wall times and
// memory peaks, and the output path (each run writes its own file).
json WithoutRunFields(json j) {
  if (j.is_object()) {
    for (const char* key : {"seconds", "peak_rss_mib", "output"}) j.erase(key);
    for (auto& [key, value] : j.items()) value = WithoutRunFields(value);
  } else if (j.is_array()) {
    for (auto& value : j) value = WithoutRunFields(value);
  }
  return j;
}

json ReadJson(const std::string& path) { return json::parse(ReadFile(path)); }

}  // namespace

TEST_CASE("every preset: byte-identical packed file and report twice in a row and at 1 and 2 threads",
          "[cli][reproducible]") {
  const TempDir dir("repro");
  REQUIRE(Slimpack(kTinySynth, dir.path.string()).code == 0);
  // Calibration tokens: 6 sequences of 24 ids below the vocabulary of 64.
  json calib = {{"vocab_size", 64}, {"bos", 1}, {"sequences", json::array()}};
  for (int s = 0; s < 6; ++s) {
    json seq = json::array({1});
    for (int t = 1; t < 24; ++t) seq.push_back((s * 131 + t * 17 + t * t) % 63 + 1);
    calib["sequences"].push_back(seq);
  }
  WriteFile(dir / "calib.json", calib.dump());
  const json presets = SlimpackJson("passes")["presets"];
  REQUIRE(presets.size() >= 9);
  for (const auto& p : presets) {
    const std::string preset = p["name"];
    INFO("preset " << preset);
    const std::string args = "compile tiny --preset " + preset + " --calib calib.json --quiet" +
                             (preset == "mixed" ? " --bpw 5.5" : "");
    const std::vector<std::string> runs = {"a", "b", "c"};
    for (size_t i = 0; i < runs.size(); ++i) {
      const std::string threads = i < 2 ? "1" : "2";
      const Result r = Slimpack(args + " --threads " + threads + " -o " + runs[i] + ".slim --report " + runs[i] +
                                    ".json",
                                dir.path.string());
      INFO(r.out);
      REQUIRE(r.code == 0);
    }
    const std::string a = ReadFile(dir / "a.slim");
    REQUIRE(!a.empty());
    CHECK(a == ReadFile(dir / "b.slim"));  // twice in a row
    CHECK(a == ReadFile(dir / "c.slim"));  // 2 threads
    const json ra = WithoutRunFields(ReadJson(dir / "a.json"));
    CHECK(ra == WithoutRunFields(ReadJson(dir / "b.json")));
    CHECK(ra == WithoutRunFields(ReadJson(dir / "c.json")));
  }
}

TEST_CASE("the golden packed file reads and runs, and the writer still produces its bytes",
          "[cli][reproducible]") {
  const std::string golden = SLIMPACK_SOURCE_DIR "/tests/golden/tiny-int4.slim";
  // Format compatibility: this reader reads the committed file and runs it.
  const json info = SlimpackJson("inspect " + golden);
  CHECK(info["format"] == "packed");
  CHECK(info["decoder"]["vocab_size"] == 64);
  const json run = SlimpackJson("run " + golden + " --tokens '1 2 3' -n 8");
  REQUIRE(run["tokens"].size() == 8);
  for (const auto& t : run["tokens"]) CHECK(t.get<int>() < 64);

  // The writer: the same commands as tests/golden/make.sh give the same
  // bytes. When this fails after a deliberate change, bump kPackedVersion
  // for a format change, and regenerate with tests/golden/make.sh.
  const TempDir dir("golden");
  REQUIRE(Slimpack(kTinySynth, dir.path.string()).code == 0);
  const Result r = Slimpack("compile tiny -o tiny-int4.slim --preset int4 --quiet", dir.path.string());
  INFO(r.out);
  REQUIRE(r.code == 0);
  const std::string written = ReadFile(dir / "tiny-int4.slim");
  const std::string expected = ReadFile(golden);
  REQUIRE(!expected.empty());
  CHECK(written.size() == expected.size());
  CHECK((written == expected));
}
