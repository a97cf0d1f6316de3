// gemm_f32 kernels: the scalar reference against a float64 oracle, and the
// AVX2 twin against the reference on awkward sizes (K = 1, 7, 33, 172, 257,
// 600 crosses the 256-deep K block twice; N not a multiple of 8 or 16;
// M on both sides of kGemmF32MinBlockedRows), both B layouts and all three
// weight types.
//
// Tolerance: both kernels sum K products in float32, in different orders
// (the twin uses FMA and, for small M with B [N, K], 16 partial sums). Each
// result is within K * eps * sum_p |a_p b_p| of the exact value (the standard
// bound for recursive summation), so twin and reference differ by at most
// twice that. A wrong or missing term is about sum/K, far above the bound.
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <random>
#include <vector>

#include "libcompress/ir/dtype.h"
#include "libcompress/kernels/cpu_features.h"
#include "libcompress/kernels/gemm_f32.h"

namespace slim {
namespace {

enum class WType { kF32, kF16, kBF16 };

const char* Name(WType w) {
  return w == WType::kF32 ? "f32" : w == WType::kF16 ? "f16" : "bf16";
}

struct Problem {
  size_t m, n, k, lda, ldb, ldc;
  GemmBLayout layout;
  WType wtype;
  std::vector<float> a;
  std::vector<float> b32;   // weights as float (exact values of the 16-bit ones)
  std::vector<uint16_t> b16;

  float B(size_t p, size_t j) const {
    return layout == GemmBLayout::kKN ? b32[p * ldb + j] : b32[j * ldb + p];
  }
};

Problem MakeProblem(size_t m, size_t n, size_t k, GemmBLayout layout, WType wtype,
                    uint32_t seed) {
  Problem pr{m, n, k, k + 3, 0, n + 5, layout, wtype, {}, {}, {}};
  pr.ldb = layout == GemmBLayout::kKN ? n + 2 : k + 1;
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  pr.a.resize(m * pr.lda);
  for (auto& x : pr.a) x = dist(rng);
  const size_t rows = layout == GemmBLayout::kKN ? k : n;
  pr.b32.resize(rows * pr.ldb + 1);
  pr.b16.resize(pr.b32.size());
  for (size_t i = 0; i < pr.b32.size(); ++i) {
    const float v = dist(rng);
    if (wtype == WType::kF16) {
      pr.b16[i] = FloatToHalf(v);
      pr.b32[i] = HalfToFloat(pr.b16[i]);
    } else if (wtype == WType::kBF16) {
      pr.b16[i] = FloatToBFloat16(v);
      pr.b32[i] = BFloat16ToFloat(pr.b16[i]);
    } else {
      pr.b32[i] = v;
    }
  }
  return pr;
}

std::vector<float> Run(const GemmF32Kernels& kernels, const Problem& pr) {
  // NaN-filled so an unwritten element or a write past N shows up.
  std::vector<float> c(pr.m * pr.ldc, std::nanf(""));
  switch (pr.wtype) {
    case WType::kF32:
      kernels.gemm_f32(pr.m, pr.n, pr.k, pr.a.data(), pr.lda, pr.b32.data(), pr.ldb, pr.layout,
                       c.data(), pr.ldc);
      break;
    case WType::kF16:
      kernels.gemm_f32_f16w(pr.m, pr.n, pr.k, pr.a.data(), pr.lda, pr.b16.data(), pr.ldb,
                            pr.layout, c.data(), pr.ldc);
      break;
    case WType::kBF16:
      kernels.gemm_f32_bf16w(pr.m, pr.n, pr.k, pr.a.data(), pr.lda, pr.b16.data(), pr.ldb,
                             pr.layout, c.data(), pr.ldc);
      break;
  }
  return c;
}

// Exact-ish product and the summation error bound K * eps * sum |a b|.
void Oracle(const Problem& pr, size_t i, size_t j, double* exact, double* bound) {
  double s = 0, abs_sum = 0;
  for (size_t p = 0; p < pr.k; ++p) {
    const double t = static_cast<double>(pr.a[i * pr.lda + p]) * pr.B(p, j);
    s += t;
    abs_sum += std::fabs(t);
  }
  *exact = s;
  *bound = static_cast<double>(pr.k) * FLT_EPSILON * abs_sum;
}

// Checks c against the oracle with `bound_factor` times the bound, and that
// the padding columns past N were not written.
void CheckAgainstOracle(const Problem& pr, const std::vector<float>& c, double bound_factor) {
  for (size_t i = 0; i < pr.m; ++i) {
    for (size_t j = 0; j < pr.ldc; ++j) {
      const float got = c[i * pr.ldc + j];
      if (j >= pr.n) {
        INFO("padding column " << j << " of row " << i << " was written");
        REQUIRE(std::isnan(got));
        continue;
      }
      double exact, bound;
      Oracle(pr, i, j, &exact, &bound);
      INFO("C[" << i << "," << j << "] = " << got << ", exact " << exact << ", bound " << bound);
      REQUIRE(std::fabs(got - exact) <= bound_factor * bound + 1e-30);
    }
  }
}

const size_t kMs[] = {1, 2, 5, 6, 13};
const size_t kNs[] = {1, 5, 17, 40};
const size_t kKs[] = {1, 7, 33, 172, 257, 600};
const GemmBLayout kLayouts[] = {GemmBLayout::kKN, GemmBLayout::kNK};
const WType kWTypes[] = {WType::kF32, WType::kF16, WType::kBF16};

TEST_CASE("gemm_f32 reference matches a float64 oracle within the summation bound") {
  uint32_t seed = 1;
  for (auto layout : kLayouts) {
    for (auto wtype : kWTypes) {
      for (size_t k : kKs) {
        const Problem pr = MakeProblem(5, 17, k, layout, wtype, seed++);
        INFO(Name(wtype) << " layout " << static_cast<int>(layout) << " K " << k);
        CheckAgainstOracle(pr, Run(kGemmF32KernelsRef, pr), 1.0);
      }
    }
  }
}

TEST_CASE("gemm_f32 avx2 twin matches the reference on awkward sizes") {
  if (!HostCpuFeatures().has_x86_avx2()) {
    WARN("host lacks AVX2+FMA+F16C (or SLIMPACK_FORCE_SCALAR is set): avx2 twin not tested");
    return;
  }
  uint32_t seed = 100;
  for (auto layout : kLayouts) {
    for (auto wtype : kWTypes) {
      for (size_t m : kMs) {
        for (size_t n : kNs) {
          for (size_t k : kKs) {
            const Problem pr = MakeProblem(m, n, k, layout, wtype, seed++);
            INFO(Name(wtype) << " layout " << static_cast<int>(layout) << " M " << m << " N "
                             << n << " K " << k);
            const auto ref = Run(kGemmF32KernelsRef, pr);
            const auto avx = Run(kGemmF32KernelsAvx2, pr);
            CheckAgainstOracle(pr, avx, 1.0);
            for (size_t i = 0; i < pr.m; ++i) {
              for (size_t j = 0; j < pr.n; ++j) {
                double exact, bound;
                Oracle(pr, i, j, &exact, &bound);
                REQUIRE(std::fabs(static_cast<double>(avx[i * pr.ldc + j]) -
                                  ref[i * pr.ldc + j]) <= 2 * bound + 1e-30);
              }
            }
          }
        }
      }
    }
  }
}

TEST_CASE("gemm_f32 K = 0 writes zeros and M = 0 or N = 0 writes nothing") {
  for (const auto* kernels : {&kGemmF32KernelsRef, &kGemmF32KernelsAvx2}) {
    if (kernels == &kGemmF32KernelsAvx2 && !HostCpuFeatures().has_x86_avx2()) continue;
    for (size_t m : {size_t{1}, size_t{7}}) {
      std::vector<float> c(m * 3, 5.0f);
      const float a = 1.0f;
      const uint16_t b = 0;
      kernels->gemm_f32_f16w(m, 3, 0, &a, 0, &b, 0, GemmBLayout::kNK, c.data(), 3);
      for (float v : c) REQUIRE(v == 0.0f);
      kernels->gemm_f32_f16w(0, 3, 4, &a, 4, &b, 4, GemmBLayout::kNK, c.data(), 3);
      kernels->gemm_f32_f16w(m, 0, 4, &a, 4, &b, 4, GemmBLayout::kNK, c.data(), 3);
      for (float v : c) REQUIRE(v == 0.0f);
    }
  }
}

TEST_CASE("gemm_f32 avx2 blocked rows do not depend on M") {
  if (!HostCpuFeatures().has_x86_avx2()) {
    WARN("host lacks AVX2+FMA+F16C: skipped");
    return;
  }
  // Same first rows of A with M = 6 and M = 13: each C element is one
  // in-order FMA chain, so the shared rows must be bit-identical.
  Problem big = MakeProblem(13, 40, 600, GemmBLayout::kNK, WType::kF16, 7);
  Problem small = big;
  small.m = 6;
  small.a.resize(small.m * small.lda);
  const auto cb = Run(kGemmF32KernelsAvx2, big);
  const auto cs = Run(kGemmF32KernelsAvx2, small);
  for (size_t i = 0; i < small.m * small.ldc; ++i) {
    if (i % small.ldc < small.n) REQUIRE(cb[i] == cs[i]);
  }
}

TEST_CASE("gemm_f32 host table follows the CPU features") {
  const GemmF32Kernels& k = GemmF32ForHost();
  if (HostCpuFeatures().has_x86_avx2()) {
    REQUIRE(std::string(k.isa) == "avx2");
    REQUIRE(k.gemm_f32_f16w == &gemm_f32_f16w_avx2);
  } else {
    REQUIRE(std::string(k.isa) == "ref");
    REQUIRE(k.gemm_f32_f16w == &gemm_f32_f16w_ref);
  }
}

}  // namespace
}  // namespace slim
