// Bit allocation under a budget: a multiple-choice knapsack. Each item (a
// weight tensor) takes exactly one of its choices (a quantization scheme),
// each with a cost (bytes, or bytes read per decoded token) and an estimated
// loss; the solver minimises the summed loss with the summed cost at most
// the budget. Numbers only: the mixed-precision pass builds the items.
//
// Method: dynamic programming over costs rounded *up* to a quantum q =
// ceil(sum of every item's largest cost / kAllocBuckets) (q >= 1). Rounding up
// makes every solution of the rounded problem feasible for the real one, so
// the budget is never exceeded. Optimality gap: the solution's loss is at
// most the exact optimum at the budget minus n * q (n items), which the
// result states (gap_cost); with kAllocBuckets = 2^16 that is n / 65536 of the
// largest total cost. The real slack the rounding leaves is then spent
// greedily (single changes with the most loss saved per byte that still
// fit), which only lowers the loss. One table answers every budget up to
// the largest, so a Pareto sweep costs one solve.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

inline constexpr size_t kAllocBuckets = size_t{1} << 16;

struct AllocChoice {
  double cost = 0;  // >= 0, finite
  double loss = 0;  // >= 0, finite
};

struct AllocItem {
  std::vector<AllocChoice> choices;  // 1 to 255
};

struct Allocation {
  std::vector<size_t> choice;  // per item, an index into its choices
  double cost = 0;             // sum of the chosen (real) costs
  double loss = 0;             // sum of the chosen losses
  double gap_cost = 0;         // n * quantum: see the header comment
};

class KnapsackSolver {
 public:
  // Fails on an empty choice list or a negative / non-finite cost or loss
  // (the message names the item and choice).
  static Expected<KnapsackSolver> Create(std::vector<AllocItem> items);

  // The least-loss allocation with cost <= budget; InvalidInput naming the
  // smallest reachable cost when even the cheapest choices exceed it.
  Expected<Allocation> Solve(double budget) const;

  double min_cost() const { return min_cost_; }  // every item at its cheapest
  double max_cost() const { return max_cost_; }  // every item at its dearest
  double quantum() const { return quantum_; }

 private:
  KnapsackSolver() = default;
  Allocation Evaluate(std::vector<size_t> choice) const;

  std::vector<AllocItem> items_;
  std::vector<std::vector<size_t>> rounded_;  // per item and choice: ceil(cost / quantum)
  size_t capacity_ = 0;                       // sum of every item's largest rounded cost
  // last_[c]: least loss of all items with rounded cost exactly c (inf when
  // unreachable); pick_[i][c]: the choice of item i in the best allocation
  // of items 0..i with rounded cost exactly c (for backtracking).
  std::vector<double> last_;
  std::vector<std::vector<uint8_t>> pick_;
  double quantum_ = 1, min_cost_ = 0, max_cost_ = 0;
};

// Spearman rank correlation of two equally long series (average ranks for
// ties); 0 when either is constant or shorter than 2.
double SpearmanCorrelation(const std::vector<double>& a, const std::vector<double>& b);

}  // namespace slim
