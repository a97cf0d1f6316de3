// Column ranges, the contract the runtime's threads rely on (runtime/
// thread_pool.h): a kernel run on columns [j0, j1) writes exactly those
// columns of Y, bit for bit what the whole-range call writes there, for
// every gemm_f32 and gemm_q kernel of both twins, M = 1 and M > 1, and N not
// a multiple of 8 or 16.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <vector>

#include "libcompress/ir/dtype.h"
#include "libcompress/kernels/cpu_features.h"
#include "libcompress/kernels/gemm_f32.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"
#include "tests/test_util.h"

namespace slim {
namespace {

// Ranges starting on multiples of 8 (the q4x8 block), the last one odd.
const std::vector<std::pair<size_t, size_t>> kRanges = {{0, 16}, {16, 24}, {24, 72}, {72, 77}};
constexpr size_t kN = 77;
constexpr float kSentinel = 12345.0f;

std::vector<const GemmF32Kernels*> F32Tables() {
  std::vector<const GemmF32Kernels*> t = {&kGemmF32KernelsRef};
  if (HostCpuFeatures().has_x86_avx2()) {
    t.push_back(&kGemmF32KernelsAvx2);
  } else {
    WARN("host has no AVX2+FMA+F16C: only the reference kernels are checked");
  }
  return t;
}

TEST_CASE("gemm_f32 kernels on column ranges (pointer offsets) match the whole call",
          "[kernels][threads]") {
  const size_t k = 41;
  const auto b32 = slim_test::RandomFloats(k * kN, 2);
  std::vector<uint16_t> b16(b32.size());
  for (size_t i = 0; i < b32.size(); ++i) b16[i] = FloatToHalf(b32[i]);
  for (const GemmF32Kernels* t : F32Tables()) {
    for (size_t m : {size_t{1}, size_t{3}, size_t{9}}) {  // GEMV paths and the blocked path
      const auto a = slim_test::RandomFloats(m * k, 1);
      for (GemmBLayout layout : {GemmBLayout::kKN, GemmBLayout::kNK}) {
        const size_t ldb = layout == GemmBLayout::kKN ? kN : k;
        const size_t step = layout == GemmBLayout::kKN ? 1 : ldb;
        for (bool f16 : {false, true}) {
          INFO(t->isa << " M " << m << (layout == GemmBLayout::kKN ? " KN" : " NK") << (f16 ? " f16" : " f32"));
          auto run = [&](size_t j0, size_t j1, float* c) {
            if (f16) {
              t->gemm_f32_f16w(m, j1 - j0, k, a.data(), k, b16.data() + j0 * step, ldb, layout, c + j0, kN);
            } else {
              t->gemm_f32(m, j1 - j0, k, a.data(), k, b32.data() + j0 * step, ldb, layout, c + j0, kN);
            }
          };
          std::vector<float> whole(m * kN, kSentinel), parts(m * kN, kSentinel);
          run(0, kN, whole.data());
          for (const auto& [j0, j1] : kRanges) run(j0, j1, parts.data());
          CHECK(std::memcmp(whole.data(), parts.data(), whole.size() * sizeof(float)) == 0);
          // One range alone leaves every other column as it was.
          std::vector<float> one(m * kN, kSentinel);
          run(16, 24, one.data());
          for (size_t i = 0; i < m; ++i) {
            for (size_t j = 0; j < kN; ++j) {
              if (j < 16 || j >= 24) CHECK(one[i * kN + j] == kSentinel);
            }
          }
        }
      }
    }
  }
}

TEST_CASE("gemm_q kernels on column ranges (n_begin, n_end) match the whole call", "[kernels][threads]") {
  const size_t k = 100;
  const auto w = slim_test::RandomFloats(kN * k, 3);
  std::vector<const QGemmKernels*> tables;
  for (const QGemmKernels* t : kQGemmTables) {
    if (QGemmTableRuns(*t)) tables.push_back(t);
  }
  for (const QuantLayout& layout : AllQuantLayouts()) {
    QuantOptions qo;
    qo.scheme = layout.Scheme();
    qo.search = false;
    auto q = QuantizeMatrix(w.data(), kN, k, qo);
    REQUIRE(q.ok());
    auto blob = PackQuantized(*q, layout);
    REQUIRE(blob.ok());
    for (const QGemmKernels* t : tables) {
      for (QComputePath path : {QComputePath::kF32DequantFma, QComputePath::kI8Dot}) {
        auto plan = SelectQGemm(layout, path, *t);
        if (!plan.ok() && path == QComputePath::kI8Dot) continue;  // no i8-dot kernel for the layout
        REQUIRE(plan.ok());
        for (size_t m : {size_t{1}, size_t{4}}) {
          INFO(plan->kernel_name << " M " << m);
          const auto x = slim_test::RandomFloats(m * k, 4);
          QGemmArgs args;
          args.m = m;
          args.n = kN;
          args.k = k;
          args.group_size = layout.group_size;
          args.symmetric = layout.symmetric;
          std::vector<float> whole(m * kN, kSentinel), parts(m * kN, kSentinel), one(m * kN, kSentinel);
          plan->fn(args, x.data(), blob->data(), whole.data());
          for (const auto& [j0, j1] : kRanges) {
            QGemmArgs range = args;
            range.n_begin = j0;
            range.n_end = j1;
            plan->fn(range, x.data(), blob->data(), parts.data());
          }
          CHECK(std::memcmp(whole.data(), parts.data(), whole.size() * sizeof(float)) == 0);
          QGemmArgs middle = args;
          middle.n_begin = 16;
          middle.n_end = 24;
          plan->fn(middle, x.data(), blob->data(), one.data());
          for (size_t i = 0; i < m; ++i) {
            for (size_t j = 0; j < kN; ++j) {
              if (j < 16 || j >= 24) {
                CHECK(one[i * kN + j] == kSentinel);
              } else {
                CHECK(one[i * kN + j] == whole[i * kN + j]);
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace slim
