#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "calib_data/token_dataset.h"

using namespace slim;

namespace {
std::string WriteTemp(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/slimpack_test_" + name;
  std::ofstream(path) << text;
  return path;
}
}  // namespace

TEST_CASE("bundled calibration sets load", "[calib]") {
  auto ds = ReadTokenDataset(SLIMPACK_SOURCE_DIR "/models/stories260k/calib_tokens.json");
  REQUIRE(ds.ok());
  CHECK(ds->vocab_size == 512);
  CHECK(ds->bos == 1);
  CHECK(ds->sequences.size() == 128);
  CHECK(ds->total_tokens() == 128 * 256);
  CHECK(ds->sha256.size() == 64);
}

TEST_CASE("bad datasets name the file, sequence and position", "[calib]") {
  auto bad_id = ReadTokenDataset(WriteTemp("bad_id.json", R"({"vocab_size": 10, "sequences": [[1, 2], [3, 12]]})"));
  REQUIRE_FALSE(bad_id.ok());
  CHECK_THAT(bad_id.status().message(),
             Catch::Contains("bad_id.json") && Catch::Contains("sequence 1 position 1") && Catch::Contains("12"));
  auto not_json = ReadTokenDataset(WriteTemp("not_json.json", "{\"sequences\": [[1,"));
  REQUIRE_FALSE(not_json.ok());
  CHECK_THAT(not_json.status().message(), Catch::Contains("not valid JSON"));
  auto no_seq = ReadTokenDataset(WriteTemp("no_seq.json", R"({"vocab_size": 10})"));
  CHECK_THAT(no_seq.status().message(), Catch::Contains("\"sequences\""));
  auto missing = ReadTokenDataset("/tmp/slimpack_test_does_not_exist.json");
  CHECK(missing.status().code() == StatusCode::kInvalidInput);
}
