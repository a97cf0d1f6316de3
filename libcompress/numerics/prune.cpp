// Pruning scores, masks and SparseGPT; see prune.h.
#include "libcompress/numerics/prune.h"

#include <algorithm>
#include <cmath>
#include <numeric>

#include <Eigen/Cholesky>
#include <Eigen/Core>
#include <Eigen/LU>

namespace slim {
namespace {

// Marks the `count` lowest of scores[idx[i]] (ties: lower index first) as
// pruned in mask. Deterministic: the order is total.
void PruneLowest(const float* scores, std::vector<size_t>& idx, size_t count, uint8_t* mask) {
  if (count == 0) return;
  auto less = [&](size_t a, size_t b) { return scores[a] < scores[b] || (scores[a] == scores[b] && a < b); };
  if (count < idx.size()) std::nth_element(idx.begin(), idx.begin() + static_cast<std::ptrdiff_t>(count), idx.end(), less);
  for (size_t i = 0; i < std::min(count, idx.size()); ++i) mask[idx[i]] = 0;
}

// Keeps the n highest of the group [c0, c0 + len) of one row.
void KeepTopInGroup(const float* row_scores, size_t c0, size_t len, int n, uint8_t* row_mask) {
  const size_t keep = std::min(len, static_cast<size_t>(n));
  size_t order[64];
  for (size_t j = 0; j < len; ++j) order[j] = c0 + j;
  // Highest first; ties keep the lower index.
  std::sort(order, order + len, [&](size_t a, size_t b) {
    return row_scores[a] > row_scores[b] || (row_scores[a] == row_scores[b] && a < b);
  });
  for (size_t j = 0; j < len; ++j) row_mask[order[j]] = j < keep ? 1 : 0;
}

}  // namespace

std::string SparsityPattern::Name() const {
  return unstructured() ? "unstructured" : std::to_string(n) + ":" + std::to_string(m);
}

Expected<SparsityPattern> SparsityPattern::Parse(const std::string& text) {
  if (text == "unstructured") return SparsityPattern{};
  const auto colon = text.find(':');
  SparsityPattern p;
  try {
    size_t used = 0;
    SLIM_CHECK_INPUT(colon != std::string::npos, "pattern '", text, "' is neither 'unstructured' nor N:M");
    p.n = std::stoi(text.substr(0, colon), &used);
    SLIM_CHECK_INPUT(used == colon, "pattern '", text, "': N is not an integer");
    const std::string ms = text.substr(colon + 1);
    p.m = std::stoi(ms, &used);
    SLIM_CHECK_INPUT(used == ms.size(), "pattern '", text, "': M is not an integer");
  } catch (const std::exception&) {
    return InvalidInput("pattern '", text, "' is neither 'unstructured' nor N:M (for example 2:4)");
  }
  SLIM_CHECK_INPUT(p.n >= 1 && p.n < p.m && p.m <= 64, "pattern '", text,
                   "': N:M needs 1 <= N < M <= 64 (N weights kept of every M)");
  return p;
}

std::vector<float> PruneScores(const float* w, size_t rows, size_t cols, const double* mean_sq) {
  std::vector<float> s(rows * cols);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t k = 0; k < cols; ++k) {
      const float a = std::fabs(w[r * cols + k]);
      s[r * cols + k] = mean_sq ? a * static_cast<float>(std::sqrt(mean_sq[k])) : a;
    }
  }
  return s;
}

std::vector<uint8_t> SelectMask(const float* scores, size_t rows, size_t cols, double sparsity,
                                const SparsityPattern& pattern, bool per_row) {
  std::vector<uint8_t> mask(rows * cols, 1);
  if (!pattern.unstructured()) {
    const size_t m = static_cast<size_t>(pattern.m);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t c0 = 0; c0 < cols; c0 += m) {
        KeepTopInGroup(scores + r * cols, c0, std::min(m, cols - c0), pattern.n, mask.data() + r * cols);
      }
    }
    return mask;
  }
  if (per_row) {
    const auto count = static_cast<size_t>(std::floor(sparsity * static_cast<double>(cols)));
    std::vector<size_t> idx(cols);
    for (size_t r = 0; r < rows; ++r) {
      std::iota(idx.begin(), idx.end(), size_t{0});
      PruneLowest(scores + r * cols, idx, count, mask.data() + r * cols);
    }
    return mask;
  }
  std::vector<size_t> idx(rows * cols);
  std::iota(idx.begin(), idx.end(), size_t{0});
  PruneLowest(scores, idx, static_cast<size_t>(std::floor(sparsity * static_cast<double>(rows * cols))), mask.data());
  return mask;
}

Expected<std::vector<uint8_t>> SparseGptPrune(float* w, size_t rows, size_t cols, const GptqFactor& f,
                                              const SparseGptOptions& opt) {
  using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  SLIM_CHECK_INPUT(rows > 0 && cols > 0, "cannot prune an empty matrix [", rows, ", ", cols, "]");
  SLIM_CHECK_INPUT(f.cols == cols && f.u.size() == cols * cols && f.dead.size() == cols,
                   "SparseGPT: factor is for ", f.cols, " columns, the matrix has ", cols);
  SLIM_CHECK_INPUT(opt.sparsity >= 0 && opt.sparsity < 1, "SparseGPT: sparsity must be in [0, 1), got ",
                   opt.sparsity);
  for (size_t i = 0; i < rows * cols; ++i) {
    SLIM_CHECK_INPUT(std::isfinite(w[i]), "weight at row ", i / cols, ", column ", i % cols, " is ", w[i],
                     " (must be finite)");
  }
  const auto K = static_cast<Eigen::Index>(cols);
  Eigen::Map<MatF> W(w, static_cast<Eigen::Index>(rows), K);
  for (Eigen::Index i = 0; i < K; ++i) {
    if (f.dead[static_cast<size_t>(i)]) W.col(i).setZero();
  }
  Eigen::Map<const MatF> U(f.u.data(), K, K);
  std::vector<uint8_t> mask(rows * cols, 1);
  if (opt.fixed_mask) std::copy(opt.fixed_mask, opt.fixed_mask + rows * cols, mask.begin());

  // N:M groups must not straddle blocks: the block is a multiple of M.
  const size_t m = opt.pattern.unstructured() ? 1 : static_cast<size_t>(opt.pattern.m);
  const size_t block = std::max(std::max(opt.block, size_t{1}) / m, size_t{1}) * m;
  MatF err(static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(std::min(block, cols)));
  std::vector<float> saliency;
  std::vector<size_t> idx;
  for (size_t i1 = 0; i1 < cols; i1 += block) {
    const size_t i2 = std::min(i1 + block, cols), bn = i2 - i1;
    // OBS saliency of the block's weights as updated so far.
    auto fill_saliency = [&](size_t c0, size_t c1) {
      if (saliency.empty()) saliency.assign(rows * cols, 0.0f);  // only [c0, c1) is read
      for (size_t r = 0; r < rows; ++r) {
        for (size_t c = c0; c < c1; ++c) {
          const float d = U(static_cast<Eigen::Index>(c), static_cast<Eigen::Index>(c));
          const float v = W(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(c));
          saliency[r * cols + c] = v * v / (d * d);
        }
      }
    };
    if (!opt.fixed_mask && opt.pattern.unstructured()) {
      fill_saliency(i1, i2);
      idx.clear();
      for (size_t r = 0; r < rows; ++r) {
        for (size_t c = i1; c < i2; ++c) idx.push_back(r * cols + c);
      }
      const auto count = static_cast<size_t>(std::floor(opt.sparsity * static_cast<double>(rows * bn)));
      PruneLowest(saliency.data(), idx, count, mask.data());
    }
    for (size_t i = i1; i < i2; ++i) {
      const auto ii = static_cast<Eigen::Index>(i);
      if (!opt.fixed_mask && !opt.pattern.unstructured() && (i - i1) % m == 0) {
        // The group's mask from the weights as updated up to column i.
        const size_t len = std::min(m, cols - i);
        fill_saliency(i, i + len);
        for (size_t r = 0; r < rows; ++r) {
          KeepTopInGroup(saliency.data() + r * cols, i, len, opt.pattern.n, mask.data() + r * cols);
        }
      }
      const float d = U(ii, ii);
      for (size_t r = 0; r < rows; ++r) {
        const auto rr = static_cast<Eigen::Index>(r);
        const float v = W(rr, ii);
        const float e = mask[r * cols + i] ? 0.0f : v / d;
        if (!mask[r * cols + i]) W(rr, ii) = 0.0f;
        err(rr, static_cast<Eigen::Index>(i - i1)) = e;
        if (e == 0.0f) continue;
        for (size_t j = i + 1; j < i2; ++j) W(rr, static_cast<Eigen::Index>(j)) -= e * U(ii, static_cast<Eigen::Index>(j));
      }
    }
    if (i2 < cols) {
      const auto b0 = static_cast<Eigen::Index>(i1), bnn = static_cast<Eigen::Index>(bn);
      const auto rest = static_cast<Eigen::Index>(cols - i2);
      W.rightCols(rest).noalias() -= err.leftCols(bnn) * U.block(b0, static_cast<Eigen::Index>(i2), bnn, rest);
    }
  }
  // Pruned entries stay exactly zero (the block update above never touches
  // columns already visited).
  return mask;
}

double RelativeOutputError(const float* w, const float* w_new, size_t rows, size_t cols, const float* x,
                           size_t m) {
  using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto r = static_cast<Eigen::Index>(rows), c = static_cast<Eigen::Index>(cols);
  Eigen::Map<const Mat> wm(w, r, c), wn(w_new, r, c);
  Eigen::Map<const Mat> xm(x, static_cast<Eigen::Index>(m), c);
  const Mat d = wm - wn;
  const Mat y = xm * wm.transpose();
  const Mat e = xm * d.transpose();
  const double den = y.cast<double>().squaredNorm();
  return den > 0 ? e.cast<double>().squaredNorm() / den : 0.0;
}

double MaskSparsity(const uint8_t* mask, size_t count) {
  if (count == 0) return 0.0;
  size_t zeros = 0;
  for (size_t i = 0; i < count; ++i) zeros += mask[i] == 0;
  return static_cast<double>(zeros) / static_cast<double>(count);
}

bool MaskFollowsPattern(const uint8_t* mask, size_t rows, size_t cols, const SparsityPattern& p) {
  if (p.unstructured()) return true;
  const size_t m = static_cast<size_t>(p.m);
  for (size_t r = 0; r < rows; ++r) {
    for (size_t c0 = 0; c0 < cols; c0 += m) {
      int kept = 0;
      for (size_t c = c0; c < std::min(c0 + m, cols); ++c) kept += mask[r * cols + c] != 0;
      if (kept > p.n) return false;
    }
  }
  return true;
}

}  // namespace slim

namespace slim {

Expected<std::vector<float>> RefitKeptInputs(const float* w, size_t n, size_t k, const std::vector<size_t>& keep,
                                             const float* gram, double damp) {
  using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  const auto s = static_cast<Eigen::Index>(keep.size());
  SLIM_CHECK_INPUT(s > 0 && n > 0, "refit: nothing kept");
  for (size_t j : keep) SLIM_CHECK_INPUT(j < k, "refit: kept channel ", j, " outside K = ", k);
  const auto K = static_cast<Eigen::Index>(k);
  Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>> H(gram, K, K);
  MatD hss(s, s), hks(K, s);
  for (Eigen::Index a = 0; a < s; ++a) {
    for (Eigen::Index b = 0; b < s; ++b) hss(a, b) = H(static_cast<Eigen::Index>(keep[static_cast<size_t>(a)]),
                                                      static_cast<Eigen::Index>(keep[static_cast<size_t>(b)]));
  }
  for (Eigen::Index r = 0; r < K; ++r) {
    for (Eigen::Index b = 0; b < s; ++b) hks(r, b) = H(r, static_cast<Eigen::Index>(keep[static_cast<size_t>(b)]));
  }
  const double mean_diag = hss.diagonal().mean();
  SLIM_CHECK_INPUT(std::isfinite(mean_diag), "refit: the Hessian is not finite");
  hss.diagonal().array() += damp * (mean_diag > 0 ? mean_diag : 1.0);
  Eigen::LLT<MatD> llt(hss);
  SLIM_CHECK_INPUT(llt.info() == Eigen::Success, "refit: the damped Hessian of the kept channels is not positive definite");
  const MatD wd = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(
                      w, static_cast<Eigen::Index>(n), K)
                      .cast<double>();
  // W' (H_SS + lambda I) = W H[:, S]  ->  solve with the symmetric factor.
  const MatD rhs = wd * hks;                          // [n, s]
  const MatD sol = llt.solve(rhs.transpose()).transpose();  // [n, s]
  std::vector<float> out(n * keep.size());
  for (size_t r = 0; r < n; ++r) {
    for (size_t b = 0; b < keep.size(); ++b) {
      out[r * keep.size() + b] = static_cast<float>(sol(static_cast<Eigen::Index>(r), static_cast<Eigen::Index>(b)));
    }
  }
  return out;
}

double KeptInputsOutputError(const float* w, size_t n, size_t k, const float* w_kept, const std::vector<size_t>& keep,
                             const float* sample, size_t rows) {
  const size_t k2 = keep.size();
  double num = 0, den = 0;
  for (size_t i = 0; i < rows; ++i) {
    const float* x = sample + i * k;
    for (size_t r = 0; r < n; ++r) {
      double y = 0, y2 = 0;
      for (size_t e = 0; e < k; ++e) y += static_cast<double>(w[r * k + e]) * x[e];
      for (size_t j = 0; j < k2; ++j) y2 += static_cast<double>(w_kept[r * k2 + j]) * x[keep[j]];
      num += (y - y2) * (y - y2);
      den += y * y;
    }
  }
  return den > 0 ? num / den : 0.0;
}

std::vector<size_t> TopChannels(const std::vector<double>& scores, size_t count) {
  std::vector<size_t> idx(scores.size());
  std::iota(idx.begin(), idx.end(), size_t{0});
  count = std::min(count, idx.size());
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return scores[a] > scores[b]; });
  idx.resize(count);
  std::sort(idx.begin(), idx.end());
  return idx;
}

}  // namespace slim

namespace slim {

Expected<std::vector<size_t>> ObsRemoveBlocks(const float* w, size_t n, size_t k, const float* gram, double damp,
                                              const std::vector<std::vector<size_t>>& blocks,
                                              const std::vector<size_t>& cls, const std::vector<size_t>& quota,
                                              size_t remove) {
  using MatD = Eigen::Matrix<double, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
  SLIM_CHECK_INPUT(remove < blocks.size(), "OBS selection: cannot remove ", remove, " of ", blocks.size(), " blocks");
  SLIM_CHECK_INPUT(cls.empty() || cls.size() == blocks.size(), "OBS selection: ", cls.size(), " classes for ",
                   blocks.size(), " blocks");
  const auto K = static_cast<Eigen::Index>(k), N = static_cast<Eigen::Index>(n);
  MatD H = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(gram, K, K)
               .cast<double>();
  const double mean_diag = H.diagonal().mean();
  SLIM_CHECK_INPUT(std::isfinite(mean_diag), "OBS selection: the Hessian is not finite");
  H.diagonal().array() += damp * (mean_diag > 0 ? mean_diag : 1.0);
  Eigen::LLT<MatD> llt(H);
  SLIM_CHECK_INPUT(llt.info() == Eigen::Success, "OBS selection: the damped Hessian is not positive definite");
  MatD hinv = llt.solve(MatD::Identity(K, K));
  MatD W = Eigen::Map<const Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>>(w, N, K)
               .cast<double>();
  std::vector<uint8_t> alive(blocks.size(), 1);
  std::vector<size_t> removed_in(quota.size(), 0), removed;
  auto sub = [](const MatD& m, const std::vector<size_t>& r, const std::vector<size_t>& c) {
    MatD out(static_cast<Eigen::Index>(r.size()), static_cast<Eigen::Index>(c.size()));
    for (size_t i = 0; i < r.size(); ++i) {
      for (size_t j = 0; j < c.size(); ++j) {
        out(static_cast<Eigen::Index>(i), static_cast<Eigen::Index>(j)) =
            m(static_cast<Eigen::Index>(r[i]), static_cast<Eigen::Index>(c[j]));
      }
    }
    return out;
  };
  std::vector<size_t> all_rows(n), all_cols(k);
  for (size_t i = 0; i < n; ++i) all_rows[i] = i;
  for (size_t j = 0; j < k; ++j) all_cols[j] = j;
  for (size_t step = 0; step < remove; ++step) {
    size_t best = blocks.size();
    double best_cost = 0;
    for (size_t b = 0; b < blocks.size(); ++b) {
      if (!alive[b] || (!cls.empty() && removed_in[cls[b]] >= quota[cls[b]])) continue;
      const std::vector<size_t>& S = blocks[b];
      double cost;
      if (S.size() == 1) {
        const auto j = static_cast<Eigen::Index>(S[0]);
        cost = W.col(j).squaredNorm() / hinv(j, j);
      } else {
        // ||W_S L^-T||^2 with [H^-1]_SS = L L^T: tr(W_S [H^-1]_SS^-1 W_S^T).
        Eigen::LLT<MatD> m(sub(hinv, S, S));
        if (m.info() != Eigen::Success) continue;
        const MatD ws = sub(W, all_rows, S);
        cost = m.matrixL().solve(ws.transpose()).squaredNorm();
      }
      if (best == blocks.size() || cost < best_cost) {
        best = b;
        best_cost = cost;
      }
    }
    SLIM_CHECK_INPUT(best < blocks.size(), "OBS selection: no block may be removed at step ", step,
                     " (quotas exhausted)");
    // Compensate the others and drop S from the inverse:
    //   W -= W_S [H^-1]_SS^-1 [H^-1]_S:,  H^-1 -= [H^-1]_:S [H^-1]_SS^-1 [H^-1]_S:.
    const std::vector<size_t>& S = blocks[best];
    const MatD hss_inv = sub(hinv, S, S).inverse();
    const MatD hrows = sub(hinv, S, all_cols);  // |S| x K
    const MatD ws = sub(W, all_rows, S);
    W.noalias() -= ws * hss_inv * hrows;
    hinv.noalias() -= hrows.transpose() * hss_inv * hrows;
    for (size_t j : S) {
      const auto c = static_cast<Eigen::Index>(j);
      W.col(c).setZero();
      hinv.row(c).setZero();
      hinv.col(c).setZero();
      hinv(c, c) = 1.0;  // never chosen again (alive = 0)
    }
    alive[best] = 0;
    if (!cls.empty()) ++removed_in[cls[best]];
    removed.push_back(best);
  }
  std::sort(removed.begin(), removed.end());
  return removed;
}

Expected<std::vector<size_t>> ObsSelectChannels(const float* w, size_t n, size_t k, const float* gram, double damp,
                                                size_t remove) {
  std::vector<std::vector<size_t>> blocks(k);
  for (size_t j = 0; j < k; ++j) blocks[j] = {j};
  SLIM_ASSIGN_OR_RETURN(std::vector<size_t> removed, ObsRemoveBlocks(w, n, k, gram, damp, blocks, {}, {}, remove));
  std::vector<size_t> keep;
  for (size_t j = 0, r = 0; j < k; ++j) {
    if (r < removed.size() && removed[r] == j) {
      ++r;
      continue;
    }
    keep.push_back(j);
  }
  return keep;
}

}  // namespace slim
