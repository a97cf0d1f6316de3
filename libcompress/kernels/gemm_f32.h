// Float32 matrix products for the runtime: C[M,N] = A[M,K] * B, with A
// float32 row-major and B float32, float16 or bfloat16 in one of two layouts:
//
//   GemmBLayout::kKN  B[p * ldb + j], row-major [K, N]   (MatMul's B)
//   GemmBLayout::kNK  B[j * ldb + p], row-major [N, K]   (Gemm transB=1, the
//                     nn.Linear / Hugging Face weight layout [out, in])
//
// The 16-bit variants (`*_f16w`, `*_bf16w`) read the weights as stored and
// widen them to float32 on the fly, so an FP16 model never needs an FP32 copy
// of its weights. All sizes and leading dimensions count elements; C is
// overwritten (no accumulation into it); K = 0 yields zeros.
//
// Every kernel has a scalar reference `*_ref` and an AVX2+FMA+F16C twin
// `*_avx2` with the same signature; GemmF32ForHost() picks the table once
// from HostCpuFeatures(). Summation order (why the twins differ in the last
// bits, and why neither depends on thread count):
//   ref:  C[i,j] = sum over p = 0..K-1 in order, separate multiply and add.
//   avx2: the blocked path (M >= kGemmF32MinBlockedRows) and the small-M
//         kKN path sum in order with fused multiply-add; the small-M kNK
//         path (decode GEMV) keeps 16 partial sums (p mod 16, for
//         p < 16 * floor(K / 16)), adds them in a fixed tree, then adds the
//         remaining products in order with FMA.
// Both are single-threaded; a result never depends on anything but the
// operands, M and the layout, in particular not on N or on which columns a
// call covers: a caller may compute columns [j0, j1) alone by offsetting B
// (kKN: b + j0; kNK: b + j0 * ldb) and C (c + j0), which is how the runtime
// spreads a product over threads with byte-identical results.
#pragma once

#include <cstddef>
#include <cstdint>

namespace slim {

enum class GemmBLayout : uint8_t {
  kKN,  // B is [K, N] row-major
  kNK,  // B is [N, K] row-major ("transposed")
};

// Rows of A from which the AVX2 kNK kernels switch from dot products
// (streaming each weight row once per output row; best for decode) to the
// packed 6x16 register-blocked path (best for prefill).
inline constexpr size_t kGemmF32MinBlockedRows = 4;

using GemmF32Fn = void (*)(size_t m, size_t n, size_t k, const float* a, size_t lda,
                           const float* b, size_t ldb, GemmBLayout b_layout, float* c,
                           size_t ldc);
// B holds IEEE binary16 (f16w) or bfloat16 (bf16w) bit patterns.
using GemmF32W16Fn = void (*)(size_t m, size_t n, size_t k, const float* a, size_t lda,
                              const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                              size_t ldc);

void gemm_f32_ref(size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                  size_t ldb, GemmBLayout b_layout, float* c, size_t ldc);
void gemm_f32_f16w_ref(size_t m, size_t n, size_t k, const float* a, size_t lda,
                       const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                       size_t ldc);
void gemm_f32_bf16w_ref(size_t m, size_t n, size_t k, const float* a, size_t lda,
                        const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                        size_t ldc);

// Require AVX2, FMA and F16C (CpuFeatures::has_x86_avx2()).
void gemm_f32_avx2(size_t m, size_t n, size_t k, const float* a, size_t lda, const float* b,
                   size_t ldb, GemmBLayout b_layout, float* c, size_t ldc);
void gemm_f32_f16w_avx2(size_t m, size_t n, size_t k, const float* a, size_t lda,
                        const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                        size_t ldc);
void gemm_f32_bf16w_avx2(size_t m, size_t n, size_t k, const float* a, size_t lda,
                         const uint16_t* b, size_t ldb, GemmBLayout b_layout, float* c,
                         size_t ldc);

struct GemmF32Kernels {
  const char* isa;  // "ref" or "avx2"
  GemmF32Fn gemm_f32;
  GemmF32W16Fn gemm_f32_f16w;
  GemmF32W16Fn gemm_f32_bf16w;
};

inline constexpr GemmF32Kernels kGemmF32KernelsRef = {"ref", gemm_f32_ref, gemm_f32_f16w_ref,
                                                      gemm_f32_bf16w_ref};
inline constexpr GemmF32Kernels kGemmF32KernelsAvx2 = {"avx2", gemm_f32_avx2, gemm_f32_f16w_avx2,
                                                       gemm_f32_bf16w_avx2};

// The table for this host, chosen once (SLIMPACK_FORCE_SCALAR=1 -> ref).
const GemmF32Kernels& GemmF32ForHost();

}  // namespace slim
