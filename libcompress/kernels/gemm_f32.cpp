// Scalar reference twins of the float32 GEMM kernels and the start-up
// dispatch. The reference defines the numbers the SIMD twins are tested
// against: every output is a plain in-order sum (see gemm_f32.h).
#include "libcompress/kernels/gemm_f32.h"

#include "libcompress/common/half.h"
#include "libcompress/kernels/cpu_features.h"

namespace slim {
namespace {

struct LoadF32 {
  static float At(const float* b, size_t i) { return b[i]; }
};
struct LoadF16 {
  static float At(const uint16_t* b, size_t i) { return HalfToFloat(b[i]); }
};
struct LoadBF16 {
  static float At(const uint16_t* b, size_t i) { return BFloat16ToFloat(b[i]); }
};

template <typename Load, typename W>
void GemmRef(size_t m, size_t n, size_t k, const float* a, size_t lda, const W* b, size_t ldb,
             GemmBLayout b_layout, float* c, size_t ldc) {
  for (size_t i = 0; i < m; ++i) {
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    if (b_layout == GemmBLayout::kNK) {
      for (size_t j = 0; j < n; ++j) {
        const W* bj = b + j * ldb;
        float acc = 0.0f;
        for (size_t p = 0; p < k; ++p) acc += ai[p] * Load::At(bj, p);
        ci[j] = acc;
      }
    } else {
      // Row-streaming order (p outer) gives each C element the same in-order
      // sum as a dot product while reading B contiguously.
      for (size_t j = 0; j < n; ++j) ci[j] = 0.0f;
      for (size_t p = 0; p < k; ++p) {
        const float ap = ai[p];
        const W* bp = b + p * ldb;
        for (size_t j = 0; j < n; ++j) ci[j] += ap * Load::At(bp, j);
      }
    }
  }
}

}  // namespace

void gemm_f32_ref(size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                  size_t ldb, GemmBLayout b_layout, float* c, size_t ldc) {
  GemmRef<LoadF32>(m, n, k, a, lda, b, ldb, b_layout, c, ldc);
}

void gemm_f32_f16w_ref(size_t m, size_t n, size_t k, const float* a, size_t lda,
                       const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                       size_t ldc) {
  GemmRef<LoadF16>(m, n, k, a, lda, b, ldb, b_layout, c, ldc);
}

void gemm_f32_bf16w_ref(size_t m, size_t n, size_t k, const float* a, size_t lda,
                        const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                        size_t ldc) {
  GemmRef<LoadBF16>(m, n, k, a, lda, b, ldb, b_layout, c, ldc);
}

const GemmF32Kernels& GemmF32ForHost() {
  static const GemmF32Kernels& kernels =
      HostCpuFeatures().has_x86_avx2() ? kGemmF32KernelsAvx2 : kGemmF32KernelsRef;
  return kernels;
}

}  // namespace slim
