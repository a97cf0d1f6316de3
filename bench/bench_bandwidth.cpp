// Read-bandwidth probe: the ceiling a decoder that streams every weight once
// per token can reach on this host. Decode benchmarks (bench/decode_bench.sh)
// run it in the same script and quote their effective bandwidth as a ratio
// to its best figure.
//
// It reads a buffer far larger than the last-level cache (1 GiB by default;
// these machines have up to 300 MiB of L3) with several methods: AVX2 and
// AVX-512 loads (where the host has them), each as one sequential stream or
// four independent streams per thread (separate quarters of the thread's
// slice, which keeps more hardware prefetchers busy), on 1 and 2 threads
// (each thread reads a contiguous half). Every figure is the median of
// --runs passes after one warm-up pass; the buffer is written first so its
// pages exist. Output: one line per method and thread count, then
//   best <threads> <GB/s> <method>
// per thread count (GB = 1e9 bytes), the lines scripts parse.
//
//   slimpack_bench_bandwidth [--mib 1024] [--runs 7] [--threads 1,2]
// GCC 12's AVX-512 headers build "undefined" vectors as self-initialised
// locals, which -Wuninitialized reports at inlined uses (a false positive of
// the intrinsics, as in gemm_q_avx512.cpp).
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include <immintrin.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "libcompress/kernels/cpu_features.h"

namespace {

// The loaded words' sum ends here, so no compiler can drop the loads.
volatile uint64_t g_sink;

using ReadFn = uint64_t (*)(const uint8_t* p, size_t bytes, int streams);

// Sum of the 64-bit words (returned so the loads cannot be dropped).
__attribute__((target("avx2"))) uint64_t ReadAvx2(const uint8_t* p, size_t bytes, int streams) {
  const size_t part = bytes / static_cast<size_t>(streams) / 128 * 128;
  __m256i acc[4] = {_mm256_setzero_si256(), _mm256_setzero_si256(), _mm256_setzero_si256(),
                    _mm256_setzero_si256()};
  for (size_t off = 0; off < part; off += 128) {
    for (int s = 0; s < streams; ++s) {
      const auto* q = reinterpret_cast<const __m256i*>(p + static_cast<size_t>(s) * part + off);
      acc[0] = _mm256_add_epi64(acc[0], _mm256_load_si256(q));
      acc[1] = _mm256_add_epi64(acc[1], _mm256_load_si256(q + 1));
      acc[2] = _mm256_add_epi64(acc[2], _mm256_load_si256(q + 2));
      acc[3] = _mm256_add_epi64(acc[3], _mm256_load_si256(q + 3));
    }
  }
  const __m256i t = _mm256_add_epi64(_mm256_add_epi64(acc[0], acc[1]), _mm256_add_epi64(acc[2], acc[3]));
  alignas(32) uint64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), t);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx512f"))) uint64_t ReadAvx512(const uint8_t* p, size_t bytes, int streams) {
  const size_t part = bytes / static_cast<size_t>(streams) / 256 * 256;
  __m512i acc[4] = {_mm512_setzero_si512(), _mm512_setzero_si512(), _mm512_setzero_si512(),
                    _mm512_setzero_si512()};
  for (size_t off = 0; off < part; off += 256) {
    for (int s = 0; s < streams; ++s) {
      const uint8_t* q = p + static_cast<size_t>(s) * part + off;
      acc[0] = _mm512_add_epi64(acc[0], _mm512_load_si512(q));
      acc[1] = _mm512_add_epi64(acc[1], _mm512_load_si512(q + 64));
      acc[2] = _mm512_add_epi64(acc[2], _mm512_load_si512(q + 128));
      acc[3] = _mm512_add_epi64(acc[3], _mm512_load_si512(q + 192));
    }
  }
  return static_cast<uint64_t>(
      _mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(acc[0], acc[1]), _mm512_add_epi64(acc[2], acc[3]))));
}

struct Method {
  const char* name;
  ReadFn fn;
  int streams;
};

// GB/s of one pass over `bytes` split into `threads` contiguous slices.
double Pass(ReadFn fn, int streams, const uint8_t* buf, size_t bytes, int threads, uint64_t* sink) {
  const size_t slice = bytes / static_cast<size_t>(threads) / 4096 * 4096;
  std::vector<uint64_t> sums(static_cast<size_t>(threads));
  const auto t0 = std::chrono::steady_clock::now();
  std::vector<std::thread> pool;
  for (int t = 1; t < threads; ++t) {
    pool.emplace_back([&, t] { sums[static_cast<size_t>(t)] = fn(buf + static_cast<size_t>(t) * slice, slice, streams); });
  }
  sums[0] = fn(buf, slice, streams);
  for (auto& th : pool) th.join();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  for (uint64_t v : sums) *sink += v;
  return static_cast<double>(slice) * threads / s / 1e9;
}

double Median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

}  // namespace

int main(int argc, char** argv) {
  size_t mib = 1024;
  int runs = 7;
  std::vector<int> thread_counts = {1, 2};
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--mib" && i + 1 < argc) {
      mib = std::strtoull(argv[++i], nullptr, 10);
    } else if (a == "--runs" && i + 1 < argc) {
      runs = std::atoi(argv[++i]);
    } else if (a == "--threads" && i + 1 < argc) {
      thread_counts.clear();
      for (const char* s = argv[++i]; *s;) {
        thread_counts.push_back(std::atoi(s));
        while (*s && *s != ',') ++s;
        if (*s == ',') ++s;
      }
    } else {
      std::fprintf(stderr, "usage: %s [--mib N] [--runs N] [--threads 1,2]\n", argv[0]);
      return 2;
    }
  }
  if (mib < 64 || runs < 1 || thread_counts.empty() ||
      std::any_of(thread_counts.begin(), thread_counts.end(), [](int t) { return t < 1 || t > 64; })) {
    std::fprintf(stderr, "--mib must be >= 64, --runs >= 1, threads in 1..64\n");
    return 2;
  }
  const slim::CpuFeatures& cpu = slim::HostCpuFeatures();
  std::vector<Method> methods;
  if (cpu.avx2) {
    methods.push_back({"avx2-1stream", ReadAvx2, 1});
    methods.push_back({"avx2-4streams", ReadAvx2, 4});
  }
  if (cpu.avx512f) {
    methods.push_back({"avx512-1stream", ReadAvx512, 1});
    methods.push_back({"avx512-4streams", ReadAvx512, 4});
  }
  if (methods.empty()) {
    std::fprintf(stderr, "host has neither AVX2 nor AVX-512: no probe\n");
    return 2;
  }
  const size_t bytes = mib << 20;
  auto* buf = static_cast<uint8_t*>(std::aligned_alloc(4096, bytes));
  if (!buf) {
    std::fprintf(stderr, "cannot allocate %zu MiB\n", mib);
    return 2;
  }
  for (size_t i = 0; i < bytes; i += 8) {
    const uint64_t v = i * 0x9E3779B97F4A7C15ull;
    std::memcpy(buf + i, &v, 8);
  }
  uint64_t sink = 0;
  std::printf("bandwidth probe: %zu MiB buffer, median of %d passes after a warm-up\n", mib, runs);
  for (int threads : thread_counts) {
    double best = 0;
    const char* best_name = "";
    for (const Method& m : methods) {
      Pass(m.fn, m.streams, buf, bytes, threads, &sink);
      std::vector<double> rates;
      for (int r = 0; r < runs; ++r) rates.push_back(Pass(m.fn, m.streams, buf, bytes, threads, &sink));
      const double med = Median(rates);
      std::printf("  %-16s %d thread%s %7.2f GB/s\n", m.name, threads, threads == 1 ? " " : "s", med);
      if (med > best) {
        best = med;
        best_name = m.name;
      }
    }
    std::printf("best %d %.2f %s\n", threads, best, best_name);
  }
  std::free(buf);
  g_sink = sink;
  return 0;
}
