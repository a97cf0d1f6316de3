// int4 nl (non-uniform levels, QuantScheme::nl) in 8-row tiles
// (q4g{G}_nl_x8): names and sizes, the bytes (those of q4g{G}_sym_x8 for the
// same codes), pack/unpack round trip and scheme checks, and the i8-dot
// kernels: the ref against the dequantized weights, every SIMD table the
// host runs bit-identical to the ref on awkward sizes, column ranges, M = 1,
// 3, 5, and at the extreme levels where the AVX2 twin's int16 products peak.
#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"
#include "tests/kernels/sparse_test_util.h"

namespace slim {
namespace {

QuantLayout NlX8(size_t g) { return QuantLayout{QuantLayoutKind::kQ4NlX8, g, true}; }

QuantizedMatrix QuantizeNl(size_t n, size_t k, size_t g, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(n * k);
  for (float& v : w) v = d(rng);
  QuantOptions o;
  o.scheme = QuantScheme{4, g, true, true};
  auto q = QuantizeMatrix(w.data(), n, k, o);
  REQUIRE(q.ok());
  return *q;
}

}  // namespace

TEST_CASE("q4 nl x8 layout: names, sizes, the bytes of sym x8, round trip, scheme checks", "[kernels][nl]") {
  CHECK(NlX8(32).Name() == "q4g32_nl_x8");
  auto parsed = ParseQuantLayout("q4g128_nl_x8");
  REQUIRE(parsed.ok());
  CHECK(*parsed == NlX8(128));
  CHECK_FALSE(ParseQuantLayout("q4g32_nl_row").ok());
  CHECK(NlX8(64).Scheme().nl);
  CHECK_FALSE(NlX8(64).IsSparse());
  CHECK(DefaultComputePath(NlX8(32)) == QComputePath::kI8Dot);
  const QuantLayout sym{QuantLayoutKind::kQ4X8, 32, true};
  CHECK(NlX8(32).PackedBytes(9, 33) == sym.PackedBytes(9, 33));
  CHECK(PackedBitsPerWeight(NlX8(32), 5632, 2048) == 4.5);

  const QuantizedMatrix q = QuantizeNl(9, 33, 32, 3);
  auto blob = PackQuantized(q, NlX8(32));
  REQUIRE(blob.ok());
  // The same codes and scales as uniform symmetric codes: the same bytes.
  QuantizedMatrix as_sym = q;
  as_sym.scheme.nl = false;
  auto sym_blob = PackQuantized(as_sym, sym);
  REQUIRE(sym_blob.ok());
  CHECK(*blob == *sym_blob);
  // Each layout refuses the other scheme's codes.
  CHECK_FALSE(PackQuantized(q, sym).ok());
  CHECK_FALSE(PackQuantized(as_sym, NlX8(32)).ok());

  auto back = UnpackQuantized(blob->data(), blob->size(), NlX8(32), 9, 33);
  REQUIRE(back.ok());
  CHECK(back->scheme.nl);
  CHECK(back->codes == q.codes);
  CHECK(back->scales == q.scales);
  std::vector<float> w(9 * 33);
  DequantizeMatrix(*back, w.data());
  for (size_t r = 0; r < 9; ++r) {
    for (size_t e = 0; e < 33; ++e) {
      const float s = q.scales[r * q.groups_per_row + e / 32];
      REQUIRE(w[r * 33 + e] == s * static_cast<float>(kNl4Levels[q.codes[r * 33 + e] + 8]));
    }
  }
  // A padding nibble other than 8 is refused with its offset (as sym x8).
  std::vector<uint8_t> bad = *blob;
  const size_t tile1 = NlX8(32).PackedBytes(8, 64) / 2;  // block 0, group 1: elements 32..63
  bad[tile1 + 1] = static_cast<uint8_t>((bad[tile1 + 1] & 0xf0) | 0x9);  // element 33 of row 0
  auto rejected = UnpackQuantized(bad.data(), bad.size(), NlX8(32), 9, 33);
  REQUIRE_FALSE(rejected.ok());
  CHECK_THAT(rejected.status().message(), Catch::Contains("padding nibble at byte offset"));
  // nl is symmetric and int4 only.
  CHECK_FALSE(ValidateQuantScheme(QuantScheme{4, 32, false, true}).ok());
  CHECK_FALSE(ValidateQuantScheme(QuantScheme{8, 0, true, true}).ok());
}

TEST_CASE("q4 nl x8 i8-dot: the ref is the dequantized product up to X's rounding, every table equals the ref",
          "[kernels][nl]") {
  const auto tables = slim_test::RunnableTables();
  uint32_t seed = 5;
  for (size_t g : {32, 64, 128}) {
    for (size_t k : {1, 7, 33, 172, 257}) {
      for (size_t n : {1, 9, 33}) {
        const QuantizedMatrix q = QuantizeNl(n, k, g, seed++);
        const auto w = *PackQuantized(q, NlX8(g));
        std::vector<float> wd(n * k);
        DequantizeMatrix(q, wd.data());
        for (size_t m : {1, 3, 5}) {
          INFO("G=" << g << " K=" << k << " N=" << n << " M=" << m);
          std::mt19937 rng(seed++);
          std::normal_distribution<float> d(0.0f, 1.0f);
          std::vector<float> x(m * k);
          for (float& v : x) v = d(rng);
          const auto y_ref = slim_test::RunQGemm(gemm_q4nlx8_i8_ref, g, x, w, m, n, k);
          for (size_t i = 0; i < m; ++i) {
            for (size_t r = 0; r < n; ++r) {
              // Rounding X to int8 per group: at most xs / 2 = max|x| / 254
              // per element of the group, times |w'|.
              double exact = 0, bound = 1e-5;
              for (size_t e0 = 0; e0 < k; e0 += g) {
                float amax = 0.0f;
                for (size_t e = e0; e < std::min(k, e0 + g); ++e) amax = std::max(amax, std::fabs(x[i * k + e]));
                for (size_t e = e0; e < std::min(k, e0 + g); ++e) {
                  exact += static_cast<double>(wd[r * k + e]) * x[i * k + e];
                  bound += std::fabs(wd[r * k + e]) * amax / 254.0;
                }
              }
              REQUIRE(std::fabs(y_ref[i * n + r] - exact) <= bound);
            }
          }
          for (const QGemmKernels* t : tables) {
            INFO(t->isa);
            const auto y = slim_test::RunQGemm(t->q4nlx8_i8, g, x, w, m, n, k);
            REQUIRE(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
            slim_test::CheckColumnRange(slim_test::RunQGemm(t->q4nlx8_i8, g, x, w, m, n, k, 8, 24), y, m, n);
          }
        }
      }
    }
  }
  auto plan = SelectQGemm(NlX8(32), QComputePath::kI8Dot);
  REQUIRE(plan.ok());
  CHECK_THAT(plan->kernel_name, Catch::StartsWith("q4nlx8_i8_"));
  CHECK_FALSE(SelectQGemm(NlX8(32), QComputePath::kF32DequantFma).ok());
}

TEST_CASE("q4 nl x8 i8-dot at the extreme levels", "[kernels][nl]") {
  // Codes -8 (level -127) and 7 (level 113) against activations quantized to
  // +-127: the AVX2 twin's vpmaddubsw lanes reach 2 * 127 * 127 = 32258.
  const auto tables = slim_test::RunnableTables();
  const size_t n = 9, k = 257;
  for (size_t g : {32, 64, 128}) {
    QuantizedMatrix q = EmptyQuantizedMatrix(QuantScheme{4, g, true, true}, n, k);
    for (size_t r = 0; r < n; ++r) {
      for (size_t e = 0; e < k; ++e) q.codes[r * k + e] = (r + e) % 5 == 0 ? 7 : -8;
    }
    for (float& s : q.scales) s = 0.5f;
    const auto w = *PackQuantized(q, NlX8(g));
    std::vector<float> x(k);
    for (size_t e = 0; e < k; ++e) x[e] = e % 3 == 0 ? -2.0f : 2.0f;
    INFO("G=" << g);
    const auto y_ref = slim_test::RunQGemm(gemm_q4nlx8_i8_ref, g, x, w, 1, n, k);
    double exact = 0;  // row 0; every |x| is the group maximum, so xq = +-127 exactly
    for (size_t e = 0; e < k; ++e) exact += 0.5 * kNl4Levels[q.codes[e] + 8] * x[e];
    CHECK(y_ref[0] == Approx(exact).epsilon(1e-6));
    for (const QGemmKernels* t : tables) {
      INFO(t->isa);
      const auto y = slim_test::RunQGemm(t->q4nlx8_i8, g, x, w, 1, n, k);
      REQUIRE(std::memcmp(y.data(), y_ref.data(), y.size() * sizeof(float)) == 0);
    }
  }
}

}  // namespace slim
