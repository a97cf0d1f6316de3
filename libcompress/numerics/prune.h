// Weight pruning math: saliency scores, mask selection (unstructured and
// N:M) and SparseGPT. Pointers and sizes only, like the quantizer: a pass
// hands in one FP32 matrix W [rows = N outputs, cols = K inputs], row-major,
// and gets back a keep-mask (1 = kept, 0 = pruned) and, for SparseGPT, the
// compensated surviving weights. The pass (passes/prune.cpp) finds weights,
// reads options and statistics and rewrites the IR.
//
// Methods:
//   magnitude  score |w|; the smallest are pruned over the whole matrix.
//   wanda      score |w_nk| * ||x_k|| (Sun et al. 2023, "A Simple and
//              Effective Pruning Approach for LLMs"), ||x_k|| =
//              sqrt(E[x_k^2]) from calibration; compared within each output
//              row, as the paper does.
//   sparsegpt  (Frantar & Alistarh 2023, "SparseGPT: Massive Language Models
//              Can Be Accurately Pruned in One-Shot", Algorithm 1): columns
//              are visited in order; the mask of each block of columns is
//              chosen by the OBS saliency w^2 / [H^-1]_kk^2 on the weights as
//              already updated, and each pruned weight's error is spread over
//              the later columns through U (the upper Cholesky factor of
//              H^-1 that GPTQ uses, PrepareGptq in numerics/quantize.h):
//                e = (w_i - w'_i) / U_ii;   w_j -= e * U_ij  for j > i.
//              With a given mask the same loop only compensates (OBS
//              reconstruction of a magnitude or Wanda mask).
// N:M keeps at most N of every M consecutive weights along K in each row
// (2:4 = NVIDIA's sparse tensor core pattern); a last partial group of L < M
// columns keeps min(L, N).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/numerics/quantize.h"

namespace slim {

struct SparsityPattern {
  int n = 0;  // kept per group; 0 with m == 0: unstructured
  int m = 0;
  bool unstructured() const { return m == 0; }
  double Sparsity() const { return m == 0 ? 0.0 : 1.0 - static_cast<double>(n) / m; }
  // "unstructured" or "2:4".
  std::string Name() const;
  // Accepts "unstructured" and "N:M" with 1 <= N < M <= 64.
  static Expected<SparsityPattern> Parse(const std::string& text);
};

// |w| (mean_sq == nullptr) or |w| * sqrt(mean_sq[k]) (Wanda).
std::vector<float> PruneScores(const float* w, size_t rows, size_t cols, const double* mean_sq);

// Keep-mask from scores. Unstructured: exactly floor(sparsity * count) of
// the lowest scores are pruned, counted per row (per_row) or over the whole
// matrix; ties go to the lower index, so the mask is deterministic. N:M: the
// N highest scores of each group are kept (sparsity is ignored).
std::vector<uint8_t> SelectMask(const float* scores, size_t rows, size_t cols, double sparsity,
                                const SparsityPattern& pattern, bool per_row);

struct SparseGptOptions {
  double sparsity = 0.5;  // unstructured: fraction pruned in every block
  SparsityPattern pattern;
  size_t block = 128;     // columns per lazy batch (rounded down to a multiple of M)
  // When set (rows * cols entries), the mask is not chosen but taken as is.
  const uint8_t* fixed_mask = nullptr;
};

// Prunes W in place (pruned entries become exactly 0, kept ones are
// compensated) and returns the keep-mask. factor.cols must equal cols;
// inputs that never fired (factor.dead) have their weights zeroed, as GPTQ
// does. One matrix runs on one thread (Eigen's products give the same bytes
// for any caller thread count).
Expected<std::vector<uint8_t>> SparseGptPrune(float* w, size_t rows, size_t cols,
                                              const GptqFactor& factor, const SparseGptOptions& options);

// sum_i ||(W - W') x_i||^2 / sum_i ||W x_i||^2 over rows x [m, cols]: the
// relative error the layer's output sees (0 when W x is 0 everywhere).
double RelativeOutputError(const float* w, const float* w_new, size_t rows, size_t cols, const float* x,
                           size_t m);

// Fraction of zeros in a keep-mask.
double MaskSparsity(const uint8_t* mask, size_t count);

// True when every group of M consecutive entries of each row keeps at most N.
bool MaskFollowsPattern(const uint8_t* mask, size_t rows, size_t cols, const SparsityPattern& pattern);

}  // namespace slim

namespace slim {

// Structured pruning's consumer refit: the layer W [N, K] keeps only the
// input channels `keep` (sorted, unique); the returned W' [N, |keep|]
// minimises E||W x - W' x_keep||^2 + lambda ||W'||^2 over the calibration
// inputs, H = E[x x^T] (gram, K x K):
//   W' = W H[:, S] (H[S, S] + lambda I)^-1,  lambda = damp * mean(diag H[S, S]),
// i.e. the removed channels' contribution is predicted from the kept ones
// (W' = W_S + W_R H_RS H_SS^-1 without damping). Fails when the damped
// H[S, S] is not positive definite.
Expected<std::vector<float>> RefitKeptInputs(const float* w, size_t n, size_t k, const std::vector<size_t>& keep,
                                             const float* gram, double damp);

// Relative output error of a structured cut on a sample of inputs x (rows
// of width k): sum ||W x - W' x_keep||^2 / sum ||W x||^2, W [n, k], W'
// [n, |keep|] (selected or refitted).
double KeptInputsOutputError(const float* w, size_t n, size_t k, const float* w_kept, const std::vector<size_t>& keep,
                             const float* sample, size_t rows);

// Indices of the `count` highest scores (ties: lower index), ascending.
std::vector<size_t> TopChannels(const std::vector<double>& scores, size_t count);

}  // namespace slim

namespace slim {

// Structured OBS selection (Optimal Brain Surgeon on whole input channels,
// as in OBC / ZipLM): removes `remove` input channels of W [N, K] one at a
// time, each time the channel j whose removal with optimal compensation of
// the others costs least,  cost_j = ||W[:, j]||^2 / [H^-1]_jj,  then
// compensates W -= W[:, j] [H^-1]_{j,:} / [H^-1]_jj and removes j from H^-1
// (H = gram + damp * mean(diag) I). Returns the kept channels, ascending;
// the refit for them is RefitKeptInputs. O(remove * (N K + K^2)).
Expected<std::vector<size_t>> ObsSelectChannels(const float* w, size_t n, size_t k, const float* gram, double damp,
                                                size_t remove);

// The same over blocks of input columns (attention heads: head_dim columns
// each; KV groups: the columns of their query heads): removes `remove`
// blocks one at a time, each time the block S whose removal with optimal
// compensation costs least,  cost_S = tr(W_S [H^-1]_SS^-1 W_S^T),  then
// compensates W -= W_S [H^-1]_SS^-1 [H^-1]_S: and removes S from H^-1.
// With `cls` (one class per block) and `quota`, at most quota[c] blocks of
// class c are removed (heads removed evenly inside each KV group). Returns
// the removed blocks, ascending.
Expected<std::vector<size_t>> ObsRemoveBlocks(const float* w, size_t n, size_t k, const float* gram, double damp,
                                              const std::vector<std::vector<size_t>>& blocks,
                                              const std::vector<size_t>& cls, const std::vector<size_t>& quota,
                                              size_t remove);

}  // namespace slim
