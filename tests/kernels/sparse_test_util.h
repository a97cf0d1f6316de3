// Shared by the sparse-layout and nl kernel tests (test_gemm_q4s24*.cpp,
// test_gemm_q8_sparse.cpp, test_gemm_q4nl.cpp): the tables to check, a 2:4
// matrix, a kernel run on column ranges, and the two checks every SIMD twin
// must pass.
#pragma once

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdint>
#include <random>
#include <vector>

#include "libcompress/kernels/gemm_q.h"

namespace slim_test {

// Every kernel table this host runs, the reference first.
inline std::vector<const slim::QGemmKernels*> RunnableTables() {
  std::vector<const slim::QGemmKernels*> tables;
  for (const slim::QGemmKernels* t : slim::kQGemmTables) {
    if (slim::QGemmTableRuns(*t)) tables.push_back(t);
  }
  if (tables.size() == 1) WARN("host runs no SIMD kernel table: only the reference kernel is checked");
  return tables;
}

// A 2:4 matrix: in every quad two random positions keep a Gaussian value.
inline std::vector<float> Sparse24(size_t n, size_t k, uint32_t seed) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, 0.05f);
  std::vector<float> w(n * k, 0.0f);
  for (size_t r = 0; r < n; ++r) {
    for (size_t c0 = 0; c0 < k; c0 += 4) {
      const int a = static_cast<int>(rng() % 4);
      const int b = (a + 1 + static_cast<int>(rng() % 3)) % 4;
      for (int p : {a, b}) {
        if (c0 + static_cast<size_t>(p) < k) w[r * k + c0 + static_cast<size_t>(p)] = d(rng);
      }
    }
  }
  return w;
}

// Y of fn on columns [n_begin, n_end); other columns stay 0. g: the group
// size (ignored by int8 kernels).
inline std::vector<float> RunQGemm(slim::QGemmFn fn, size_t g, const std::vector<float>& x,
                                   const std::vector<uint8_t>& w, size_t m, size_t n, size_t k, size_t n_begin = 0,
                                   size_t n_end = SIZE_MAX) {
  slim::QGemmArgs a;
  a.m = m;
  a.n = n;
  a.k = k;
  a.group_size = g;
  a.n_begin = n_begin;
  a.n_end = n_end;
  std::vector<float> y(m * n, 0.0f);
  fn(a, x.data(), w.data(), y.data());
  return y;
}

// gemm_q.h's bound between a reordered float sum and the reference:
// |y_simd - y_ref| <= 2 (K + 8) 2^-24 sum_k |x_k w'_k| (wd: dequantized W).
inline void CheckTwinBound(const std::vector<float>& x, const std::vector<float>& wd, const std::vector<float>& y_simd,
                           const std::vector<float>& y_ref, size_t m, size_t n, size_t k) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t r = 0; r < n; ++r) {
      double abs_dot = 0;
      for (size_t e = 0; e < k; ++e) abs_dot += std::fabs(x[i * k + e] * wd[r * k + e]);
      CHECK(std::fabs(y_simd[i * n + r] - y_ref[i * n + r]) <=
            2.0 * static_cast<double>(k + 8) * std::ldexp(1.0, -24) * abs_dot);
    }
  }
}

// A run on columns [8, 24) computes those columns as the full run did and
// touches no others.
inline void CheckColumnRange(const std::vector<float>& y_part, const std::vector<float>& y_full, size_t m, size_t n) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t r = 0; r < n; ++r) {
      CHECK(y_part[i * n + r] == (r >= 8 && r < 24 ? y_full[i * n + r] : 0.0f));
    }
  }
}

}  // namespace slim_test
