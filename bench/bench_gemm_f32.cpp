// Benchmarks of the float32 GEMM kernels with FP16 weights, reference
// against AVX2 twin, on the shapes of a 1B-class decoder's FFN projection
// (hidden 2048, intermediate 5632):
//   gemv_f16w: M = 1 (one decoded token), B fp16 [N, K]; memory-bound, so the
//              figure of merit is weight bytes read per second (GB/s).
//   gemm_f16w: M = 256 (prefill block), compute-bound; GFLOP/s.
// After the runs it prints avx2/ref speed ratios (medians when run with
// --benchmark_repetitions).
#include <benchmark/benchmark.h>

#include <random>
#include <string>
#include <vector>

#include "bench/bench_util.h"
#include "libcompress/ir/dtype.h"
#include "libcompress/kernels/gemm_f32.h"

namespace {

using slim::GemmBLayout;
using slim::GemmF32Kernels;

void RunGemmF16w(benchmark::State& state, const GemmF32Kernels* kernels, size_t m, size_t n,
                 size_t k) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> a(m * k);
  for (auto& x : a) x = dist(rng);
  std::vector<uint16_t> b(n * k);
  for (auto& x : b) x = slim::FloatToHalf(dist(rng));
  std::vector<float> c(m * n);
  for (auto _ : state) {
    kernels->gemm_f32_f16w(m, n, k, a.data(), k, b.data(), k, GemmBLayout::kNK, c.data(), n);
    benchmark::DoNotOptimize(c.data());
    benchmark::ClobberMemory();
  }
  slim_bench::SetWeightRate(state, static_cast<double>(n * k * sizeof(uint16_t)));
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  state.counters["GFLOP/s"] = benchmark::Counter(
      flops * static_cast<double>(state.iterations()) / 1e9, benchmark::Counter::kIsRate);
}

}  // namespace

int main(int argc, char** argv) {
  struct Shape {
    const char* name;
    size_t m, n, k;
  };
  const Shape shapes[] = {{"gemv_f16w_nk/M:1/K:2048/N:5632", 1, 5632, 2048},
                          {"gemm_f16w_nk/M:256/K:2048/N:2048", 256, 2048, 2048}};
  const std::vector<const GemmF32Kernels*> tables =
      slim_bench::HostKernelTables(slim::kGemmF32KernelsRef, slim::kGemmF32KernelsAvx2);
  for (const Shape& s : shapes) {
    for (const GemmF32Kernels* t : tables) {
      benchmark::RegisterBenchmark((std::string(s.name) + "/" + t->isa).c_str(), RunGemmF16w, t,
                                   s.m, s.n, s.k)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  return slim_bench::RunBenchmarksWithRatios(argc, argv);
}
