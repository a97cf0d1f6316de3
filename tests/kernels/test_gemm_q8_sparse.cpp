// The sparse int8 layouts (q8_s24_row: 2:4; q8_bm_row: bitmask + nonzero
// codes): bytes, pack/unpack round trips, a reader's rejections (with byte
// offsets), and the kernels: each ref is bit-identical to the dense q8_row ref
// on the same codes, each AVX2 twin within gemm_q.h's bound, on awkward sizes
// and column ranges; PlanQGemm checks a bitmask blob's size against its own
// count, and the kernels stay inside a blob whose offsets lie.
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

const QuantLayout kS24{QuantLayoutKind::kQ8S24Row, 0, true};
const QuantLayout kBm{QuantLayoutKind::kQ8BmRow, 0, true};
const QuantLayout kDense{QuantLayoutKind::kQ8Row, 0, true};

// Unstructured: each element kept with probability `density`; row 0 is all
// zero and the last row fully dense, the two edge cases of a row's mask.
std::vector<float> Unstructured(size_t n, size_t k, double density, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::uniform_real_distribution<double> u(0.0, 1.0);
  std::vector<float> w(n * k, 0.0f);
  for (size_t r = 0; r < n; ++r) {
    for (size_t e = 0; e < k; ++e) {
      const bool keep = n > 1 && r == n - 1 ? true : r == 0 ? false : u(rng) < density;
      if (keep) w[r * k + e] = d(rng) + (d(rng) > 0 ? 0.01f : -0.01f);
    }
  }
  return w;
}

QuantizedMatrix Int8(const std::vector<float>& w, size_t n, size_t k) {
  QuantOptions o;
  o.scheme = QuantScheme{8, 0, true};
  auto q = QuantizeMatrix(w.data(), n, k, o);
  REQUIRE(q.ok());
  return *q;
}

std::vector<float> Run(QGemmFn fn, const std::vector<float>& x, const std::vector<uint8_t>& w, size_t m, size_t n,
                       size_t k, size_t n_begin = 0, size_t n_end = SIZE_MAX) {
  return slim_test::RunQGemm(fn, 0, x, w, m, n, k, n_begin, n_end);
}

void PutU32(std::vector<uint8_t>& b, size_t off, uint32_t v) { std::memcpy(&b[off], &v, 4); }

}  // namespace

TEST_CASE("q8 sparse layouts: names, bytes and bits per weight", "[kernels][sparse]") {
  CHECK(kS24.Name() == "q8_s24_row");
  CHECK(kBm.Name() == "q8_bm_row");
  REQUIRE(ParseQuantLayout("q8_s24_row").ok());
  CHECK(ParseQuantLayout("q8_bm_row")->kind == QuantLayoutKind::kQ8BmRow);
  CHECK(kS24.IsSparse());
  CHECK(kBm.IsSparse());
  CHECK_FALSE(kDense.IsSparse());
  // [3, 33] 2:4: 10 quads per row: 60 value bytes, index at 64 (15 bytes),
  // scales at 128.
  CHECK(kS24.PackedBytes(3, 33) == 140);
  // [3, 33] bitmask with 10 nonzero codes: masks 24 bytes, offsets at 24 (16
  // bytes), values at 64, scales at 128.
  CHECK(kBm.PackedBytes(3, 33, 10) == 140);
  CHECK(PackedBitsPerWeight(kS24, 5632, 2048) == 5.0 + 32.0 / 2048);
  CHECK(PackedBitsPerWeight(kBm, 5632, 2048, 5632 * 1024) == Approx(1.0 + 4.0 + 64.0 / 2048).epsilon(1e-4));
}

TEST_CASE("q8 sparse layouts: round trips", "[kernels][sparse]") {
  uint32_t seed = 1;
  for (size_t k : {1, 7, 8, 33, 64, 130, 257}) {
    for (size_t n : {1, 5}) {
      INFO("K=" << k << " N=" << n);
      const QuantizedMatrix q24 = Int8(slim_test::Sparse24(n, k, seed++), n, k);
      auto b24 = PackQuantized(q24, kS24);
      REQUIRE(b24.ok());
      REQUIRE(b24->size() == kS24.PackedBytes(n, k));
      auto back24 = UnpackQuantized(b24->data(), b24->size(), kS24, n, k);
      INFO(back24.status().message());
      REQUIRE(back24.ok());
      CHECK(back24->codes == q24.codes);
      CHECK(back24->scales == q24.scales);
      for (double density : {0.05, 0.5, 0.9}) {
        const QuantizedMatrix q = Int8(Unstructured(n, k, density, seed++), n, k);
        auto bm = PackQuantized(q, kBm);
        REQUIRE(bm.ok());
        REQUIRE(bm->size() == kBm.PackedBytes(n, k, NonzeroCodes(q)));
        auto back = UnpackQuantized(bm->data(), bm->size(), kBm, n, k);
        INFO(back.status().message());
        REQUIRE(back.ok());
        CHECK(back->codes == q.codes);
        CHECK(back->scales == q.scales);
      }
    }
  }
  // The 2:4 layout refuses codes that do not fit; the bitmask takes anything.
  const QuantizedMatrix dense = Int8(std::vector<float>(4 * 16, 0.01f), 4, 16);
  CHECK_FALSE(CodesFitLayout(dense, kS24));
  CHECK(CodesFitLayout(dense, kBm));
  auto refused = PackQuantized(dense, kS24);
  REQUIRE_FALSE(refused.ok());
  CHECK_THAT(refused.status().message(), Catch::Contains("more than 2 nonzero"));
  CHECK(PackQuantized(dense, kBm).ok());
}

TEST_CASE("q8 2:4 layout: the reader rejects what it must", "[kernels][sparse]") {
  const size_t n = 4, k = 36;  // padded to 40: quad 9 of every row is padding
  const auto good = *PackQuantized(Int8(slim_test::Sparse24(n, k, 3), n, k), kS24);
  const size_t io = Q8S24RowLayout::IndexOffset(n, k);
  auto reject = [&](std::vector<uint8_t> bad, const std::string& what) {
    auto r = UnpackQuantized(bad.data(), bad.size(), kS24, n, k);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(what));
  };
  {
    auto bad = good;
    bad[io] = static_cast<uint8_t>((bad[io] & 0xf0) | 0x5);  // positions 1, 1
    reject(bad, "byte offset " + std::to_string(io));
  }
  {
    auto bad = good;
    bad[0] = 0x80;  // code -128
    reject(bad, "-128");
  }
  {
    auto bad = good;
    bad[2 * n * Q8S24RowLayout::Quads(k)] = 1;  // alignment gap
    reject(bad, "padding");
  }
  {
    // Quad 9 of row 0 keeps positions 0 and 1 (elements 36, 37: padding);
    // a nonzero code there is refused.
    auto bad = good;
    bad[2 * 9] = 3;
    reject(bad, "padding element");
  }
  {
    auto bad = good;
    const size_t so = Q8S24RowLayout::ScalesOffset(n, k);
    const float nan = std::nanf("");
    std::memcpy(&bad[so], &nan, 4);
    reject(bad, "byte offset " + std::to_string(so));
  }
  CHECK_FALSE(UnpackQuantized(good.data(), good.size() - 1, kS24, n, k).ok());
}

TEST_CASE("q8 bitmask layout: the reader rejects what it must", "[kernels][sparse]") {
  const size_t n = 4, k = 70;  // 2 mask words per row, bits 70..127 padding
  const QuantizedMatrix q = Int8(Unstructured(n, k, 0.4, 9), n, k);
  const auto good = *PackQuantized(q, kBm);
  const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(n, k);
  const size_t vo = Q8BitmaskRowLayout::ValuesOffset(n, k);
  auto reject = [&](std::vector<uint8_t> bad, const std::string& what) {
    auto r = UnpackQuantized(bad.data(), bad.size(), kBm, n, k);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains(what));
  };
  uint32_t r2;
  std::memcpy(&r2, &good[oo + 8], 4);
  {
    auto bad = good;
    PutU32(bad, oo + 8, r2 + 1);  // row 2 starts one code late
    reject(bad, "row offset 2 at byte offset " + std::to_string(oo + 8));
  }
  {
    auto bad = good;
    bad[8 * (1 * 2 + 1) + 1] |= 0x80;  // row 1, word 1, bit 15: element 79 >= K
    reject(bad, "padding element 79");
  }
  {
    auto bad = good;
    bad[vo] = 0;  // a stored code that is zero
    reject(bad, "is 0");
  }
  {
    // offsets[N] one larger than the masks keep (the size still fits: the
    // alignment gap absorbs one byte), and one that changes the size.
    auto bad = good;
    uint32_t nnz;
    std::memcpy(&nnz, &bad[oo + 4 * n], 4);
    PutU32(bad, oo + 4 * n, nnz + 1);
    reject(bad, "offsets[N] at byte offset " + std::to_string(oo + 4 * n));
    PutU32(bad, oo + 4 * n, nnz + 64);
    reject(bad, "bytes, got");
  }
  {
    // A blob that ends before the offsets array.
    std::vector<uint8_t> tiny(good.begin(), good.begin() + static_cast<std::ptrdiff_t>(oo));
    reject(tiny, "ends before its row offsets");
  }
  {
    auto bad = good;
    bad[oo + 4 * (n + 1)] = 7;  // gap between offsets and values
    reject(bad, "padding");
  }
}

TEST_CASE("q8 sparse kernels: refs bit-identical to the dense ref, AVX2 within the bound", "[kernels][sparse]") {
  const bool avx2 = HostCpuFeatures().has_x86_avx2();
  if (!avx2) WARN("host has no AVX2+FMA+F16C: only the reference kernels are checked");
  uint32_t seed = 21;
  struct Case {
    const QuantLayout* layout;
    QGemmFn ref;
    QGemmFn simd;
    double density;  // < 0: 2:4
  };
  const Case cases[] = {{&kS24, gemm_q8s24_row_f32_ref, gemm_q8s24_row_f32_avx2, -1.0},
                        {&kBm, gemm_q8bm_row_f32_ref, gemm_q8bm_row_f32_avx2, 0.5},
                        {&kBm, gemm_q8bm_row_f32_ref, gemm_q8bm_row_f32_avx2, 0.1}};
  for (const Case& c : cases) {
    for (size_t k : {1, 7, 33, 172, 257}) {
      for (size_t n : {1, 9, 33}) {
        const std::vector<float> wf = c.density < 0 ? slim_test::Sparse24(n, k, seed++) : Unstructured(n, k, c.density, seed++);
        const QuantizedMatrix q = Int8(wf, n, k);
        const auto ws = *PackQuantized(q, *c.layout);
        const auto wr = *PackQuantized(q, kDense);
        std::vector<float> wd(n * k);
        DequantizeMatrix(q, wd.data());
        for (size_t m : {1, 3}) {
          INFO(c.layout->Name() << " density " << c.density << " K=" << k << " N=" << n << " M=" << m);
          std::mt19937 rng(seed++);
          std::normal_distribution<float> d(0.0f, 1.0f);
          std::vector<float> x(m * k);
          for (float& v : x) v = d(rng);
          const auto y_ref = Run(c.ref, x, ws, m, n, k);
          const auto y_row = Run(gemm_q8_row_f32_ref, x, wr, m, n, k);
          CHECK(std::memcmp(y_ref.data(), y_row.data(), y_ref.size() * sizeof(float)) == 0);
          if (!avx2) continue;
          const auto y_avx = Run(c.simd, x, ws, m, n, k);
          slim_test::CheckTwinBound(x, wd, y_avx, y_ref, m, n, k);
          slim_test::CheckColumnRange(Run(c.simd, x, ws, m, n, k, 8, 24), y_avx, m, n);
        }
      }
    }
    auto plan = SelectQGemm(*c.layout, QComputePath::kF32DequantFma);
    REQUIRE(plan.ok());
    CHECK_THAT(plan->kernel_name, Catch::StartsWith(c.layout->kind == QuantLayoutKind::kQ8BmRow ? "q8bm_row_f32_"
                                                                                             : "q8s24_row_f32_"));
    CHECK_FALSE(SelectQGemm(*c.layout, QComputePath::kI8Dot).ok());
  }
}

TEST_CASE("q8 bitmask: PlanQGemm checks the blob's own count, lying offsets stay inside the blob",
          "[kernels][sparse]") {
  const size_t n = 9, k = 100;
  const auto good = *PackQuantized(Int8(Unstructured(n, k, 0.3, 5), n, k), kBm);
  const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(n, k);
  CHECK(PlanQGemm(kBm, QComputePath::kF32DequantFma, k, good.data(), good.size(), n).ok());
  CHECK_FALSE(PlanQGemm(kBm, QComputePath::kF32DequantFma, k, good.data(), good.size() + 64, n).ok());
  CHECK_FALSE(PlanQGemm(kBm, QComputePath::kF32DequantFma, k, good.data(), oo + 3, n).ok());
  // Row starts far past the stored codes and masks that keep more than
  // stored: the kernels read zeros there instead of memory past the blob.
  auto bad = good;
  for (size_t r = 0; r < n; ++r) PutU32(bad, oo + 4 * r, 0xfffffff0u);
  for (size_t i = 0; i < oo; ++i) bad[i] = 0xff;
  std::vector<float> x(k, 1.0f);
  const auto y_ref = Run(gemm_q8bm_row_f32_ref, x, bad, 1, n, k);
  for (float v : y_ref) CHECK(v == 0.0f);
  if (HostCpuFeatures().has_x86_avx2()) {
    const auto y_avx = Run(gemm_q8bm_row_f32_avx2, x, bad, 1, n, k);
    for (float v : y_avx) CHECK(v == 0.0f);
  }
}

}  // namespace slim
