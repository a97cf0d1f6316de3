// AVX-512 twins (gemm_q.h): the int4 i8-dot kernels (dense and 2:4) and the
// int8 f32 one.
//
// int4 i8-dot: vpdpbusd multiplies
// 64 unsigned by 64 signed bytes and adds each lane's four products into an
// int32 lane in one instruction, where AVX2 needs vpmaddubsw, an int16 add
// and vpmaddwd for half as many bytes: on the TinyLlama-1.1B shape the AVX2
// int4 kernel is compute-bound at about half the read bandwidth
// (docs/PERFORMANCE.md). The integer sums are exact in any order and the
// float steps are the refs' (x86_kernel_util.h), so this twin is
// bit-identical to the ref.
//
// int8 f32-dequant-fma: 16 codes per vpmovsxbd + vcvtdq2ps + vfmadd, twice
// the AVX2 kernel's elements per instruction; that kernel is bound by these
// conversions at about 5-6 GB/s of codes per core. Within gemm_q.h's float
// bound of the ref (any summation order meets it).
//
// int4 2:4 i8-dot (q4g*_sym_s24_x8): vpmultishiftqb expands the 2-bit
// positions into vpermb controls that pick each kept code's activation;
// integer sums again, bit-identical to the ref.
//
// Compiled with -mavx512f -mavx512bw -mavx512vl -mavx512vnni -mavx512vbmi on
// top of the AVX2 flags; no standard-library templates (see gemm_q_avx2.cpp).
// GCC 12's AVX-512 headers build "undefined" vectors as self-initialised
// locals (_mm512_undefined_epi32), which -W(maybe-)uninitialized reports at
// inlined uses: a known false positive of the intrinsics themselves.
#if !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>

#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/x86_kernel_util.h"

namespace slim {

namespace {

inline __mmask16 FirstLanes(size_t count) {
  return count >= 16 ? __mmask16(0xffff) : static_cast<__mmask16>((1u << count) - 1);
}

// Codes e..e+15 of an int8 row as float.
inline __m512 Codes16(const int8_t* codes, size_t e) {
  return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(codes + e))));
}

// sum x * w over one row of K elements, for R X rows (x, x + x_stride, ...)
// at once: each loaded weight vector serves all R (prefill runs R = 4). W is
// the int8 codes (kFloat false) or the same codes already converted to float
// (kFloat true). Every X row has its own four accumulators, assigned as for
// R = 1, so the products and their order, and the bits, do not depend on R
// or kFloat.
template <bool kFloat, int R>
inline void RowDots(const void* wrow, const float* x, size_t x_stride, size_t k, float* out) {
  const auto* wc = static_cast<const int8_t*>(wrow);
  const auto* wf = static_cast<const float*>(wrow);
  auto w16 = [&](size_t e) { return kFloat ? _mm512_loadu_ps(wf + e) : Codes16(wc, e); };
  const size_t k64 = k / 64 * 64;
  __m512 acc[R][4];
  for (int t = 0; t < R; ++t) {
    for (int j = 0; j < 4; ++j) acc[t][j] = _mm512_setzero_ps();
  }
  for (size_t e = 0; e < k64; e += 64) {
    if (!kFloat) PrefetchAhead(reinterpret_cast<const uint8_t*>(wc + e));
    for (int j = 0; j < 4; ++j) {
      const __m512 wv = w16(e + 16 * static_cast<size_t>(j));
      for (int t = 0; t < R; ++t) {
        acc[t][j] = _mm512_fmadd_ps(wv, _mm512_loadu_ps(x + static_cast<size_t>(t) * x_stride + e + 16 * static_cast<size_t>(j)), acc[t][j]);
      }
    }
  }
  // The tail by masked loads, which never touch masked-out bytes; those
  // lanes are zero in both operands and add nothing.
  for (size_t e = k64; e < k; e += 16) {
    const __mmask16 m = FirstLanes(k - e);
    const __m512 wv = kFloat ? _mm512_maskz_loadu_ps(m, wf + e)
                             : _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, wc + e)));
    for (int t = 0; t < R; ++t) {
      acc[t][0] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + static_cast<size_t>(t) * x_stride + e), acc[t][0]);
    }
  }
  for (int t = 0; t < R; ++t) {
    out[t] = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[t][0], acc[t][1]), _mm512_add_ps(acc[t][2], acc[t][3])));
  }
}

}  // namespace

void gemm_q8_row_f32_avx512(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t so = Q8RowLayout::ScalesOffset(a.n, a.k);
  // For M > 1 each code row is converted to float once and reused by every
  // X row (RowDots gives the same bits either way).
  Scratch<float> wd(a.m > 1 ? a.k : 0);
  for (size_t r = a.n_begin; r < ColumnEnd(a); ++r) {
    const int8_t* codes = reinterpret_cast<const int8_t*>(w + r * a.k);
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    if (a.m == 1) {
      float dot;
      RowDots<false, 1>(codes, x, a.k, a.k, &dot);
      y[r] = scale * dot;
      continue;
    }
    for (size_t e = 0; e < a.k; e += 16) {
      const __mmask16 m = FirstLanes(a.k - e);
      _mm512_mask_storeu_ps(wd.p + e, m, _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, codes + e))));
    }
    float dots[4];
    size_t i = 0;
    for (; i + 4 <= a.m; i += 4) {
      RowDots<true, 4>(wd.p, x + i * a.k, a.k, a.k, dots);
      for (size_t t = 0; t < 4; ++t) y[(i + t) * a.n + r] = scale * dots[t];
    }
    for (; i < a.m; ++i) {
      RowDots<true, 1>(wd.p, x + i * a.k, a.k, a.k, dots);
      y[i * a.n + r] = scale * dots[0];
    }
  }
}

namespace {

// Block `block` (8 weight rows) times X rows i0..i0+R-1 into y. One 64-byte
// load of a tile holds chunks c (lanes 0-7) and c + 1 (lanes 8-15): lane r's
// low nibbles are elements 8c+0..3 of row r, its high nibbles 8c+4..7; the
// nibbles are split once and used by all R X rows (prefill: R = 4 amortises
// the split and the tile loads; decode has R = 1). Each X row's arithmetic
// is the same for any R.
// kNl (q4g*_nl_x8): one vpshufb maps each nibble to its level + 128 (1..241,
// unsigned as vpdpbusd needs), and corr = isum - 128 * sum(xq) removes the
// offset exactly.
template <bool kNl>
struct Q4x8I8 {
  template <int R>
  static void Rows(const QGemmArgs& a, const QuantizedX& q, const uint8_t* block, size_t i0, size_t rows,
                   float* y) {
    const size_t g = a.group_size;
    const size_t tile_bytes = Q4X8Layout::TileBytes(g, a.symmetric);
    const size_t code_bytes = Q4X8Layout::CodeBytesPerTile(g);
    const __m512i low4 = _mm512_set1_epi8(0xf);
    const __m512i levels = kNl ? _mm512_broadcast_i32x4(NlLevelBytes(128)) : _mm512_setzero_si512();
    // From the 16 activations 8c..8c+15, the four each half of a load meets.
    const __m512i pick_lo = _mm512_setr_epi32(0, 0, 0, 0, 0, 0, 0, 0, 2, 2, 2, 2, 2, 2, 2, 2);
    const __m512i pick_hi = _mm512_setr_epi32(1, 1, 1, 1, 1, 1, 1, 1, 3, 3, 3, 3, 3, 3, 3, 3);
    __m256 acc[R];
    for (int t = 0; t < R; ++t) acc[t] = _mm256_setzero_ps();
    for (size_t gi = 0; gi < q.groups; ++gi) {
      const uint8_t* tile = block + gi * tile_bytes;
      // Two accumulators per X row halve the vpdpbusd dependency chain. A
      // group has g / 8 = 4, 8 or 16 chunks: whole pairs.
      __m512i s0[R], s1[R];
      for (int t = 0; t < R; ++t) s0[t] = s1[t] = _mm512_setzero_si512();
      for (size_t c = 0; c < g / 8; c += 2) {
        PrefetchAhead(tile + 32 * c);
        const __m512i v = _mm512_loadu_si512(tile + 32 * c);
        __m512i lo = _mm512_and_si512(v, low4);
        __m512i hi = _mm512_and_si512(_mm512_srli_epi16(v, 4), low4);
        if (kNl) {
          lo = _mm512_shuffle_epi8(levels, lo);
          hi = _mm512_shuffle_epi8(levels, hi);
        }
        for (int t = 0; t < R; ++t) {
          const int8_t* xg = q.xq + (i0 + static_cast<size_t>(t)) * q.kp + gi * g + 8 * c;
          const __m512i xv = _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xg)));
          s0[t] = _mm512_dpbusd_epi32(s0[t], lo, _mm512_permutexvar_epi32(pick_lo, xv));
          s1[t] = _mm512_dpbusd_epi32(s1[t], hi, _mm512_permutexvar_epi32(pick_hi, xv));
        }
      }
      for (int t = 0; t < R; ++t) {
        const size_t i = i0 + static_cast<size_t>(t);
        const __m512i sum = _mm512_add_epi32(s0[t], s1[t]);
        const __m256i isum = _mm256_add_epi32(_mm512_castsi512_si256(sum), _mm512_extracti64x4_epi64(sum, 1));
        if (kNl) {
          const __m256i corr = _mm256_sub_epi32(isum, _mm256_set1_epi32(128 * q.xsum[i * q.groups + gi]));
          acc[t] = TileScaleAccumulate(corr, tile + code_bytes, q.xs[i * q.groups + gi], acc[t]);
        } else {
          acc[t] = TileI8Accumulate(isum, tile + code_bytes, a.symmetric, q.xsum[i * q.groups + gi],
                                    q.xs[i * q.groups + gi], acc[t]);
        }
      }
    }
    for (int t = 0; t < R; ++t) StoreRows(acc[t], rows, y + (i0 + static_cast<size_t>(t)) * a.n);
  }
};

// vpmultishiftqb controls and vpermb bases of the two steps of a 2:4 chunk
// (Q4S24X8Layout): step s takes the low (s = 0) or high (s = 1) nibbles of
// the 64 code bytes. Code byte p is lane p / 4 = r + 8h, slot i = p % 4; its
// position is bits 2t..2t+1 (t = 2s + h) of position byte p % 32, which a
// 32-byte broadcast puts in byte p % 8 of byte p's own qword, so the control
// is 8 * (p % 8) + 2t; the base is the element offset of its quad, 16s + 8h
// + 4 * (i / 2), and base | (field & 3) indexes the chunk's 32 activations.
struct S24Steps {
  __m512i ctrl[2], base[2];
};
inline S24Steps MakeS24Steps() {
  alignas(64) uint8_t ctrl[2][64], base[2][64];
  for (int s = 0; s < 2; ++s) {
    for (int p = 0; p < 64; ++p) {
      const int h = p / 32, i = p % 4;
      ctrl[s][p] = static_cast<uint8_t>(8 * (p % 8) + 2 * (2 * s + h));
      base[s][p] = static_cast<uint8_t>(16 * s + 8 * h + 4 * (i / 2));
    }
  }
  S24Steps st;
  for (int s = 0; s < 2; ++s) {
    st.ctrl[s] = _mm512_load_si512(ctrl[s]);
    st.base[s] = _mm512_load_si512(base[s]);
  }
  return st;
}

// 2:4 tiles: per chunk one 64-byte code load (both steps), one 32-byte
// position load, and per step and X row one vpermb and two vpdpbusd: the
// kept codes u against their activations, and 8 against the same
// activations; their difference is sum (u - 8) * xq exactly. 128 weights per
// vpdpbusd of codes, where the dense x8 kernel covers 64.
struct Q4S24x8I8 {
  template <int R>
  static void Rows(const QGemmArgs& a, const QuantizedX& q, const uint8_t* block, size_t i0, size_t rows,
                   float* y) {
    static const S24Steps st = MakeS24Steps();
    const size_t g = a.group_size;
    const size_t tile_bytes = Q4S24X8Layout::TileBytes(g);
    const size_t chunks = g / Q4S24X8Layout::kChunkElements;
    const __m512i low4 = _mm512_set1_epi8(0xf);
    const __m512i three = _mm512_set1_epi8(3);
    const __m512i eight = _mm512_set1_epi8(8);
    __m256 acc[R];
    for (int t = 0; t < R; ++t) acc[t] = _mm256_setzero_ps();
    for (size_t gi = 0; gi < q.groups; ++gi) {
      const uint8_t* tile = block + gi * tile_bytes;
      __m512i su[R], s8[R];
      for (int t = 0; t < R; ++t) su[t] = s8[t] = _mm512_setzero_si512();
      for (size_t c = 0; c < chunks; ++c) {
        const uint8_t* chunk = tile + c * Q4S24X8Layout::kChunkBytes;
        PrefetchAhead(chunk);
        PrefetchAhead(chunk + 64);
        const __m512i v = _mm512_loadu_si512(chunk);
        const __m512i codes[2] = {_mm512_and_si512(v, low4), _mm512_and_si512(_mm512_srli_epi16(v, 4), low4)};
        const __m512i pos = _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 64)));
        __m512i index[2];
        for (int s = 0; s < 2; ++s) {
          // (field & 3) | base, one vpternlogd (truth table 0xEC).
          index[s] = _mm512_ternarylogic_epi32(_mm512_multishift_epi64_epi8(st.ctrl[s], pos), st.base[s], three, 0xEC);
        }
        for (int t = 0; t < R; ++t) {
          const int8_t* xc =
              q.xq + (i0 + static_cast<size_t>(t)) * q.kp + gi * g + Q4S24X8Layout::kChunkElements * c;
          // vpermb reads only the low 32 bytes (indices < 32).
          const __m512i xv = _mm512_castsi256_si512(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(xc)));
          for (int s = 0; s < 2; ++s) {
            const __m512i xg = _mm512_permutexvar_epi8(index[s], xv);
            su[t] = _mm512_dpbusd_epi32(su[t], codes[s], xg);
            s8[t] = _mm512_dpbusd_epi32(s8[t], eight, xg);
          }
        }
      }
      for (int t = 0; t < R; ++t) {
        const size_t i = i0 + static_cast<size_t>(t);
        const __m512i d = _mm512_sub_epi32(su[t], s8[t]);
        const __m256i corr = _mm256_add_epi32(_mm512_castsi512_si256(d), _mm512_extracti64x4_epi64(d, 1));
        acc[t] = TileScaleAccumulate(corr, tile + Q4S24X8Layout::ScalesOffsetInTile(g), q.xs[i * q.groups + gi],
                                     acc[t]);
      }
    }
    for (int t = 0; t < R; ++t) StoreRows(acc[t], rows, y + (i0 + static_cast<size_t>(t)) * a.n);
  }
};

}  // namespace

void gemm_q4x8_i8_avx512(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  RunI8Tiles<Q4x8I8<false>>(a, x, w, y, Q4X8Layout::TileBytes(a.group_size, a.symmetric));
}

void gemm_q4nlx8_i8_avx512(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  RunI8Tiles<Q4x8I8<true>>(a, x, w, y, Q4X8Layout::TileBytes(a.group_size, true));
}

void gemm_q4s24x8_i8_avx512(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  RunI8Tiles<Q4S24x8I8>(a, x, w, y, Q4S24X8Layout::TileBytes(a.group_size));
}

}  // namespace slim
