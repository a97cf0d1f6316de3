// Activation-aware weight scaling; see awq.h.
#include "libcompress/numerics/awq.h"

#include <algorithm>
#include <cmath>

#include <Eigen/Core>

namespace slim {
namespace {

using Mat = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// s = r^alpha normalised so that max(s) * min(s) = 1 (AWQ's normalisation:
// the scales spread evenly around 1 in log space, so neither the weights
// nor the folded producer drift towards FP16's limits).
std::vector<float> CandidateScales(const std::vector<double>& r, double alpha) {
  std::vector<double> s(r.size());
  double lo = INFINITY, hi = 0;
  for (size_t k = 0; k < r.size(); ++k) {
    s[k] = std::pow(r[k], alpha);
    lo = std::min(lo, s[k]);
    hi = std::max(hi, s[k]);
  }
  const double norm = std::sqrt(lo * hi);
  std::vector<float> out(r.size());
  for (size_t k = 0; k < r.size(); ++k) out[k] = static_cast<float>(s[k] / norm);
  return out;
}

}  // namespace

Expected<AwqScales> SearchAwqScales(const double* mean_sq, const float* gram, const float* sample, size_t sample_rows,
                                    size_t cols, const std::vector<AwqMember>& members, int grid) {
  SLIM_CHECK_INPUT(cols > 0 && mean_sq, "AWQ: no input statistics");
  SLIM_CHECK_INPUT(grid >= 1, "AWQ: grid must be >= 1, got ", grid);
  SLIM_CHECK_INPUT(!members.empty(), "AWQ: no weights to scale");
  for (const AwqMember& m : members) {
    SLIM_CHECK_INPUT(m.w && m.rows > 0, "AWQ: empty weight");
    SLIM_CHECK_INPUT(!m.options.importance || m.options.importance_row_stride == 0,
                     "AWQ: importance must be one K-vector");
  }
  std::vector<double> r(cols);
  double rmax = 0;
  for (size_t k = 0; k < cols; ++k) {
    SLIM_CHECK_INPUT(std::isfinite(mean_sq[k]) && mean_sq[k] >= 0, "AWQ: E[x^2] of channel ", k, " is ",
                     mean_sq[k]);
    r[k] = std::sqrt(mean_sq[k]);
    rmax = std::max(rmax, r[k]);
  }
  AwqScales out;
  out.s.assign(cols, 1.0f);
  out.on_gram = gram != nullptr;
  out.on_sample = !out.on_gram && sample && sample_rows > 0;
  for (double& v : r) v = std::max(v, 1e-4 * rmax);

  const auto kc = static_cast<Eigen::Index>(cols);
  Eigen::Map<const Mat> x(out.on_sample ? sample : nullptr, out.on_sample ? static_cast<Eigen::Index>(sample_rows) : 0,
                          kc);
  Eigen::Map<const Mat> h(gram, gram ? kc : 0, gram ? kc : 0);
  // sum_n d_n^T H d_n for the rows d_n of d.
  auto quadratic = [&](const Eigen::Ref<const Mat>& d) { return (d * h).cwiseProduct(d).cast<double>().sum(); };
  for (const AwqMember& m : members) {
    Eigen::Map<const Mat> w(m.w, static_cast<Eigen::Index>(m.rows), kc);
    if (out.on_gram) {
      out.output_energy += quadratic(w);
    } else if (out.on_sample) {
      out.output_energy += (x * w.transpose()).cast<double>().squaredNorm();
    } else {
      for (Eigen::Index k = 0; k < kc; ++k) out.output_energy += mean_sq[k] * w.col(k).cast<double>().squaredNorm();
    }
  }
  if (!(rmax > 0)) {
    // The input never fired on the calibration data: nothing to weigh.
    return out;
  }

  double best = INFINITY;
  for (int i = 0; i < grid; ++i) {
    const double alpha = static_cast<double>(i) / grid;
    const std::vector<float> s = CandidateScales(r, alpha);
    Mat xs;
    if (out.on_sample) {
      xs = x;
      for (Eigen::Index k = 0; k < kc; ++k) xs.col(k) /= s[static_cast<size_t>(k)];
    }
    double err = 0;
    for (const AwqMember& m : members) {
      Mat ws = Eigen::Map<const Mat>(m.w, static_cast<Eigen::Index>(m.rows), kc);
      for (Eigen::Index k = 0; k < kc; ++k) ws.col(k) *= s[static_cast<size_t>(k)];
      QuantOptions qo = m.options;
      qo.gptq = nullptr;
      std::vector<float> imp;
      if (m.options.importance) {
        imp.resize(cols);
        for (size_t k = 0; k < cols; ++k) imp[k] = m.options.importance[k] / (s[k] * s[k]);
        qo.importance = imp.data();
      }
      auto q = QuantizeMatrix(ws.data(), m.rows, cols, qo);
      if (!q.ok()) return q.status();
      Mat d(static_cast<Eigen::Index>(m.rows), kc);
      DequantizeMatrix(*q, d.data());
      d = ws - d;
      if (out.on_gram) {
        // (W D - Q(W D)) D^-1 through the unscaled H: the scaled input's
        // E[x x^T] is D^-1 H D^-1.
        for (Eigen::Index k = 0; k < kc; ++k) d.col(k) /= s[static_cast<size_t>(k)];
        err += quadratic(d);
      } else if (out.on_sample) {
        err += (xs * d.transpose()).cast<double>().squaredNorm();
      } else {
        for (Eigen::Index k = 0; k < kc; ++k) {
          const double sk = s[static_cast<size_t>(k)];
          err += mean_sq[k] / (sk * sk) * d.col(k).cast<double>().squaredNorm();
        }
      }
    }
    if (i == 0) out.error_unscaled = err;
    if (err < best) {
      best = err;
      out.alpha = alpha;
      out.s = s;
    }
  }
  out.error = best;
  return out;
}

}  // namespace slim
