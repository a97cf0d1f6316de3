// Shared by the kernel benchmarks: the kernel tables the host can run, the
// weight-bytes rate counter and the avx2/ref speed ratio printed after the
// runs.
#pragma once

#include <benchmark/benchmark.h>

#include <cstdio>
#include <map>
#include <string>
#include <vector>

#include "libcompress/kernels/cpu_features.h"

namespace slim_bench {

// The reference table, and its AVX2 twin when the host has AVX2+FMA+F16C
// (otherwise says so on stderr, as the ratios will then be missing).
template <typename KernelTable>
std::vector<const KernelTable*> HostKernelTables(const KernelTable& ref, const KernelTable& avx2) {
  std::vector<const KernelTable*> tables = {&ref};
  if (slim::HostCpuFeatures().has_x86_avx2()) {
    tables.push_back(&avx2);
  } else {
    std::fprintf(stderr, "host lacks AVX2+FMA+F16C: benchmarking the reference only\n");
  }
  return tables;
}

// Weight bytes read per second: the figure of merit of memory-bound kernels
// (decode-time GEMV). `bytes_per_iteration` counts every byte of the packed
// weights the kernel reads, scales and zero points included.
inline void SetWeightRate(benchmark::State& state, double bytes_per_iteration) {
  state.counters["weight_GB/s"] =
      benchmark::Counter(bytes_per_iteration * static_cast<double>(state.iterations()) / 1e9,
                         benchmark::Counter::kIsRate);
}

// Console output plus, at the end, the <isa>/ref time ratio per benchmark
// named "<case>/<isa>" (medians when run with --benchmark_repetitions).
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      const std::string& name = run.run_name.function_name;
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
    for (const auto& [name, by_isa] : times_) {
      auto ref = by_isa.find("ref");
      if (ref == by_isa.end()) continue;
      for (const auto& [isa, t] : by_isa) {
        if (isa == "ref") continue;
        // CPU time too: on a shared machine real time includes waiting.
        std::printf("%s: %s is %.2fx faster than ref in real time, %.2fx in CPU time (%s)\n", name.c_str(),
                    isa.c_str(), ref->second.real / t.real, ref->second.cpu / t.cpu,
                    ref->second.median && t.median ? "medians" : "single runs");
      }
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

// The end of a benchmark main(): runs the registered benchmarks with the
// RatioReporter; returns main's exit code.
inline int RunBenchmarksWithRatios(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}

}  // namespace slim_bench
