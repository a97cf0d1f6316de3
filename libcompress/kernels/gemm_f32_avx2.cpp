// AVX2+FMA+F16C twins of the float32 GEMM kernels (see gemm_f32.h for the
// layouts and the summation order each path promises).
//
// Two paths:
//  - Small M with B [N, K] (decode GEMV, the Hugging Face linear layer):
//    four weight rows at a time, each dotted with one A row using two
//    8-lane accumulators; the weights are read once per A row and widened
//    in registers, so the loop runs at memory bandwidth.
//  - Otherwise: B is packed per 16-column panel and 256-deep K block into
//    float32 [kc][16] (widening 16-bit weights once per panel, not once per
//    A row) and a 6x16 register-blocked micro-kernel accumulates C in order
//    with FMA. Small M with B [K, N] streams B rows into the C row instead;
//    both give every C element the same in-order FMA chain.
//
// This file is compiled with -mavx2 -mfma -mf16c, so it avoids instantiating
// templates from the standard library (std::min, std::vector, std::fma):
// their out-of-line copies are shared with plain-x86-64 files and the linker
// could keep the AVX2 copy. Helpers here live in an anonymous namespace.
#include <immintrin.h>

#include <cstring>

#include "libcompress/kernels/gemm_f32.h"

namespace slim {
namespace {

constexpr size_t kMr = 6;    // rows of A per micro-kernel call
constexpr size_t kNr = 16;   // columns of B per packed panel (two ymm)
constexpr size_t kKc = 256;  // K block: a packed panel is kKc * kNr floats = 16 KiB

inline size_t MinSize(size_t x, size_t y) { return x < y ? x : y; }

inline float FmaScalar(float a, float b, float c) {
  return _mm_cvtss_f32(_mm_fmadd_ss(_mm_set_ss(a), _mm_set_ss(b), _mm_set_ss(c)));
}

// Weight loaders: 8 consecutive elements or one element as float32.
struct WeightF32 {
  using T = float;
  static __m256 Load8(const float* p) { return _mm256_loadu_ps(p); }
  static float Load1(const float* p) { return *p; }
};
struct WeightF16 {
  using T = uint16_t;
  static __m256 Load8(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  }
  static float Load1(const uint16_t* p) { return _cvtsh_ss(*p); }
};
struct WeightBF16 {
  using T = uint16_t;
  static __m256 Load8(const uint16_t* p) {
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
  }
  static float Load1(const uint16_t* p) {
    const uint32_t bits = static_cast<uint32_t>(*p) << 16;
    float f;
    std::memcpy(&f, &bits, 4);
    return f;
  }
};

// Lanes of v summed in a fixed tree: (0+4, 1+5, 2+6, 3+7), then pairs.
inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

// Finishes one dot product: the 16 partial sums, then the tail in order.
template <typename W>
float FinishDot(__m256 acc0, __m256 acc1, size_t p, size_t k, const float* ai,
                const typename W::T* brow) {
  float s = HorizontalSum(_mm256_add_ps(acc0, acc1));
  for (; p < k; ++p) s = FmaScalar(ai[p], W::Load1(brow + p), s);
  return s;
}

// C[i, j..j+4) for one A row against 4 rows of B [N, K]. Named
// accumulators, not arrays: GCC keeps an array of __m256 on the stack.
template <typename W>
void DotRows4(size_t k, const float* ai, const typename W::T* b, size_t ldb, float* ci) {
  const typename W::T* b0 = b;
  const typename W::T* b1 = b0 + ldb;
  const typename W::T* b2 = b1 + ldb;
  const typename W::T* b3 = b2 + ldb;
  __m256 s00 = _mm256_setzero_ps(), s01 = s00, s10 = s00, s11 = s00;
  __m256 s20 = s00, s21 = s00, s30 = s00, s31 = s00;
  size_t p = 0;
  for (; p + 16 <= k; p += 16) {
    const __m256 a0 = _mm256_loadu_ps(ai + p);
    const __m256 a1 = _mm256_loadu_ps(ai + p + 8);
    s00 = _mm256_fmadd_ps(a0, W::Load8(b0 + p), s00);
    s01 = _mm256_fmadd_ps(a1, W::Load8(b0 + p + 8), s01);
    s10 = _mm256_fmadd_ps(a0, W::Load8(b1 + p), s10);
    s11 = _mm256_fmadd_ps(a1, W::Load8(b1 + p + 8), s11);
    s20 = _mm256_fmadd_ps(a0, W::Load8(b2 + p), s20);
    s21 = _mm256_fmadd_ps(a1, W::Load8(b2 + p + 8), s21);
    s30 = _mm256_fmadd_ps(a0, W::Load8(b3 + p), s30);
    s31 = _mm256_fmadd_ps(a1, W::Load8(b3 + p + 8), s31);
  }
  ci[0] = FinishDot<W>(s00, s01, p, k, ai, b0);
  ci[1] = FinishDot<W>(s10, s11, p, k, ai, b1);
  ci[2] = FinishDot<W>(s20, s21, p, k, ai, b2);
  ci[3] = FinishDot<W>(s30, s31, p, k, ai, b3);
}

template <typename W>
float DotRow1(size_t k, const float* ai, const typename W::T* b0) {
  __m256 s0 = _mm256_setzero_ps(), s1 = s0;
  size_t p = 0;
  for (; p + 16 <= k; p += 16) {
    s0 = _mm256_fmadd_ps(_mm256_loadu_ps(ai + p), W::Load8(b0 + p), s0);
    s1 = _mm256_fmadd_ps(_mm256_loadu_ps(ai + p + 8), W::Load8(b0 + p + 8), s1);
  }
  return FinishDot<W>(s0, s1, p, k, ai, b0);
}

template <typename W>
void GemvNK(size_t m, size_t n, size_t k, const float* a, size_t lda, const typename W::T* b,
            size_t ldb, float* c, size_t ldc) {
  size_t j = 0;
  // Row blocks outer: the 4 weight rows (<= 4 * K * 4 bytes) stay in L1/L2
  // while the few A rows are served.
  for (; j + 4 <= n; j += 4) {
    for (size_t i = 0; i < m; ++i) DotRows4<W>(k, a + i * lda, b + j * ldb, ldb, c + i * ldc + j);
  }
  for (; j < n; ++j) {
    for (size_t i = 0; i < m; ++i) c[i * ldc + j] = DotRow1<W>(k, a + i * lda, b + j * ldb);
  }
}

// C row += a[p] * B[p, :], four rows of B per pass over the C row.
template <typename W>
void GemvKN(size_t m, size_t n, size_t k, const float* a, size_t lda, const typename W::T* b,
            size_t ldb, float* c, size_t ldc) {
  for (size_t i = 0; i < m; ++i) {
    const float* ai = a + i * lda;
    float* ci = c + i * ldc;
    std::memset(ci, 0, n * sizeof(float));
    size_t p = 0;
    for (; p + 4 <= k; p += 4) {
      const typename W::T* b0 = b + p * ldb;
      const typename W::T* b1 = b0 + ldb;
      const typename W::T* b2 = b1 + ldb;
      const typename W::T* b3 = b2 + ldb;
      const __m256 a0 = _mm256_set1_ps(ai[p]);
      const __m256 a1 = _mm256_set1_ps(ai[p + 1]);
      const __m256 a2 = _mm256_set1_ps(ai[p + 2]);
      const __m256 a3 = _mm256_set1_ps(ai[p + 3]);
      size_t j = 0;
      for (; j + 8 <= n; j += 8) {
        __m256 v = _mm256_loadu_ps(ci + j);
        v = _mm256_fmadd_ps(a0, W::Load8(b0 + j), v);
        v = _mm256_fmadd_ps(a1, W::Load8(b1 + j), v);
        v = _mm256_fmadd_ps(a2, W::Load8(b2 + j), v);
        v = _mm256_fmadd_ps(a3, W::Load8(b3 + j), v);
        _mm256_storeu_ps(ci + j, v);
      }
      for (; j < n; ++j) {
        float v = ci[j];
        v = FmaScalar(ai[p], W::Load1(b0 + j), v);
        v = FmaScalar(ai[p + 1], W::Load1(b1 + j), v);
        v = FmaScalar(ai[p + 2], W::Load1(b2 + j), v);
        v = FmaScalar(ai[p + 3], W::Load1(b3 + j), v);
        ci[j] = v;
      }
    }
    for (; p < k; ++p) {
      const typename W::T* bp = b + p * ldb;
      const __m256 ap = _mm256_set1_ps(ai[p]);
      size_t j = 0;
      for (; j + 8 <= n; j += 8) {
        _mm256_storeu_ps(ci + j, _mm256_fmadd_ps(ap, W::Load8(bp + j), _mm256_loadu_ps(ci + j)));
      }
      for (; j < n; ++j) ci[j] = FmaScalar(ai[p], W::Load1(bp + j), ci[j]);
    }
  }
}

// Packs B[k0..k0+kc, n0..n0+nr) as float32 [kc][kNr], zero columns past nr.
template <typename W>
void PackPanel(const typename W::T* b, size_t ldb, GemmBLayout layout, size_t k0, size_t kc,
               size_t n0, size_t nr, float* bp) {
  if (nr < kNr) std::memset(bp, 0, kc * kNr * sizeof(float));
  if (layout == GemmBLayout::kKN) {
    for (size_t p = 0; p < kc; ++p) {
      const typename W::T* row = b + (k0 + p) * ldb + n0;
      float* dst = bp + p * kNr;
      if (nr == kNr) {
        _mm256_store_ps(dst, W::Load8(row));
        _mm256_store_ps(dst + 8, W::Load8(row + 8));
      } else {
        for (size_t j = 0; j < nr; ++j) dst[j] = W::Load1(row + j);
      }
    }
    return;
  }
  // [N, K]: a transpose; widen 8 at a time, then scatter into the column.
  alignas(32) float tmp[8];
  for (size_t j = 0; j < nr; ++j) {
    const typename W::T* row = b + (n0 + j) * ldb + k0;
    size_t p = 0;
    for (; p + 8 <= kc; p += 8) {
      _mm256_store_ps(tmp, W::Load8(row + p));
      for (size_t q = 0; q < 8; ++q) bp[(p + q) * kNr + j] = tmp[q];
    }
    for (; p < kc; ++p) bp[p * kNr + j] = W::Load1(row + p);
  }
}

// C[0..MR, 0..16) (+)= A[0..MR, 0..kc) * panel; accumulates into C when
// `accumulate` (later K blocks), so each element is one in-order FMA chain.
// Accumulators are named variables, not arrays: GCC keeps an array of
// __m256 on the stack and would store it on every iteration.
template <size_t MR>
void MicroKernel(size_t kc, const float* a, size_t lda, const float* bp, float* c, size_t ldc,
                 bool accumulate) {
  static_assert(MR >= 1 && MR <= kMr, "micro-kernel rows");
  __m256 c00 = _mm256_setzero_ps(), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00;
  __m256 c30 = c00, c31 = c00, c40 = c00, c41 = c00, c50 = c00, c51 = c00;
#define SLIM_ROW_(i, x0, x1)                                      \
  if constexpr (MR > i) {                                         \
    x0 = _mm256_loadu_ps(c + i * ldc);                            \
    x1 = _mm256_loadu_ps(c + i * ldc + 8);                        \
  }
  if (accumulate) {
    SLIM_ROW_(0, c00, c01) SLIM_ROW_(1, c10, c11) SLIM_ROW_(2, c20, c21)
    SLIM_ROW_(3, c30, c31) SLIM_ROW_(4, c40, c41) SLIM_ROW_(5, c50, c51)
  }
#undef SLIM_ROW_
  for (size_t p = 0; p < kc; ++p) {
    const __m256 b0 = _mm256_load_ps(bp + p * kNr);
    const __m256 b1 = _mm256_load_ps(bp + p * kNr + 8);
#define SLIM_ROW_(i, x0, x1)                                      \
  if constexpr (MR > i) {                                         \
    const __m256 av = _mm256_broadcast_ss(a + i * lda + p);       \
    x0 = _mm256_fmadd_ps(av, b0, x0);                             \
    x1 = _mm256_fmadd_ps(av, b1, x1);                             \
  }
    SLIM_ROW_(0, c00, c01) SLIM_ROW_(1, c10, c11) SLIM_ROW_(2, c20, c21)
    SLIM_ROW_(3, c30, c31) SLIM_ROW_(4, c40, c41) SLIM_ROW_(5, c50, c51)
#undef SLIM_ROW_
  }
#define SLIM_ROW_(i, x0, x1)                                      \
  if constexpr (MR > i) {                                         \
    _mm256_storeu_ps(c + i * ldc, x0);                            \
    _mm256_storeu_ps(c + i * ldc + 8, x1);                        \
  }
  SLIM_ROW_(0, c00, c01) SLIM_ROW_(1, c10, c11) SLIM_ROW_(2, c20, c21)
  SLIM_ROW_(3, c30, c31) SLIM_ROW_(4, c40, c41) SLIM_ROW_(5, c50, c51)
#undef SLIM_ROW_
}

void RunMicroKernel(size_t mr, size_t kc, const float* a, size_t lda, const float* bp, float* c,
                    size_t ldc, bool accumulate) {
  switch (mr) {
    case 1: MicroKernel<1>(kc, a, lda, bp, c, ldc, accumulate); break;
    case 2: MicroKernel<2>(kc, a, lda, bp, c, ldc, accumulate); break;
    case 3: MicroKernel<3>(kc, a, lda, bp, c, ldc, accumulate); break;
    case 4: MicroKernel<4>(kc, a, lda, bp, c, ldc, accumulate); break;
    case 5: MicroKernel<5>(kc, a, lda, bp, c, ldc, accumulate); break;
    default: MicroKernel<kMr>(kc, a, lda, bp, c, ldc, accumulate); break;
  }
}

template <typename W>
void GemmBlocked(size_t m, size_t n, size_t k, const float* a, size_t lda,
                 const typename W::T* b, size_t ldb, GemmBLayout layout, float* c, size_t ldc) {
  alignas(32) float panel[kKc * kNr];
  alignas(32) float tile[kMr * kNr];  // C tile for the last, partial panel
  // Panels outer so the C columns being built stay in cache across K blocks;
  // the A block (M x kKc) is re-read from L2 for every panel.
  for (size_t n0 = 0; n0 < n; n0 += kNr) {
    const size_t nr = MinSize(kNr, n - n0);
    for (size_t k0 = 0; k0 < k; k0 += kKc) {
      const size_t kc = MinSize(kKc, k - k0);
      const bool accumulate = k0 > 0;
      PackPanel<W>(b, ldb, layout, k0, kc, n0, nr, panel);
      for (size_t m0 = 0; m0 < m; m0 += kMr) {
        const size_t mr = MinSize(kMr, m - m0);
        const float* ablk = a + m0 * lda + k0;
        float* cblk = c + m0 * ldc + n0;
        if (nr == kNr) {
          RunMicroKernel(mr, kc, ablk, lda, panel, cblk, ldc, accumulate);
          continue;
        }
        if (accumulate) {
          for (size_t i = 0; i < mr; ++i) std::memcpy(tile + i * kNr, cblk + i * ldc, nr * 4);
        }
        RunMicroKernel(mr, kc, ablk, lda, panel, tile, kNr, accumulate);
        for (size_t i = 0; i < mr; ++i) std::memcpy(cblk + i * ldc, tile + i * kNr, nr * 4);
      }
    }
  }
}

template <typename W>
void GemmAvx2(size_t m, size_t n, size_t k, const float* a, size_t lda, const typename W::T* b,
              size_t ldb, GemmBLayout layout, float* c, size_t ldc) {
  if (m == 0 || n == 0) return;
  if (k == 0) {
    for (size_t i = 0; i < m; ++i) std::memset(c + i * ldc, 0, n * sizeof(float));
    return;
  }
  if (m < kGemmF32MinBlockedRows) {
    if (layout == GemmBLayout::kNK) {
      GemvNK<W>(m, n, k, a, lda, b, ldb, c, ldc);
    } else {
      GemvKN<W>(m, n, k, a, lda, b, ldb, c, ldc);
    }
    return;
  }
  GemmBlocked<W>(m, n, k, a, lda, b, ldb, layout, c, ldc);
}

}  // namespace

void gemm_f32_avx2(size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                   size_t ldb, GemmBLayout b_layout, float* c, size_t ldc) {
  GemmAvx2<WeightF32>(m, n, k, a, lda, b, ldb, b_layout, c, ldc);
}

void gemm_f32_f16w_avx2(size_t m, size_t n, size_t k, const float* a, size_t lda,
                        const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                        size_t ldc) {
  GemmAvx2<WeightF16>(m, n, k, a, lda, b, ldb, b_layout, c, ldc);
}

void gemm_f32_bf16w_avx2(size_t m, size_t n, size_t k, const float* a, size_t lda,
                         const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                         size_t ldc) {
  GemmAvx2<WeightBF16>(m, n, k, a, lda, b, ldb, b_layout, c, ldc);
}

}  // namespace slim
