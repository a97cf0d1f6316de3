// The bit allocator (numerics/allocate.h): over many random instances and
// budgets it never exceeds the budget, its loss lies between the exact
// optimum (brute force) at the budget and at the budget minus the stated
// gap, and an unreachable budget fails naming the smallest reachable cost.
#include <catch2/catch.hpp>

#include <cmath>
#include <functional>
#include <limits>
#include <random>

#include "libcompress/numerics/allocate.h"

namespace slim {
namespace {

// Least loss with cost <= budget by enumeration (inf when infeasible).
double BruteForce(const std::vector<AllocItem>& items, double budget) {
  double best = std::numeric_limits<double>::infinity();
  std::function<void(size_t, double, double)> go = [&](size_t i, double cost, double loss) {
    if (cost > budget) return;
    if (i == items.size()) {
      best = std::min(best, loss);
      return;
    }
    for (const AllocChoice& c : items[i].choices) go(i + 1, cost + c.cost, loss + c.loss);
  };
  go(0, 0, 0);
  return best;
}

}  // namespace

TEST_CASE("knapsack: within budget, between the optimum and the optimum at budget - gap", "[numerics][allocate]") {
  std::mt19937 rng(7);
  for (int trial = 0; trial < 200; ++trial) {
    const size_t n = 1 + rng() % 6;
    std::vector<AllocItem> items(n);
    // Costs from a few bytes to millions (the quantum grows with them), losses
    // falling with cost as quantization schemes do, plus noise.
    const double scale = std::pow(10.0, static_cast<double>(rng() % 7));
    for (auto& it : items) {
      const size_t m = 1 + rng() % 4;
      for (size_t j = 0; j < m; ++j) {
        const double cost = scale * static_cast<double>(1 + rng() % 1000) / 100.0;
        it.choices.push_back({cost, 1.0 / (1.0 + cost / scale) + static_cast<double>(rng() % 100) / 1000.0});
      }
    }
    auto solver = KnapsackSolver::Create(items);
    REQUIRE(solver.ok());
    for (int b = 0; b < 20; ++b) {
      const double budget = solver->min_cost() * 0.9 +
                            (solver->max_cost() * 1.1 - solver->min_cost() * 0.9) * static_cast<double>(rng() % 1001) / 1000.0;
      INFO("trial " << trial << " budget " << budget << " min " << solver->min_cost());
      auto a = solver->Solve(budget);
      if (budget < solver->min_cost()) {
        REQUIRE_FALSE(a.ok());
        CHECK_THAT(a.status().message(), Catch::Contains("smallest reachable cost"));
        continue;
      }
      REQUIRE(a.ok());
      CHECK(a->cost <= budget);
      const double opt = BruteForce(items, budget);
      CHECK(a->loss >= opt - 1e-9);
      const double opt_gap = BruteForce(items, budget - a->gap_cost);
      if (std::isfinite(opt_gap)) CHECK(a->loss <= opt_gap + 1e-9);
      double cost = 0, loss = 0;
      for (size_t i = 0; i < n; ++i) {
        cost += items[i].choices[a->choice[i]].cost;
        loss += items[i].choices[a->choice[i]].loss;
      }
      CHECK(cost == Approx(a->cost));
      CHECK(loss == Approx(a->loss));
    }
  }
}

TEST_CASE("knapsack: large instances stay within budget and spend it on the largest loss reductions",
          "[numerics][allocate]") {
  // 150 tensors, int4 (cost 45, loss 1) or int8 (cost 80, loss 0.1) in units of
  // 1 MB, losses scaled per tensor: the budget buys int8 for the tensors where
  // it saves most.
  std::vector<AllocItem> items;
  std::vector<double> weight;
  for (size_t i = 0; i < 150; ++i) {
    weight.push_back(1.0 + static_cast<double>(i % 17));
    items.push_back({{{45e6, weight.back()}, {80e6, 0.1 * weight.back()}}});
  }
  auto solver = KnapsackSolver::Create(items);
  REQUIRE(solver.ok());
  CHECK(solver->min_cost() == Approx(150 * 45e6));
  // 40 upgrades fit, with room for the rounding of 150 costs.
  const double budget = 150 * 45e6 + 40 * 35e6 + 150 * solver->quantum();
  auto a = solver->Solve(budget);
  REQUIRE(a.ok());
  CHECK(a->cost <= budget);
  size_t upgrades = 0;
  double min_upgraded = 1e9, max_kept = 0;
  for (size_t i = 0; i < items.size(); ++i) {
    if (a->choice[i] == 1) {
      ++upgrades;
      min_upgraded = std::min(min_upgraded, weight[i]);
    } else {
      max_kept = std::max(max_kept, weight[i]);
    }
  }
  CHECK(upgrades == 40);
  INFO("upgraded down to weight " << min_upgraded << ", kept up to " << max_kept);
  CHECK(min_upgraded >= max_kept);
  CHECK(a->gap_cost == Approx(150 * solver->quantum()));
  CHECK(a->gap_cost <= 150.0 / 65536 * solver->max_cost() + 150);  // n / 2^16 of the largest total
}

TEST_CASE("knapsack: bad inputs and Spearman correlation", "[numerics][allocate]") {
  CHECK_FALSE(KnapsackSolver::Create({AllocItem{}}).ok());
  CHECK_FALSE(KnapsackSolver::Create({AllocItem{{{-1, 0}}}}).ok());
  CHECK_FALSE(KnapsackSolver::Create({AllocItem{{{1, std::nan("")}}}}).ok());
  CHECK(SpearmanCorrelation({1, 2, 3, 4}, {10, 20, 30, 40}) == Approx(1));
  CHECK(SpearmanCorrelation({1, 2, 3, 4}, {4, 3, 2, 1}) == Approx(-1));
  CHECK(SpearmanCorrelation({1, 1, 1}, {1, 2, 3}) == 0);
  CHECK(SpearmanCorrelation({1, 2, 2, 3}, {1, 2, 3, 4}) == Approx(0.9486833).epsilon(1e-6));
}

}  // namespace slim
