// The 2:4 sparse int4 layout (q4g{G}_sym_s24_row): bytes, pack/unpack round
// trip, a reader's rejections (with byte offsets), and the kernels: the ref
// is bit-identical to the dense q4 row ref on the same codes (the skipped
// products are exact zeros), the AVX2 twin within gemm_q.h's bound, both on
// awkward sizes and column ranges.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "libcompress/kernels/cpu_features.h"
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

}  // namespace

TEST_CASE("q4 2:4 layout: names, bytes, 3.5 bits per weight at group 32", "[kernels][s24]") {
  const QuantLayout l{QuantLayoutKind::kQ4S24Row, 32, true};
  CHECK(l.Name() == "q4g32_sym_s24_row");
  auto parsed = ParseQuantLayout("q4g128_sym_s24_row");
  REQUIRE(parsed.ok());
  CHECK(parsed->kind == QuantLayoutKind::kQ4S24Row);
  CHECK_FALSE(ParseQuantLayout("q4g32_asym_s24_row").ok());
  // [3, 33]: 2 groups -> 16 quads per row: 48 value bytes, index at 64 (24
  // bytes), scales at 128 (12 bytes).
  CHECK(l.PackedBytes(3, 33) == 140);
  CHECK(PackedBitsPerWeight(l, 5632, 2048) == 3.5);
  CHECK(PackedBitsPerWeight(QuantLayout{QuantLayoutKind::kQ4Row, 32, true}, 5632, 2048) == 4.5);
}

TEST_CASE("q4 2:4 layout: round trip, and the reader rejects what it must", "[kernels][s24]") {
  for (size_t g : {32, 64, 128}) {
    for (size_t k : {1, 7, 33, 130, 257}) {
      const size_t n = 5;
      INFO("G=" << g << " K=" << k);
      const QuantLayout l{QuantLayoutKind::kQ4S24Row, g, true};
      const QuantizedMatrix q = Quantize(slim_test::Sparse24(n, k, static_cast<uint32_t>(k + g)), n, k, g);
      auto blob = PackQuantized(q, l);
      REQUIRE(blob.ok());
      REQUIRE(blob->size() == l.PackedBytes(n, k));
      auto back = UnpackQuantized(blob->data(), blob->size(), l, n, k);
      INFO(back.status().message());
      REQUIRE(back.ok());
      CHECK(back->codes == q.codes);
      CHECK(back->scales == q.scales);
    }
  }
  const size_t n = 4, k = 64;
  const QuantLayout l{QuantLayoutKind::kQ4S24Row, 32, true};
  // Dense codes do not fit.
  std::vector<float> dense(n * k, 0.01f);
  auto refused = PackQuantized(Quantize(dense, n, k, 32), l);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("more than 2 nonzero"));
  const auto good = *PackQuantized(Quantize(slim_test::Sparse24(n, k, 3), n, k, 32), l);
  const size_t io = Q4S24RowLayout::IndexOffset(n, k, 32);
  {
    auto bad = good;
    bad[io] = static_cast<uint8_t>((bad[io] & 0xf0) | 0x5);  // positions 1, 1
    auto r = UnpackQuantized(bad.data(), bad.size(), l, n, k);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("byte offset " + std::to_string(io)));
  }
  {
    auto bad = good;
    bad[n * Q4S24RowLayout::Quads(k, 32)] = 1;  // alignment gap
    CHECK_FALSE(UnpackQuantized(bad.data(), bad.size(), l, n, k).ok());
  }
  {
    // A zero code kept at a higher position than a free lower one.
    std::vector<float> w(n * k, 0.0f);
    w[3] = 0.05f;  // quad 0 keeps positions 0 (zero) and 3
    auto blob = *PackQuantized(Quantize(w, n, k, 32), l);
    CHECK((blob[io] & 0xf) == (0 | (3 << 2)));
    blob[io] = static_cast<uint8_t>((blob[io] & 0xf0) | (1 | (3 << 2)));  // positions 1, 3
    auto r = UnpackQuantized(blob.data(), blob.size(), l, n, k);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("canonical"));
  }
  CHECK_FALSE(UnpackQuantized(good.data(), good.size() - 1, l, n, k).ok());
}

TEST_CASE("q4 2:4 kernels: ref bit-identical to the dense ref, AVX2 within the bound", "[kernels][s24]") {
  const bool avx2 = HostCpuFeatures().has_x86_avx2();
  if (!avx2) WARN("host has no AVX2+FMA+F16C: only the reference kernel is checked");
  uint32_t seed = 11;
  for (size_t g : {32, 64, 128}) {
    for (size_t k : {1, 7, 33, 172, 257}) {
      for (size_t n : {1, 9, 33}) {
        const QuantizedMatrix q = Quantize(slim_test::Sparse24(n, k, seed++), n, k, g);
        const QuantLayout s24{QuantLayoutKind::kQ4S24Row, g, true}, row{QuantLayoutKind::kQ4Row, g, true};
        const auto ws = *PackQuantized(q, s24);
        const auto wr = *PackQuantized(q, row);
        std::vector<float> wd(n * k);
        DequantizeMatrix(q, wd.data());
        for (size_t m : {1, 3}) {
          INFO("G=" << g << " K=" << k << " N=" << n << " M=" << m);
          std::mt19937 rng(seed++);
          std::normal_distribution<float> d(0.0f, 1.0f);
          std::vector<float> x(m * k);
          for (float& v : x) v = d(rng);
          const auto y_ref = slim_test::RunQGemm(gemm_q4s24_row_f32_ref, g, x, ws, m, n, k);
          const auto y_row = slim_test::RunQGemm(gemm_q4_row_f32_ref, g, x, wr, m, n, k);
          CHECK(std::memcmp(y_ref.data(), y_row.data(), y_ref.size() * sizeof(float)) == 0);
          if (!avx2) continue;
          const auto y_avx = slim_test::RunQGemm(gemm_q4s24_row_f32_avx2, g, x, ws, m, n, k);
          slim_test::CheckTwinBound(x, wd, y_avx, y_ref, m, n, k);
          slim_test::CheckColumnRange(slim_test::RunQGemm(gemm_q4s24_row_f32_avx2, g, x, ws, m, n, k, 8, 24), y_avx, m, n);
        }
      }
    }
  }
  // The runtime's plan picks the layout's kernel.
  auto plan = SelectQGemm(QuantLayout{QuantLayoutKind::kQ4S24Row, 32, true}, QComputePath::kF32DequantFma);
  REQUIRE(plan.ok());
  CHECK_THAT(plan->kernel_name, Catch::StartsWith("q4s24_row_f32_"));
}
}  // namespace slim
