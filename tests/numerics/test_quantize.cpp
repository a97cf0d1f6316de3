// Quantizer and layout tests: exhaustive code round trips through every
// layout, byte-level checks of the documented nibble/tile order, the RTN
// error bound, and the scale search's error against RTN (never worse, and a
// pinned average gain).
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "libcompress/ir/dtype.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"

namespace slim {
namespace {

std::vector<float> Gaussian(size_t count, uint32_t seed, float sigma = 0.02f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> d(0.0f, sigma);
  std::vector<float> v(count);
  for (float& x : v) x = d(rng);
  return v;
}

// Student-t with 3 degrees of freedom: the heavy tails (outlier weights) that
// make max-abs scaling waste most of the code range.
std::vector<float> HeavyTailed(size_t count, uint32_t seed) {
  std::mt19937 rng(seed);
  std::student_t_distribution<float> d(3.0f);
  std::vector<float> v(count);
  for (float& x : v) x = 0.01f * d(rng);
  return v;
}

QuantOptions Options(int bits, size_t group, bool symmetric, bool search) {
  QuantOptions o;
  o.scheme = QuantScheme{bits, group, symmetric};
  o.search = search;
  return o;
}

std::vector<QuantScheme> AllSchemes() {
  std::vector<QuantScheme> s = {{8, 0, true}};
  for (size_t g : {32, 64, 128}) {
    s.push_back({4, g, true});
    s.push_back({4, g, false});
  }
  return s;
}

QuantLayout LayoutOf(QuantLayoutKind kind, size_t g, bool sym) { return QuantLayout{kind, g, sym}; }

// Per-group squared errors of q against w.
std::vector<double> GroupErrors(const std::vector<float>& w, const QuantizedMatrix& q) {
  std::vector<float> d(w.size());
  DequantizeMatrix(q, d.data());
  std::vector<double> err(q.rows * q.groups_per_row, 0.0);
  for (size_t r = 0; r < q.rows; ++r) {
    for (size_t k = 0; k < q.cols; ++k) {
      const double e = static_cast<double>(w[r * q.cols + k]) - d[r * q.cols + k];
      err[r * q.groups_per_row + k / q.group_size] += e * e;
    }
  }
  return err;
}

}  // namespace

TEST_CASE("layout names round-trip and unknown names are rejected", "[quant]") {
  const std::vector<QuantLayout> all = AllQuantLayouts();
  REQUIRE(all.size() == 13);
  for (const QuantLayout& l : all) {
    auto parsed = ParseQuantLayout(l.Name());
    REQUIRE(parsed.ok());
    CHECK(*parsed == l);
  }
  CHECK(LayoutOf(QuantLayoutKind::kQ4X8, 32, true).Name() == "q4g32_sym_x8");
  CHECK(LayoutOf(QuantLayoutKind::kQ4Row, 128, false).Name() == "q4g128_asym_row");
  for (const char* bad : {"", "q8", "q4g48_sym_row", "q4g32_sym", "Q8_ROW", "q4g32_sym_x16"}) {
    auto r = ParseQuantLayout(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("unknown quantized layout") != std::string::npos);
  }
}

TEST_CASE("size formulas match hand-computed values", "[quant]") {
  // q8_row [3, 33]: 99 code bytes, scales at 128, 3 FP32.
  CHECK(LayoutOf(QuantLayoutKind::kQ8Row, 0, true).PackedBytes(3, 33) == 140);
  // q4g32 row [3, 33]: 2 groups of 16 bytes per row = 96, scales at 128
  // (3*2 FP16 = 12 bytes), asym zeros at 192 (6 bytes).
  CHECK(LayoutOf(QuantLayoutKind::kQ4Row, 32, true).PackedBytes(3, 33) == 140);
  CHECK(LayoutOf(QuantLayoutKind::kQ4Row, 32, false).PackedBytes(3, 33) == 198);
  // q4g32 x8 [9, 33]: 2 blocks x 2 groups of 128 + 16 (+ 4) byte tiles.
  CHECK(LayoutOf(QuantLayoutKind::kQ4X8, 32, true).PackedBytes(9, 33) == 576);
  CHECK(LayoutOf(QuantLayoutKind::kQ4X8, 32, false).PackedBytes(9, 33) == 592);
  // stories260K's FFN input dimension 172 with g128: 2 groups (one partial).
  static_assert(Q4RowLayout::RowBytes(172, 128) == 128, "2 groups of 64 bytes");
  static_assert(Q4X8Layout::Bytes(8, 172, 128, true) == 2 * (512 + 16), "one block, 2 tiles");
  // TinyLlama FFN [5632, 2048]: 4.5 bits per weight at g32 symmetric.
  CHECK(PackedBitsPerWeight(LayoutOf(QuantLayoutKind::kQ4X8, 32, true), 5632, 2048) == 4.5);
  CHECK(PackedBitsPerWeight(LayoutOf(QuantLayoutKind::kQ4X8, 32, false), 5632, 2048) == 4.625);
}

TEST_CASE("all 16 int4 codes round-trip through every int4 layout", "[quant]") {
  for (const QuantLayout& layout : AllQuantLayouts()) {
    if (layout.kind == QuantLayoutKind::kQ8Row) continue;
    for (size_t n : {1, 9, 16}) {
      for (size_t k : {1, 37, 172}) {
        QuantizedMatrix q;
        q.scheme = layout.Scheme();
        q.rows = n;
        q.cols = k;
        q.group_size = layout.group_size;
        q.groups_per_row = (k + q.group_size - 1) / q.group_size;
        q.codes.resize(n * k);
        // Every row sees all 16 values in both nibble positions (k/2 runs
        // over 0..15 for even and for odd elements).
        for (size_t r = 0; r < n; ++r) {
          for (size_t e = 0; e < k; ++e) {
            const int v = static_cast<int>((e / 2 + r + (e % 2) * 5) % 16);
            q.codes[r * k + e] = static_cast<int8_t>(layout.symmetric ? v - 8 : v);
          }
        }
        for (size_t i = 0; i < n * q.groups_per_row; ++i) {
          q.scales.push_back(HalfToFloat(static_cast<uint16_t>(0x2000 + 37 * i)));
          if (!layout.symmetric) q.zeros.push_back(static_cast<uint8_t>((i * 7) % 16));
        }
        auto packed = PackQuantized(q, layout);
        REQUIRE(packed.ok());
        REQUIRE(packed->size() == layout.PackedBytes(n, k));
        auto back = UnpackQuantized(packed->data(), packed->size(), layout, n, k);
        INFO(layout.Name() << " [" << n << ", " << k << "]");
        REQUIRE(back.ok());
        CHECK(back->codes == q.codes);
        CHECK(back->scales == q.scales);
        CHECK(back->zeros == q.zeros);
        std::vector<float> d(n * k);
        REQUIRE(DequantizePacked(packed->data(), packed->size(), layout, n, k, d.data()).ok());
        for (size_t i = 0; i < n * k; ++i) {
          const size_t idx = (i / k) * q.groups_per_row + (i % k) / q.group_size;
          const int z = layout.symmetric ? 0 : q.zeros[idx];
          REQUIRE(d[i] == q.scales[idx] * static_cast<float>(q.codes[i] - z));
        }
      }
    }
  }
}

TEST_CASE("all int8 codes round-trip through q8_row", "[quant]") {
  const QuantLayout layout = LayoutOf(QuantLayoutKind::kQ8Row, 0, true);
  QuantizedMatrix q;
  q.scheme = layout.Scheme();
  q.rows = 2;
  q.cols = 255;
  q.group_size = 255;
  q.groups_per_row = 1;
  for (int r = 0; r < 2; ++r) {
    for (int v = -127; v <= 127; ++v) q.codes.push_back(static_cast<int8_t>(r ? -v : v));
  }
  q.scales = {0.015625f, 3.0e-5f};
  auto packed = PackQuantized(q, layout);
  REQUIRE(packed.ok());
  CHECK(packed->size() == 512 + 8);
  auto back = UnpackQuantized(packed->data(), packed->size(), layout, 2, 255);
  REQUIRE(back.ok());
  CHECK(back->codes == q.codes);
  CHECK(back->scales == q.scales);
  // -128 is not a code: a reader must refuse it.
  (*packed)[3] = 0x80;
  auto bad = UnpackQuantized(packed->data(), packed->size(), layout, 2, 255);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message().find("byte offset 3") != std::string::npos);
}

TEST_CASE("packed bytes follow the documented nibble and tile order", "[quant]") {
  SECTION("row layout: low nibble = even element, padding = zero code 8") {
    QuantizedMatrix q;
    q.scheme = {4, 32, true};
    q.rows = 1;
    q.cols = 2;
    q.group_size = 32;
    q.groups_per_row = 1;
    q.codes = {3, -2};  // u = 11, 6
    q.scales = {0.5f};  // FP16 0x3800
    const QuantLayout layout = LayoutOf(QuantLayoutKind::kQ4Row, 32, true);
    auto p = PackQuantized(q, layout);
    REQUIRE(p.ok());
    REQUIRE(p->size() == 66);
    CHECK((*p)[0] == 0x6B);
    for (size_t i = 1; i < 16; ++i) CHECK((*p)[i] == 0x88);
    for (size_t i = 16; i < 64; ++i) CHECK((*p)[i] == 0);
    CHECK((*p)[64] == 0x00);
    CHECK((*p)[65] == 0x38);
  }
  SECTION("x8 layout: 4 rows-bytes per lane, scales then packed zeros") {
    QuantizedMatrix q;
    q.scheme = {4, 32, false};
    q.rows = 2;
    q.cols = 8;
    q.group_size = 32;
    q.groups_per_row = 1;
    q.codes = {0, 1, 2, 3, 4, 5, 6, 7, 15, 14, 13, 12, 11, 10, 9, 8};
    q.scales = {1.0f, 2.0f};  // FP16 0x3C00, 0x4000
    q.zeros = {5, 9};
    const QuantLayout layout = LayoutOf(QuantLayoutKind::kQ4X8, 32, false);
    auto p = PackQuantized(q, layout);
    REQUIRE(p.ok());
    REQUIRE(p->size() == 148);
    const std::vector<uint8_t> chunk0 = {0x40, 0x51, 0x62, 0x73,   // row 0: (e, e+4)
                                         0xBF, 0xAE, 0x9D, 0x8C};  // row 1
    for (size_t i = 0; i < 8; ++i) CHECK((*p)[i] == chunk0[i]);
    for (size_t i = 8; i < 32; ++i) CHECK((*p)[i] == 0);  // padded rows: z = 0
    CHECK((*p)[32] == 0x55);  // row 0, elements 8..15: padding = its zero 5
    CHECK((*p)[36] == 0x99);  // row 1: zero 9
    CHECK((*p)[40] == 0x00);  // padded row 2
    CHECK((*p)[128] == 0x00);
    CHECK((*p)[129] == 0x3C);
    CHECK((*p)[131] == 0x40);
    CHECK((*p)[132] == 0x00);  // padded row scale 0
    CHECK((*p)[144] == 0x95);  // zeros of rows 0 (low) and 1 (high)
    CHECK((*p)[145] == 0x00);
  }
}

TEST_CASE("readers reject corrupted packed data, naming the byte offset", "[quant]") {
  auto w = Gaussian(9 * 33, 1);
  for (const QuantLayout& layout : AllQuantLayouts()) {
    auto q = QuantizeMatrix(w.data(), 9, 33, Options(layout.Scheme().bits, layout.group_size,
                                                    layout.symmetric, false));
    REQUIRE(q.ok());
    auto p = PackQuantized(*q, layout);
    REQUIRE(p.ok());
    INFO(layout.Name());
    auto short_read = UnpackQuantized(p->data(), p->size() - 1, layout, 9, 33);
    REQUIRE_FALSE(short_read.ok());
    CHECK(short_read.status().message().find("needs") != std::string::npos);
    if (layout.kind == QuantLayoutKind::kQ8Row) continue;
    // Padding nibble: element 33 of row 0 (high nibble of byte 16, row
    // layout) / the first code byte of padded row 9 (x8).
    std::vector<uint8_t> bad = *p;
    const size_t off = layout.kind == QuantLayoutKind::kQ4Row
                           ? 16
                           : Q4X8Layout::Groups(33, layout.group_size) *
                                 Q4X8Layout::TileBytes(layout.group_size, layout.symmetric) + 4 * 1;
    bad[off] ^= layout.kind == QuantLayoutKind::kQ4Row ? 0x10 : 0x01;
    auto r = UnpackQuantized(bad.data(), bad.size(), layout, 9, 33);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("byte offset " + std::to_string(off)) != std::string::npos);
    // A NaN scale.
    bad = *p;
    const size_t so = layout.kind == QuantLayoutKind::kQ4Row
                          ? Q4RowLayout::ScalesOffset(9, 33, layout.group_size)
                          : Q4X8Layout::CodeBytesPerTile(layout.group_size);
    bad[so] = 0x00;
    bad[so + 1] = 0x7E;
    r = UnpackQuantized(bad.data(), bad.size(), layout, 9, 33);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().message().find("scale at byte offset " + std::to_string(so)) !=
          std::string::npos);
  }
}

TEST_CASE("RTN error is at most scale / 2 per element", "[quant]") {
  const size_t n = 6, k = 172;  // 172 = 5 * 32 + 12: a partial last group
  for (uint32_t seed : {1u, 2u}) {
    const auto w = seed == 1 ? Gaussian(n * k, 7) : HeavyTailed(n * k, 8);
    for (const QuantScheme& s : AllSchemes()) {
      auto q = QuantizeMatrix(w.data(), n, k, Options(s.bits, s.group_size, s.symmetric, false));
      REQUIRE(q.ok());
      std::vector<float> d(n * k);
      DequantizeMatrix(*q, d.data());
      double max_ratio = 0.0;
      for (size_t i = 0; i < n * k; ++i) {
        const float scale = q->scales[(i / k) * q->groups_per_row + (i % k) / q->group_size];
        REQUIRE(scale > 0.0f);
        max_ratio = std::max(max_ratio, std::fabs(static_cast<double>(w[i]) - d[i]) / scale);
      }
      INFO("int" << s.bits << " g" << s.group_size << (s.symmetric ? " sym" : " asym"));
      CHECK(max_ratio <= 0.5 + 1e-5);
      CHECK(max_ratio > 0.45);  // the bound is tight: some element sits near a midpoint
      CHECK(q->error.max_abs_error > 0.0);
      CHECK(q->error.count == n * k);
      if (s.bits == 4) {
        for (float sc : q->scales) CHECK(HalfToFloat(FloatToHalf(sc)) == sc);
      }
    }
  }
}

TEST_CASE("scale search is never worse than RTN, per group", "[quant]") {
  const size_t n = 16, k = 257;
  for (uint32_t seed : {11u, 12u}) {
    const auto w = seed == 11 ? Gaussian(n * k, seed) : HeavyTailed(n * k, seed);
    for (const QuantScheme& s : AllSchemes()) {
      auto rtn = QuantizeMatrix(w.data(), n, k, Options(s.bits, s.group_size, s.symmetric, false));
      auto srch = QuantizeMatrix(w.data(), n, k, Options(s.bits, s.group_size, s.symmetric, true));
      REQUIRE(rtn.ok());
      REQUIRE(srch.ok());
      const auto er = GroupErrors(w, *rtn);
      const auto es = GroupErrors(w, *srch);
      INFO("int" << s.bits << " g" << s.group_size << (s.symmetric ? " sym" : " asym"));
      size_t strictly_better = 0;
      for (size_t i = 0; i < er.size(); ++i) {
        REQUIRE(es[i] <= er[i]);
        strictly_better += es[i] < er[i];
      }
      CHECK(strictly_better * 2 > er.size());
      CHECK(srch->error.sq_error < rtn->error.sq_error);
    }
  }
}

// Pinned averages: sq_error(search) / sq_error(RTN) over 128 Gaussian rows of
// 1024 (seeded). Measured once; the bands are narrow so a change to the
// search shows. Most of the symmetric gain comes from scales near max/8,
// which put the code -8 to use.
TEST_CASE("scale search gain is pinned on Gaussian rows", "[quant]") {
  const size_t n = 128, k = 1024;
  const auto w = Gaussian(n * k, 2024);
  struct Pin {
    QuantScheme scheme;
    double lo, hi;
  };
  const Pin pins[] = {
      // Symmetric int4 with negative scales (code -8 on either side): 0.696
      // and 0.677; positive scales only, as before, gave 0.7836 and 0.7336.
      {{4, 32, true}, 0.688, 0.705},   // measured 0.6961
      {{4, 32, false}, 0.912, 0.929},  // measured 0.9207: asym RTN already uses all 16 codes
      {{4, 128, true}, 0.669, 0.686},  // measured 0.6774
      {{8, 0, true}, 0.980, 0.993},    // measured 0.9864
  };
  for (const Pin& pin : pins) {
    const QuantScheme& s = pin.scheme;
    auto rtn = QuantizeMatrix(w.data(), n, k, Options(s.bits, s.group_size, s.symmetric, false));
    auto srch = QuantizeMatrix(w.data(), n, k, Options(s.bits, s.group_size, s.symmetric, true));
    REQUIRE(rtn.ok());
    REQUIRE(srch.ok());
    const double ratio = srch->error.sq_error / rtn->error.sq_error;
    INFO("int" << s.bits << " g" << s.group_size << (s.symmetric ? " sym" : " asym") << " ratio "
               << ratio);
    CHECK(ratio >= pin.lo);
    CHECK(ratio <= pin.hi);
  }
}

TEST_CASE("importance weights steer the search", "[quant]") {
  const size_t n = 32, k = 256;
  const auto w = Gaussian(n * k, 99);
  // Activation second moments: a few input features dominate, as in LLMs.
  std::vector<float> imp(k, 1.0f);
  for (size_t e = 0; e < k; e += 16) imp[e] = 100.0f;
  QuantOptions uniform = Options(4, 32, true, true);
  QuantOptions weighted = uniform;
  weighted.importance = imp.data();
  QuantOptions rtn = Options(4, 32, true, false);
  rtn.importance = imp.data();
  auto qu = QuantizeMatrix(w.data(), n, k, uniform);
  auto qw = QuantizeMatrix(w.data(), n, k, weighted);
  auto qr = QuantizeMatrix(w.data(), n, k, rtn);
  REQUIRE(qu.ok());
  REQUIRE(qw.ok());
  REQUIRE(qr.ok());
  const QuantErrorStats eu = MeasureQuantError(w.data(), *qu, imp.data(), 0);
  CHECK(qw->error.weighted_sq_error <= qr->error.weighted_sq_error);
  CHECK(qw->error.weighted_sq_error < 0.9 * eu.weighted_sq_error);
  // ...at the price of the unweighted error.
  CHECK(qw->error.sq_error > qu->error.sq_error);
  // Per-element importance (stride = cols) equal to the shared one gives the
  // same result.
  std::vector<float> imp_full(n * k);
  for (size_t i = 0; i < n * k; ++i) imp_full[i] = imp[i % k];
  QuantOptions full = weighted;
  full.importance = imp_full.data();
  full.importance_row_stride = k;
  auto qf = QuantizeMatrix(w.data(), n, k, full);
  REQUIRE(qf.ok());
  CHECK(qf->codes == qw->codes);
  CHECK(qf->scales == qw->scales);
}

// Activations with correlated features, as a transformer's hidden states
// have: x = z * M with z Gaussian and M a random mixing matrix. Returns the
// rows [m, k] and H = X^T X / m (double, row-major).
void CorrelatedActivations(size_t m, size_t k, uint32_t seed, std::vector<float>* x, std::vector<double>* h) {
  const auto z = Gaussian(m * k, seed, 1.0f);
  const auto mix = Gaussian(k * k, seed + 1, 1.0f);
  x->assign(m * k, 0.0f);
  for (size_t r = 0; r < m; ++r) {
    for (size_t j = 0; j < k; ++j) {
      // Each feature mixes a few neighbours strongly: a banded correlation.
      float acc = z[r * k + j];
      for (size_t t = 1; t <= 4 && j + t < k; ++t) acc += 0.8f * mix[j * k + t] * z[r * k + j + t];
      (*x)[r * k + j] = acc;
    }
  }
  h->assign(k * k, 0.0);
  for (size_t r = 0; r < m; ++r) {
    for (size_t i = 0; i < k; ++i) {
      for (size_t j = 0; j < k; ++j) (*h)[i * k + j] += static_cast<double>((*x)[r * k + i]) * (*x)[r * k + j];
    }
  }
  for (double& v : *h) v /= static_cast<double>(m);
}

// The FP32 Hessian PrepareGptq takes (ActivationStat::gram's storage).
std::vector<float> Floats(const std::vector<double>& v) {
  std::vector<float> out(v.size());
  for (size_t i = 0; i < v.size(); ++i) out[i] = static_cast<float>(v[i]);
  return out;
}

TEST_CASE("MeasureOutputError matches a direct double-precision sum", "[quant]") {
  const size_t n = 24, k = 80, m = 40;
  const auto w = Gaussian(n * k, 5);
  std::vector<float> x;
  std::vector<double> h;
  CorrelatedActivations(m, k, 6, &x, &h);
  auto q = QuantizeMatrix(w.data(), n, k, Options(4, 32, true, false));
  REQUIRE(q.ok());
  std::vector<float> d(n * k);
  DequantizeMatrix(*q, d.data());
  double num = 0, den = 0;
  for (size_t r = 0; r < m; ++r) {
    for (size_t o = 0; o < n; ++o) {
      double y = 0, e = 0;
      for (size_t i = 0; i < k; ++i) {
        y += static_cast<double>(w[o * k + i]) * x[r * k + i];
        e += (static_cast<double>(w[o * k + i]) - d[o * k + i]) * x[r * k + i];
      }
      num += e * e;
      den += y * y;
    }
  }
  // FP32 products (Eigen) against double sums: 1e-4 relative.
  CHECK(MeasureOutputError(w.data(), *q, x.data(), m) == Approx(num / den).epsilon(1e-4));
  const std::vector<float> zeros(m * k, 0.0f);
  CHECK(MeasureOutputError(w.data(), *q, zeros.data(), m) == 0.0);
}

TEST_CASE("GPTQ with a diagonal Hessian is the search itself", "[quant][gptq]") {
  // With H diagonal, U (chol of H^-1) is diagonal: no error is propagated,
  // so the codes and scales must be exactly the search's.
  const size_t n = 12, k = 172;  // K not a multiple of any group
  const auto w = HeavyTailed(n * k, 17);
  std::vector<double> h(k * k, 0.0);
  std::vector<float> imp(k);
  for (size_t i = 0; i < k; ++i) imp[i] = static_cast<float>(h[i * k + i] = 0.5 + static_cast<double>(i % 7));
  for (const QuantScheme& scheme : AllSchemes()) {
    INFO("bits " << scheme.bits << " group " << scheme.group_size << " sym " << scheme.symmetric);
    QuantOptions search = Options(scheme.bits, scheme.group_size == 0 ? 32 : scheme.group_size,
                                  scheme.symmetric, true);
    search.importance = imp.data();
    auto factor = PrepareGptq(Floats(h).data(), k, 0.01);
    REQUIRE(factor.ok());
    QuantOptions gptq = search;
    gptq.gptq = &*factor;
    auto a = QuantizeMatrix(w.data(), n, k, search);
    auto b = QuantizeMatrix(w.data(), n, k, gptq);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    CHECK(a->codes == b->codes);
    CHECK(a->scales == b->scales);
    CHECK(a->zeros == b->zeros);
  }
}

TEST_CASE("GPTQ lowers the output error on correlated activations", "[quant][gptq]") {
  const size_t n = 32, k = 256, m = 512;
  const auto w = Gaussian(n * k, 21);
  std::vector<float> x;
  std::vector<double> h;
  CorrelatedActivations(m, k, 22, &x, &h);
  std::vector<float> imp(k);
  for (size_t i = 0; i < k; ++i) imp[i] = static_cast<float>(h[i * k + i]);
  for (const QuantScheme& scheme : {QuantScheme{4, 32, true}, QuantScheme{4, 32, false},
                                    QuantScheme{4, 128, true}, QuantScheme{8, 0, true}}) {
    QuantOptions search = Options(scheme.bits, scheme.group_size == 0 ? 32 : scheme.group_size,
                                  scheme.symmetric, true);
    search.importance = imp.data();
    auto factor = PrepareGptq(Floats(h).data(), k, 0.01);
    REQUIRE(factor.ok());
    QuantOptions gptq = search;
    gptq.gptq = &*factor;
    auto a = QuantizeMatrix(w.data(), n, k, search);
    auto b = QuantizeMatrix(w.data(), n, k, gptq);
    auto b2 = QuantizeMatrix(w.data(), n, k, gptq);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    REQUIRE(b2.ok());
    CHECK(b->codes == b2->codes);  // deterministic
    const double ea = MeasureOutputError(w.data(), *a, x.data(), m);
    const double eb = MeasureOutputError(w.data(), *b, x.data(), m);
    WARN("bits " << scheme.bits << " g" << scheme.group_size << (scheme.symmetric ? " sym" : " asym")
                 << ": output error search " << ea << ", GPTQ " << eb << " (" << eb / ea << "x)");
    CHECK(eb < 0.8 * ea);
    // ...while the weight error grows: GPTQ trades it for the output's.
    CHECK(b->error.sq_error > a->error.sq_error);
  }
}

TEST_CASE("GPTQ factor: U^T U is the damped inverse Hessian, bad Hessians are refused", "[quant][gptq]") {
  const size_t k = 48, m = 300;
  std::vector<float> x;
  std::vector<double> h;
  CorrelatedActivations(m, k, 31, &x, &h);
  h[9 * k + 9] = 0.0;  // an input that never fired
  for (size_t j = 0; j < k; ++j) h[9 * k + j] = h[j * k + 9] = 0.0;
  const double damp = 0.05;
  auto f = PrepareGptq(Floats(h).data(), k, damp);
  REQUIRE(f.ok());
  CHECK(f->dead[9] == 1);
  CHECK(f->dead[8] == 0);
  // (U^T U) * H_damped = I within FP32 rounding of U.
  std::vector<double> hd = h;
  hd[9 * k + 9] = 1.0;
  double mean = 0;
  for (size_t i = 0; i < k; ++i) mean += hd[i * k + i];
  mean /= static_cast<double>(k);
  for (size_t i = 0; i < k; ++i) hd[i * k + i] += damp * mean;
  double worst = 0;
  for (size_t i = 0; i < k; ++i) {
    for (size_t j = 0; j < k; ++j) {
      if (j < i) CHECK(f->u[i * k + j] == 0.0f);
      double v = 0;  // row i of (U^T U) H
      for (size_t t = 0; t < k; ++t) {
        double uu = 0;
        for (size_t s2 = 0; s2 < k; ++s2) uu += static_cast<double>(f->u[s2 * k + i]) * f->u[s2 * k + t];
        v += uu * hd[t * k + j];
      }
      worst = std::max(worst, std::fabs(v - (i == j ? 1.0 : 0.0)));
    }
  }
  CHECK(worst < 1e-4);

  // A dead column's weights become zero codes.
  const size_t n = 4;
  const auto w = Gaussian(n * k, 3);
  QuantOptions o = Options(4, 32, true, true);
  o.gptq = &*f;
  auto z = QuantizeMatrix(w.data(), n, k, o);
  REQUIRE(z.ok());
  for (size_t r = 0; r < n; ++r) CHECK(z->codes[r * k + 9] == 0);
  // A factor for another width is refused.
  CHECK_THAT(QuantizeMatrix(w.data(), 2, 2 * k, o).status().message(), Catch::Contains("48 columns"));

  std::vector<double> bad(k * k, 0.0);
  for (size_t i = 0; i < k; ++i) bad[i * k + i] = 1.0;
  bad[5 * k + 5] = -1.0;
  CHECK_THAT(PrepareGptq(Floats(bad).data(), k, 0.01).status().message(), Catch::Contains("column 5"));
  bad[5 * k + 5] = 1.0;
  bad[0 * k + 1] = bad[1 * k + 0] = 3.0;  // indefinite off the diagonal
  CHECK_THAT(PrepareGptq(Floats(bad).data(), k, 0.01).status().message(), Catch::Contains("not positive definite"));
}

TEST_CASE("quantizer edge cases and bad input", "[quant]") {
  SECTION("an all-zero row quantizes to zeros with scale 0") {
    std::vector<float> w(2 * 40, 0.0f);
    w[45] = 0.25f;
    for (const QuantScheme& s : AllSchemes()) {
      auto q = QuantizeMatrix(w.data(), 2, 40, Options(s.bits, s.group_size, s.symmetric, true));
      REQUIRE(q.ok());
      CHECK(q->scales[0] == 0.0f);
      std::vector<float> d(80);
      DequantizeMatrix(*q, d.data());
      for (size_t i = 0; i < 40; ++i) CHECK(d[i] == 0.0f);
      CHECK(d[45] == Approx(0.25f).epsilon(1e-3));
      CHECK(q->error.sq_error < 1e-8);
      auto layouts = AllQuantLayouts();
      for (const QuantLayout& l : layouts) {
        if (!(l.Scheme().bits == s.bits && (s.bits == 8 || (l.group_size == s.group_size &&
                                                            l.symmetric == s.symmetric)))) {
          continue;
        }
        auto p = PackQuantized(*q, l);
        REQUIRE(p.ok());
        CHECK(UnpackQuantized(p->data(), p->size(), l, 2, 40).ok());
      }
    }
  }
  SECTION("a non-finite weight is named by row and column") {
    std::vector<float> w(3 * 5, 0.1f);
    w[1 * 5 + 2] = NAN;
    auto q = QuantizeMatrix(w.data(), 3, 5, Options(8, 0, true, true));
    REQUIRE_FALSE(q.ok());
    CHECK(q.status().code() == StatusCode::kInvalidInput);
    CHECK(q.status().message().find("row 1, column 2") != std::string::npos);
  }
  SECTION("bad schemes and options") {
    std::vector<float> w(8, 0.1f);
    CHECK_FALSE(QuantizeMatrix(w.data(), 1, 8, Options(4, 48, true, false)).ok());
    CHECK_FALSE(QuantizeMatrix(w.data(), 1, 8, Options(8, 0, false, false)).ok());
    CHECK_FALSE(QuantizeMatrix(w.data(), 1, 8, Options(3, 32, true, false)).ok());
    CHECK_FALSE(QuantizeMatrix(w.data(), 0, 8, Options(8, 0, true, false)).ok());
    std::vector<float> imp(8, -1.0f);
    QuantOptions o = Options(4, 32, true, true);
    o.importance = imp.data();
    auto q = QuantizeMatrix(w.data(), 1, 8, o);
    REQUIRE_FALSE(q.ok());
    CHECK(q.status().message().find("importance at index 0") != std::string::npos);
  }
  SECTION("packing refuses codes of another scheme") {
    std::vector<float> w(64, 0.1f);
    auto q = QuantizeMatrix(w.data(), 2, 32, Options(4, 32, true, false));
    REQUIRE(q.ok());
    CHECK_FALSE(PackQuantized(*q, LayoutOf(QuantLayoutKind::kQ4Row, 64, true)).ok());
    CHECK_FALSE(PackQuantized(*q, LayoutOf(QuantLayoutKind::kQ4X8, 32, false)).ok());
    CHECK_FALSE(PackQuantized(*q, LayoutOf(QuantLayoutKind::kQ8Row, 0, true)).ok());
  }
}

// int4 nl: the 16 levels of kNl4Levels with one FP16 scale per group.
TEST_CASE("int4 nl: RTN is nearest-level, the search is never worse per group, gains pinned", "[quant][nl]") {
  const size_t n = 128, k = 1024;
  const auto w = Gaussian(n * k, 2024);
  const QuantScheme nl{4, 32, true, true};
  QuantOptions o;
  o.scheme = nl;
  o.search = false;
  auto rtn = QuantizeMatrix(w.data(), n, k, o);
  o.search = true;
  auto srch = QuantizeMatrix(w.data(), n, k, o);
  auto sym = QuantizeMatrix(w.data(), n, k, Options(4, 32, true, true));
  REQUIRE(rtn.ok());
  REQUIRE(srch.ok());
  REQUIRE(sym.ok());
  CHECK(srch->scheme.nl);
  // RTN: the group's extreme weight sits exactly on level -127 (up to the
  // FP16 scale), every code is the nearest level.
  std::vector<float> d(n * k);
  DequantizeMatrix(*rtn, d.data());
  for (size_t i = 0; i < n * k; i += 97) {
    const float s = rtn->scales[(i / k) * rtn->groups_per_row + (i % k) / 32];
    double best = INFINITY;
    for (int8_t l : kNl4Levels) best = std::min(best, std::fabs(static_cast<double>(w[i]) - s * l));
    REQUIRE(std::fabs(static_cast<double>(w[i]) - d[i]) == Approx(best).margin(1e-9));
  }
  const auto er = GroupErrors(w, *rtn);
  const auto es = GroupErrors(w, *srch);
  for (size_t i = 0; i < er.size(); ++i) REQUIRE(es[i] <= er[i]);
  // Pinned (measured once, seeded): search / RTN and nl search / uniform
  // symmetric search at the same 4.5 bits per weight.
  const double gain = srch->error.sq_error / rtn->error.sq_error;
  const double vs_sym = srch->error.sq_error / sym->error.sq_error;
  INFO("nl search / RTN " << gain << ", nl search / sym search " << vs_sym);
  CHECK(gain >= 0.846);  // measured 0.8553
  CHECK(gain <= 0.864);
  CHECK(vs_sym >= 0.829);  // measured 0.8376: Gaussian weights suit the non-uniform levels
  CHECK(vs_sym <= 0.846);
}

TEST_CASE("int4 nl: all-zero groups, masks refused, GPTQ", "[quant][nl][gptq]") {
  QuantOptions o;
  o.scheme = QuantScheme{4, 32, true, true};
  std::vector<float> z(2 * 40, 0.0f);
  z[45] = 0.25f;
  auto q = QuantizeMatrix(z.data(), 2, 40, o);
  REQUIRE(q.ok());
  CHECK(q->scales[0] == 0.0f);
  std::vector<float> d(80);
  DequantizeMatrix(*q, d.data());
  for (size_t i = 0; i < 40; ++i) CHECK(d[i] == 0.0f);
  // No level is 0: the zeros beside 0.25 take level 1 (scale * 1), and the
  // least-squares scale trades their error against 0.25's.
  const float s1 = q->scales[2];
  CHECK(d[40] == s1);
  CHECK(std::fabs(s1) < 0.25f / 100);
  CHECK(d[45] == Approx(0.25f).epsilon(5e-3));

  const std::vector<uint8_t> keep(80, 1);
  o.keep = keep.data();
  auto masked = QuantizeMatrix(z.data(), 2, 40, o);
  REQUIRE_FALSE(masked.ok());
  CHECK_THAT(masked.status().message(), Catch::Contains("no level 0"));
  o.keep = nullptr;

  // GPTQ: a diagonal Hessian gives the search's codes; correlated
  // activations get a lower output error than the search.
  const size_t n = 32, k = 256, m = 512;
  const auto w = Gaussian(n * k, 21);
  std::vector<float> x;
  std::vector<double> h;
  CorrelatedActivations(m, k, 22, &x, &h);
  std::vector<float> imp(k);
  for (size_t i = 0; i < k; ++i) imp[i] = static_cast<float>(h[i * k + i]);
  o.importance = imp.data();
  std::vector<double> hd(k * k, 0.0);
  for (size_t i = 0; i < k; ++i) hd[i * k + i] = h[i * k + i];
  auto diag = PrepareGptq(Floats(hd).data(), k, 0.01);
  auto full = PrepareGptq(Floats(h).data(), k, 0.01);
  REQUIRE(diag.ok());
  REQUIRE(full.ok());
  auto a = QuantizeMatrix(w.data(), n, k, o);
  QuantOptions g = o;
  g.gptq = &*diag;
  auto b = QuantizeMatrix(w.data(), n, k, g);
  g.gptq = &*full;
  auto c = QuantizeMatrix(w.data(), n, k, g);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  REQUIRE(c.ok());
  CHECK(a->codes == b->codes);
  CHECK(a->scales == b->scales);
  const double ea = MeasureOutputError(w.data(), *a, x.data(), m);
  const double ec = MeasureOutputError(w.data(), *c, x.data(), m);
  WARN("int4 nl g32: output error search " << ea << ", GPTQ " << ec << " (" << ec / ea << "x)");
  CHECK(ec < 0.8 * ea);
}

}  // namespace slim
