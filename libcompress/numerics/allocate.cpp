// Multiple-choice knapsack by dynamic programming over rounded-up costs
// (allocate.h says why rounding up keeps every answer within the budget),
// then a greedy pass over the real slack the rounding left.
#include "libcompress/numerics/allocate.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

namespace slim {

Expected<KnapsackSolver> KnapsackSolver::Create(std::vector<AllocItem> items) {
  KnapsackSolver s;
  double largest_total = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    const auto& ch = items[i].choices;
    SLIM_CHECK_INPUT(!ch.empty() && ch.size() <= 255, "allocation item ", i, " has ", ch.size(),
                     " choices (1 to 255 allowed)");
    double lo = std::numeric_limits<double>::infinity(), hi = 0;
    for (size_t j = 0; j < ch.size(); ++j) {
      SLIM_CHECK_INPUT(std::isfinite(ch[j].cost) && ch[j].cost >= 0 && std::isfinite(ch[j].loss) && ch[j].loss >= 0,
                       "allocation item ", i, " choice ", j, ": cost ", ch[j].cost, " and loss ", ch[j].loss,
                       " must be finite and >= 0");
      lo = std::min(lo, ch[j].cost);
      hi = std::max(hi, ch[j].cost);
    }
    s.min_cost_ += lo;
    s.max_cost_ += hi;
    largest_total += hi;
  }
  s.quantum_ = std::max(1.0, std::ceil(largest_total / static_cast<double>(kAllocBuckets)));
  s.rounded_.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    size_t hi = 0;
    for (const AllocChoice& c : items[i].choices) {
      s.rounded_[i].push_back(static_cast<size_t>(std::ceil(c.cost / s.quantum_)));
      hi = std::max(hi, s.rounded_[i].back());
    }
    s.capacity_ += hi;
  }
  // Forward pass: dp over exact rounded costs, one row at a time.
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> dp(s.capacity_ + 1, inf), next(s.capacity_ + 1);
  dp[0] = 0;
  size_t reach = 0;  // largest reachable cost so far
  s.pick_.resize(items.size());
  for (size_t i = 0; i < items.size(); ++i) {
    std::fill(next.begin(), next.end(), inf);
    s.pick_[i].assign(s.capacity_ + 1, 0);
    size_t hi = 0;
    for (size_t j = 0; j < items[i].choices.size(); ++j) {
      const size_t rc = s.rounded_[i][j];
      const double loss = items[i].choices[j].loss;
      hi = std::max(hi, rc);
      for (size_t c = 0; c <= reach; ++c) {
        if (dp[c] == inf) continue;
        const double v = dp[c] + loss;
        // Strictly better only: ties keep the lower choice index, so the
        // answer is one function of the inputs.
        if (v < next[c + rc]) {
          next[c + rc] = v;
          s.pick_[i][c + rc] = static_cast<uint8_t>(j);
        }
      }
    }
    reach += hi;
    dp.swap(next);
  }
  s.last_ = std::move(dp);
  s.items_ = std::move(items);
  return s;
}

Allocation KnapsackSolver::Evaluate(std::vector<size_t> choice) const {
  Allocation a;
  for (size_t i = 0; i < choice.size(); ++i) {
    a.cost += items_[i].choices[choice[i]].cost;
    a.loss += items_[i].choices[choice[i]].loss;
  }
  a.choice = std::move(choice);
  a.gap_cost = static_cast<double>(items_.size()) * quantum_;
  return a;
}

Expected<Allocation> KnapsackSolver::Solve(double budget) const {
  SLIM_CHECK_INPUT(std::isfinite(budget) && budget >= 0, "budget ", budget, " must be finite and >= 0");
  SLIM_CHECK_INPUT(min_cost_ <= budget, "the budget (", budget, ") is below the smallest reachable cost ",
                   min_cost_, " (every tensor at its cheapest choice)");
  const size_t cap = std::min(capacity_, static_cast<size_t>(std::floor(budget / quantum_)));
  size_t best_c = 0;
  double best = std::numeric_limits<double>::infinity();
  for (size_t c = 0; c <= cap; ++c) {
    if (last_[c] < best) {
      best = last_[c];
      best_c = c;
    }
  }
  std::vector<size_t> choice(items_.size(), 0);
  if (best == std::numeric_limits<double>::infinity()) {
    // Rounding made the cheapest assignment look too dear while its real
    // cost fits: take it (it is the only feasible one up to rounding).
    for (size_t i = 0; i < items_.size(); ++i) {
      const auto& ch = items_[i].choices;
      size_t lo = 0;
      for (size_t j = 1; j < ch.size(); ++j) {
        if (ch[j].cost < ch[lo].cost || (ch[j].cost == ch[lo].cost && ch[j].loss < ch[lo].loss)) lo = j;
      }
      choice[i] = lo;
    }
    return Evaluate(std::move(choice));
  }
  size_t c = best_c;
  for (size_t i = items_.size(); i-- > 0;) {
    choice[i] = pick_[i][c];
    c -= rounded_[i][choice[i]];
  }
  // Rounding up leaves real slack: spend it on the single changes with the
  // most loss saved per byte while they fit (exact costs, so still within
  // the budget; the loss only falls).
  Allocation a = Evaluate(std::move(choice));
  for (;;) {
    double best_ratio = 0;
    size_t bi = 0, bj = 0;
    for (size_t i = 0; i < items_.size(); ++i) {
      const AllocChoice& cur = items_[i].choices[a.choice[i]];
      for (size_t j = 0; j < items_[i].choices.size(); ++j) {
        const AllocChoice& alt = items_[i].choices[j];
        const double extra = alt.cost - cur.cost, saved = cur.loss - alt.loss;
        if (saved <= 0 || a.cost + extra > budget) continue;
        const double ratio = extra <= 0 ? std::numeric_limits<double>::infinity() : saved / extra;
        if (ratio > best_ratio) {
          best_ratio = ratio;
          bi = i;
          bj = j;
        }
      }
    }
    if (best_ratio <= 0) break;
    a.choice[bi] = bj;
    a = Evaluate(std::move(a.choice));
  }
  return a;
}

namespace {
std::vector<double> Ranks(const std::vector<double>& v) {
  std::vector<size_t> order(v.size());
  std::iota(order.begin(), order.end(), size_t{0});
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return v[a] < v[b]; });
  std::vector<double> r(v.size());
  for (size_t i = 0; i < order.size();) {
    size_t j = i;
    while (j + 1 < order.size() && v[order[j + 1]] == v[order[i]]) ++j;
    const double avg = 0.5 * static_cast<double>(i + j);
    for (size_t t = i; t <= j; ++t) r[order[t]] = avg;
    i = j + 1;
  }
  return r;
}
}  // namespace

double SpearmanCorrelation(const std::vector<double>& a, const std::vector<double>& b) {
  if (a.size() != b.size() || a.size() < 2) return 0;
  const std::vector<double> ra = Ranks(a), rb = Ranks(b);
  const double n = static_cast<double>(a.size());
  const double ma = std::accumulate(ra.begin(), ra.end(), 0.0) / n, mb = std::accumulate(rb.begin(), rb.end(), 0.0) / n;
  double sab = 0, saa = 0, sbb = 0;
  for (size_t i = 0; i < ra.size(); ++i) {
    sab += (ra[i] - ma) * (rb[i] - mb);
    saa += (ra[i] - ma) * (ra[i] - ma);
    sbb += (rb[i] - mb) * (rb[i] - mb);
  }
  return saa > 0 && sbb > 0 ? sab / std::sqrt(saa * sbb) : 0;
}

}  // namespace slim
