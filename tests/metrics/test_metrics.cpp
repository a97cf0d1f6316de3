#include <catch2/catch.hpp>
#include <cmath>

#include "libcompress/metrics/metrics.h"

using namespace slim::metrics;

TEST_CASE("NLL, KL and top-1 on hand-computed values", "[metrics]") {
  const float uniform[4] = {0, 0, 0, 0};
  CHECK(TokenNll(uniform, 4, 2) == Approx(std::log(4.0)));
  const float a[3] = {1, 2, 3};
  const float shifted[3] = {11, 12, 13};  // softmax is shift invariant
  CHECK(KlDivergence(a, shifted, 3) == Approx(0).margin(1e-12));
  const float b[3] = {3, 2, 1};
  // KL(p||q) with p = softmax(a), q = softmax(b), computed by hand.
  const double z = std::exp(1.0) + std::exp(2.0) + std::exp(3.0);
  const double p[3] = {std::exp(1.0) / z, std::exp(2.0) / z, std::exp(3.0) / z};
  const double kl = p[0] * std::log(p[0] / p[2]) + p[2] * std::log(p[2] / p[0]);
  CHECK(KlDivergence(a, b, 3) == Approx(kl).epsilon(1e-9));
  CHECK(ArgMax(a, 3) == 2);
  const float tie[3] = {5, 5, 1};
  CHECK(ArgMax(tie, 3) == 0);
}

TEST_CASE("cosine, relative L2, percentile", "[metrics]") {
  const float x[3] = {1, 0, 0};
  const float y[3] = {0, 1, 0};
  CHECK(Cosine(x, x, 3) == Approx(1));
  CHECK(Cosine(x, y, 3) == Approx(0));
  const float z[3] = {1.1f, 0, 0};
  CHECK(RelativeL2(x, z, 3) == Approx(0.1).epsilon(1e-6));
  CHECK(Percentile({1, 2, 3, 4, 5}, 0.5) == Approx(3));
  CHECK(Percentile({1, 2, 3, 4}, 0.99) == Approx(3.97));
}
