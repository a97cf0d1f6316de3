// Activation-aware scale search (numerics/awq.h): never worse than no
// scaling on its objective, a real gain when a few input channels are loud,
// no scaling at all when every channel is alike.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>
#include <vector>

#include "libcompress/numerics/awq.h"

using namespace slim;

namespace {

struct Layer {
  size_t k = 0, rows = 0, m = 0;
  std::vector<float> w;        // [rows, k]
  std::vector<float> x;        // [m, k]
  std::vector<double> mean_sq;
  std::vector<float> gram;     // [k, k] = X^T X / m
};

// Gaussian weights; activations whose channel j has standard deviation
// loud(j) (and neighbours correlated, as real hidden states are).
template <typename Loud>
Layer MakeLayer(size_t k, size_t rows, size_t m, uint32_t seed, Loud loud) {
  Layer l{k, rows, m, std::vector<float>(rows * k), std::vector<float>(m * k), std::vector<double>(k, 0.0),
          std::vector<float>(k * k, 0.0f)};
  std::mt19937 rng(seed);
  std::normal_distribution<float> n01(0.0f, 1.0f);
  for (float& v : l.w) v = 0.05f * n01(rng);
  for (size_t r = 0; r < m; ++r) {
    for (size_t j = 0; j < k; ++j) {
      const float v = loud(j) * n01(rng);
      l.x[r * k + j] = v;
      l.mean_sq[j] += static_cast<double>(v) * v / static_cast<double>(m);
    }
    for (size_t i = 0; i < k; ++i) {
      for (size_t j = 0; j < k; ++j) l.gram[i * k + j] += l.x[r * k + i] * l.x[r * k + j] / static_cast<float>(m);
    }
  }
  return l;
}

QuantOptions Int4(size_t group) {
  QuantOptions o;
  o.scheme.bits = 4;
  o.scheme.group_size = group;
  o.scheme.symmetric = true;
  return o;
}

}  // namespace

TEST_CASE("AWQ: loud input channels get larger weights and a lower output error", "[numerics][awq]") {
  // 1 channel in 16 is 20x louder: the salient-channel picture of the AWQ paper.
  const Layer l = MakeLayer(256, 96, 128, 11, [](size_t j) { return j % 16 == 3 ? 20.0f : 1.0f; });
  // Objective through E[x x^T], on the sample rows, or the diagonal estimate.
  for (int mode : {0, 1, 2}) {
    for (bool search : {false, true}) {
      QuantOptions o = Int4(32);
      o.search = search;
      auto r = SearchAwqScales(l.mean_sq.data(), mode == 0 ? l.gram.data() : nullptr, mode == 1 ? l.x.data() : nullptr,
                               mode == 1 ? l.m : 0, l.k, {{l.w.data(), l.rows, o}}, 20);
      INFO(r.status().message());
      REQUIRE(r.ok());
      INFO("mode " << mode << " search " << search << ": alpha " << r->alpha << ", error "
                   << r->error / r->output_energy << " (unscaled " << r->error_unscaled / r->output_energy << ")");
      CHECK(r->on_gram == (mode == 0));
      CHECK(r->on_sample == (mode == 1));
      CHECK(r->alpha > 0);
      CHECK(r->error < 0.8 * r->error_unscaled);
      // Loud channels scale up, quiet ones down; max * min = 1.
      CHECK(r->s[3] > 1.0f);
      CHECK(r->s[4] < 1.0f);
      float lo = r->s[0], hi = r->s[0];
      for (float v : r->s) {
        lo = std::min(lo, v);
        hi = std::max(hi, v);
      }
      CHECK(lo * hi == Approx(1.0f).epsilon(1e-4));
    }
  }
}

TEST_CASE("AWQ: equal channels give s = 1, and the result is never worse than none", "[numerics][awq]") {
  // Equal second moments: every candidate is s = 1, and a tie keeps alpha 0.
  Layer flat = MakeLayer(128, 32, 64, 5, [](size_t) { return 1.0f; });
  std::fill(flat.mean_sq.begin(), flat.mean_sq.end(), 1.0);
  auto r = SearchAwqScales(flat.mean_sq.data(), nullptr, flat.x.data(), flat.m, flat.k, {{flat.w.data(), flat.rows, Int4(32)}}, 20);
  REQUIRE(r.ok());
  CHECK(r->alpha == 0);
  CHECK(r->error == r->error_unscaled);
  for (float v : r->s) CHECK(v == 1.0f);

  // Random loudness, two members sharing the input (q/k/v-like): never worse.
  std::mt19937 rng(3);
  std::uniform_real_distribution<float> u(0.2f, 5.0f);
  std::vector<float> loud(192);
  for (float& v : loud) v = u(rng);
  const Layer a = MakeLayer(192, 40, 64, 21, [&](size_t j) { return loud[j]; });
  const Layer b = MakeLayer(192, 24, 64, 22, [&](size_t j) { return loud[j]; });
  QuantOptions asym = Int4(64);
  asym.scheme.symmetric = false;
  auto two = SearchAwqScales(a.mean_sq.data(), nullptr, a.x.data(), a.m, a.k,
                             {{a.w.data(), a.rows, asym}, {b.w.data(), b.rows, asym}}, 10);
  REQUIRE(two.ok());
  CHECK(two->error <= two->error_unscaled);
}

TEST_CASE("AWQ: bad arguments are errors", "[numerics][awq]") {
  const Layer l = MakeLayer(64, 8, 8, 1, [](size_t) { return 1.0f; });
  CHECK(!SearchAwqScales(l.mean_sq.data(), nullptr, nullptr, 0, l.k, {{l.w.data(), l.rows, Int4(32)}}, 0).ok());
  CHECK(!SearchAwqScales(l.mean_sq.data(), nullptr, nullptr, 0, l.k, {}, 20).ok());
  std::vector<double> bad = l.mean_sq;
  bad[7] = NAN;
  auto r = SearchAwqScales(bad.data(), nullptr, nullptr, 0, l.k, {{l.w.data(), l.rows, Int4(32)}}, 20);
  REQUIRE(!r.ok());
  CHECK(r.status().message().find("channel 7") != std::string::npos);
}
