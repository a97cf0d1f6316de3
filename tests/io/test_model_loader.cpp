// Format detection and sidecars (config.json beside an ONNX graph,
// slimpack.json byte vocabulary).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <fstream>

#include "libcompress/io/model_loader.h"
#include "tests/test_util.h"

using namespace slim;
using slim_test::TempDir;

namespace {
const std::string kModels = SLIMPACK_SOURCE_DIR "/models/";

// Makes `scratch` a copy of a bundled model directory (symlinks to the big
// files) whose sidecars a test can rewrite.
void LinkModel(const TempDir& scratch, const std::string& model) {
  for (const char* f : {"config.json", "model.safetensors", "model_kv.onnx"}) {
    REQUIRE(::symlink((kModels + model + "/" + f).c_str(), (scratch / f).c_str()) == 0);
  }
}
}  // namespace

TEST_CASE("a model directory opens the safetensors checkpoint, a .onnx path the graph", "[io][loader]") {
  auto dir = LoadModel(kModels + "kjv-byte");
  REQUIRE(dir.ok());
  CHECK(dir->format == "safetensors");
  REQUIRE(dir->byte_vocab);
  CHECK(dir->byte_vocab->first_id == 0);
  auto onnx = LoadModel(kModels + "kjv-byte/model_kv.onnx");
  REQUIRE(onnx.ok());
  CHECK(onnx->format == "onnx");
  // Token ids come from the config.json beside the graph.
  CHECK(onnx->decoder->bos_token_id == 256);
  CHECK(onnx->decoder->eos_token_id == 257);
  CHECK(onnx->byte_vocab);
  auto stories = LoadModel(kModels + "stories260k");
  REQUIRE(stories.ok());
  CHECK_FALSE(stories->byte_vocab);
}

TEST_CASE("bad paths and sidecars are errors naming the file", "[io][loader]") {
  auto none = LoadModel("/tmp/slimpack_loader_missing");
  CHECK(none.status().code() == StatusCode::kInvalidInput);
  auto unknown = LoadModel(kModels + "stories260k/README.md");
  CHECK_THAT(unknown.status().message(), Catch::Contains("unrecognised model format"));

  const TempDir scratch("loader");
  LinkModel(scratch, "kjv-byte");
  const std::string dir = scratch.path.string();
  std::ofstream(dir + "/slimpack.json") << R"({"vocab": {"kind": "sentencepiece"}})";
  auto kind = LoadModel(dir);
  REQUIRE_FALSE(kind.ok());
  CHECK_THAT(kind.status().message(), Catch::Contains("slimpack.json") && Catch::Contains("sentencepiece"));
  std::ofstream(dir + "/slimpack.json") << R"({"vocab": {"kind": "bytes", "first_id": 100}})";
  auto range = LoadModel(dir);  // 100..355 does not fit a 264-token vocabulary
  REQUIRE_FALSE(range.ok());
  CHECK_THAT(range.status().message(), Catch::Contains("exceed"));
  std::ofstream(dir + "/slimpack.json") << "{not json";
  CHECK_THAT(LoadModel(dir + "/model_kv.onnx").status().message(), Catch::Contains("not valid JSON"));
}
