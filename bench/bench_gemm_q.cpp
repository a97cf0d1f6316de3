// Benchmarks of the quantized GEMV kernels (M = 1, one decoded token) on a
// 1B-class decoder's FFN projection (K = 2048 inputs, N = 5632 outputs), for
// every dense layout (int4 nl included) and compute path, reference against every SIMD table the host
// runs (AVX2, AVX-512). Decode is
// memory-bound, so the figure of merit is packed weight bytes read per
// second (scales and zero points included). After the runs it prints the
// avx2/ref speed ratio per layout and path (medians when run with
// --benchmark_repetitions).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"

namespace {

constexpr size_t kK = 2048;
constexpr size_t kN = 5632;

std::vector<uint8_t> PackedWeights(const slim::QuantLayout& layout) {
  std::mt19937 rng(42);
  std::normal_distribution<float> dist(0.0f, 0.02f);
  std::vector<float> w(kN * kK);
  for (float& v : w) v = dist(rng);
  slim::QuantOptions opt;
  opt.scheme = layout.Scheme();
  opt.search = false;  // the kernels' speed does not depend on how scales were chosen
  auto q = slim::QuantizeMatrix(w.data(), kN, kK, opt);
  if (!q.ok()) return {};
  auto packed = slim::PackQuantized(*q, layout);
  return packed.ok() ? std::move(packed).value() : std::vector<uint8_t>{};
}

void RunGemv(benchmark::State& state, slim::QuantLayout layout, slim::QGemmFn fn) {
  const std::vector<uint8_t> w = PackedWeights(layout);
  if (w.empty()) {
    state.SkipWithError("quantization or packing failed");
    return;
  }
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(kK), y(kN);
  for (float& v : x) v = dist(rng);
  slim::QGemmArgs args;
  args.m = 1;
  args.n = kN;
  args.k = kK;
  args.group_size = layout.group_size;
  args.symmetric = layout.symmetric;
  for (auto _ : state) {
    fn(args, x.data(), w.data(), y.data());
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  slim_bench::SetWeightRate(state, static_cast<double>(w.size()));
  state.counters["bits/weight"] = slim::PackedBitsPerWeight(layout, kN, kK);
}

// The same product over copies of the weights that together exceed any
// last-level cache these hosts have (300 MiB): each iteration multiplies the
// next copy, so the weights stream from DRAM as in decoding a real model.
void RunGemvDram(benchmark::State& state, slim::QuantLayout layout, slim::QGemmFn fn) {
  const std::vector<uint8_t> one = PackedWeights(layout);
  if (one.empty()) {
    state.SkipWithError("quantization or packing failed");
    return;
  }
  const size_t copies = (size_t{1} << 30) / one.size() + 1;
  std::vector<uint8_t> w(copies * one.size());
  for (size_t c = 0; c < copies; ++c) std::copy(one.begin(), one.end(), w.begin() + c * one.size());
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> x(kK), y(kN);
  for (float& v : x) v = dist(rng);
  slim::QGemmArgs args;
  args.m = 1;
  args.n = kN;
  args.k = kK;
  args.group_size = layout.group_size;
  args.symmetric = layout.symmetric;
  size_t c = 0;
  for (auto _ : state) {
    fn(args, x.data(), w.data() + c * one.size(), y.data());
    c = (c + 1) % copies;
    benchmark::DoNotOptimize(y.data());
    benchmark::ClobberMemory();
  }
  slim_bench::SetWeightRate(state, static_cast<double>(one.size()));
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<const slim::QGemmKernels*> tables;
  for (const slim::QGemmKernels* t : slim::kQGemmTables) {
    if (slim::QGemmTableRuns(*t)) tables.push_back(t);
  }
  std::vector<slim::QuantLayout> layouts = slim::AllQuantLayouts();
  for (const slim::QuantLayout& l : slim::AllNlQuantLayouts()) layouts.push_back(l);
  for (const slim::QuantLayout& layout : layouts) {
    for (slim::QComputePath path : {slim::QComputePath::kF32DequantFma, slim::QComputePath::kI8Dot}) {
      for (const slim::QGemmKernels* t : tables) {
        auto plan = slim::SelectQGemm(layout, path, *t);
        if (!plan.ok()) continue;  // no i8-dot kernel for row layouts
        const std::string name = "gemv_" + layout.Name() + "_" + slim::QComputePathName(path) +
                                 "/M:1/K:2048/N:5632/" + t->isa;
        benchmark::RegisterBenchmark(name.c_str(), RunGemv, layout, plan->fn)
            ->Unit(benchmark::kMillisecond)
            ->UseRealTime();
        if (t != tables.front()) {  // the refs are far from memory-bound
          const std::string dram = "dram_gemv_" + layout.Name() + "_" + slim::QComputePathName(path) +
                                   "/M:1/K:2048/N:5632/" + t->isa;
          benchmark::RegisterBenchmark(dram.c_str(), RunGemvDram, layout, plan->fn)
              ->Unit(benchmark::kMillisecond)
              ->UseRealTime();
        }
      }
    }
  }
  return slim_bench::RunBenchmarksWithRatios(argc, argv);
}
