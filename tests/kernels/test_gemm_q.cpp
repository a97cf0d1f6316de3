// Quantized GEMM kernels: every layout's reference against a double-precision
// product of the dequantized weights, and every SIMD table the host runs
// (AVX2, AVX-512) against the references on awkward sizes (K = 1, 7, 33, 172,
// 257; N not a multiple of 8; M = 1, 3, 5), bit-exact where gemm_q.h promises it
// and within its stated bound elsewhere.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "libcompress/kernels/cpu_features.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"

namespace slim {
namespace {

std::vector<float> Gaussian(size_t count, uint32_t seed, float sigma) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(count);
  for (float& x : v) x = d(rng);
  return v;
}

// The SIMD tables this host runs (all but the reference); says so when none.
std::vector<const QGemmKernels*> SimdTables() {
  std::vector<const QGemmKernels*> tables;
  for (const QGemmKernels* t : kQGemmTables) {
    if (t != &kQGemmKernelsRef && QGemmTableRuns(*t)) tables.push_back(t);
  }
  if (tables.empty()) WARN("host runs no SIMD kernel table: only the references are checked");
  return tables;
}

// The activation block of a layout's i8-dot path (gemm_q.h).
size_t I8Block(const QuantLayout& layout) {
  return layout.kind == QuantLayoutKind::kQ8Row ? kQ8DotBlock : layout.group_size;
}

// Float kernels vs anything: the reordered-sum bound of gemm_q.h.
double F32Tolerance(size_t k, double abs_dot) {
  return 2.0 * static_cast<double>(k + 8) * std::ldexp(1.0, -24) * abs_dot;
}

struct Reference {
  std::vector<double> y;        // [m, n] in double from the dequantized weights
  std::vector<double> abs_dot;  // sum |x| |w'|
  std::vector<double> i8_err;   // sum 0.5 * xs(group) * |w'|: i8-dot's X rounding bound
};

Reference Exact(const std::vector<float>& x, const std::vector<float>& wd, size_t m, size_t n,
                size_t k, size_t group) {
  Reference ref;
  ref.y.assign(m * n, 0.0);
  ref.abs_dot.assign(m * n, 0.0);
  ref.i8_err.assign(m * n, 0.0);
  for (size_t i = 0; i < m; ++i) {
    std::vector<double> xs(k, 0.0);
    if (group > 0) {
      for (size_t g0 = 0; g0 < k; g0 += group) {
        float amax = 0.0f;
        for (size_t e = g0; e < std::min(k, g0 + group); ++e) amax = std::max(amax, std::fabs(x[i * k + e]));
        for (size_t e = g0; e < std::min(k, g0 + group); ++e) xs[e] = amax / 127.0;
      }
    }
    for (size_t r = 0; r < n; ++r) {
      for (size_t e = 0; e < k; ++e) {
        const double xv = x[i * k + e], wv = wd[r * k + e];
        ref.y[i * n + r] += xv * wv;
        ref.abs_dot[i * n + r] += std::fabs(xv * wv);
        ref.i8_err[i * n + r] += 0.5 * xs[e] * std::fabs(wv);
      }
    }
  }
  return ref;
}

std::vector<float> Run(QGemmFn fn, const QuantLayout& layout, const std::vector<float>& x,
                       const std::vector<uint8_t>& w, size_t m, size_t n, size_t k) {
  QGemmArgs args;
  args.m = m;
  args.n = n;
  args.k = k;
  args.group_size = layout.group_size;
  args.symmetric = layout.symmetric;
  std::vector<float> y(m * n, NAN);
  fn(args, x.data(), w.data(), y.data());
  return y;
}

QGemmFn Kernel(const QuantLayout& layout, QComputePath path, const QGemmKernels& table) {
  auto plan = SelectQGemm(layout, path, table);
  REQUIRE(plan.ok());
  return plan->fn;
}

}  // namespace

TEST_CASE("quantized GEMM: refs match a double product, SIMD twins match refs", "[gemm_q]") {
  const auto simd = SimdTables();
  uint32_t seed = 1;
  for (const QuantLayout& layout : AllQuantLayouts()) {
    const QuantScheme scheme = layout.Scheme();
    for (size_t k : {1, 7, 33, 172, 257}) {
      for (size_t n : {1, 7, 9, 33}) {
        const auto w = Gaussian(n * k, seed++, 0.05f);
        QuantOptions opt;
        opt.scheme = scheme;
        opt.search = false;
        auto q = QuantizeMatrix(w.data(), n, k, opt);
        REQUIRE(q.ok());
        auto packed = PackQuantized(*q, layout);
        REQUIRE(packed.ok());
        std::vector<float> wd(n * k);
        DequantizeMatrix(*q, wd.data());
        for (size_t m : {1, 3, 5}) {  // 5: the 4-row prefill blocks plus a single row
          const auto x = Gaussian(m * k, seed++, 1.0f);
          const Reference ref = Exact(x, wd, m, n, k, I8Block(layout));
          INFO(layout.Name() << " M=" << m << " N=" << n << " K=" << k);

          const auto y_ref =
              Run(Kernel(layout, QComputePath::kF32DequantFma, kQGemmKernelsRef), layout, x, *packed, m, n, k);
          for (size_t i = 0; i < m * n; ++i) {
            REQUIRE(std::fabs(y_ref[i] - ref.y[i]) <= F32Tolerance(k, ref.abs_dot[i]));
          }
          if (layout.kind == QuantLayoutKind::kQ4X8) {
            // Same function of (X, codes, scales, zeros) as the row layout's ref.
            const QuantLayout row{QuantLayoutKind::kQ4Row, layout.group_size, layout.symmetric};
            auto packed_row = PackQuantized(*q, row);
            REQUIRE(packed_row.ok());
            const auto y_row = Run(kQGemmKernelsRef.q4_row_f32, row, x, *packed_row, m, n, k);
            REQUIRE(std::memcmp(y_row.data(), y_ref.data(), y_ref.size() * sizeof(float)) == 0);
          }
          for (const QGemmKernels* t : simd) {
            INFO(t->isa);
            const auto y_simd = Run(Kernel(layout, QComputePath::kF32DequantFma, *t), layout, x, *packed, m, n, k);
            for (size_t i = 0; i < m * n; ++i) {
              REQUIRE(std::fabs(y_simd[i] - y_ref[i]) <= F32Tolerance(k, ref.abs_dot[i]));
            }
          }
          if (!SelectQGemm(layout, QComputePath::kI8Dot).ok()) continue;

          const auto y_i8 =
              Run(Kernel(layout, QComputePath::kI8Dot, kQGemmKernelsRef), layout, x, *packed, m, n, k);
          for (size_t i = 0; i < m * n; ++i) {
            REQUIRE(std::fabs(y_i8[i] - ref.y[i]) <=
                    ref.i8_err[i] + F32Tolerance(k, ref.abs_dot[i]));
          }
          for (const QGemmKernels* t : simd) {
            INFO(t->isa);
            const auto y_i8_simd = Run(Kernel(layout, QComputePath::kI8Dot, *t), layout, x, *packed, m, n, k);
            REQUIRE(std::memcmp(y_i8_simd.data(), y_i8.data(), y_i8.size() * sizeof(float)) == 0);
          }
        }
      }
    }
  }
}

TEST_CASE("quantized GEMM rows do not depend on M", "[gemm_q]") {
  const size_t n = 19, k = 100, m = 4;
  const auto w = Gaussian(n * k, 5, 0.05f);
  const auto x = Gaussian(m * k, 6, 1.0f);
  for (const QGemmKernels* table : kQGemmTables) {
    if (!QGemmTableRuns(*table)) continue;
    for (const QuantLayout& layout : AllQuantLayouts()) {
      QuantOptions opt;
      opt.scheme = layout.Scheme();
      auto q = QuantizeMatrix(w.data(), n, k, opt);
      REQUIRE(q.ok());
      auto packed = PackQuantized(*q, layout);
      REQUIRE(packed.ok());
      for (QComputePath path : {QComputePath::kF32DequantFma, QComputePath::kI8Dot}) {
        auto plan = SelectQGemm(layout, path, *table);
        if (!plan.ok()) continue;
        INFO(plan->kernel_name << " " << layout.Name());
        const auto y_all = Run(plan->fn, layout, x, *packed, m, n, k);
        for (size_t i = 0; i < m; ++i) {
          const std::vector<float> xi(x.begin() + i * k, x.begin() + (i + 1) * k);
          const auto yi = Run(plan->fn, layout, xi, *packed, 1, n, k);
          REQUIRE(std::memcmp(yi.data(), &y_all[i * n], n * sizeof(float)) == 0);
        }
      }
    }
  }
}

// Worst case for the SIMD i8-dot's narrow partial sums (AVX2 adds vpmaddubsw
// pairs in int16): every int4 code 15 (int8 code 127) and every activation at
// +-127 after quantization.
TEST_CASE("i8-dot SIMD twins match the reference at the accumulation limit", "[gemm_q]") {
  const auto simd = SimdTables();
  const size_t n = 9, k = 257;
  std::vector<std::pair<QuantLayout, QuantizedMatrix>> cases;
  for (size_t g : {32, 64, 128}) {
    for (bool sym : {true, false}) {
      QuantizedMatrix q;
      q.scheme = {4, g, sym};
      q.rows = n;
      q.cols = k;
      q.group_size = g;
      q.groups_per_row = (k + g - 1) / g;
      q.codes.assign(n * k, static_cast<int8_t>(sym ? 7 : 15));
      q.scales.assign(n * q.groups_per_row, 1.0f);
      if (!sym) q.zeros.assign(n * q.groups_per_row, 0);
      cases.push_back({QuantLayout{QuantLayoutKind::kQ4X8, g, sym}, q});
    }
  }
  QuantizedMatrix q8 = EmptyQuantizedMatrix({8, 0, true}, n, k);
  q8.codes.assign(n * k, 127);
  q8.scales.assign(n, 1.0f);
  cases.push_back({QuantLayout{QuantLayoutKind::kQ8Row, 0, true}, q8});
  for (const auto& [layout, q] : cases) {
    auto packed = PackQuantized(q, layout);
    REQUIRE(packed.ok());
    const float code = static_cast<float>(q.codes[0] - (q.zeros.empty() ? 0 : q.zeros[0]));
    for (float sign : {1.0f, -1.0f}) {
      const std::vector<float> x(k, sign);
      const auto y_ref = Run(Kernel(layout, QComputePath::kI8Dot, kQGemmKernelsRef), layout, x, *packed, 1, n, k);
      CHECK(y_ref[0] == Approx(sign * code * static_cast<float>(k)));
      for (const QGemmKernels* t : simd) {
        const auto y_simd = Run(Kernel(layout, QComputePath::kI8Dot, *t), layout, x, *packed, 1, n, k);
        INFO(layout.Name() << " " << t->isa);
        REQUIRE(std::memcmp(y_ref.data(), y_simd.data(), n * sizeof(float)) == 0);
      }
    }
  }
}

TEST_CASE("QGemm validates sizes and layout/path pairs, and reports its kernel", "[gemm_q]") {
  const size_t n = 9, k = 33;
  const auto w = Gaussian(n * k, 3, 0.05f);
  const auto x = Gaussian(k, 4, 1.0f);
  const QuantLayout row{QuantLayoutKind::kQ4Row, 32, true};
  const QuantLayout x8{QuantLayoutKind::kQ4X8, 32, true};
  QuantOptions opt;
  opt.scheme = row.Scheme();
  auto q = QuantizeMatrix(w.data(), n, k, opt);
  REQUIRE(q.ok());
  auto packed = PackQuantized(*q, x8);
  REQUIRE(packed.ok());
  std::vector<float> y(n);

  Status st = QGemm(x8, QComputePath::kI8Dot, x.data(), 1, k, packed->data(), packed->size() - 1, n,
                    y.data());
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == StatusCode::kInvalidInput);
  CHECK(st.message().find("q4g32_sym_x8") != std::string::npos);

  st = QGemm(row, QComputePath::kI8Dot, x.data(), 1, k, packed->data(),
             row.PackedBytes(n, k), n, y.data());
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == StatusCode::kUnsupported);
  CHECK(st.message().find("only q8_row and the q4*_x8 layouts") != std::string::npos);

  REQUIRE(QGemm(x8, QComputePath::kI8Dot, x.data(), 1, k, packed->data(), packed->size(), n,
                y.data())
              .ok());
  const auto y_ref = Run(kQGemmKernelsRef.q4x8_i8, x8, x, *packed, 1, n, k);
  CHECK(std::memcmp(y.data(), y_ref.data(), n * sizeof(float)) == 0);

  auto plan = SelectQGemm(x8, DefaultComputePath(x8));
  REQUIRE(plan.ok());
  CHECK(plan->kernel_name == std::string("q4x8_i8_") + QGemmForHost().isa);
  CHECK(std::string(QComputePathName(plan->path)) == "i8-dot");
  CHECK(DefaultComputePath(row) == QComputePath::kF32DequantFma);
  auto parsed = ParseQComputePath("f32-dequant-fma");
  REQUIRE(parsed.ok());
  CHECK(*parsed == QComputePath::kF32DequantFma);
  CHECK_FALSE(ParseQComputePath("i4-dot").ok());
}

}  // namespace slim

namespace slim {

TEST_CASE("the AVX2 activation quantizer is bit-identical to the scalar one", "[gemm_q]") {
  if (!HostCpuFeatures().has_x86_avx2()) {
    WARN("host has no AVX2: skipped");
    return;
  }
  auto check = [](const std::vector<float>& x, size_t group) {
    const size_t k = x.size(), groups = (k + group - 1) / group, kp = groups * group;
    std::vector<int8_t> q0(kp, 99), q1(kp, 99);
    std::vector<float> s0(groups), s1(groups);
    std::vector<int32_t> t0(groups), t1(groups);
    QuantizeActivationsI8(x.data(), k, group, q0.data(), s0.data(), t0.data());
    QuantizeActivationsI8Avx2(x.data(), k, group, q1.data(), s1.data(), t1.data());
    INFO("K " << k << " group " << group);
    REQUIRE(q0 == q1);
    REQUIRE(std::memcmp(s0.data(), s1.data(), groups * sizeof(float)) == 0);
    REQUIRE(t0 == t1);
  };
  uint32_t seed = 11;
  for (size_t group : {32, 64, 128}) {
    for (size_t k : {1, 7, 8, 9, 31, 33, 100, 257, 2048}) check(Gaussian(k, seed++, 3.0f), group);
    // Exact ties: amax 127 makes inv 1, so x.5 rounds to even; zeros, -0.
    std::vector<float> ties = {127.0f, 2.5f, -2.5f, 3.5f, -3.5f, 0.5f, -0.5f, -0.0f, 0.0f, 126.5f, -126.5f, 1.5f};
    ties.resize(2 * group + 3, 0.0f);
    check(ties, group);
    check(std::vector<float>(group + 5, 0.0f), group);
  }
}

}  // namespace slim
