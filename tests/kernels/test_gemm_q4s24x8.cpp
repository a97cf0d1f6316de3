// The 2:4 sparse int4 layout in 8-row tiles (q4g{G}_sym_s24_x8): its bytes
// on a hand-worked example, pack/unpack round trip, a reader's rejections,
// and the i8-dot kernels: the ref is bit-identical to the dense x8 i8-dot
// ref on the same codes (both compute the exact integer sum of (u - 8) * xq,
// the dense one over zeros too), and every SIMD table the host runs is
// bit-identical to the ref, on awkward sizes, column ranges, M = 1, 3, 5 and
// at the int16 accumulation limit of the AVX2 twin.
#include <catch2/catch.hpp>

#include <cstring>
#include <random>
#include <vector>

#include "libcompress/common/half.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"
#include "tests/kernels/sparse_test_util.h"

namespace slim {
namespace {

QuantizedMatrix Quantize(const std::vector<float>& w, size_t n, size_t k, size_t g) {
  QuantOptions o;
  o.scheme = QuantScheme{4, g, true};
  auto q = QuantizeMatrix(w.data(), n, k, o);
  REQUIRE(q.ok());
  return *q;
}

QuantLayout S24X8(size_t g) { return QuantLayout{QuantLayoutKind::kQ4S24X8, g, true}; }

}  // namespace

TEST_CASE("q4 2:4 x8 layout: names, sizes and a hand-worked tile", "[kernels][s24]") {
  const QuantLayout l = S24X8(32);
  CHECK(l.Name() == "q4g32_sym_s24_x8");
  auto parsed = ParseQuantLayout("q4g128_sym_s24_x8");
  REQUIRE(parsed.ok());
  CHECK(*parsed == S24X8(128));
  CHECK_FALSE(ParseQuantLayout("q4g32_asym_s24_x8").ok());
  CHECK(l.IsSparse());
  CHECK(DefaultComputePath(l) == QComputePath::kI8Dot);
  // [9, 33] at G = 32: 2 blocks x 2 groups x 112 bytes.
  CHECK(l.PackedBytes(9, 33) == 448);
  CHECK(PackedBitsPerWeight(l, 5632, 2048) == 3.5);
  CHECK(PackedBitsPerWeight(S24X8(128), 5632, 2048) == 3.125);

  // One row [1, 32], scale 1: quad 0 keeps positions 1 and 3 with codes 1
  // and -2; every other code is 0.
  QuantizedMatrix q = EmptyQuantizedMatrix(QuantScheme{4, 32, true}, 1, 32);
  q.codes[1] = 1;
  q.codes[3] = -2;
  q.scales[0] = 1.0f;
  auto blob = PackQuantized(q, l);
  REQUIRE(blob.ok());
  REQUIRE(blob->size() == 112);
  const std::vector<uint8_t>& b = *blob;
  // Codes: byte 4r + i (h = 0); row 0's slots 0 and 1 of quad 0 hold u = 9
  // and 6 in the low nibbles; all other nibbles are u = 8 (code 0).
  CHECK(b[0] == 0x89);
  CHECK(b[1] == 0x86);
  CHECK(b[2] == 0x88);
  CHECK(b[3] == 0x88);
  for (size_t i = 4; i < 64; ++i) CHECK(b[i] == 0x88);
  // Positions: byte 4r + i, field t = 2s + h. Row 0: slot 0 of quad 0 is at
  // position 1; slot 1 at 3; the all-zero quads keep positions (0, 1), so
  // odd bytes hold 1 in every field (0x55) and even ones 0.
  CHECK(b[64] == 0x01);
  CHECK(b[65] == (3 | 1 << 2 | 1 << 4 | 1 << 6));
  CHECK(b[66] == 0x00);
  CHECK(b[67] == 0x55);
  for (size_t r = 1; r < 8; ++r) {
    CHECK(b[64 + 4 * r] == 0x00);
    CHECK(b[64 + 4 * r + 1] == 0x55);
  }
  // Scales: row 0 is 1.0, padded rows 0.
  CHECK(b[96] == 0x00);
  CHECK(b[97] == 0x3c);
  for (size_t i = 98; i < 112; ++i) CHECK(b[i] == 0);
}

TEST_CASE("q4 2:4 x8 layout: round trip, and the reader rejects what it must", "[kernels][s24]") {
  for (size_t g : {32, 64, 128}) {
    for (size_t k : {1, 7, 33, 130, 257}) {
      for (size_t n : {1, 5, 8, 13}) {
        INFO("G=" << g << " K=" << k << " N=" << n);
        const QuantizedMatrix q = Quantize(slim_test::Sparse24(n, k, static_cast<uint32_t>(k + g + n)), n, k, g);
        auto blob = PackQuantized(q, S24X8(g));
        REQUIRE(blob.ok());
        REQUIRE(blob->size() == S24X8(g).PackedBytes(n, k));
        auto back = UnpackQuantized(blob->data(), blob->size(), S24X8(g), n, k);
        INFO(back.status().message());
        REQUIRE(back.ok());
        CHECK(back->codes == q.codes);
        CHECK(back->scales == q.scales);
      }
    }
  }
  const size_t n = 5, k = 64;
  const QuantLayout l = S24X8(32);
  std::vector<float> dense(n * k, 0.01f);
  auto refused = PackQuantized(Quantize(dense, n, k, 32), l);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("more than 2 nonzero"));
  const auto good = *PackQuantized(Quantize(slim_test::Sparse24(n, k, 3), n, k, 32), l);
  // Changes byte `offset` to `value`; the message names byte `named`.
  auto rejects = [&](size_t offset, uint8_t value, size_t named, const char* what) {
    auto bad = good;
    bad[offset] = value;
    auto r = UnpackQuantized(bad.data(), bad.size(), l, n, k);
    INFO(what);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("byte offset " + std::to_string(named)));
  };
  // Row 0, quad 0: slot 0 at position 3, not below slot 1's.
  rejects(64, static_cast<uint8_t>(good[64] | 3), 64, "positions not increasing");
  // Padded row 5 (first tile): a nonzero code, a moved position, a scale
  // (1.0 in its high byte; the message names the scale's first byte).
  rejects(4 * 5, 0x87, 4 * 5, "padded row code");
  rejects(64 + 4 * 5 + 1, 0x56, 64 + 4 * 5 + 1, "padded row position");
  rejects(96 + 2 * 5 + 1, 0x3c, 96 + 2 * 5, "padded row scale");
  {
    // A zero code kept at a higher position than a free lower one: row 0
    // keeps only element 3 (a nonzero code), canonically at (0, 3).
    std::vector<float> w(n * k, 0.0f);
    w[3] = 0.05f;
    auto blob = *PackQuantized(Quantize(w, n, k, 32), l);
    CHECK((blob[64] & 3) == 0);
    CHECK((blob[65] & 3) == 3);
    blob[64] = static_cast<uint8_t>((blob[64] & ~3) | 1);  // positions (1, 3)
    auto r = UnpackQuantized(blob.data(), blob.size(), l, n, k);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("canonical"));
  }
  {
    // K = 33 pads the row to 64 elements: a nonzero code past K is refused.
    const size_t k2 = 33;
    auto blob = *PackQuantized(Quantize(slim_test::Sparse24(n, k2, 4), n, k2, 32), l);
    // Element 36 of row 0 = quad 1 of group 1, an all-zero quad kept at
    // positions (0, 1): its slot 0 is code byte 2 (i = 2) of the tile of
    // group 1, at 112, low nibble.
    blob[112 + 2] = static_cast<uint8_t>((blob[112 + 2] & 0xf0) | 0x9);
    auto r = UnpackQuantized(blob.data(), blob.size(), l, n, k2);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("padding element"));
  }
  CHECK_FALSE(UnpackQuantized(good.data(), good.size() - 1, l, n, k).ok());
}

TEST_CASE("q4 2:4 x8 i8-dot: ref equals the dense x8 i8-dot ref, every table equals the ref",
          "[kernels][s24]") {
  const auto tables = slim_test::RunnableTables();
  uint32_t seed = 21;
  for (size_t g : {32, 64, 128}) {
    for (size_t k : {1, 7, 33, 172, 257}) {
      for (size_t n : {1, 9, 33}) {
        const QuantizedMatrix q = Quantize(slim_test::Sparse24(n, k, seed++), n, k, g);
        const auto ws = *PackQuantized(q, S24X8(g));
        const auto wd = *PackQuantized(q, QuantLayout{QuantLayoutKind::kQ4X8, g, true});
        for (size_t m : {1, 3, 5}) {
          INFO("G=" << g << " K=" << k << " N=" << n << " M=" << m);
          std::mt19937 rng(seed++);
          std::normal_distribution<float> d(0.0f, 1.0f);
          std::vector<float> x(m * k);
          for (float& v : x) v = d(rng);
          const auto y_ref = slim_test::RunQGemm(gemm_q4s24x8_i8_ref, g, x, ws, m, n, k);
          const auto y_dense = slim_test::RunQGemm(gemm_q4x8_i8_ref, g, x, wd, m, n, k);
          REQUIRE(std::memcmp(y_ref.data(), y_dense.data(), y_ref.size() * sizeof(float)) == 0);
          for (const QGemmKernels* t : tables) {
            INFO(t->isa);
            const auto y = slim_test::RunQGemm(t->q4s24x8_i8, g, x, ws, m, n, k);
            REQUIRE(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
            slim_test::CheckColumnRange(slim_test::RunQGemm(t->q4s24x8_i8, g, x, ws, m, n, k, 8, 24), y, m, n);
          }
        }
      }
    }
  }
  auto plan = SelectQGemm(S24X8(32), QComputePath::kI8Dot);
  REQUIRE(plan.ok());
  CHECK_THAT(plan->kernel_name, Catch::StartsWith("q4s24x8_i8_"));
  // No float twin: the row layout is the 2:4 float path.
  CHECK_FALSE(SelectQGemm(S24X8(32), QComputePath::kF32DequantFma).ok());
}

TEST_CASE("q4 2:4 x8 i8-dot at the accumulation limit", "[kernels][s24]") {
  // Every kept code -8 and every activation quantized to 127: each product
  // is -1016, the AVX2 twin's int16 lanes reach 16 x 2032 = 32512 at G = 128.
  const auto tables = slim_test::RunnableTables();
  const size_t n = 9, k = 257;
  for (size_t g : {32, 64, 128}) {
    QuantizedMatrix q = EmptyQuantizedMatrix(QuantScheme{4, g, true}, n, k);
    for (size_t r = 0; r < n; ++r) {
      for (size_t e = 0; e < k; ++e) q.codes[r * k + e] = e % 4 < 2 ? -8 : 0;
    }
    for (float& s : q.scales) s = 1.0f;
    const auto ws = *PackQuantized(q, S24X8(g));
    const auto wd = *PackQuantized(q, QuantLayout{QuantLayoutKind::kQ4X8, g, true});
    const std::vector<float> x(k, 0.5f);
    INFO("G=" << g);
    const auto y_ref = slim_test::RunQGemm(gemm_q4s24x8_i8_ref, g, x, ws, 1, n, k);
    const auto y_dense = slim_test::RunQGemm(gemm_q4x8_i8_ref, g, x, wd, 1, n, k);
    REQUIRE(std::memcmp(y_ref.data(), y_dense.data(), y_ref.size() * sizeof(float)) == 0);
    // 129 kept codes of -8, each against 0.5 (exactly 127 * xs).
    CHECK(y_ref[0] == Approx(-8.0 * 0.5 * 129).epsilon(1e-6));
    for (const QGemmKernels* t : tables) {
      INFO(t->isa);
      const auto y = slim_test::RunQGemm(t->q4s24x8_i8, g, x, ws, 1, n, k);
      REQUIRE(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
    }
  }
}

}  // namespace slim
