// Packed format: round trips of the bundled models (same graph, same bytes,
// bit-identical logits), packed dtypes with their layouts, page alignment,
// determinism, and refusal of corrupted or hostile files: one flipped byte
// in every section, truncation, wrong magic, and metadata that passes its
// checksum but breaks a table rule (rebuilt with the writer's own header
// codec so the test needs no second implementation of the format).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <filesystem>
#include <functional>
#include <fstream>
#include <iterator>
#include <limits>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "libcompress/common/sha256.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/io/packed_internal.h"
#include "libcompress/runtime/decoder_session.h"
#include "tests/io/graph_compare.h"

namespace fs = std::filesystem;
using namespace slim;
using nlohmann::json;

using slim_test::CheckSameGraph;
using slim_test::ReadBytes;
using slim_test::TempDir;
using slim_test::WriteBytes;

namespace {

const std::string kModels = std::string(SLIMPACK_SOURCE_DIR) + "/models";

void CheckSameDecoder(const Model& a, const Model& b) {
  REQUIRE(a.decoder.has_value() == b.decoder.has_value());
  if (a.decoder) {
    CHECK(packed::DecoderToJson(*a.decoder) == packed::DecoderToJson(*b.decoder));
  }
  REQUIRE(a.byte_vocab.has_value() == b.byte_vocab.has_value());
  if (a.byte_vocab) CHECK(a.byte_vocab->first_id == b.byte_vocab->first_id);
}

std::vector<float> Logits(const Model& m, const std::vector<int64_t>& prompt, int steps) {
  auto session = DecoderSession::Create(m);
  REQUIRE(session.ok());
  auto first = (*session)->Append(prompt);
  REQUIRE(first.ok());
  std::vector<float> all = *first;
  // Then a few single-token steps (the KV-cache path), feeding token ids
  // that are valid for any vocabulary.
  for (int s = 0; s < steps; ++s) {
    auto step = (*session)->Append({static_cast<int64_t>(s + 3)});
    REQUIRE(step.ok());
    all.insert(all.end(), step->begin(), step->end());
  }
  return all;
}

// A graph in the compression core's shape: one MatMulQ reading int4 codes
// (packed dtype, explicit nbytes) and FP16 scales, plus a Constant node.
Model PackedDtypeModel(const std::string& layout, size_t code_bytes) {
  Model m;
  m.format = "test";
  Graph& g = m.graph;
  g.name = "q";
  g.opset_imports[""] = 17;
  g.opset_imports["slimpack"] = 1;
  const int64_t n = 8, k = 40;
  g.inputs.push_back({"a", DType::kFloat32, Shape{"batch", k}});
  g.outputs.push_back({"y", DType::kFloat32, Shape{"batch", n}});
  std::vector<uint8_t> codes(code_bytes);
  for (size_t i = 0; i < codes.size(); ++i) codes[i] = static_cast<uint8_t>(i * 37 + 11);
  g.AddInitializer("w", Tensor::FromBytes(DType::kInt4Packed, {n, k}, codes.data(), codes.size()));
  std::vector<uint16_t> scales(static_cast<size_t>(n * 2), 0x3c00);
  g.AddInitializer("w.scales", Tensor::FromVector(DType::kFloat16, {n, 2}, scales));
  Node c;
  c.name = "bias_const";
  c.op_type = "Constant";
  c.outputs = {"bias"};
  c.attrs["value"] = Attribute::FromTensor(
      Tensor::FromVector(DType::kFloat32, {n}, std::vector<float>(8, 0.25f)));
  g.nodes.push_back(c);
  Node q;
  q.name = "mm";
  q.op_type = "MatMulQ";
  q.domain = "slimpack";
  q.inputs = {"a", "w", "w.scales", "", "bias"};
  q.outputs = {"y"};
  q.attrs["K"] = Attribute::Int(k);
  q.attrs["N"] = Attribute::Int(n);
  q.attrs["bits"] = Attribute::Int(4);
  q.attrs["group_size"] = Attribute::Int(32);
  q.attrs["symmetric"] = Attribute::Int(1);
  q.attrs["layout"] = Attribute::String(layout);
  q.attrs["alpha"] = Attribute::Float(-std::numeric_limits<float>::infinity());
  q.attrs["betas"] = Attribute::Floats({0.1f, std::numeric_limits<float>::quiet_NaN(), 3e38f});
  Attribute strings;
  strings.type = Attribute::Type::kStrings;
  strings.strings = {"a", "", "\"quoted\\"};
  q.attrs["names"] = strings;
  g.nodes.push_back(q);
  Dim both(8);
  both.symbol = "n";
  g.value_info["bias"] = {"bias", DType::kFloat32, Shape{both}};
  g.metadata["note"] = "packed test";
  return m;
}

// Rebuilds a file around edited metadata, with valid header and metadata
// checksums, so the reader's table rules (not its checksums) are what fail.
std::string WithMetadata(const std::string& file, const json& meta) {
  const uint8_t* p = reinterpret_cast<const uint8_t*>(file.data());
  packed::Header h = packed::DecodeHeader(p);
  const std::string old_data = file.substr(h.data_offset);
  const std::string text = meta.dump();
  const uint64_t align = (h.flags & kPackedFlagPageAligned) ? kPackedPageAlign : kPackedTensorAlign;
  h.metadata_size = text.size();
  h.data_offset = (kPackedHeaderBytes + text.size() + align - 1) / align * align;
  h.metadata_checksum = packed::Checksum64(text.data(), text.size());
  uint8_t header[kPackedHeaderBytes];
  packed::EncodeHeader(h, header);
  std::string out(reinterpret_cast<const char*>(header), kPackedHeaderBytes);
  out += text;
  out.resize(h.data_offset, '\0');
  return out + old_data;
}

json MetadataOf(const std::string& file) {
  const packed::Header h = packed::DecodeHeader(reinterpret_cast<const uint8_t*>(file.data()));
  return json::parse(file.substr(h.metadata_offset, h.metadata_size));
}

}  // namespace

TEST_CASE("packed round trip of the bundled models: graph, bytes and logits", "[io][packed]") {
  TempDir dir("roundtrip");
  for (const char* name : {"stories260k", "kjv-byte"}) {
    const std::string src = kModels + "/" + name + "/model_kv.onnx";
    INFO(src);
    Expected<Model> onnx = LoadModel(src);
    REQUIRE(onnx.ok());
    const std::string out = dir / (std::string(name) + ".slim");
    PackedWriteOptions options;
    options.provenance_json = R"({"tool": "slimpack-test", "source_sha256": "abc"})";
    Status st = WritePacked(*onnx, out, options);
    REQUIRE(st.ok());
    Expected<Model> back = ReadPacked(out);
    INFO(back.status().message());
    REQUIRE(back.ok());
    CHECK(back->format == "packed");
    CHECK(back->path == out);
    CheckSameGraph(onnx->graph, back->graph);
    CheckSameDecoder(*onnx, *back);
    // Zero-copy: every weight is a view into the file's mapping.
    for (const std::string& init : back->graph.initializer_names()) {
      INFO(init);
      CHECK(back->graph.FindInitializer(init)->is_mapped());
    }

    Expected<PackedInfo> info = ReadPackedInfo(out);
    REQUIRE(info.ok());
    CHECK(json::parse(info->provenance_json) == json::parse(options.provenance_json));
    const std::string bytes = ReadBytes(out);
    CHECK(info->file_size == bytes.size());
    CHECK(info->content_sha256 ==
          Sha256Hex(bytes.data() + info->data_offset, static_cast<size_t>(info->data_size)));
    uint64_t weight_bytes = 0;
    for (const PackedTensorEntry& e : info->tensors) {
      CHECK(e.offset % kPackedTensorAlign == 0);
      CHECK(e.layout == kDenseLayout);
      weight_bytes += e.nbytes;
    }
    WARN(name << ": onnx " << fs::file_size(src) << " bytes, packed " << bytes.size()
              << " bytes (tensors " << weight_bytes << ", metadata " << info->metadata_size
              << ", " << info->tensors.size() << " tensors, padding "
              << info->data_size - weight_bytes << ")");

    const std::vector<int64_t> prompt = {1, 5, 9, 2, 7};
    const std::vector<float> want = Logits(*onnx, prompt, 3);
    const std::vector<float> got = Logits(*back, prompt, 3);
    REQUIRE(want.size() == got.size());
    CHECK(std::memcmp(want.data(), got.data(), 4 * want.size()) == 0);
  }
}

TEST_CASE("packed round trip of an in-memory model read from safetensors", "[io][packed]") {
  TempDir dir("hf");
  Expected<Model> hf = LoadModel(kModels + "/stories260k");
  REQUIRE(hf.ok());
  const std::string out = dir / "hf.slim";
  REQUIRE(WritePacked(*hf, out).ok());
  Expected<Model> back = ReadPacked(out);
  INFO(back.status().message());
  REQUIRE(back.ok());
  CheckSameGraph(hf->graph, back->graph);
  CheckSameDecoder(*hf, *back);
}

TEST_CASE("packed dtypes keep explicit sizes and per-tensor layouts", "[io][packed]") {
  TempDir dir("dtypes");
  // N = 8, K = 40 in q4g32_sym_x8 is one 8-row block of 2 tiles of 144
  // bytes (docs/LAYOUTS.md); the writer does not interpret the bytes, only
  // carries them, their size and the layout name.
  const Model m = PackedDtypeModel("q4g32_sym_x8", 2 * 144);
  const std::string out = dir / "q.slim";
  Status st = WritePacked(m, out);
  INFO(st.message());
  REQUIRE(st.ok());
  Expected<Model> back = ReadPacked(out);
  INFO(back.status().message());
  REQUIRE(back.ok());
  CheckSameGraph(m.graph, back->graph);
  CHECK_FALSE(back->decoder.has_value());
  const Tensor* w = back->graph.FindInitializer("w");
  REQUIRE(w);
  CHECK(w->dtype() == DType::kInt4Packed);
  CHECK(w->nbytes() == 2 * 144);
  CHECK(w->shape() == std::vector<int64_t>{8, 40});
  CHECK(w->is_mapped());
  const Node& c = back->graph.nodes[0];
  REQUIRE(c.attrs.at("value").t.defined());
  CHECK(c.attrs.at("value").t.is_mapped());

  Expected<PackedInfo> info = ReadPackedInfo(out);
  REQUIRE(info.ok());
  REQUIRE(info->tensors.size() == 3);
  CHECK(info->tensors[0].name == "w");
  CHECK(info->tensors[0].layout == "q4g32_sym_x8");
  CHECK(info->tensors[0].dtype == DType::kInt4Packed);
  CHECK(info->tensors[1].name == "w.scales");
  CHECK(info->tensors[1].layout == kDenseLayout);
  CHECK(info->tensors[2].name == "bias");  // the Constant's value, by reference
  CHECK(info->provenance_json == "{}");

  SECTION("a packed tensor nobody names a layout for is refused") {
    Model bad = m;
    bad.graph.nodes[1].attrs.erase("layout");
    Status s = WritePacked(bad, dir / "bad.slim");
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("tensor 'w'") && Catch::Contains("layout"));
    CHECK_FALSE(fs::exists(dir / "bad.slim"));
  }
  SECTION("two readers disagreeing on the layout are refused") {
    Model bad = m;
    Node second = bad.graph.nodes[1];
    second.name = "mm2";
    second.outputs = {"y2"};
    second.attrs["layout"] = Attribute::String("q4g32_sym_row");
    bad.graph.nodes.push_back(second);
    Status s = WritePacked(bad, dir / "bad.slim");
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("q4g32_sym_row") && Catch::Contains("q4g32_sym_x8"));
  }
  SECTION("a plain tensor whose size disagrees with its shape is refused") {
    Model bad = m;
    std::vector<uint8_t> three(3);
    *bad.graph.MutableInitializer("w.scales") =
        Tensor::FromBytes(DType::kFloat16, {8, 2}, three.data(), three.size());
    Status s = WritePacked(bad, dir / "bad.slim");
    REQUIRE_FALSE(s.ok());
    CHECK_THAT(s.message(), Catch::Contains("w.scales") && Catch::Contains("needs 32"));
  }
  SECTION("provenance must be a JSON object") {
    PackedWriteOptions o;
    o.provenance_json = "[1, 2]";
    CHECK_FALSE(WritePacked(m, dir / "bad.slim", o).ok());
    o.provenance_json = "{\"recipe\": ";
    CHECK_FALSE(WritePacked(m, dir / "bad.slim", o).ok());
    CHECK_FALSE(fs::exists(dir / "bad.slim"));
  }
}

TEST_CASE("packed files: page alignment, determinism and magic sniffing", "[io][packed]") {
  TempDir dir("align");
  Expected<Model> onnx = LoadModel(kModels + "/stories260k/model_kv.onnx");
  REQUIRE(onnx.ok());
  PackedWriteOptions page;
  page.page_align = true;
  REQUIRE(WritePacked(*onnx, dir / "page.slim", page).ok());
  Expected<PackedInfo> info = ReadPackedInfo(dir / "page.slim");
  REQUIRE(info.ok());
  CHECK(info->page_aligned);
  CHECK(info->flags == kPackedFlagPageAligned);
  CHECK(info->data_offset % kPackedPageAlign == 0);
  for (const PackedTensorEntry& e : info->tensors) {
    INFO(e.name);
    CHECK(e.offset % kPackedPageAlign == 0);
  }
  Expected<Model> back = ReadPacked(dir / "page.slim");
  REQUIRE(back.ok());
  CheckSameGraph(onnx->graph, back->graph);
  WARN("stories260k page-aligned: " << info->file_size << " bytes");

  // Same model, same options: same bytes (no timestamps, sorted keys).
  REQUIRE(WritePacked(*onnx, dir / "a.slim").ok());
  REQUIRE(WritePacked(*onnx, dir / "b.slim").ok());
  const std::string a = ReadBytes(dir / "a.slim");
  CHECK(a == ReadBytes(dir / "b.slim"));
  // Re-writing what was read back (mapped tensors) gives the same file too.
  Expected<Model> again = ReadPacked(dir / "a.slim");
  REQUIRE(again.ok());
  REQUIRE(WritePacked(*again, dir / "c.slim").ok());
  CHECK(a == ReadBytes(dir / "c.slim"));
  CHECK(a != ReadBytes(dir / "page.slim"));

  CHECK(IsPackedFile(dir / "a.slim"));
  CHECK_FALSE(IsPackedFile(kModels + "/stories260k/model_kv.onnx"));
  CHECK_FALSE(IsPackedFile(dir / "missing.slim"));
  // A failed write leaves no output behind.
  CHECK_FALSE(WritePacked(*onnx, dir / "no/such/dir.slim").ok());
}

TEST_CASE("packed reader catches a flipped byte in every section", "[io][packed]") {
  TempDir dir("corrupt");
  const Model m = PackedDtypeModel("q4g32_sym_row", 2 * 144);
  const std::string good_path = dir / "good.slim";
  REQUIRE(WritePacked(m, good_path).ok());
  Expected<PackedInfo> info = ReadPackedInfo(good_path);
  REQUIRE(info.ok());
  const std::string good = ReadBytes(good_path);
  const std::string path = dir / "bad.slim";

  auto expect_error = [&](size_t at, const std::string& needle) {
    std::string bytes = good;
    bytes[at] = static_cast<char>(bytes[at] ^ 0x10);
    WriteBytes(path, bytes);
    Expected<Model> r = ReadPacked(path);
    INFO("flipped byte " << at << ", expecting '" << needle << "'");
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK(r.status().message().rfind(path, 0) == 0);  // names the file first
    CHECK_THAT(r.status().message(), Catch::Contains(needle));
  };
  // Every header byte: magic, version, flags, offsets, sizes, checksums.
  for (size_t at = 0; at < kPackedHeaderBytes; ++at) expect_error(at, "header");
  expect_error(static_cast<size_t>(info->metadata_offset), "metadata");
  expect_error(static_cast<size_t>(info->metadata_offset + info->metadata_size / 2), "metadata");
  expect_error(static_cast<size_t>(info->metadata_offset + info->metadata_size - 1), "metadata");
  // First, middle and last byte of every tensor (first/middle/last tensor
  // included: w, w.scales, bias).
  REQUIRE(info->tensors.size() == 3);
  for (const PackedTensorEntry& e : info->tensors) {
    const std::string needle = "tensor '" + e.name + "'";
    for (uint64_t at : {e.offset, e.offset + e.nbytes / 2, e.offset + e.nbytes - 1}) {
      expect_error(static_cast<size_t>(at), needle);
    }
  }
  // Alignment padding: after the metadata and between tensors.
  expect_error(static_cast<size_t>(info->data_offset - 1), "padding after metadata");
  expect_error(static_cast<size_t>(info->tensors[2].offset - 1), "padding before tensor 'bias'");
  CHECK(ReadPacked(good_path).ok());  // the pristine file still reads
}

TEST_CASE("packed reader refuses truncated files and wrong magic", "[io][packed]") {
  TempDir dir("trunc");
  const Model m = PackedDtypeModel("q4g32_sym_row", 2 * 144);
  const std::string good_path = dir / "good.slim";
  REQUIRE(WritePacked(m, good_path).ok());
  const std::string good = ReadBytes(good_path);
  const std::string path = dir / "bad.slim";

  for (size_t keep : {good.size() - 1, good.size() / 2, size_t{70}, size_t{40}, size_t{3},
                      size_t{0}}) {
    INFO("kept " << keep << " of " << good.size() << " bytes");
    WriteBytes(path, good.substr(0, keep));
    Expected<Model> r = ReadPacked(path);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK_THAT(r.status().message(), Catch::Contains("header"));
    CHECK_FALSE(ReadPackedInfo(path).ok());
  }
  WriteBytes(path, good + std::string(64, '\0'));
  CHECK_FALSE(ReadPacked(path).ok());  // trailing bytes: size mismatch

  std::string gguf = good;
  std::memcpy(&gguf[0], "GGUF\x03\x00\x00\x00", 8);
  WriteBytes(path, gguf);
  Expected<Model> r = ReadPacked(path);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(),
             Catch::Contains("\"GGUF\\x03\\x00\\x00\\x00\" (47 47 55 46 03 00 00 00)"));
  CHECK_FALSE(IsPackedFile(path));
  CHECK_FALSE(ReadPacked(dir / "missing.slim").ok());
}

TEST_CASE("packed reader enforces the tensor table rules", "[io][packed]") {
  TempDir dir("table");
  const Model m = PackedDtypeModel("q4g32_sym_row", 2 * 144);
  const std::string good_path = dir / "good.slim";
  REQUIRE(WritePacked(m, good_path).ok());
  const std::string good = ReadBytes(good_path);
  const json meta = MetadataOf(good);
  const std::string path = dir / "bad.slim";
  REQUIRE(meta["tensors"].size() == 3);

  // The rebuild itself is faithful: unchanged metadata reads fine.
  WriteBytes(path, WithMetadata(good, meta));
  REQUIRE(ReadPacked(path).ok());

  struct Case {
    const char* what;
    std::function<void(json&)> edit;
    const char* needle;
  };
  const std::vector<Case> cases = {
      {"offset past the end", [](json& j) { j["tensors"][2]["offset"] = 1 << 20; },
       "exceed the data section"},
      {"size past the end", [](json& j) { j["tensors"][0]["nbytes"] = uint64_t{1} << 62; },
       "exceed the data section"},
      {"misaligned", [](json& j) { j["tensors"][1]["offset"] = 260; }, "not a multiple of 64"},
      {"overlap", [](json& j) { j["tensors"][1]["offset"] = 64; }, "overlaps"},
      {"duplicate name", [](json& j) { j["tensors"][1]["name"] = "w"; }, "duplicate name"},
      {"size vs shape", [](json& j) { j["tensors"][1]["shape"] = json::array({8, 3}); },
       "needs 48"},
      {"negative dim", [](json& j) { j["tensors"][1]["shape"] = json::array({-8, 2}); },
       "dims must be integers >= 0"},
      {"overflowing shape",
       [](json& j) { j["tensors"][1]["shape"] = json::array({uint64_t{1} << 40, uint64_t{1} << 40}); },
       "overflows"},
      {"unknown dtype", [](json& j) { j["tensors"][1]["dtype"] = 77; }, "unknown dtype code 77"},
      {"packed without layout", [](json& j) { j["tensors"][0]["layout"] = "dense"; },
       "needs a packed layout"},
      {"plain with a layout", [](json& j) { j["tensors"][1]["layout"] = "q8_row"; },
       "must have layout 'dense'"},
      {"bad checksum text", [](json& j) { j["tensors"][1]["checksum"] = "xyz"; }, "hex digits"},
      {"unreferenced tensor",
       [](json& j) {
         j["graph"]["initializers"].erase(1);
         j["graph"]["nodes"][1]["inputs"][2] = "";
       },
       "never references"},
      {"missing tensor", [](json& j) { j["graph"]["initializers"][1] = "nope"; },
       "'nope' is not in the tensor table"},
      {"bad attribute", [](json& j) { j["graph"]["nodes"][1]["attrs"]["K"]["value"] = "40"; },
       "graph.nodes[1].attrs.K.value: expected an integer"},
      {"bad graph", [](json& j) { j["graph"]["nodes"][1]["inputs"][0] = "ghost"; }, "ghost"},
      {"bad decoder", [](json& j) { j["decoder"] = json{{"num_layers", 1}}; }, "decoder"},
  };
  for (const Case& c : cases) {
    INFO(c.what);
    json edited = meta;
    c.edit(edited);
    WriteBytes(path, WithMetadata(good, edited));
    Expected<Model> r = ReadPacked(path);
    REQUIRE_FALSE(r.ok());
    INFO(r.status().message());
    CHECK_THAT(r.status().message(), Catch::Contains(c.needle));
  }

  // Not JSON at all, with a valid checksum: the error gives the file byte.
  std::string junk = good;
  const packed::Header h = packed::DecodeHeader(reinterpret_cast<const uint8_t*>(good.data()));
  junk[h.metadata_offset + 1] = '#';
  packed::Header h2 = h;
  h2.metadata_checksum = packed::Checksum64(junk.data() + h.metadata_offset, h.metadata_size);
  uint8_t header[kPackedHeaderBytes];
  packed::EncodeHeader(h2, header);
  std::memcpy(&junk[0], header, kPackedHeaderBytes);
  WriteBytes(path, junk);
  Expected<Model> r = ReadPacked(path);
  REQUIRE_FALSE(r.ok());
  CHECK_THAT(r.status().message(), Catch::Contains("not valid JSON at byte 65"));
}
