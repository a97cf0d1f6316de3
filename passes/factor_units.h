// Parallel work over weight tensors grouped by the layer input they read:
// tensors that multiply the same activations (q/k/v, gate/up) share one
// Hessian, so its factor for GPTQ / SparseGPT / OBS reconstruction
// (PrepareGptq, O(K^3)) is computed once per group and freed when the group
// is done. Groups run on up to `threads` threads, each tensor on one thread,
// and every result is written at the tensor's own index: the output does
// not depend on the thread count. Used by quantize_int4/int8 (GPTQ), prune
// (SparseGPT) and reconstruct.
#pragma once

#include <algorithm>
#include <atomic>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "libcompress/numerics/quantize.h"
#include "libcompress/pipeline/activation_stats.h"

namespace slim {

struct FactorItem {
  size_t index = 0;                         // the caller's tensor index
  const ActivationStat* hessian = nullptr;  // nullptr: no factor needed
  double damp = 0.01;
};

// work(index, factor): factor is nullptr for items without a Hessian, else
// the (possibly failed) factorisation of its input. done(index) is called
// under a lock after each item, for progress.
template <typename Work, typename Done>
void RunPerInput(const std::vector<FactorItem>& items, int threads, Work work, Done done) {
  struct Unit {
    std::vector<size_t> members;  // positions in items
    const ActivationStat* hessian;
    double damp;
  };
  std::vector<Unit> units;
  for (size_t i = 0; i < items.size(); ++i) {
    const FactorItem& it = items[i];
    auto same = std::find_if(units.begin(), units.end(), [&](const Unit& u) {
      return it.hessian && u.hessian == it.hessian && u.damp == it.damp;
    });
    if (same != units.end()) {
      same->members.push_back(i);
    } else {
      units.push_back({{i}, it.hessian, it.damp});
    }
  }
  std::atomic<size_t> next{0};
  std::mutex done_mu;
  auto worker = [&]() {
    for (size_t j = next.fetch_add(1); j < units.size(); j = next.fetch_add(1)) {
      const Unit& u = units[j];
      std::optional<Expected<GptqFactor>> factor;
      if (u.hessian) factor.emplace(PrepareGptq(u.hessian->gram.data(), static_cast<size_t>(u.hessian->dim), u.damp));
      for (size_t m : u.members) {
        work(items[m].index, factor ? &*factor : static_cast<const Expected<GptqFactor>*>(nullptr));
        std::lock_guard<std::mutex> lock(done_mu);
        done(items[m].index);
      }
    }
  };
  const size_t nthreads =
      std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), std::max<size_t>(units.size(), 1));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < nthreads; ++t) pool.emplace_back(worker);
  worker();
  for (auto& th : pool) th.join();
}

}  // namespace slim
