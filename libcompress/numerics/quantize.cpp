// Quantizers: RTN, the clipping / least-squares scale search and GPTQ; see
// quantize.h.
#include "libcompress/numerics/quantize.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include <Eigen/Cholesky>
#include <Eigen/Core>

#include "libcompress/common/half.h"

namespace slim {
namespace {

using CodeRange = QuantCodeRange;

// Round to nearest, ties to even, for |x| < 2^22: adding 1.5 * 2^23 leaves
// no fraction bits. Much cheaper than std::nearbyint on baseline x86-64,
// which matters because the search evaluates ~40 candidates per weight.
inline float RoundNearest(float x) {
  constexpr float kMagic = 12582912.0f;
  return (x + kMagic) - kMagic;
}

// Scale as stored: FP16 for int4 (nearest, or the next FP16 value >= s when
// round_up, so RTN's range never overflows the codes), FP32 for int8.
float StoreScale(float s, const CodeRange& cr, bool round_up) {
  if (!cr.fp16_scale) return s;
  uint16_t h = FloatToHalf(s);
  if (round_up && HalfToFloat(h) < s) ++h;  // s > 0: the next pattern is the next value up
  return HalfToFloat(h);
}

inline float Importance(const float* a, size_t i) { return a ? a[i] : 1.0f; }

// One group's fit: codes follow from (scale, zero) by rounding.
struct GroupFit {
  float scale = 0.0f;
  int zero = 0;
  double err = 0.0;
};

// Code of w for (scale, zero): clamp(round(w / scale) + zero). The quotient
// is clamped before rounding so RoundNearest stays in its exact range.
inline int CodeOf(float w, float inv_scale, int zero, const CodeRange& cr) {
  const float bound = 4.0f * static_cast<float>(cr.hi - cr.lo + 1);
  const float t = std::min(std::max(w * inv_scale, -bound), bound);
  const int q = static_cast<int>(RoundNearest(t)) + zero;
  return std::min(std::max(q, cr.lo), cr.hi);
}

// Weighted squared error of (scale, zero) on the group; w' is computed in
// float exactly as DequantizeMatrix and the kernels compute it.
double GroupError(const float* w, const float* a, size_t n, float scale, int zero,
                  const CodeRange& cr) {
  const float inv = 1.0f / scale;
  double err = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const int q = CodeOf(w[i], inv, zero, cr);
    const double d = static_cast<double>(w[i]) - static_cast<double>(scale * static_cast<float>(q - zero));
    err += static_cast<double>(Importance(a, i)) * d * d;
  }
  return err;
}

// The search's objective, in float with 8 partial sums so the compiler
// vectorizes it (the search evaluates ~40 candidates per group). Codes are
// round(clamp(w / scale, lo - z, hi - z)) + z, the same codes as CodeOf.
template <bool kWeighted>
float GroupErrorFast(const float* w, const float* a, size_t n, float scale, float qlo, float qhi) {
  const float inv = 1.0f / scale;
  float acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) {
      const float t = std::min(std::max(w[i + j] * inv, qlo), qhi);
      const float d = w[i + j] - scale * RoundNearest(t);
      acc[j] += (kWeighted ? a[i + j] : 1.0f) * d * d;
    }
  }
  for (; i < n; ++i) {
    const float t = std::min(std::max(w[i] * inv, qlo), qhi);
    const float d = w[i] - scale * RoundNearest(t);
    acc[0] += (kWeighted ? a[i] : 1.0f) * d * d;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

// The objective, cloned for AVX2 hosts (picked once by the loader): 8 lanes
// per instruction instead of SSE2's 4. The lanes and the final sum are those
// of the source, and neither clone may contract a multiply-add (AVX2 does not
// enable FMA), so both clones return the same bits and the packed output
// does not depend on the host. GCC inlines the template into both clones
// only when told (flatten); clang inlines it by itself and refuses flatten
// on a multiversioned function.
#if defined(__clang__)
#define SLIM_CLONED_OBJECTIVE __attribute__((target_clones("avx2", "default")))
#else
#define SLIM_CLONED_OBJECTIVE __attribute__((target_clones("avx2", "default"), flatten))
#endif
SLIM_CLONED_OBJECTIVE float WeightedGroupError(const float* w, const float* a, size_t n, float scale, float qlo,
                                               float qhi) {
  return GroupErrorFast<true>(w, a, n, scale, qlo, qhi);
}
SLIM_CLONED_OBJECTIVE float PlainGroupError(const float* w, size_t n, float scale, float qlo, float qhi) {
  return GroupErrorFast<false>(w, nullptr, n, scale, qlo, qhi);
}

// int4 nl: the code of t = w / scale is the nearest level's, found by
// counting the midpoints between levels below t (15 compares, no branch, so
// the objective below vectorizes; a tie goes to the lower level).
constexpr float NlMid(int j) { return 0.5f * static_cast<float>(kNl4Levels[j] + kNl4Levels[j + 1]); }
inline int NlCode(float t) {
  int c = 0;
  for (int j = 0; j < 15; ++j) c += t > NlMid(j);
  return c - 8;
}

// The nearest level itself, without a table lookup: the lowest level plus
// the step to each next level whose midpoint t passes. Small integers, so
// the sum is exact and equals kNl4Levels[NlCode(t) + 8]; compares, masks and
// adds only, so a loop over elements vectorizes (a lookup would not).
struct NlSteps {
  float mid[15], step[15];
};
constexpr NlSteps MakeNlSteps() {
  NlSteps s{};
  for (int j = 0; j < 15; ++j) {
    s.mid[j] = NlMid(j);
    s.step[j] = static_cast<float>(kNl4Levels[j + 1] - kNl4Levels[j]);
  }
  return s;
}
constexpr NlSteps kNlSteps = MakeNlSteps();
inline float NlLevel(float t) {
  float l = static_cast<float>(kNl4Levels[0]);
  for (int j = 0; j < 15; ++j) l += t > kNlSteps.mid[j] ? kNlSteps.step[j] : 0.0f;
  return l;
}

// The search's objective for nl, as GroupErrorFast's (8 partial sums in
// float, the same bits in both clones).
template <bool kWeighted>
float NlGroupErrorFast(const float* w, const float* a, size_t n, float scale) {
  const float inv = 1.0f / scale;
  float acc[8] = {};
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (size_t j = 0; j < 8; ++j) {
      const float d = w[i + j] - scale * NlLevel(w[i + j] * inv);
      acc[j] += (kWeighted ? a[i + j] : 1.0f) * d * d;
    }
  }
  for (; i < n; ++i) {
    const float d = w[i] - scale * NlLevel(w[i] * inv);
    acc[i % 8] += (kWeighted ? a[i] : 1.0f) * d * d;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}
SLIM_CLONED_OBJECTIVE float WeightedNlGroupError(const float* w, const float* a, size_t n, float scale) {
  return NlGroupErrorFast<true>(w, a, n, scale);
}
SLIM_CLONED_OBJECTIVE float PlainNlGroupError(const float* w, size_t n, float scale) {
  return NlGroupErrorFast<false>(w, nullptr, n, scale);
}

// The nl objective in double, to settle the search against RTN.
double NlGroupError(const float* w, const float* a, size_t n, float scale) {
  const float inv = 1.0f / scale;
  double err = 0.0;
  for (size_t i = 0; i < n; ++i) {
    const double d = static_cast<double>(w[i]) -
                     static_cast<double>(scale * static_cast<float>(kNl4Levels[NlCode(w[i] * inv) + 8]));
    err += static_cast<double>(Importance(a, i)) * d * d;
  }
  return err;
}

void TryNlCandidate(const float* w, const float* a, size_t n, float scale, GroupFit* best) {
  if (!std::isfinite(scale) || scale == 0.0f) return;
  const double err = a ? WeightedNlGroupError(w, a, n, scale) : PlainNlGroupError(w, n, scale);
  if (err < best->err) *best = {scale, 0, err};
}

// One nl group. Candidates put the group's extreme weight e (largest |w|,
// with its sign) at r times either end of the levels: scale = r * e / -127
// or r * e / 113 for r = 1 .. 0.5 (clip_steps + 1 ratios; the levels are
// lopsided, so both ends are tried), then least-squares refinement with the
// codes fixed, scale = sum(a w l) / sum(a l^2), kept while it improves.
void QuantizeNlGroup(const float* w, const float* a, size_t n, const QuantOptions& opt, int8_t* codes,
                     float* scale_out) {
  const CodeRange cr{-8, 7, true};
  float e = 0.0f;
  for (size_t i = 0; i < n; ++i) {
    if (std::fabs(w[i]) > std::fabs(e)) e = w[i];
  }
  GroupFit best, rtn;
  best.err = INFINITY;
  if (e != 0.0f) {
    const int steps = opt.search ? opt.clip_steps : 0;
    for (int i = 0; i <= steps; ++i) {
      const float r = steps > 0 ? 1.0f - 0.5f * static_cast<float>(i) / static_cast<float>(steps) : 1.0f;
      TryNlCandidate(w, a, n, StoreScale(r * e / static_cast<float>(kNl4Levels[0]), cr, false), &best);
      if (i == 0) rtn = best;  // RTN: the extreme at level -127
      if (opt.search) TryNlCandidate(w, a, n, StoreScale(r * e / static_cast<float>(kNl4Levels[15]), cr, false), &best);
    }
    for (int it = 0; opt.search && it < opt.refine_iters && std::isfinite(best.err); ++it) {
      const float inv = 1.0f / best.scale;
      double sawl = 0, sall = 0;
      for (size_t i = 0; i < n; ++i) {
        const double l = kNl4Levels[NlCode(w[i] * inv) + 8];
        sawl += Importance(a, i) * w[i] * l;
        sall += Importance(a, i) * l * l;
      }
      if (!(sall > 0)) break;
      const double before = best.err;
      TryNlCandidate(w, a, n, StoreScale(static_cast<float>(sawl / sall), cr, false), &best);
      if (!(best.err < before)) break;
    }
    // As for the uniform search: never worse than RTN, decided in double.
    if (opt.search && std::isfinite(rtn.err) &&
        NlGroupError(w, a, n, rtn.scale) <= NlGroupError(w, a, n, best.scale)) {
      best = rtn;
    }
  }
  if (!std::isfinite(best.err)) best = GroupFit{};  // all zero, or every candidate underflowed FP16
  *scale_out = best.scale;
  const float inv = best.scale != 0.0f ? 1.0f / best.scale : 0.0f;
  // An all-zero group (scale 0) takes the code of level 1, the smallest.
  for (size_t i = 0; i < n; ++i) codes[i] = static_cast<int8_t>(NlCode(w[i] * inv));
}

void TryCandidate(const float* w, const float* a, size_t n, float scale, int zero,
                  const CodeRange& cr, GroupFit* best) {
  // FP16 underflow/overflow; a negative scale only where the code range is
  // lopsided (symmetric int4, -8..7), where its sign decides which side
  // gets code -8.
  if (!std::isfinite(scale) || !(scale > 0.0f || (scale < 0.0f && cr.lo + cr.hi < 0))) return;
  const float qlo = static_cast<float>(cr.lo - zero), qhi = static_cast<float>(cr.hi - zero);
  const double err = a ? WeightedGroupError(w, a, n, scale, qlo, qhi) : PlainGroupError(w, n, scale, qlo, qhi);
  if (err < best->err) *best = {scale, zero, err};
}

// One least-squares step with the codes of `from` fixed. Symmetric: the
// optimal scale sum(a w q) / sum(a q^2). Asymmetric: the optimal affine fit
// w ~ s*q + m, then zero = round(-m / s). False when the fit is degenerate.
bool LsqStep(const float* w, const float* a, size_t n, const CodeRange& cr, bool symmetric,
             const GroupFit& from, GroupFit* to) {
  const float inv = 1.0f / from.scale;
  double saq = 0, saqq = 0, saw = 0, sawq = 0, sa = 0;
  for (size_t i = 0; i < n; ++i) {
    const double ai = Importance(a, i);
    const double q = CodeOf(w[i], inv, from.zero, cr);  // symmetric zero is 0
    sa += ai;
    saq += ai * q;
    saqq += ai * q * q;
    saw += ai * w[i];
    sawq += ai * w[i] * q;
  }
  to->zero = from.zero;
  if (symmetric) {
    if (saqq <= 0) return false;
    to->scale = StoreScale(static_cast<float>(sawq / saqq), cr, false);
    return to->scale > 0.0f || (to->scale < 0.0f && cr.lo + cr.hi < 0);
  }
  const double det = sa * saqq - saq * saq;
  if (det <= 0) return false;
  const double s = (sa * sawq - saq * saw) / det;
  const double m = (saqq * saw - saq * sawq) / det;
  if (!(s > 0)) return false;
  to->scale = StoreScale(static_cast<float>(s), cr, false);
  if (!(to->scale > 0.0f)) return false;
  to->zero = std::min(std::max(static_cast<int>(std::lround(-m / to->scale)), cr.lo), cr.hi);
  return true;
}

// Iterated least-squares refinement of the best fit (re-round the codes,
// refit), kept while it improves.
void Refine(const float* w, const float* a, size_t n, const CodeRange& cr, bool symmetric,
            int iters, GroupFit* best) {
  for (int it = 0; it < iters; ++it) {
    GroupFit next;
    if (!LsqStep(w, a, n, cr, symmetric, *best, &next)) return;
    const double before = best->err;
    TryCandidate(w, a, n, next.scale, next.zero, cr, best);
    if (!(best->err < before)) return;
  }
}

// Fits one group (n <= group_size real elements) and writes its codes.
void QuantizeDenseGroup(const float* w, const float* a, size_t n, const QuantOptions& opt,
                        const CodeRange& cr, int8_t* codes, float* scale_out, uint8_t* zero_out) {
  if (opt.scheme.nl) return QuantizeNlGroup(w, a, n, opt, codes, scale_out);
  const bool symmetric = opt.scheme.symmetric;
  float lo = 0.0f, hi = 0.0f;  // range widened to contain 0
  for (size_t i = 0; i < n; ++i) {
    lo = std::min(lo, w[i]);
    hi = std::max(hi, w[i]);
  }
  const float amax = std::max(-lo, hi);
  GroupFit best, rtn;
  best.err = INFINITY;
  if (amax == 0.0f) {
    best.zero = symmetric ? 0 : 8;  // any zero works; 8 keeps the asym default centred
  } else {
    // Candidate i = 0 is exact RTN with a rounded-up scale.
    for (int i = 0; i <= (opt.search ? opt.clip_steps : 0); ++i) {
      const float r = opt.search && opt.clip_steps > 0
                          ? 1.0f - 0.5f * static_cast<float>(i) / static_cast<float>(opt.clip_steps)
                          : 1.0f;
      if (symmetric) {
        const float s = StoreScale(r * amax / static_cast<float>(cr.hi), cr, i == 0);
        TryCandidate(w, a, n, s, 0, cr, &best);
        if (i == 0) rtn = best;
        // -8..7 is lopsided: when the extreme is positive, a negative scale
        // maps it to -8 (all 16 codes used, as llama.cpp's Q4_0 does); a
        // negative extreme gets -8 from the positive scales above.
        if (opt.search && cr.lo + cr.hi < 0 && hi > -lo) {
          TryCandidate(w, a, n, StoreScale(-r * hi / static_cast<float>(-cr.lo), cr, false), 0, cr, &best);
        }
      } else {
        // Shrink the range about its centre; the zero keeps 0 representable.
        const float c = 0.5f * (lo + hi);
        const float lo_r = c + r * (lo - c);
        const float s = StoreScale(r * (hi - lo) / 15.0f, cr, i == 0);
        if (!(s > 0.0f)) continue;
        const int z = std::min(std::max(static_cast<int>(std::lround(-lo_r / s)), 0), 15);
        TryCandidate(w, a, n, s, z, cr, &best);
        if (i == 0) rtn = best;
      }
    }
    if (opt.search) {
      Refine(w, a, n, cr, symmetric, opt.refine_iters, &best);
      // The float objective can misorder near-ties; settle search vs RTN in
      // double so the search is never worse than RTN.
      if (GroupError(w, a, n, rtn.scale, rtn.zero, cr) <=
          GroupError(w, a, n, best.scale, best.zero, cr)) {
        best = rtn;
      }
    }
    if (!std::isfinite(best.err)) {  // every candidate underflowed FP16
      best = GroupFit{};
      best.zero = symmetric ? 0 : 8;
    }
  }
  *scale_out = best.scale;
  if (zero_out) *zero_out = static_cast<uint8_t>(best.zero);
  const float inv = best.scale != 0.0f ? 1.0f / best.scale : 0.0f;
  for (size_t i = 0; i < n; ++i) {
    codes[i] = static_cast<int8_t>(best.scale != 0.0f ? CodeOf(w[i], inv, best.zero, cr) : best.zero);
  }
}

// QuantizeDenseGroup with a keep-mask (nullptr: dense): the fit sees pruned
// elements as 0.0 with no importance, and they get the code of 0.0 (the
// zero point), so they dequantize to exactly 0.
void QuantizeGroup(const float* w, const float* a, const uint8_t* keep, size_t n, const QuantOptions& opt,
                   const CodeRange& cr, int8_t* codes, float* scale_out, uint8_t* zero_out) {
  if (!keep) return QuantizeDenseGroup(w, a, n, opt, cr, codes, scale_out, zero_out);
  thread_local std::vector<float> wk, ak;
  wk.assign(w, w + n);
  ak.resize(n);
  for (size_t i = 0; i < n; ++i) {
    ak[i] = keep[i] ? Importance(a, i) : 0.0f;
    if (!keep[i]) wk[i] = 0.0f;
  }
  QuantizeDenseGroup(wk.data(), ak.data(), n, opt, cr, codes, scale_out, zero_out);
  const int8_t zero = static_cast<int8_t>(zero_out ? *zero_out : 0);
  for (size_t i = 0; i < n; ++i) {
    if (!keep[i]) codes[i] = zero;
  }
}

// GPTQ (Frantar et al. 2022, "GPTQ: Accurate Post-Training Quantization for
// Generative Pre-trained Transformers", Algorithm 1). Minimises the layer's
// output error sum_x ||(W - W')x||^2 = tr(D H D^T) rather than the weight
// error: columns are quantized in order and each column's rounding error is
// spread over the columns not yet quantized through U (GptqFactor):
//   e = (w_i - w'_i) / U_ii;   w_j -= e * U_ij  for j > i.
// Lazy batches of kBlock columns: inside a block the update touches only the
// block; at its end one matrix product updates the rest. A group's scale is
// chosen (by the same search as without GPTQ, on the weights as updated so
// far) when its first column is reached, so blocks hold whole groups (int8's
// one group per row is fitted at column 0).
// One matrix is processed by one thread: Eigen's products then give the same
// bytes whatever the caller's thread count.
void QuantizeGptq(const float* w, const QuantOptions& opt, const CodeRange& cr, QuantizedMatrix* q) {
  using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const GptqFactor& f = *opt.gptq;
  const size_t rows = q->rows, cols = q->cols, g = q->group_size;
  const auto K = static_cast<Eigen::Index>(cols);
  MatF W = Eigen::Map<const MatF>(w, static_cast<Eigen::Index>(rows), K);
  for (Eigen::Index i = 0; i < K; ++i) {
    if (f.dead[static_cast<size_t>(i)]) W.col(i).setZero();
  }
  Eigen::Map<const MatF> U(f.u.data(), K, K);

  // Blocks hold whole groups: a multiple of the group size, or every column
  // for int8 (one group per row).
  constexpr size_t kBlock = 128;
  const size_t block = g >= cols ? cols : std::max(kBlock / g, size_t{1}) * g;
  std::vector<int8_t> scratch(g);
  MatF err(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(block));
  for (size_t i1 = 0; i1 < cols; i1 += block) {
    const size_t i2 = std::min(i1 + block, cols);
    for (size_t i = i1; i < i2; ++i) {
      const auto ii = static_cast<Eigen::Index>(i);
      if (i % g == 0) {
        const size_t n = std::min(g, cols - i);
        for (size_t r = 0; r < rows; ++r) {
          const size_t idx = r * q->groups_per_row + i / g;
          const float* a = opt.importance ? opt.importance + r * opt.importance_row_stride + i : nullptr;
          const uint8_t* keep = opt.keep ? opt.keep + r * cols + i : nullptr;
          QuantizeGroup(&W(static_cast<Eigen::Index>(r), ii), a, keep, n, opt, cr, scratch.data(),
                        &q->scales[idx], q->zeros.empty() ? nullptr : &q->zeros[idx]);
        }
      }
      const float d = U(ii, ii);
      for (size_t r = 0; r < rows; ++r) {
        const auto rr = static_cast<Eigen::Index>(r);
        const size_t idx = r * q->groups_per_row + i / g;
        const float scale = q->scales[idx];
        const int zero = q->zeros.empty() ? 0 : q->zeros[idx];
        const bool pruned = opt.keep && !opt.keep[r * cols + i];
        int code = zero;
        if (opt.scheme.nl) {
          code = NlCode(W(rr, ii) * (scale != 0.0f ? 1.0f / scale : 0.0f));
        } else if (scale != 0.0f && !pruned) {
          code = CodeOf(W(rr, ii), 1.0f / scale, zero, cr);
        }
        q->codes[r * cols + i] = static_cast<int8_t>(code);
        const float e = (W(rr, ii) - scale * static_cast<float>(CodeLevel(opt.scheme, code, zero))) / d;
        err(rr, static_cast<Eigen::Index>(i - i1)) = e;
        for (size_t j = i + 1; j < i2; ++j) {
          W(rr, static_cast<Eigen::Index>(j)) -= e * U(ii, static_cast<Eigen::Index>(j));
        }
      }
    }
    if (i2 < cols) {
      const auto b0 = static_cast<Eigen::Index>(i1), bn = static_cast<Eigen::Index>(i2 - i1);
      const auto rest = static_cast<Eigen::Index>(cols - i2);
      W.rightCols(rest).noalias() -= err.leftCols(bn) * U.block(b0, static_cast<Eigen::Index>(i2), bn, rest);
    }
  }
}

}  // namespace

Expected<GptqFactor> PrepareGptq(const float* hessian, size_t cols, double damp) {
  // FP32 factorisation, as the reference implementation's: the damping
  // keeps H well conditioned, and FP32 halves the O(K^3) cost that dominates
  // GPTQ on wide inputs (K = 5632: ~120 GFLOP per input).
  using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic>;
  SLIM_CHECK_INPUT(cols > 0, "GPTQ: empty Hessian");
  SLIM_CHECK_INPUT(std::isfinite(damp) && damp >= 0, "GPTQ: damping must be finite and >= 0, got ", damp);
  const auto K = static_cast<Eigen::Index>(cols);
  GptqFactor f;
  f.cols = cols;
  f.dead.assign(cols, 0);
  // Reversed: R = J H J, i.e. R(i, j) = H(K-1-i, K-1-j) (H is symmetric, so
  // the storage order does not matter).
  auto at = [&](Eigen::Index i, Eigen::Index j) {
    return static_cast<double>(hessian[static_cast<size_t>((K - 1 - i) * K + (K - 1 - j))]);
  };
  double mean_diag = 0;
  for (Eigen::Index i = 0; i < K; ++i) {
    const size_t col = static_cast<size_t>(K - 1 - i);
    const double d = at(i, i);
    SLIM_CHECK_INPUT(std::isfinite(d) && d >= 0, "Hessian diagonal at column ", col, " is ", d,
                     " (must be finite and >= 0)");
    if (d == 0) f.dead[col] = 1;
    mean_diag += d == 0 ? 1.0 : d;
  }
  mean_diag /= static_cast<double>(K);
  MatF R(K, K);
  for (Eigen::Index i = 0; i < K; ++i) {
    for (Eigen::Index j = 0; j < K; ++j) {
      const double d = i == j ? (f.dead[static_cast<size_t>(K - 1 - i)] ? 1.0 : at(i, i)) + damp * mean_diag : at(i, j);
      R(i, j) = static_cast<float>(d);
    }
  }
  Eigen::LLT<MatF> llt(R);
  SLIM_CHECK_INPUT(llt.info() == Eigen::Success,
                   "GPTQ: the damped Hessian is not positive definite (raise the damping, now ", damp, ")");
  MatF linv = MatF::Identity(K, K);
  llt.matrixL().solveInPlace(linv);  // L^-1, lower triangular
  f.u.resize(cols * cols);
  // U = J L^-1 J: U(i, j) = L^-1(K-1-i, K-1-j), upper triangular.
  for (Eigen::Index i = 0; i < K; ++i) {
    for (Eigen::Index j = 0; j < K; ++j) {
      f.u[static_cast<size_t>(i * K + j)] = j >= i ? linv(K - 1 - i, K - 1 - j) : 0.0f;
    }
  }
  return f;
}

Expected<QuantizedMatrix> QuantizeMatrix(const float* w, size_t rows, size_t cols,
                                         const QuantOptions& opt) {
  SLIM_RETURN_IF_ERROR(ValidateQuantScheme(opt.scheme));
  SLIM_CHECK_INPUT(rows > 0 && cols > 0, "cannot quantize an empty matrix [", rows, ", ", cols, "]");
  SLIM_CHECK_INPUT(opt.clip_steps >= 0 && opt.refine_iters >= 0,
                   "clip_steps and refine_iters must be >= 0, got ", opt.clip_steps, " and ",
                   opt.refine_iters);
  SLIM_CHECK_INPUT(opt.importance == nullptr || opt.importance_row_stride == 0 ||
                       opt.importance_row_stride == cols,
                   "importance_row_stride must be 0 or cols (", cols, "), got ",
                   opt.importance_row_stride);
  for (size_t i = 0; i < rows * cols; ++i) {
    SLIM_CHECK_INPUT(std::isfinite(w[i]), "weight at row ", i / cols, ", column ", i % cols,
                     " is ", w[i], " (must be finite)");
  }
  if (opt.importance) {
    const size_t count = opt.importance_row_stride == 0 ? cols : rows * cols;
    for (size_t i = 0; i < count; ++i) {
      SLIM_CHECK_INPUT(std::isfinite(opt.importance[i]) && opt.importance[i] >= 0.0f,
                       "importance at index ", i, " is ", opt.importance[i],
                       " (must be finite and >= 0)");
    }
  }
  if (opt.scheme.nl && opt.keep) {
    return Unsupported("int4 nl has no level 0, so pruned weights cannot stay 0; use uniform int4");
  }
  const CodeRange cr = CodeRangeOf(opt.scheme);
  if (cr.fp16_scale) {
    // The RTN scale must fit FP16 (max 65504), i.e. |w| <= 65504 * 7.
    for (size_t i = 0; i < rows * cols; ++i) {
      if (std::fabs(w[i]) > 65504.0f * 7.0f) {
        return Unsupported("weight at row ", i / cols, ", column ", i % cols, " is ", w[i],
                           ": its int4 scale would overflow FP16");
      }
    }
  }
  QuantizedMatrix q = EmptyQuantizedMatrix(opt.scheme, rows, cols);
  if (opt.gptq) {
    SLIM_CHECK_INPUT(opt.gptq->cols == cols && opt.gptq->u.size() == cols * cols &&
                         opt.gptq->dead.size() == cols,
                     "GPTQ factor is for ", opt.gptq->cols, " columns, the matrix has ", cols);
    QuantizeGptq(w, opt, cr, &q);
    q.error = MeasureQuantError(w, q, opt.importance, opt.importance_row_stride);
    return q;
  }
  const size_t g = q.group_size;
  for (size_t r = 0; r < rows; ++r) {
    const float* a_row =
        opt.importance ? opt.importance + r * opt.importance_row_stride : nullptr;
    for (size_t gi = 0; gi < q.groups_per_row; ++gi) {
      const size_t k0 = gi * g;
      const size_t n = std::min(g, cols - k0);
      const size_t idx = r * q.groups_per_row + gi;
      QuantizeGroup(w + r * cols + k0, a_row ? a_row + k0 : nullptr,
                    opt.keep ? opt.keep + r * cols + k0 : nullptr, n, opt, cr,
                    q.codes.data() + r * cols + k0, &q.scales[idx],
                    q.zeros.empty() ? nullptr : &q.zeros[idx]);
    }
  }
  q.error = MeasureQuantError(w, q, opt.importance, opt.importance_row_stride);
  return q;
}

QuantErrorStats MeasureQuantError(const float* w, const QuantizedMatrix& q,
                                  const float* importance, size_t importance_row_stride) {
  QuantErrorStats st;
  st.count = q.rows * q.cols;
  for (size_t r = 0; r < q.rows; ++r) {
    for (size_t k = 0; k < q.cols; ++k) {
      const size_t idx = r * q.groups_per_row + k / q.group_size;
      const float wq = q.scales[idx] * static_cast<float>(CodeLevel(q.scheme, q.codes[r * q.cols + k],
                                                                     q.zeros.empty() ? 0 : q.zeros[idx]));
      const double wv = w[r * q.cols + k];
      const double d = wv - static_cast<double>(wq);
      const double a = importance ? importance[r * importance_row_stride + k] : 1.0;
      st.sq_error += d * d;
      st.weighted_sq_error += a * d * d;
      st.sum_sq += wv * wv;
      st.max_abs_error = std::max(st.max_abs_error, std::fabs(d));
    }
  }
  return st;
}

double MeasureOutputError(const float* w, const QuantizedMatrix& q, const float* x, size_t m) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto rows = static_cast<Eigen::Index>(q.rows), cols = static_cast<Eigen::Index>(q.cols);
  Eigen::Map<const Mat> wm(w, rows, cols);
  Eigen::Map<const Mat> xm(x, static_cast<Eigen::Index>(m), cols);
  Mat d(rows, cols);
  DequantizeMatrix(q, d.data());
  d = wm - d;
  const Mat y = xm * wm.transpose();
  const Mat e = xm * d.transpose();
  const double den = y.cast<double>().squaredNorm();
  return den > 0 ? e.cast<double>().squaredNorm() / den : 0.0;
}

}  // namespace slim
