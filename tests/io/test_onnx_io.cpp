// ONNX reader/writer: round trips of the bundled models (inline and external
// data), decoder detection, and refusal of malformed or hostile files. Bad
// files are made by writing a graph with WriteOnnx and editing its bytes, so
// the tests need no protobuf of their own.
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "libcompress/io/onnx.h"
#include "tests/io/graph_compare.h"

namespace fs = std::filesystem;
using namespace slim;

using slim_test::CheckSameGraph;
using slim_test::ReadBytes;
using slim_test::TempDir;
using slim_test::WriteBytes;

namespace {

const std::string kModels = std::string(SLIMPACK_SOURCE_DIR) + "/models";
const std::string kNodeTests = "/usr/share/libonnx-testdata/data/node";

std::string Patch(std::string bytes, const std::string& from, const std::string& to) {
  REQUIRE(from.size() == to.size());
  const size_t at = bytes.find(from);
  REQUIRE(at != std::string::npos);
  REQUIRE(bytes.find(from, at + 1) == std::string::npos);
  return bytes.replace(at, from.size(), to);
}

Graph SmallGraph(const std::string& init_name, int64_t n, int64_t opset = 17) {
  Graph g;
  g.name = "small";
  g.opset_imports[""] = opset;
  g.inputs.push_back({"x", DType::kFloat32, Shape{n}});
  g.outputs.push_back({"y", DType::kFloat32, Shape{n}});
  std::vector<float> w(static_cast<size_t>(n));
  for (size_t i = 0; i < w.size(); ++i) w[i] = 0.5f * static_cast<float>(i);
  g.AddInitializer(init_name, Tensor::FromVector(DType::kFloat32, {n}, w));
  Node add;
  add.name = "add";
  add.op_type = "Add";
  add.inputs = {"x", init_name};
  add.outputs = {"y"};
  g.nodes.push_back(add);
  return g;
}

}  // namespace

TEST_CASE("ONNX round trip of the bundled models keeps graph and bytes", "[io][onnx]") {
  TempDir dir("roundtrip");
  for (const char* rel : {"stories260k/model.onnx", "stories260k/model_kv.onnx",
                          "kjv-byte/model.onnx"}) {
    INFO(rel);
    Expected<Model> src = ReadOnnx(kModels + "/" + rel);
    REQUIRE(src.ok());
    CHECK(src->format == "onnx");
    CHECK(src->graph.nodes.size() > 500);
    CHECK(src->graph.initializer_count() > 30);
    const std::string out = dir / "copy.onnx";
    REQUIRE(WriteOnnx(src->graph, out).ok());
    Expected<Model> back = ReadOnnx(out);
    REQUIRE(back.ok());
    CheckSameGraph(src->graph, back->graph);
    // Writing is deterministic: a second round trip gives the same file.
    const std::string out2 = dir / "copy2.onnx";
    REQUIRE(WriteOnnx(back->graph, out2).ok());
    CHECK(ReadBytes(out) == ReadBytes(out2));
    CHECK_FALSE(fs::exists(out + ".data"));
  }
}

TEST_CASE("ONNX external data: written aligned, read back as mapped views", "[io][onnx]") {
  TempDir dir("external");
  Expected<Model> src = ReadOnnx(kModels + "/stories260k/model_kv.onnx");
  REQUIRE(src.ok());
  const std::string out = dir / "ext.onnx";
  OnnxWriteOptions options;
  options.external_data_threshold = 4096;
  REQUIRE(WriteOnnx(src->graph, out, options).ok());
  REQUIRE(fs::exists(out + ".data"));
  CHECK(fs::file_size(out) < fs::file_size(kModels + "/stories260k/model_kv.onnx") / 2);
  Expected<Model> back = ReadOnnx(out);
  REQUIRE(back.ok());
  CheckSameGraph(src->graph, back->graph);
  size_t mapped = 0;
  size_t inline_small = 0;
  for (const auto& name : back->graph.initializer_names()) {
    const Tensor& t = *back->graph.FindInitializer(name);
    if (t.nbytes() >= options.external_data_threshold) {
      INFO(name);
      CHECK(t.is_mapped());
      CHECK(reinterpret_cast<uintptr_t>(t.raw()) % 64 == 0);
      ++mapped;
    } else {
      CHECK_FALSE(t.is_mapped());
      ++inline_small;
    }
  }
  CHECK(mapped > 10);
  CHECK(inline_small > 0);
  CHECK(back->decoder.has_value());

  SECTION("a data file cut short is refused, naming the tensor") {
    fs::resize_file(out + ".data", fs::file_size(out + ".data") / 2);
    Expected<Model> cut = ReadOnnx(out);
    REQUIRE_FALSE(cut.ok());
    CHECK(cut.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(cut.status().message(), Catch::Contains("lies outside"));
    CHECK_THAT(cut.status().message(), Catch::Contains("tensor '"));
  }
  SECTION("a missing data file is refused") {
    fs::remove(out + ".data");
    Expected<Model> missing = ReadOnnx(out);
    REQUIRE_FALSE(missing.ok());
    CHECK_THAT(missing.status().message(), Catch::Contains("does not exist"));
  }
}

TEST_CASE("ONNX external data locations cannot leave the model directory", "[io][onnx]") {
  TempDir dir("escape");
  fs::create_directories(dir.path / "m");
  const std::string model = dir / "m/e.onnx";  // location "e.onnx.data", 11 bytes
  OnnxWriteOptions options;
  options.external_data_threshold = 16;
  REQUIRE(WriteOnnx(SmallGraph("w", 64), model, options).ok());
  REQUIRE(ReadOnnx(model).ok());
  const std::string bytes = ReadBytes(model);

  SECTION("absolute location") {
    WriteBytes(model, Patch(bytes, "e.onnx.data", "/e.onnx.dat"));
    Expected<Model> m = ReadOnnx(model);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(m.status().message(), Catch::Contains("absolute"));
    CHECK_THAT(m.status().message(), Catch::Contains(model));
  }
  SECTION("'..' component") {
    fs::copy_file(model + ".data", dir / "e.onnx.d");
    WriteBytes(model, Patch(bytes, "e.onnx.data", "../e.onnx.d"));
    Expected<Model> m = ReadOnnx(model);
    REQUIRE_FALSE(m.ok());
    CHECK_THAT(m.status().message(), Catch::Contains("'..'"));
    CHECK_THAT(m.status().message(), Catch::Contains("tensor 'w'"));
  }
  SECTION("symlink that resolves outside") {
    fs::rename(model + ".data", dir / "outside.data");
    fs::create_symlink(dir.path / "outside.data", model + ".data");
    Expected<Model> m = ReadOnnx(model);
    REQUIRE_FALSE(m.ok());
    CHECK_THAT(m.status().message(), Catch::Contains("outside the model's directory"));
  }
  SECTION("symlink inside the directory is fine") {
    fs::rename(model + ".data", dir / "m/real.data");
    fs::create_symlink("real.data", model + ".data");
    CHECK(ReadOnnx(model).ok());
  }
}

TEST_CASE("ONNX reader refuses truncated and garbage files, naming the file", "[io][onnx]") {
  TempDir dir("garbage");
  const std::string bytes = ReadBytes(kModels + "/stories260k/model.onnx");
  REQUIRE(bytes.size() > 1000);
  const std::string path = dir / "bad.onnx";
  for (size_t keep : {size_t{1}, bytes.size() / 4, bytes.size() / 2, bytes.size() * 3 / 4,
                      bytes.size() - 1}) {
    INFO("kept " << keep << " of " << bytes.size() << " bytes");
    WriteBytes(path, bytes.substr(0, keep));
    Expected<Model> m = ReadOnnx(path);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(m.status().message(), Catch::StartsWith(path + ": "));
  }
  std::string noise(4096, '\0');
  uint32_t state = 12345;
  for (char& c : noise) {
    state = state * 1664525u + 1013904223u;
    c = static_cast<char>(state >> 24);
  }
  for (const std::string& junk : {noise, std::string("hello, this is not a model\n"),
                                  std::string()}) {
    WriteBytes(path, junk);
    Expected<Model> m = ReadOnnx(path);
    REQUIRE_FALSE(m.ok());
    CHECK(m.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(m.status().message(), Catch::Contains(path));
  }
  Expected<Model> missing = ReadOnnx(dir / "no_such.onnx");
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(), Catch::Contains("no_such.onnx"));
}

TEST_CASE("ONNX reader checks raw_data size against dims", "[io][onnx]") {
  TempDir dir("mismatch");
  const std::string path = dir / "m.onnx";
  REQUIRE(WriteOnnx(SmallGraph("mismatch", 4), path).ok());
  REQUIRE(ReadOnnx(path).ok());
  // TensorProto header as the writer emits it: dims (field 1) = 4,
  // data_type (field 2) = 1, name (field 8) = "mismatch". Claim 5 elements.
  const std::string header = std::string("\x08\x04\x10\x01\x42\x08", 6) + "mismatch";
  const std::string patched = std::string("\x08\x05\x10\x01\x42\x08", 6) + "mismatch";
  WriteBytes(path, Patch(ReadBytes(path), header, patched));
  Expected<Model> m = ReadOnnx(path);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == StatusCode::kInvalidInput);
  CHECK_THAT(m.status().message(), Catch::Contains("tensor 'mismatch'"));
  CHECK_THAT(m.status().message(), Catch::Contains("16 bytes"));
  CHECK_THAT(m.status().message(), Catch::Contains("need 20"));
}

TEST_CASE("ONNX reader refuses opsets older than 9", "[io][onnx]") {
  TempDir dir("opset");
  const std::string path = dir / "old.onnx";
  REQUIRE(WriteOnnx(SmallGraph("w", 4, 8), path).ok());
  Expected<Model> m = ReadOnnx(path);
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == StatusCode::kUnsupported);
  CHECK_THAT(m.status().message(), Catch::Contains("opset 8"));
  REQUIRE(WriteOnnx(SmallGraph("w", 4, 9), path).ok());
  Expected<Model> ok = ReadOnnx(path);
  REQUIRE(ok.ok());
  CHECK(ok->graph.onnx_opset() == 9);
  CHECK_FALSE(ok->decoder.has_value());
}

TEST_CASE("ONNX reader detects the decoder interface", "[io][onnx]") {
  Expected<Model> kv = ReadOnnx(kModels + "/stories260k/model_kv.onnx");
  REQUIRE(kv.ok());
  REQUIRE(kv->decoder.has_value());
  CHECK(kv->decoder->has_past);
  CHECK(kv->decoder->num_layers == 5);
  CHECK(kv->decoder->num_kv_heads == 4);
  CHECK(kv->decoder->head_dim == 8);
  CHECK(kv->decoder->vocab_size == 512);
  CHECK(kv->decoder->kv_dtype == DType::kFloat16);
  CHECK(kv->decoder->has_attention_mask);
  CHECK(kv->decoder->has_position_ids);

  Expected<Model> full = ReadOnnx(kModels + "/stories260k/model.onnx");
  REQUIRE(full.ok());
  REQUIRE(full->decoder.has_value());
  CHECK_FALSE(full->decoder->has_past);
  CHECK(full->decoder->num_layers == 0);
  CHECK(full->decoder->vocab_size == 512);

  Expected<Model> kjv = ReadOnnx(kModels + "/kjv-byte/model_kv.onnx");
  REQUIRE(kjv.ok());
  REQUIRE(kjv->decoder.has_value());
  CHECK(kjv->decoder->num_layers == 4);
  CHECK(kjv->decoder->num_kv_heads == 2);
  CHECK(kjv->decoder->head_dim == 32);
  CHECK(kjv->decoder->vocab_size == 264);
}

TEST_CASE("ONNX writer refuses what ONNX cannot hold and writes atomically", "[io][onnx]") {
  TempDir dir("writer");
  const std::string path = dir / "w.onnx";
  SECTION("packed dtype") {
    Graph g = SmallGraph("w", 4);
    g.AddInitializer("q", Tensor::View(std::make_shared<OwnedBuffer>(8), 0, 8,
                                       DType::kInt4Packed, {16}));
    Status st = WriteOnnx(g, path);
    CHECK(st.code() == StatusCode::kUnsupported);
    CHECK_THAT(st.message(), Catch::Contains("tensor 'q'"));
  }
  SECTION("bytes that do not match the shape") {
    Graph g = SmallGraph("w", 4);
    g.AddInitializer("odd", Tensor::View(std::make_shared<OwnedBuffer>(10), 0, 10,
                                         DType::kFloat32, {3}));
    Status st = WriteOnnx(g, path);
    CHECK(st.code() == StatusCode::kInvalidInput);
    CHECK_THAT(st.message(), Catch::Contains("tensor 'odd'"));
  }
  SECTION("no ai.onnx opset") {
    Graph g = SmallGraph("w", 4);
    g.opset_imports.clear();
    CHECK_FALSE(WriteOnnx(g, path).ok());
  }
  // Nothing is left behind by a failed write: no output, no temporaries.
  CHECK(fs::is_empty(dir.path));
  CHECK_FALSE(WriteOnnx(SmallGraph("w", 4), dir / "missing_dir/w.onnx").ok());
}

TEST_CASE("ONNX attributes and Constant tensors survive a round trip", "[io][onnx]") {
  TempDir dir("attrs");
  Graph g = SmallGraph("w", 4);
  Node c;
  c.name = "const";
  c.op_type = "Constant";
  c.outputs = {"c"};
  c.attrs["value"] = Attribute::FromTensor(
      Tensor::FromVector(DType::kFloat16, {2, 2}, std::vector<uint16_t>{0x3c00, 0x4000, 0, 0x7e00}));
  g.nodes.insert(g.nodes.begin(), c);
  Node& add = g.nodes[1];
  add.attrs["f"] = Attribute::Float(1.5f);
  add.attrs["s"] = Attribute::String("text");
  add.attrs["fs"] = Attribute::Floats({1.f, -2.f});
  add.attrs["is"] = Attribute::Ints({-1, 0, 1LL << 40});
  Attribute strings;
  strings.type = Attribute::Type::kStrings;
  strings.strings = {"a", "", "c"};
  add.attrs["ss"] = strings;
  g.value_info["c"] = {"c", DType::kFloat16, Shape{2, Dim()}};
  g.inputs[0].shape = Shape{"batch", 4};
  g.metadata["key"] = "value";
  g.producer_name = "slimpack-test";
  const std::string path = dir / "a.onnx";
  OnnxWriteOptions options;
  for (size_t threshold : {size_t{0}, size_t{4}}) {
    options.external_data_threshold = threshold;
    INFO("threshold " << threshold);
    REQUIRE(WriteOnnx(g, path, options).ok());
    Expected<Model> back = ReadOnnx(path);
    REQUIRE(back.ok());
    CheckSameGraph(g, back->graph);
  }
}

TEST_CASE("ONNX subgraph attributes and test-data tensors", "[io][onnx]") {
  if (!fs::exists(kNodeTests)) {
    FAIL("ONNX node test data missing: install libonnx-testdata (" << kNodeTests << ")");
  }
  Expected<Model> m = ReadOnnx(kNodeTests + "/test_if/model.onnx");
  REQUIRE_FALSE(m.ok());
  CHECK(m.status().code() == StatusCode::kUnsupported);
  CHECK_THAT(m.status().message(), Catch::Contains("op 'If'"));
  Expected<std::vector<std::string>> ops = ReadOnnxOpTypes(kNodeTests + "/test_if/model.onnx");
  REQUIRE(ops.ok());
  CHECK(*ops == std::vector<std::string>{"If"});

  std::string name;
  Expected<Tensor> t =
      ReadTensorProtoFile(kNodeTests + "/test_add/test_data_set_0/input_0.pb", &name);
  REQUIRE(t.ok());
  CHECK(name == "x");
  CHECK(t->dtype() == DType::kFloat32);
  CHECK(t->shape() == std::vector<int64_t>{3, 4, 5});
  Expected<Tensor> bad = ReadTensorProtoFile(kModels + "/stories260k/config.json");
  CHECK_FALSE(bad.ok());
}

TEST_CASE("ONNX reader survives single-byte corruption anywhere", "[io][onnx]") {
  TempDir dir("corrupt");
  Graph g = SmallGraph("w", 8);
  g.nodes[0].attrs["axis"] = Attribute::Int(1);
  g.nodes[0].attrs["pads"] = Attribute::Ints({0, 1});
  const std::string path = dir / "c.onnx";
  OnnxWriteOptions options;
  options.external_data_threshold = 16;  // exercise the external path too
  REQUIRE(WriteOnnx(g, path, options).ok());
  const std::string bytes = ReadBytes(path);
  REQUIRE(bytes.size() < 1024);
  int refused = 0;
  for (size_t i = 0; i < bytes.size(); ++i) {
    for (const int value : {0x00, 0x7f, 0xff}) {
      std::string bad = bytes;
      bad[i] = static_cast<char>(value);
      WriteBytes(path, bad);
      // Either a clean Status or a model; never a crash (run under ASan/UBSan).
      Expected<Model> m = ReadOnnx(path);
      if (!m.ok()) {
        ++refused;
        CHECK_THAT(m.status().message(), Catch::Contains(path));
      }
    }
  }
  CHECK(refused > static_cast<int>(bytes.size()));
}
