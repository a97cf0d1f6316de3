// Benchmarks of the float32 GEMM kernels with FP16 weights, reference
// against AVX2 twin, on the shapes of a 1B-class decoder's FFN projection
// (hidden 2048, intermediate 5632):
//   gemv_f16w: M = 1 (one decoded token), B fp16 [N, K]; memory-bound, so the
//              figure of merit is weight bytes read per second (GB/s).
//   gemm_f16w: M = 256 (prefill block), compute-bound; GFLOP/s.
// After the runs it prints avx2/ref speed ratios (medians when run with
// --benchmark_repetitions).
#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "libcompress/ir/dtype.h"
#include "libcompress/kernels/cpu_features.h"
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
  const double iters = static_cast<double>(state.iterations());
  const double weight_bytes = static_cast<double>(n * k * sizeof(uint16_t));
  const double flops = 2.0 * static_cast<double>(m) * static_cast<double>(n) * static_cast<double>(k);
  state.counters["weight_GB/s"] =
      benchmark::Counter(weight_bytes * iters / 1e9, benchmark::Counter::kIsRate);
  state.counters["GFLOP/s"] = benchmark::Counter(flops * iters / 1e9, benchmark::Counter::kIsRate);
}

// Console output plus, at the end, the avx2/ref time ratio per shape.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const std::string& name = run.run_name.function_name;  // "<shape>/<isa>"
      const size_t slash = name.rfind('/');
      if (slash == std::string::npos) continue;
      const bool median = run.run_type == Run::RT_Aggregate && run.aggregate_name == "median";
      if (run.run_type == Run::RT_Aggregate && !median) continue;
      Entry& e = times_[name.substr(0, slash)][name.substr(slash + 1)];
      if (median || !e.median) e = {run.GetAdjustedRealTime(), run.GetAdjustedCPUTime(), median};
    }
  }
  void Finalize() override {
    ConsoleReporter::Finalize();
    for (const auto& [shape, by_isa] : times_) {
      auto ref = by_isa.find("ref");
      auto avx = by_isa.find("avx2");
      if (ref == by_isa.end() || avx == by_isa.end()) continue;
      // CPU time too: on a shared machine real time includes waiting.
      std::printf("%s: avx2 is %.2fx faster than ref in real time, %.2fx in CPU time (%s)\n",
                  shape.c_str(), ref->second.real / avx->second.real,
                  ref->second.cpu / avx->second.cpu,
                  ref->second.median && avx->second.median ? "medians" : "single runs");
    }
  }

 private:
  struct Entry {
    double real = 0;
    double cpu = 0;
    bool median = false;
  };
  std::map<std::string, std::map<std::string, Entry>> times_;
};

}  // namespace

int main(int argc, char** argv) {
  struct Shape {
    const char* name;
    size_t m, n, k;
  };
  const Shape shapes[] = {{"gemv_f16w_nk/M:1/K:2048/N:5632", 1, 5632, 2048},
                          {"gemm_f16w_nk/M:256/K:2048/N:2048", 256, 2048, 2048}};
  std::vector<const GemmF32Kernels*> tables = {&slim::kGemmF32KernelsRef};
  if (slim::HostCpuFeatures().has_x86_avx2()) {
    tables.push_back(&slim::kGemmF32KernelsAvx2);
  } else {
    std::fprintf(stderr, "host lacks AVX2+FMA+F16C: benchmarking the reference only\n");
  }
  for (const Shape& s : shapes) {
    for (const GemmF32Kernels* t : tables) {
      benchmark::RegisterBenchmark((std::string(s.name) + "/" + t->isa).c_str(), RunGemmF16w, t,
                                   s.m, s.n, s.k)
          ->Unit(benchmark::kMillisecond)
          ->UseRealTime();
    }
  }
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
