// AVX2+FMA+F16C twins of the quantized GEMM kernels (gemm_q.h gives the
// summation order each path promises and the tolerance against the refs).
//
// Every kernel walks the weights once per call: weight rows (or 8-row
// blocks) outer, X rows inner, so for M > 1 the few KiB of one row/block stay
// in L1 while every X row uses them. X is rearranged once per call into a
// scratch buffer (zero-padded to whole groups, so no kernel needs a K tail):
//  - q4 row layout: per 32-element chunk [x0 x2 .. x30 | x1 x3 .. x31], the
//    order in which the low and high nibbles of 16 code bytes come out;
//  - i8-dot: QuantizeActivationsI8Avx2 (bit-identical to the refs' quantizer).
//
// This file is compiled with -mavx2 -mfma -mf16c, so it instantiates no
// standard-library templates (their out-of-line copies would be shared with
// plain x86-64 files); scratch memory comes from malloc (x86_kernel_util.h).
#include <immintrin.h>

#include <cstdlib>
#include <cstring>

#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/x86_kernel_util.h"

namespace slim {
namespace {

inline float HorizontalSum(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

inline float HalfAt(const uint8_t* p) {
  uint16_t h;
  std::memcpy(&h, p, 2);
  return _cvtsh_ss(h);
}

// Signed byte i (0..3) of every 32-bit lane, as float.
template <int kByte>
inline __m256 LaneByteToFloat(__m256i v) {
  const __m256i top = _mm256_slli_epi32(v, 24 - 8 * kByte);
  return _mm256_cvtepi32_ps(_mm256_srai_epi32(top, 24));
}

}  // namespace

void QuantizeActivationsI8Avx2(const float* x, size_t k, size_t group_size, int8_t* xq, float* xs,
                               int32_t* xsum) {
  const size_t groups = (k + group_size - 1) / group_size;
  const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
  const __m256i lo = _mm256_set1_epi32(-127), hi = _mm256_set1_epi32(127);
  for (size_t gi = 0; gi < groups; ++gi) {
    const size_t k0 = gi * group_size;
    const size_t k1 = k0 + group_size < k ? k0 + group_size : k;
    const size_t full = k0 + (k1 - k0) / 8 * 8;
    // max|x|: _mm256_max_ps(v, m) keeps m where v is NaN, as the ref's
    // std::max(amax, |x|) keeps amax.
    __m256 m = _mm256_setzero_ps();
    for (size_t e = k0; e < full; e += 8) m = _mm256_max_ps(_mm256_and_ps(_mm256_loadu_ps(x + e), abs_mask), m);
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
    float amax = _mm_cvtss_f32(m4);
    for (size_t e = full; e < k1; ++e) {
      const float v = x[e] < 0 ? -x[e] : x[e];
      amax = amax < v ? v : amax;
    }
    const float inv = amax > 0.0f ? 127.0f / amax : 0.0f;
    const __m256 vinv = _mm256_set1_ps(inv);
    __m256i sum = _mm256_setzero_si256();
    for (size_t e = k0; e < full; e += 8) {
      const __m256 t = _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + e), vinv),
                                       _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
      const __m256i q = _mm256_min_epi32(_mm256_max_epi32(_mm256_cvttps_epi32(t), lo), hi);
      sum = _mm256_add_epi32(sum, q);
      const __m128i q16 = _mm_packs_epi32(_mm256_castsi256_si128(q), _mm256_extracti128_si256(q, 1));
      _mm_storel_epi64(reinterpret_cast<__m128i*>(xq + e), _mm_packs_epi16(q16, q16));
    }
    alignas(32) int32_t lanes[8];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), sum);
    int32_t total = lanes[0] + lanes[1] + lanes[2] + lanes[3] + lanes[4] + lanes[5] + lanes[6] + lanes[7];
    for (size_t e = full; e < k0 + group_size; ++e) {
      int q = 0;
      if (e < k1) {
        const __m128 t = _mm_round_ss(_mm_setzero_ps(), _mm_set_ss(x[e] * inv), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        q = _mm_cvttss_si32(t);
        q = q < -127 ? -127 : (q > 127 ? 127 : q);
      }
      xq[e] = static_cast<int8_t>(q);
      total += q;
    }
    xs[gi] = amax / 127.0f;
    xsum[gi] = total;
  }
}

void gemm_q8_row_f32_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t so = Q8RowLayout::ScalesOffset(a.n, a.k);
  const size_t k32 = a.k / 32 * 32;
  for (size_t r = a.n_begin; r < ColumnEnd(a); ++r) {
    const uint8_t* codes = w + r * a.k;
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = x + i * a.k;
      __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
      __m256 acc2 = _mm256_setzero_ps(), acc3 = _mm256_setzero_ps();
      for (size_t e = 0; e < k32; e += 32) {
        if (e % 64 == 0) PrefetchAhead(codes + e);
        const __m256i c = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(codes + e));
        const __m128i c0 = _mm256_castsi256_si128(c), c1 = _mm256_extracti128_si256(c, 1);
        acc0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c0)),
                               _mm256_loadu_ps(xi + e), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c0, 8))),
                               _mm256_loadu_ps(xi + e + 8), acc1);
        acc2 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c1)),
                               _mm256_loadu_ps(xi + e + 16), acc2);
        acc3 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c1, 8))),
                               _mm256_loadu_ps(xi + e + 24), acc3);
      }
      float sum = HorizontalSum(_mm256_add_ps(_mm256_add_ps(acc0, acc1), _mm256_add_ps(acc2, acc3)));
      for (size_t e = k32; e < a.k; ++e) {
        sum += xi[e] * static_cast<float>(static_cast<int8_t>(codes[e]));
      }
      y[i * a.n + r] = scale * sum;
    }
  }
}

namespace {

// Four int32 vectors -> their four lane sums (exact), row t in lane t.
inline __m128i SumLanes4(__m256i v0, __m256i v1, __m256i v2, __m256i v3) {
  const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(v0, v1), _mm256_hadd_epi32(v2, v3));
  return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

// sum c * xq of one 32-element block as 8 int32 lanes: |c| * (xq * sign c),
// so vpmaddubsw gets its unsigned operand (|-128| = 128 as a byte) and pairs
// stay below 2 * 128 * 127 < 32767.
inline __m256i BlockDot(__m256i c, __m256i xq, __m256i ones16) {
  const __m256i p16 = _mm256_maddubs_epi16(_mm256_abs_epi8(c), _mm256_sign_epi8(xq, c));
  return _mm256_madd_epi16(p16, ones16);
}

}  // namespace

void gemm_q8_row_i8_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t blocks = (a.k + kQ8DotBlock - 1) / kQ8DotBlock;
  const size_t kp = blocks * kQ8DotBlock;
  const size_t full = a.k / kQ8DotBlock;  // blocks that lie inside a code row
  const size_t so = Q8RowLayout::ScalesOffset(a.n, a.k);
  Scratch<int8_t> xq(a.m * kp);
  Scratch<float> xs(a.m * blocks);
  Scratch<int32_t> xsum(a.m * blocks);
  for (size_t i = 0; i < a.m; ++i) {
    QuantizeActivationsI8Avx2(x + i * a.k, a.k, kQ8DotBlock, xq.p + i * kp, xs.p + i * blocks, xsum.p + i * blocks);
  }
  const __m256i ones16 = _mm256_set1_epi16(1);
  const size_t n_end = ColumnEnd(a);
  // Row r's codes of block bi: a direct load, or the zero-padded tail (the
  // row ends inside it; reading on would leave the blob on the last row).
  auto load_codes = [&](size_t r, size_t bi, uint8_t* tail) {
    const uint8_t* row = w + r * a.k;
    if (bi % 2 == 0) PrefetchAhead(row + bi * kQ8DotBlock);
    if (bi < full) return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + bi * kQ8DotBlock));
    std::memset(tail, 0, kQ8DotBlock);
    std::memcpy(tail, row + bi * kQ8DotBlock, a.k - bi * kQ8DotBlock);
    return _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tail));
  };
  alignas(32) uint8_t tail[4][kQ8DotBlock];
  for (size_t r0 = a.n_begin; r0 < n_end; r0 += 4) {
    const size_t rows = n_end - r0 < 4 ? n_end - r0 : 4;
    for (size_t i = 0; i < a.m; ++i) {
      const int8_t* xqi = xq.p + i * kp;
      __m128 acc = _mm_setzero_ps();
      for (size_t bi = 0; bi < blocks; ++bi) {
        const __m256i xb = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(xqi + bi * kQ8DotBlock));
        __m256i d[4];
        for (size_t t = 0; t < 4; ++t) {
          // Rows past the range repeat the last one; their lanes are not stored.
          const size_t r = r0 + (t < rows ? t : rows - 1);
          d[t] = BlockDot(load_codes(r, bi, tail[t]), xb, ones16);
        }
        const __m128 isum = _mm_cvtepi32_ps(SumLanes4(d[0], d[1], d[2], d[3]));
        acc = _mm_fmadd_ps(isum, _mm_set1_ps(xs.p[i * blocks + bi]), acc);
      }
      alignas(16) float lanes[4];
      _mm_store_ps(lanes, acc);
      for (size_t t = 0; t < rows; ++t) {
        float scale;
        std::memcpy(&scale, w + so + 4 * (r0 + t), 4);
        y[i * a.n + r0 + t] = scale * lanes[t];
      }
    }
  }
}

void gemm_q4_row_f32_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4RowLayout::Groups(a.k, g);
  const size_t kp = groups * g;
  const size_t row_bytes = Q4RowLayout::RowBytes(a.k, g);
  const uint8_t* scales = w + Q4RowLayout::ScalesOffset(a.n, a.k, g);
  const uint8_t* zeros = w + Q4RowLayout::ZerosOffset(a.n, a.k, g);
  Scratch<float> xp(a.m * kp);
  for (size_t i = 0; i < a.m; ++i) {
    const float* xi = x + i * a.k;
    float* out = xp.p + i * kp;
    for (size_t c = 0; c < kp; c += 32) {
      for (size_t j = 0; j < 16; ++j) {
        out[c + j] = c + 2 * j < a.k ? xi[c + 2 * j] : 0.0f;
        out[c + 16 + j] = c + 2 * j + 1 < a.k ? xi[c + 2 * j + 1] : 0.0f;
      }
    }
  }
  const __m128i low4 = _mm_set1_epi8(0xf);
  for (size_t r = a.n_begin; r < ColumnEnd(a); ++r) {
    const uint8_t* row = w + r * row_bytes;
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = xp.p + i * kp;
      __m256 acc = _mm256_setzero_ps();
      for (size_t gi = 0; gi < groups; ++gi) {
        const int z = a.symmetric ? 8 : zeros[r * groups + gi];
        const __m128i zb = _mm_set1_epi8(static_cast<char>(z));
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
        for (size_t c = gi * g; c < (gi + 1) * g; c += 32) {
          const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(row + c / 2));
          // u - z in [-15, 15] as signed bytes: exact, so every product
          // x * (u - z) is the ref's product.
          const __m128i lo = _mm_sub_epi8(_mm_and_si128(b, low4), zb);
          const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(b, 4), low4), zb);
          t0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(lo)),
                               _mm256_loadu_ps(xi + c), t0);
          t1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(lo, 8))),
                               _mm256_loadu_ps(xi + c + 8), t1);
          t0 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(hi)),
                               _mm256_loadu_ps(xi + c + 16), t0);
          t1 = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(hi, 8))),
                               _mm256_loadu_ps(xi + c + 24), t1);
        }
        const float s = HalfAt(scales + 2 * (r * groups + gi));
        acc = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), _mm256_set1_ps(s), acc);
      }
      y[i * a.n + r] = HorizontalSum(acc);
    }
  }
}

namespace {

// 2:4 layout: an index byte covers two quads (8 elements of X, one __m256);
// entry b holds the lanes of their kept elements, [first, second] of the
// low quad then 4 + [first, second] of the high one, for vpermps.
struct S24Lanes {
  alignas(16) int32_t lanes[256][4];
  constexpr S24Lanes() : lanes() {
    for (int b = 0; b < 256; ++b) {
      lanes[b][0] = b & 3;
      lanes[b][1] = (b >> 2) & 3;
      lanes[b][2] = 4 + ((b >> 4) & 3);
      lanes[b][3] = 4 + ((b >> 6) & 3);
    }
  }
};
constexpr S24Lanes kS24Lanes;

// The 16 kept activations of 8 quads (32 elements of X at xq, index bytes
// ib[0..3]) in quad order: x0 for quads 0..3, x1 for quads 4..7, each
// quad's [first, second].
inline void PickKept(const float* xq, const uint8_t* ib, __m256* x0, __m256* x1) {
  const __m256i lanes0 = _mm256_setr_m128i(_mm_load_si128(reinterpret_cast<const __m128i*>(kS24Lanes.lanes[ib[0]])),
                                           _mm_load_si128(reinterpret_cast<const __m128i*>(kS24Lanes.lanes[ib[1]])));
  const __m256i lanes1 = _mm256_setr_m128i(_mm_load_si128(reinterpret_cast<const __m128i*>(kS24Lanes.lanes[ib[2]])),
                                           _mm_load_si128(reinterpret_cast<const __m128i*>(kS24Lanes.lanes[ib[3]])));
  *x0 = _mm256_blend_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(xq), lanes0),
                        _mm256_permutevar8x32_ps(_mm256_loadu_ps(xq + 8), lanes0), 0xF0);
  *x1 = _mm256_blend_ps(_mm256_permutevar8x32_ps(_mm256_loadu_ps(xq + 16), lanes1),
                        _mm256_permutevar8x32_ps(_mm256_loadu_ps(xq + 24), lanes1), 0xF0);
}

}  // namespace

// Per 8 quads (32 elements of X, 16 kept weights): the kept X values are
// picked with vpermps from two 8-element loads per 4 quads (the index bytes
// give the lanes), the 16 nibbles become (u - 8) as float in the same order,
// two FMAs. X is zero-padded to whole groups, so there is no tail.
void gemm_q4s24_row_f32_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4S24RowLayout::Groups(a.k, g);
  const size_t kp = groups * g;
  const size_t quads = Q4S24RowLayout::Quads(a.k, g);
  const uint8_t* index = w + Q4S24RowLayout::IndexOffset(a.n, a.k, g);
  const uint8_t* scales = w + Q4S24RowLayout::ScalesOffset(a.n, a.k, g);
  Scratch<float> xp(a.m * kp);
  for (size_t i = 0; i < a.m; ++i) {
    for (size_t e = 0; e < kp; ++e) xp.p[i * kp + e] = e < a.k ? x[i * a.k + e] : 0.0f;
  }
  const __m128i low4 = _mm_set1_epi8(0xf);
  const __m128i eight = _mm_set1_epi8(8);
  for (size_t r = a.n_begin; r < ColumnEnd(a); ++r) {
    const uint8_t* vals = w + r * quads;
    const uint8_t* idx = index + r * quads / 2;
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = xp.p + i * kp;
      __m256 acc = _mm256_setzero_ps();
      for (size_t gi = 0; gi < groups; ++gi) {
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
        for (size_t j = gi * g / 4; j < (gi + 1) * g / 4; j += 8) {
          uint64_t v8;
          std::memcpy(&v8, vals + j, 8);
          const __m128i b = _mm_cvtsi64_si128(static_cast<long long>(v8));
          // [q0 first, q0 second, q1 first, ...] as u - 8 (exact bytes).
          const __m128i u = _mm_unpacklo_epi8(_mm_and_si128(b, low4), _mm_and_si128(_mm_srli_epi16(b, 4), low4));
          const __m128i c = _mm_sub_epi8(u, eight);
          const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c));
          const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c, 8)));
          __m256 x0, x1;
          PickKept(xi + 4 * j, idx + j / 2, &x0, &x1);
          t0 = _mm256_fmadd_ps(w0, x0, t0);
          t1 = _mm256_fmadd_ps(w1, x1, t1);
        }
        const float s = HalfAt(scales + 2 * (r * groups + gi));
        acc = _mm256_fmadd_ps(_mm256_add_ps(t0, t1), _mm256_set1_ps(s), acc);
      }
      y[i * a.n + r] = HorizontalSum(acc);
    }
  }
}

// 2:4 int8: the same lane picking as the int4 kernel, 8 quads per step (16
// int8 codes, two cvtepi8 -> float); a row's last Quads % 8 quads are summed
// in order and added to the vector sum. X is zero-padded to 4 * Quads.
void gemm_q8s24_row_f32_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t quads = Q8S24RowLayout::Quads(a.k);
  const size_t kp = 4 * quads;
  const size_t q8 = quads / 8 * 8;
  const uint8_t* index = w + Q8S24RowLayout::IndexOffset(a.n, a.k);
  const size_t so = Q8S24RowLayout::ScalesOffset(a.n, a.k);
  Scratch<float> xp(a.m * kp);
  for (size_t i = 0; i < a.m; ++i) {
    for (size_t e = 0; e < kp; ++e) xp.p[i * kp + e] = e < a.k ? x[i * a.k + e] : 0.0f;
  }
  for (size_t r = a.n_begin; r < ColumnEnd(a); ++r) {
    const uint8_t* vals = w + 2 * r * quads;
    const uint8_t* idx = index + r * quads / 2;
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = xp.p + i * kp;
      __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
      for (size_t j = 0; j < q8; j += 8) {
        const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(vals + 2 * j));
        const __m256 w0 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(c));
        const __m256 w1 = _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_srli_si128(c, 8)));
        __m256 x0, x1;
        PickKept(xi + 4 * j, idx + j / 2, &x0, &x1);
        t0 = _mm256_fmadd_ps(w0, x0, t0);
        t1 = _mm256_fmadd_ps(w1, x1, t1);
      }
      float sum = HorizontalSum(_mm256_add_ps(t0, t1));
      for (size_t j = q8; j < quads; ++j) {
        const int bits = (idx[j / 2] >> (4 * (j & 1))) & 0xf;
        sum += xi[4 * j + static_cast<size_t>(bits & 3)] * static_cast<float>(static_cast<int8_t>(vals[2 * j]));
        sum += xi[4 * j + static_cast<size_t>(bits >> 2)] * static_cast<float>(static_cast<int8_t>(vals[2 * j + 1]));
      }
      y[i * a.n + r] = scale * sum;
    }
  }
}

namespace {

// Bitmask layout: byte j of shuffle[b] is the rank of bit j among mask
// byte b's set bits, or 0x80 (pshufb writes 0) when bit j is clear, so one
// pshufb moves the next popcount(b) stored codes to their elements' bytes and
// zeroes the rest; count[b] = popcount(b) (a table: this file is not built
// with -mpopcnt).
struct BitmaskShuffle {
  uint64_t shuffle[256];
  uint8_t count[256];
  constexpr BitmaskShuffle() : shuffle(), count() {
    for (int b = 0; b < 256; ++b) {
      uint64_t ctrl = 0;
      int rank = 0;
      for (int j = 0; j < 8; ++j) {
        const uint64_t byte = (b >> j) & 1 ? static_cast<uint64_t>(rank++) : 0x80;
        ctrl |= byte << (8 * j);
      }
      shuffle[b] = ctrl;
      count[b] = static_cast<uint8_t>(rank);
    }
  }
};
constexpr BitmaskShuffle kBitmask;

// Eight elements of a bitmask row as float: mask byte b, the stored codes
// from `off` at the lanes of b's set bits (0 elsewhere). A load that would
// pass the nnz stored codes (a row's last bytes, or a hostile blob's
// offsets) copies only the bytes that exist.
inline __m256 BitmaskChunk(const uint8_t* vals, size_t off, size_t nnz, int b) {
  __m128i c8;
  if (off + 8 <= nnz) {
    c8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(vals + off));
  } else {
    uint64_t tail = 0;
    if (off < nnz) std::memcpy(&tail, vals + off, nnz - off);
    c8 = _mm_cvtsi64_si128(static_cast<long long>(tail));
  }
  const __m128i ctrl = _mm_cvtsi64_si128(static_cast<long long>(kBitmask.shuffle[b]));
  return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(_mm_shuffle_epi8(c8, ctrl)));
}

}  // namespace

// M = 1 (decode): each 8-element chunk is expanded in registers and
// multiplied with X at once (two FMA chains, even and odd chunks). M > 1:
// each weight row is expanded once into a dense float row, then dotted with
// every X row (the same two chains), so the result does not depend on M.
void gemm_q8bm_row_f32_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t words = Q8BitmaskRowLayout::MaskWords(a.k);
  const size_t oo = Q8BitmaskRowLayout::OffsetsOffset(a.n, a.k);
  const uint8_t* vals = w + Q8BitmaskRowLayout::ValuesOffset(a.n, a.k);
  uint32_t nnz;
  std::memcpy(&nnz, w + oo + 4 * a.n, 4);
  const size_t so = Q8BitmaskRowLayout::ScalesOffset(a.n, a.k, nnz);
  const size_t chunks = CeilDiv(a.k, 8), kp = 8 * chunks;
  Scratch<float> xp(a.m * kp);
  for (size_t i = 0; i < a.m; ++i) {
    for (size_t e = 0; e < kp; ++e) xp.p[i * kp + e] = e < a.k ? x[i * a.k + e] : 0.0f;
  }
  Scratch<float> wd(a.m > 1 ? kp : 0);
  for (size_t r = a.n_begin; r < ColumnEnd(a); ++r) {
    const uint8_t* mask = w + 8 * r * words;
    uint32_t start;
    std::memcpy(&start, w + oo + 4 * r, 4);
    float scale;
    std::memcpy(&scale, w + so + 4 * r, 4);
    size_t off = start;
    if (a.m == 1) {
      __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
      size_t c = 0;
      for (; c + 2 <= chunks; c += 2) {
        const int b0 = mask[c], b1 = mask[c + 1];
        const size_t off1 = off + kBitmask.count[b0];
        t0 = _mm256_fmadd_ps(BitmaskChunk(vals, off, nnz, b0), _mm256_loadu_ps(xp.p + 8 * c), t0);
        t1 = _mm256_fmadd_ps(BitmaskChunk(vals, off1, nnz, b1), _mm256_loadu_ps(xp.p + 8 * c + 8), t1);
        off = off1 + kBitmask.count[b1];
      }
      if (c < chunks) {
        t0 = _mm256_fmadd_ps(BitmaskChunk(vals, off, nnz, mask[c]), _mm256_loadu_ps(xp.p + 8 * c), t0);
      }
      y[r] = scale * HorizontalSum(_mm256_add_ps(t0, t1));
      continue;
    }
    for (size_t c = 0; c < chunks; ++c) {
      _mm256_storeu_ps(wd.p + 8 * c, BitmaskChunk(vals, off, nnz, mask[c]));
      off += kBitmask.count[mask[c]];
    }
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = xp.p + i * kp;
      __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
      size_t e = 0;
      for (; e + 16 <= kp; e += 16) {
        t0 = _mm256_fmadd_ps(_mm256_loadu_ps(wd.p + e), _mm256_loadu_ps(xi + e), t0);
        t1 = _mm256_fmadd_ps(_mm256_loadu_ps(wd.p + e + 8), _mm256_loadu_ps(xi + e + 8), t1);
      }
      if (e < kp) t0 = _mm256_fmadd_ps(_mm256_loadu_ps(wd.p + e), _mm256_loadu_ps(xi + e), t0);
      y[i * a.n + r] = scale * HorizontalSum(_mm256_add_ps(t0, t1));
    }
  }
}

void gemm_q4x8_f32_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  const size_t g = a.group_size;
  const size_t groups = Q4X8Layout::Groups(a.k, g);
  const size_t kp = groups * g;
  const size_t tile_bytes = Q4X8Layout::TileBytes(g, a.symmetric);
  const size_t code_bytes = Q4X8Layout::CodeBytesPerTile(g);
  Scratch<float> xp(a.m * kp);
  for (size_t i = 0; i < a.m; ++i) {
    for (size_t e = 0; e < kp; ++e) xp.p[i * kp + e] = e < a.k ? x[i * a.k + e] : 0.0f;
  }
  const __m256i low4 = _mm256_set1_epi8(0xf);
  const __m256i bytes_of_lane = _mm256_set1_epi32(0x01010101);
  const size_t n_end = ColumnEnd(a);
  for (size_t b = a.n_begin / 8; b < Q4X8Layout::Blocks(n_end); ++b) {
    const uint8_t* block = w + b * groups * tile_bytes;
    const size_t rows = n_end - 8 * b < 8 ? n_end - 8 * b : 8;
    for (size_t i = 0; i < a.m; ++i) {
      const float* xi = xp.p + i * kp;
      __m256 acc = _mm256_setzero_ps();
      for (size_t gi = 0; gi < groups; ++gi) {
        const uint8_t* tile = block + gi * tile_bytes;
        // Each row's zero point replicated into the 4 bytes of its lane.
        const __m256i z32 = a.symmetric ? _mm256_set1_epi32(8) : TileZeros(tile + code_bytes + 16);
        const __m256i zb = _mm256_mullo_epi32(z32, bytes_of_lane);
        __m256 t0 = _mm256_setzero_ps(), t1 = _mm256_setzero_ps();
        __m256 t2 = _mm256_setzero_ps(), t3 = _mm256_setzero_ps();
        for (size_t c = 0; c < g / 8; ++c) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32 * c));
          const __m256i lo = _mm256_sub_epi8(_mm256_and_si256(v, low4), zb);
          const __m256i hi = _mm256_sub_epi8(_mm256_and_si256(_mm256_srli_epi16(v, 4), low4), zb);
          const float* xc = xi + gi * g + 8 * c;
          t0 = _mm256_fmadd_ps(LaneByteToFloat<0>(lo), _mm256_broadcast_ss(xc + 0), t0);
          t1 = _mm256_fmadd_ps(LaneByteToFloat<1>(lo), _mm256_broadcast_ss(xc + 1), t1);
          t2 = _mm256_fmadd_ps(LaneByteToFloat<2>(lo), _mm256_broadcast_ss(xc + 2), t2);
          t3 = _mm256_fmadd_ps(LaneByteToFloat<3>(lo), _mm256_broadcast_ss(xc + 3), t3);
          t0 = _mm256_fmadd_ps(LaneByteToFloat<0>(hi), _mm256_broadcast_ss(xc + 4), t0);
          t1 = _mm256_fmadd_ps(LaneByteToFloat<1>(hi), _mm256_broadcast_ss(xc + 5), t1);
          t2 = _mm256_fmadd_ps(LaneByteToFloat<2>(hi), _mm256_broadcast_ss(xc + 6), t2);
          t3 = _mm256_fmadd_ps(LaneByteToFloat<3>(hi), _mm256_broadcast_ss(xc + 7), t3);
        }
        const __m256 s = _mm256_cvtph_ps(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(tile + code_bytes)));
        const __m256 sum = _mm256_add_ps(_mm256_add_ps(t0, t1), _mm256_add_ps(t2, t3));
        acc = _mm256_fmadd_ps(sum, s, acc);
      }
      StoreRows(acc, rows, y + i * a.n + 8 * b);
    }
  }
}

namespace {

// Block `block` (8 weight rows) times X rows i0..i0+R-1 of the quantized
// activations into y. The nibbles of each 32-byte chunk are split once for
// all R X rows (prefill runs R = 4: TinyLlama-shape prefill on one core
// 13.8 -> 15.6 tokens/s, R = 2 gave nothing; decode has R = 1). Each X row's
// arithmetic is the same for any R.
//
// kNl (q4g*_nl_x8): vpshufb maps each nibble to its signed level l; the
// products |l| * (xq * sign(l)) (vpsignb, vpmaddubsw) are at most 2 * 127 *
// 127 = 32258 per int16 lane, so each goes to int32 at once.
template <bool kNl>
struct Q4x8I8 {
  template <int R>
  static void Rows(const QGemmArgs& a, const QuantizedX& q, const uint8_t* block, size_t i0, size_t rows,
                   float* y) {
    const size_t g = a.group_size;
    const size_t tile_bytes = Q4X8Layout::TileBytes(g, a.symmetric);
    const size_t code_bytes = Q4X8Layout::CodeBytesPerTile(g);
    const __m256i low4 = _mm256_set1_epi8(0xf);
    const __m256i ones16 = _mm256_set1_epi16(1);
    const __m256i levels = kNl ? _mm256_broadcastsi128_si256(NlLevelBytes(0))
                               : _mm256_setzero_si256();
    __m256 acc[R];
    for (int t = 0; t < R; ++t) acc[t] = _mm256_setzero_ps();
    for (size_t gi = 0; gi < q.groups; ++gi) {
      const uint8_t* tile = block + gi * tile_bytes;
      __m256i isum[R];
      for (int t = 0; t < R; ++t) isum[t] = _mm256_setzero_si256();
      // Up to 4 chunks (32 elements) are summed in int16: each vpmaddubsw
      // lane is at most 2 * 15 * 127 = 3810 and 8 of them stay below 32767.
      for (size_t c0 = 0; c0 < g / 8; c0 += 4) {
        __m256i p16[R];
        for (int t = 0; t < R; ++t) p16[t] = _mm256_setzero_si256();
        for (size_t c = c0; c < c0 + 4; ++c) {
          if (c % 2 == 0) PrefetchAhead(tile + 32 * c);
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(tile + 32 * c));
          const __m256i lo = _mm256_and_si256(v, low4);
          const __m256i hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
          const __m256i llo = _mm256_shuffle_epi8(levels, lo), lhi = _mm256_shuffle_epi8(levels, hi);
          const __m256i mlo = _mm256_abs_epi8(llo), mhi = _mm256_abs_epi8(lhi);
          for (int t = 0; t < R; ++t) {
            const int8_t* xg = q.xq + (i0 + static_cast<size_t>(t)) * q.kp + gi * g + 8 * c;
            int32_t xa, xb;
            std::memcpy(&xa, xg, 4);
            std::memcpy(&xb, xg + 4, 4);
            if (kNl) {
              const __m256i pa = _mm256_maddubs_epi16(mlo, _mm256_sign_epi8(_mm256_set1_epi32(xa), llo));
              const __m256i pb = _mm256_maddubs_epi16(mhi, _mm256_sign_epi8(_mm256_set1_epi32(xb), lhi));
              isum[t] = _mm256_add_epi32(isum[t], _mm256_add_epi32(_mm256_madd_epi16(pa, ones16),
                                                                   _mm256_madd_epi16(pb, ones16)));
            } else {
              p16[t] = _mm256_add_epi16(p16[t], _mm256_maddubs_epi16(lo, _mm256_set1_epi32(xa)));
              p16[t] = _mm256_add_epi16(p16[t], _mm256_maddubs_epi16(hi, _mm256_set1_epi32(xb)));
            }
          }
        }
        if (!kNl) {
          for (int t = 0; t < R; ++t) isum[t] = _mm256_add_epi32(isum[t], _mm256_madd_epi16(p16[t], ones16));
        }
      }
      for (int t = 0; t < R; ++t) {
        const size_t i = i0 + static_cast<size_t>(t);
        acc[t] = kNl ? TileScaleAccumulate(isum[t], tile + code_bytes, q.xs[i * q.groups + gi], acc[t])
                     : TileI8Accumulate(isum[t], tile + code_bytes, a.symmetric, q.xsum[i * q.groups + gi],
                                        q.xs[i * q.groups + gi], acc[t]);
      }
    }
    for (int t = 0; t < R; ++t) StoreRows(acc[t], rows, y + (i0 + static_cast<size_t>(t)) * a.n);
  }
};

// 2:4 tiles (Q4S24X8Layout). For each AVX2 step (s, h) of a chunk, lane r
// is row r: its 4 codes are the low (s = 0) or high (s = 1) nibbles of the
// code bytes 32h..32h+31, and the positions of those codes are bits
// 2t..2t+1 (t = 2s + h) of the 32 position bytes, in the same byte order.
// So (positions >> 2t) & 3, plus the offset of each code's quad, is the
// vpshufb control that picks its activations from the 16 of step s. A
// group's products (u - 8) * xq add up in int16 lanes, one pair per step:
// at most 2 * 8 * 127 = 2032 in magnitude per step, and 4 steps times at
// most 4 chunks (G = 128) is 32512 < 32767; then to int32 once per group.
struct Q4S24x8I8 {
  template <int R>
  static void Rows(const QGemmArgs& a, const QuantizedX& q, const uint8_t* block, size_t i0, size_t rows,
                   float* y) {
    const size_t g = a.group_size;
    const size_t tile_bytes = Q4S24X8Layout::TileBytes(g);
    const size_t chunks = g / Q4S24X8Layout::kChunkElements;
    const __m256i low4 = _mm256_set1_epi8(0xf);
    const __m256i three = _mm256_set1_epi8(3);
    const __m256i eight = _mm256_set1_epi8(8);
    const __m256i ones16 = _mm256_set1_epi16(1);
    // Byte 4r + i: the offset of its code's quad within the step's 16
    // activations: 8h + 4 * (i / 2).
    const __m256i quad0 = _mm256_set1_epi32(0x04040000);
    const __m256i quad1 = _mm256_set1_epi32(0x0c0c0808);
    __m256 acc[R];
    for (int t = 0; t < R; ++t) acc[t] = _mm256_setzero_ps();
    for (size_t gi = 0; gi < q.groups; ++gi) {
      const uint8_t* tile = block + gi * tile_bytes;
      __m256i p16[R];
      for (int t = 0; t < R; ++t) p16[t] = _mm256_setzero_si256();
      for (size_t c = 0; c < chunks; ++c) {
        const uint8_t* chunk = tile + c * Q4S24X8Layout::kChunkBytes;
        PrefetchAhead(chunk);
        PrefetchAhead(chunk + 64);
        __m256i codes[4], index[4];  // step t = 2s + h
        for (int h = 0; h < 2; ++h) {
          const __m256i v = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 32 * h));
          codes[h] = _mm256_and_si256(v, low4);
          codes[2 + h] = _mm256_and_si256(_mm256_srli_epi16(v, 4), low4);
        }
        const __m256i pos = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(chunk + 64));
        index[0] = _mm256_add_epi8(_mm256_and_si256(pos, three), quad0);
        index[1] = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(pos, 2), three), quad1);
        index[2] = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(pos, 4), three), quad0);
        index[3] = _mm256_add_epi8(_mm256_and_si256(_mm256_srli_epi16(pos, 6), three), quad1);
        for (int t = 0; t < R; ++t) {
          const int8_t* xc = q.xq + (i0 + static_cast<size_t>(t)) * q.kp + gi * g + Q4S24X8Layout::kChunkElements * c;
          for (int s = 0; s < 2; ++s) {
            const __m256i xv =
                _mm256_broadcastsi128_si256(_mm_loadu_si128(reinterpret_cast<const __m128i*>(xc + 16 * s)));
            for (int h = 0; h < 2; ++h) {
              const __m256i xg = _mm256_shuffle_epi8(xv, index[2 * s + h]);
              const __m256i d = _mm256_sub_epi16(_mm256_maddubs_epi16(codes[2 * s + h], xg),
                                                 _mm256_maddubs_epi16(eight, xg));
              p16[t] = _mm256_add_epi16(p16[t], d);
            }
          }
        }
      }
      for (int t = 0; t < R; ++t) {
        const size_t i = i0 + static_cast<size_t>(t);
        acc[t] = TileScaleAccumulate(_mm256_madd_epi16(p16[t], ones16), tile + Q4S24X8Layout::ScalesOffsetInTile(g),
                                     q.xs[i * q.groups + gi], acc[t]);
      }
    }
    for (int t = 0; t < R; ++t) StoreRows(acc[t], rows, y + (i0 + static_cast<size_t>(t)) * a.n);
  }
};

}  // namespace

void gemm_q4x8_i8_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  RunI8Tiles<Q4x8I8<false>>(a, x, w, y, Q4X8Layout::TileBytes(a.group_size, a.symmetric));
}

void gemm_q4nlx8_i8_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  RunI8Tiles<Q4x8I8<true>>(a, x, w, y, Q4X8Layout::TileBytes(a.group_size, true));
}

void gemm_q4s24x8_i8_avx2(const QGemmArgs& a, const float* x, const uint8_t* w, float* y) {
  RunI8Tiles<Q4S24x8I8>(a, x, w, y, Q4S24X8Layout::TileBytes(a.group_size));
}

}  // namespace slim
