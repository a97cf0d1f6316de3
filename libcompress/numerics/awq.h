// Activation-aware weight scaling (AWQ, Lin et al. 2023): per input channel
// scales s chosen so that quantizing W diag(s), with the input divided by s,
// loses less of the layer's output than quantizing W. Channels whose
// activations are large get larger weights, hence a smaller relative
// rounding error where it matters; the input's division by s is folded into
// whatever produced it (a pass's business, not this layer's).
//
// Candidates: s_k = r_k^alpha / sqrt(max_j r_j^alpha * min_j r_j^alpha), with
// r_k = sqrt(E[x_k^2]) (the calibration statistics hold second moments, not
// AWQ's mean |x|; a dead channel's r is floored at 1e-4 of the largest) and
// alpha = i / grid for i = 0..grid-1 (AWQ's grid). alpha = 0 is s = 1, the
// unscaled quantization, so the result is never worse than no scaling on the
// objective below; a tie keeps alpha = 0.
//
// Objective, summed over the weights sharing the input (q/k/v, gate/up):
// the squared output error on calibration rows X,
//   sum ||X (W - Q(W D) D^-1)^T||^2 = sum ||(X D^-1) (W D - Q(W D))^T||^2,
// or, without rows, the diagonal estimate sum_k E[x_k^2] / s_k^2 *
// sum_n (W D - Q(W D))_nk^2. Each candidate quantizes with the member's own
// QuantOptions (scheme, search, mask); GPTQ is not run inside the search
// (AWQ first, then GPTQ on the scaled weights). A member's importance a_k
// (QuantOptions::importance, one K-vector, for the unscaled input) becomes
// a_k / s_k^2 for candidate s: the scaled input's second moment.
#pragma once

#include <cstddef>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/numerics/quantize.h"

namespace slim {

struct AwqMember {
  const float* w = nullptr;  // [rows, cols] row-major, cols = the shared input's width
  size_t rows = 0;
  // The member's quantizer; gptq is ignored, importance (nullptr or one
  // K-vector, importance_row_stride 0) is for s = 1.
  QuantOptions options;
};

struct AwqScales {
  std::vector<float> s;          // cols entries; all 1 when alpha is 0
  double alpha = 0;
  double error_unscaled = 0;     // objective at s = 1
  double error = 0;              // objective at the chosen s
  double output_energy = 0;      // sum ||X W^T||^2 (or its diagonal estimate): the errors' denominator
  bool on_gram = false;          // objective through E[x x^T] (all calibration rows)
  bool on_sample = false;        // else on the sample rows (else the diagonal estimate)
};

// mean_sq: cols entries E[x_k^2] (finite, >= 0). sample: [sample_rows, cols]
// row-major, or nullptr / 0 rows for the diagonal estimate. grid >= 1.
// Fails on bad sizes or when a member's quantization fails (non-finite
// weights), with the quantizer's message.
Expected<AwqScales> SearchAwqScales(const double* mean_sq, const float* gram, const float* sample, size_t sample_rows,
                                    size_t cols, const std::vector<AwqMember>& members, int grid);

}  // namespace slim
