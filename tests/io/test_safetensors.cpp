// safetensors reader/writer: round trip, and every malformed-file rule of
// the reader on hand-crafted bytes (each case must fail with a message that
// names the file, the tensor and the broken rule).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "libcompress/io/safetensors.h"
#include "tests/test_util.h"

using Catch::Matchers::Contains;
using namespace slim;
using slim_test::TempDir;

namespace {

// Writes u64 header length + header + data bytes.
std::string WriteRaw(const std::string& dir, const std::string& header,
                     const std::vector<uint8_t>& data, const std::string& name = "t.safetensors") {
  const std::string path = dir + "/" + name;
  std::ofstream out(path, std::ios::binary);
  uint64_t n = header.size();
  uint8_t len[8];
  for (int i = 0; i < 8; ++i) len[i] = static_cast<uint8_t>(n >> (8 * i));
  out.write(reinterpret_cast<const char*>(len), 8);
  out << header;
  out.write(reinterpret_cast<const char*>(data.data()), static_cast<std::streamsize>(data.size()));
  return path;
}

// The reader's error for a crafted file; fails the test if it was accepted.
Status ReadError(const std::string& path) {
  auto r = ReadSafetensors(path);
  REQUIRE_FALSE(r.ok());
  return r.status();
}

}  // namespace

TEST_CASE("safetensors round trip keeps order, dtypes, bytes and metadata", "[safetensors]") {
  const TempDir tmp("st");
  const std::string dir = tmp.path.string();
  const std::string path = dir + "/rt.safetensors";
  // Ordered so every tensor lands aligned for its dtype (the writer keeps
  // the given order and adds no padding between tensors).
  std::vector<std::pair<std::string, Tensor>> in;
  in.emplace_back("m.ids", Tensor::FromVector<int64_t>(DType::kInt64, {2}, {-7, 1LL << 40}));
  in.emplace_back("z.half", Tensor::FromVector<uint16_t>(DType::kFloat16, {2, 3},
                                                         {FloatToHalf(1.5f), 0, 1, 2, 3, 0x7c00}));
  in.emplace_back("a.float", Tensor::FromVector<float>(DType::kFloat32, {3}, {1.f, -2.f, 3.25f}));
  in.emplace_back("s.scalar", Tensor::FromVector<float>(DType::kFloat32, {}, {42.f}));
  in.emplace_back("b.flags", Tensor::FromVector<uint8_t>(DType::kBool, {3}, {1, 0, 1}));
  in.emplace_back("e.empty", Tensor::FromVector<uint16_t>(DType::kBFloat16, {0, 4}, {}));
  REQUIRE(WriteSafetensors(path, in, {{"format", "pt"}}).ok());

  // The header is padded so that the data section starts 8-byte aligned.
  std::ifstream f(path, std::ios::binary);
  uint8_t len[8];
  f.read(reinterpret_cast<char*>(len), 8);
  uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | len[i];
  CHECK(header_len % 8 == 0);

  auto r = ReadSafetensorsFile(path);
  REQUIRE(r.ok());
  REQUIRE(r->tensors.size() == in.size());
  CHECK(r->metadata.at("format") == "pt");
  for (size_t i = 0; i < in.size(); ++i) {
    const auto& [name, t] = r->tensors[i];
    CHECK(name == in[i].first);
    CHECK(t.dtype() == in[i].second.dtype());
    CHECK(t.shape() == in[i].second.shape());
    REQUIRE(t.nbytes() == in[i].second.nbytes());
    if (t.nbytes()) {
      CHECK(std::memcmp(t.raw(), in[i].second.raw(), t.nbytes()) == 0);
      CHECK(t.is_mapped());  // a view into the file, not a copy
    }
  }
  CHECK(r->tensors[2].second.FloatAt(2) == 3.25f);
  CHECK(r->tensors[0].second.IntAt(1) == (1LL << 40));
  CHECK(r->tensors[3].second.FloatAt(0) == 42.f);
}

TEST_CASE("safetensors writer refuses bad input and leaves no file", "[safetensors]") {
  const TempDir tmp("st");
  const std::string dir = tmp.path.string();
  const std::string path = dir + "/w.safetensors";
  {
    auto w = SafetensorsWriter::Open(path, {{"a", DType::kFloat32, {2}}});
    REQUIRE(w.ok());
    const float v[3] = {1, 2, 3};
    CHECK_FALSE(w->Append(v, sizeof(v)).ok());  // more than declared
    REQUIRE(w->Append(v, 4).ok());
    const Status st = w->Commit();  // 4 of 8 bytes
    REQUIRE_FALSE(st.ok());
    CHECK_THAT(st.message(), Contains("4 data bytes written"));
  }
  CHECK(::access(path.c_str(), F_OK) != 0);
  auto dup = SafetensorsWriter::Open(path, {{"a", DType::kFloat32, {1}}, {"a", DType::kFloat32, {1}}});
  REQUIRE_FALSE(dup.ok());
  CHECK_THAT(dup.status().message(), Contains("'a' given twice"));
  auto packed = SafetensorsWriter::Open(path, {{"q", DType::kInt4Packed, {8}}});
  REQUIRE_FALSE(packed.ok());
  CHECK(packed.status().code() == StatusCode::kUnsupported);
}

TEST_CASE("safetensors reader rejects malformed files", "[safetensors]") {
  const TempDir tmp("st");
  const std::string dir = tmp.path.string();
  const std::vector<uint8_t> data8(8, 0);

  SECTION("shorter than the 8-byte length") {
    const std::string path = dir + "/short.safetensors";
    std::ofstream(path, std::ios::binary) << "abc";
    const Status st = ReadError(path);
    CHECK(st.code() == StatusCode::kInvalidInput);
    CHECK_THAT(st.message(), Contains(path) && Contains("truncated") && Contains("3 bytes"));
  }
  SECTION("header length past the end of the file") {
    const std::string path = WriteRaw(dir, "{}", {});
    // Claim a longer header than the file holds by rewriting the length.
    std::fstream f(path, std::ios::binary | std::ios::in | std::ios::out);
    const uint8_t len[8] = {0xff, 0xff, 0, 0, 0, 0, 0, 0};
    f.write(reinterpret_cast<const char*>(len), 8);
    f.close();
    CHECK_THAT(ReadError(path).message(), Contains("header length 65535") && Contains("past the end"));
  }
  SECTION("header is not JSON") {
    CHECK_THAT(ReadError(WriteRaw(dir, "{\"a\": [1, 2", {})).message(),
               Contains("not valid JSON") && Contains("t.safetensors"));
  }
  SECTION("header is not an object") {
    CHECK_THAT(ReadError(WriteRaw(dir, "[1, 2]", {})).message(), Contains("expected an object"));
  }
  SECTION("unknown dtype") {
    const Status st = ReadError(
        WriteRaw(dir, R"({"w": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", data8));
    CHECK(st.code() == StatusCode::kUnsupported);
    CHECK_THAT(st.message(), Contains("tensor 'w'") && Contains("F8_E4M3"));
  }
  SECTION("shape with a negative dim") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": [-1], "data_offsets": [0, 8]}})", data8))
                   .message(),
               Contains("tensor 'w'") && Contains("non-negative integers"));
  }
  SECTION("shape with a non-integer dim") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": [2.5], "data_offsets": [0, 8]}})", data8))
                   .message(),
               Contains("non-negative integers, found 2.5"));
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": 8, "data_offsets": [0, 8]}})", data8))
                   .message(),
               Contains("\"shape\" must be a list"));
  }
  SECTION("size product overflows") {
    CHECK_THAT(ReadError(WriteRaw(dir,
                                  R"({"w": {"dtype": "F32", "shape": [4611686018427387904, 4], "data_offsets": [0, 8]}})",
                                  data8))
                   .message(),
               Contains("tensor 'w'") && Contains("overflows"));
    // numel fits int64 but numel * 8 bytes does not fit uint64.
    CHECK_THAT(ReadError(WriteRaw(dir,
                                  R"({"w": {"dtype": "F64", "shape": [4611686018427387904], "data_offsets": [0, 8]}})",
                                  data8))
                   .message(),
               Contains("overflows"));
  }
  SECTION("data_offsets not [begin, end]") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": [8], "data_offsets": [0]}})", data8))
                   .message(),
               Contains("must be [begin, end]"));
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": [8], "data_offsets": [0, -8]}})", data8))
                   .message(),
               Contains("two non-negative integers"));
  }
  SECTION("data_offsets begin > end") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": [0], "data_offsets": [8, 4]}})", data8))
                   .message(),
               Contains("tensor 'w'") && Contains("begin 8 > end 4"));
  }
  SECTION("end past the data section") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "U8", "shape": [16], "data_offsets": [0, 16]}})", data8))
                   .message(),
               Contains("end 16 is past the end of the data section (8 bytes)"));
  }
  SECTION("byte size differs from dtype and shape") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", data8))
                   .message(),
               Contains("size mismatch") && Contains("needs 12 bytes"));
  }
  SECTION("overlapping tensors") {
    const std::vector<uint8_t> data12(12, 0);
    CHECK_THAT(ReadError(WriteRaw(dir,
                                  R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                      "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
                                  data12))
                   .message(),
               Contains("'b'") && Contains("overlaps tensor 'a'"));
  }
  SECTION("duplicate tensor names") {
    const std::vector<uint8_t> data16(16, 0);
    CHECK_THAT(ReadError(WriteRaw(dir,
                                  R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
                                      "a": {"dtype": "F32", "shape": [2], "data_offsets": [8, 16]}})",
                                  data16))
                   .message(),
               Contains("'a' appears twice"));
  }
  SECTION("metadata that is not strings") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"__metadata__": {"format": 1}})", {})).message(),
               Contains("__metadata__") && Contains("'format'"));
  }
  SECTION("missing dtype") {
    CHECK_THAT(ReadError(WriteRaw(dir, R"({"w": {"shape": [8], "data_offsets": [0, 8]}})", data8)).message(),
               Contains("\"dtype\""));
  }
}

TEST_CASE("safetensors reader copies misaligned tensors and keeps nested keys", "[safetensors]") {
  const TempDir tmp("st");
  const std::string dir = tmp.path.string();
  // Header padded to 8 bytes; "b" starts at data byte 2, misaligned for F32.
  std::string header =
      R"({"a": {"dtype": "U8", "shape": [2], "data_offsets": [0, 2]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [2, 6]}, "__metadata__": {"a": "x", "b": "y"}})";
  header.append((8 - header.size() % 8) % 8, ' ');
  std::vector<uint8_t> data = {7, 9, 0, 0, 0, 0};
  const float v = 2.5f;
  std::memcpy(data.data() + 2, &v, 4);
  auto r = ReadSafetensorsFile(WriteRaw(dir, header, data));
  REQUIRE(r.ok());
  REQUIRE(r->tensors.size() == 2);
  CHECK(r->tensors[0].first == "a");
  CHECK(r->tensors[0].second.IntAt(1) == 9);
  CHECK(r->tensors[1].second.FloatAt(0) == 2.5f);
  CHECK_FALSE(r->tensors[1].second.is_mapped());  // owned, aligned copy
  CHECK(r->metadata.size() == 2);  // metadata keys equal to tensor names are no duplicates
}
