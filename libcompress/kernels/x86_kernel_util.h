// Helpers shared by the x86 kernel files (gemm_q_avx2.cpp, gemm_q_avx512.cpp),
// which are compiled with different -m flags. Everything here has internal
// linkage (an unnamed namespace): each file gets its own copy built for its
// own ISA, so the linker can never hand the AVX2 file an AVX-512 body of an
// inline function (the one-definition rule would let it for external
// inline functions). The includer must be compiled with at least AVX2, FMA
// and F16C. No standard-library templates, for the same reason.
#pragma once

#include <immintrin.h>

#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "libcompress/kernels/gemm_q.h"

namespace slim {
namespace {

// malloc'd scratch freed at scope exit (no std::vector in these files).
template <typename T>
struct Scratch {
  explicit Scratch(size_t count) : p(static_cast<T*>(std::malloc(count * sizeof(T) + 64))) {}
  ~Scratch() { std::free(p); }
  Scratch(const Scratch&) = delete;
  Scratch& operator=(const Scratch&) = delete;
  T* p;
};

// Software prefetch of the weight stream, kPrefetchBytes ahead of the load
// about to run, one call per 64 bytes consumed. A GEMV reads its weights
// once, as one sequential stream per thread; the hardware prefetchers alone
// keep too few lines in flight for it (bench_bandwidth: one stream 9.7 GB/s,
// four 14 GB/s on one Sapphire Rapids core). Measured with
// bench_gemm_q's dram_gemv cases (weights far past the L3): the AVX-512 int4
// kernel went from 6.3 to 10.2 GB/s on one core; 1, 2 and 3 KiB ahead were
// slower and 6-8 KiB no better; hints T1/T2 slower than T0. Prefetches do not
// fault, so running past the end of the blob is harmless.
inline constexpr size_t kPrefetchBytes = 4096;
inline void PrefetchAhead(const uint8_t* p) {
  _mm_prefetch(reinterpret_cast<const char*>(p + kPrefetchBytes), _MM_HINT_T0);
}

// End of the call's column range (gemm_q.h QGemmArgs::n_end).
inline size_t ColumnEnd(const QGemmArgs& a) { return a.n_end < a.n ? a.n_end : a.n; }

inline void StoreRows(__m256 acc, size_t rows, float* y) {
  if (rows == 8) {
    _mm256_storeu_ps(y, acc);
    return;
  }
  alignas(32) float tmp[8];
  _mm256_store_ps(tmp, acc);
  for (size_t r = 0; r < rows; ++r) y[r] = tmp[r];
}

// Zero points of a q4x8 tile as 8 int32 lanes (row r in lane r).
inline __m256i TileZeros(const uint8_t* zeros4) {
  uint32_t packed;
  std::memcpy(&packed, zeros4, 4);
  const __m128i b = _mm_cvtsi32_si128(static_cast<int>(packed));
  const __m256i dup = _mm256_cvtepu8_epi32(_mm_unpacklo_epi8(b, b));  // b0 b0 b1 b1 ..
  const __m256i shifted = _mm256_srlv_epi32(dup, _mm256_setr_epi32(0, 4, 0, 4, 0, 4, 0, 4));
  return _mm256_and_si256(shifted, _mm256_set1_epi32(0xf));
}

// The float step of an i8-dot tile for its 8 rows: acc = fma((float)corr,
// s * xs, acc), `scales` the tile's 8 FP16 scales. Shared so that every twin
// runs the same float operations as the refs (gemm_q4x8_i8_ref,
// gemm_q4s24x8_i8_ref).
inline __m256 TileScaleAccumulate(__m256i corr, const uint8_t* scales, float xs, __m256 acc) {
  const __m256 s = _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(scales)));
  return _mm256_fmadd_ps(_mm256_cvtepi32_ps(corr), _mm256_mul_ps(s, _mm256_set1_ps(xs)), acc);
}

// The i8-dot step of one q4x8 tile (gemm_q.h): corr = isum - z * sum(xq),
// then TileScaleAccumulate; `meta` points at the tile's 8 FP16 scales (the
// zeros follow them for asym).
inline __m256 TileI8Accumulate(__m256i isum, const uint8_t* meta, bool symmetric, int32_t xsum, float xs,
                               __m256 acc) {
  const __m256i z32 = symmetric ? _mm256_set1_epi32(8) : TileZeros(meta + 16);
  const __m256i corr = _mm256_sub_epi32(isum, _mm256_mullo_epi32(z32, _mm256_set1_epi32(xsum)));
  return TileScaleAccumulate(corr, meta, xs, acc);
}

// int4 nl levels (kNl4Levels) + `offset`, as bytes for vpshufb lookups.
inline __m128i NlLevelBytes(int offset) {
  alignas(16) uint8_t t[16];
  for (int i = 0; i < 16; ++i) t[i] = static_cast<uint8_t>(kNl4Levels[i] + offset);
  return _mm_load_si128(reinterpret_cast<const __m128i*>(t));
}

// The activations of one i8-dot kernel call, quantized per weight group
// (gemm_q.h): xq [m, kp], xs and xsum [m, groups].
struct QuantizedX {
  const int8_t* xq;
  const float* xs;
  const int32_t* xsum;
  size_t kp, groups;
};

// The driver every 8-row-tile i8-dot kernel shares: quantizes each X row
// once, then for each block of 8 weight rows in the column range runs
// Kernel::Rows<4> on X rows four at a time (prefill) and Kernel::Rows<1> on
// the rest, as Rows<R>(args, q, block, i0, rows, y + 8 * block_index).
template <typename Kernel>
inline void RunI8Tiles(const QGemmArgs& a, const float* x, const uint8_t* w, float* y, size_t tile_bytes) {
  const size_t g = a.group_size;
  const size_t groups = (a.k + g - 1) / g;
  const size_t kp = groups * g;
  Scratch<int8_t> xq(a.m * kp);
  Scratch<float> xs(a.m * groups);
  Scratch<int32_t> xsum(a.m * groups);
  for (size_t i = 0; i < a.m; ++i) {
    QuantizeActivationsI8Avx2(x + i * a.k, a.k, g, xq.p + i * kp, xs.p + i * groups, xsum.p + i * groups);
  }
  const QuantizedX q{xq.p, xs.p, xsum.p, kp, groups};
  const size_t n_end = ColumnEnd(a);
  for (size_t b = a.n_begin / 8; b < (n_end + 7) / 8; ++b) {
    const uint8_t* block = w + b * groups * tile_bytes;
    const size_t rows = n_end - 8 * b < 8 ? n_end - 8 * b : 8;
    float* yb = y + 8 * b;
    size_t i = 0;
    for (; i + 4 <= a.m; i += 4) Kernel::template Rows<4>(a, q, block, i, rows, yb);
    for (; i < a.m; ++i) Kernel::template Rows<1>(a, q, block, i, rows, yb);
  }
}

}  // namespace
}  // namespace slim
