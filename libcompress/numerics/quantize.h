// Weight quantizers: round-to-nearest, the clipping / least-squares scale
// search and GPTQ. Pointers and sizes only: a pass hands in one FP32 weight
// matrix W [rows = N output features, cols = K input features], row-major as
// PyTorch's Linear stores it, and gets back the codes, scales and zero points
// of kernels/quant.h (QuantizedMatrix) with the reconstruction error; the
// pass then packs them (PackQuantized) into a layout the kernels read.
//
// Scale choice. RTN ("max-abs round to nearest") uses scale = max|w| / 127
// (int8) or max|w| / 7 (int4 symmetric), or (max - min) / 15 over the range
// widened to contain 0 (asymmetric); FP16 scales are rounded *up* so no element
// leaves the code range and every RTN error is at most scale / 2. The search
// (QuantOptions::search) evaluates clipping ratios r = 1 - 0.5 * i / clip_steps
// (i = 0..clip_steps, so r runs 1.0 down to 0.5) of that RTN range, keeps the
// candidate with the least (importance-weighted) squared error, then refines
// it like llama.cpp's make_qx_quants: with the codes fixed, the least-squares
// scale  sum(a*w*(q-z)) / sum(a*(q-z)^2)  (a = importance) is rounded to the
// storage precision, the codes re-rounded, and the result kept while it
// improves. For symmetric int4 (codes -8..7) a group whose extreme weight is
// positive also tries negative scales -r * max / 8, so its extreme can take
// code -8 (all 16 codes, as llama.cpp's Q4_0). The search compares candidates in float; its result is finally
// compared with RTN in double and RTN kept on a tie, so the search is never
// worse than RTN on the objective it minimises. Cost: about 2 + 1.5 *
// clip_steps passes over the weights (~40 at the default).
//
// Measured (sq_error of search / RTN, 128 Gaussian rows of 1024; pinned in
// tests/numerics/test_quantize.cpp): int4 g32 sym 0.696 (0.784 with positive
// scales only), g128 sym 0.677 (0.734), g32 asym 0.921 (asymmetric RTN already
// uses all 16 codes), int8 0.986.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/kernels/quant.h"

namespace slim {

// The part of GPTQ that depends only on the layer's input, shared by every
// weight multiplying the same activations (q/k/v, gate/up): U, the upper
// Cholesky factor of H^-1 (H^-1 = U^T U) for H = E[x x^T] + damp * mean(diag
// H) * I, and the columns whose input never fired (H_ii = 0; their weights
// are zeroed, as in the reference implementation, and H_ii set to 1).
struct GptqFactor {
  size_t cols = 0;
  std::vector<float> u;       // cols x cols, row-major, upper triangle used
  std::vector<uint8_t> dead;  // cols entries, 1 = input never fired
};

struct QuantOptions {
  QuantScheme scheme;
  bool search = true;     // false: plain RTN (the baseline the search beats)
  int clip_steps = 32;    // grid resolution: ratios 1.0 .. 0.5 in steps of 0.5/clip_steps
  int refine_iters = 4;   // least-squares refinements of the best grid candidate
  // Optional importance a >= 0 per element of the objective sum(a*(w-w')^2),
  // e.g. activation second moments E[x_k^2] from calibration. nullptr means
  // uniform. Element (row, col) reads importance[row * importance_row_stride
  // + col]: stride 0 shares one K-vector across rows (activation statistics),
  // stride cols gives every element its own weight.
  const float* importance = nullptr;
  size_t importance_row_stride = 0;
  // GPTQ when set (PrepareGptq): columns are quantized in order with their
  // rounding error compensated in the later columns (see QuantizeGptq in
  // quant.cpp); each group's scale still comes from the search above, on the
  // compensated weights. factor->cols must equal cols.
  const GptqFactor* gptq = nullptr;
  // Optional keep-mask (rows * cols, 0 = pruned): pruned elements get the
  // code of exactly 0.0 and do not count in the scale search; with GPTQ
  // their current (compensated) value is the error spread onward, so
  // pruning and quantization errors are compensated together.
  const uint8_t* keep = nullptr;
};

// `hessian` is cols x cols (symmetric, positive semi-definite). One Cholesky
// factorisation and one triangular inverse in FP32: with J the reversal
// permutation and J H J = L L^T, U = J L^-1 J (2/3 cols^3 flops instead of
// the 5/3 of factor, invert, factor again). Fails naming the column of a
// bad diagonal, or when the damped H is not positive definite.
Expected<GptqFactor> PrepareGptq(const float* hessian, size_t cols, double damp);

// Quantizes W [rows, cols] (row-major FP32). Rows are independent, so a
// caller may split a matrix into row ranges and quantize them concurrently.
// Fails on non-finite weights or importance (naming row and column), on a bad
// scheme, on rows or cols of 0, and on negative clip_steps / refine_iters.
Expected<QuantizedMatrix> QuantizeMatrix(const float* w, size_t rows, size_t cols,
                                         const QuantOptions& options);

// Error of q against w (the stats QuantizeMatrix reports); importance as in
// QuantOptions (nullptr: uniform).
QuantErrorStats MeasureQuantError(const float* w, const QuantizedMatrix& q,
                                  const float* importance = nullptr,
                                  size_t importance_row_stride = 0);

// Output error of q on activation rows x [m, cols] (row-major): the relative
// squared error the layer's output sees,
//   sum_i ||(W - W') x_i||^2 / sum_i ||W x_i||^2,
// 0 when W x is 0 everywhere. FP32 matrix products (Eigen), accumulated in
// double; O(m * rows * cols).
double MeasureOutputError(const float* w, const QuantizedMatrix& q, const float* x, size_t m);

}  // namespace slim
