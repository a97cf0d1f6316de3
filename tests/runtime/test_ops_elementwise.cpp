// Elementwise operators run as one-node graphs through the interpreter:
// broadcasting of awkward shapes against a naive reference, 16-bit rounding,
// integer semantics (truncating Div, exact Pow, wrapping), Cast rounding and
// saturation, opset-dependent Clip, and errors that name the node.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "libcompress/runtime/interpreter.h"
#include "tests/runtime/op_test_util.h"

using namespace slim;

using slim_test::F32;
using slim_test::Op;
using slim_test::RunNode;

namespace {

template <typename T>
Tensor Typed(DType dt, std::vector<int64_t> shape, std::vector<T> v) {
  return Tensor::FromVector(dt, std::move(shape), v);
}
Tensor F16(std::vector<int64_t> shape, const std::vector<float>& v) {
  std::vector<uint16_t> h;
  for (float f : v) h.push_back(FloatToHalf(f));
  return Tensor::FromVector(DType::kFloat16, std::move(shape), h);
}
template <typename T>
std::vector<T> Values(const Tensor& t) {
  std::vector<T> v(static_cast<size_t>(t.numel()));
  if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * sizeof(T));
  return v;
}

// Deterministic, non-trivial values.
std::vector<float> Ramp(int64_t n, float scale) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i)
    v[static_cast<size_t>(i)] = scale * static_cast<float>((i * 37) % 23 - 11);
  return v;
}

// Naive numpy broadcasting by multi-index, independent of the runtime's plan.
std::vector<float> NaiveBroadcast(const std::vector<int64_t>& as, const std::vector<float>& a,
                                  const std::vector<int64_t>& bs, const std::vector<float>& b,
                                  const std::vector<int64_t>& os, float (*f)(float, float)) {
  int64_t n = 1;
  for (int64_t d : os) n *= d;
  std::vector<float> out(static_cast<size_t>(n));
  auto index = [&](const std::vector<int64_t>& s, int64_t flat) {
    int64_t idx = 0, mul = 1;
    for (size_t k = os.size(); k-- > 0;) {
      const int64_t coord = flat % os[k];
      flat /= os[k];
      const size_t off = os.size() - s.size();
      if (k >= off) {
        const int64_t dim = s[k - off];
        idx += (dim == 1 ? 0 : coord) * mul;
        mul *= dim;
      }
    }
    return idx;
  };
  for (int64_t i = 0; i < n; ++i) {
    out[static_cast<size_t>(i)] =
        f(a[static_cast<size_t>(index(as, i))], b[static_cast<size_t>(index(bs, i))]);
  }
  return out;
}

}  // namespace

TEST_CASE("Add/Sub/Mul/Div broadcast awkward shapes like numpy", "[runtime][ops]") {
  struct Case {
    std::vector<int64_t> a, b, out;
  };
  const std::vector<Case> cases = {{{2, 1, 3}, {4, 1}, {2, 4, 3}},
                                   {{3, 5, 7}, {7}, {3, 5, 7}},
                                   {{3, 1, 7}, {5, 1}, {3, 5, 7}},
                                   {{1}, {2, 3}, {2, 3}},
                                   {{}, {4, 1, 2}, {4, 1, 2}},
                                   {{33}, {33}, {33}},
                                   {{2, 3, 1, 5}, {3, 4, 1}, {2, 3, 4, 5}},
                                   {{1, 1}, {1}, {1, 1}},
                                   {{0, 3}, {3}, {0, 3}}};
  const std::vector<std::pair<std::string, float (*)(float, float)>> ops = {
      {"Add", [](float x, float y) { return x + y; }},
      {"Sub", [](float x, float y) { return x - y; }},
      {"Mul", [](float x, float y) { return x * y; }},
      {"Div", [](float x, float y) { return x / y; }}};
  for (const auto& c : cases) {
    int64_t na = 1, nb = 1;
    for (int64_t d : c.a) na *= d;
    for (int64_t d : c.b) nb *= d;
    const auto va = Ramp(na, 0.5f);
    auto vb = Ramp(nb, 0.25f);
    for (auto& v : vb) v += 3.0f;  // keep divisors away from zero
    for (const auto& [name, f] : ops) {
      INFO(name << " " << ShapeToString(c.a) << " x " << ShapeToString(c.b));
      auto out = RunNode(Op(name), {F32(c.a, va), F32(c.b, vb)});
      REQUIRE(out.ok());
      CHECK((*out)[0].shape() == c.out);
      CHECK(Values<float>((*out)[0]) == NaiveBroadcast(c.a, va, c.b, vb, c.out, f));
    }
  }
}

TEST_CASE("shapes that do not broadcast are an error naming the node", "[runtime][ops]") {
  auto out = RunNode(Op("Add"), {F32({2, 3}, Ramp(6, 1)), F32({4}, Ramp(4, 1))});
  REQUIRE_FALSE(out.ok());
  CHECK_THAT(out.status().message(), Catch::Contains("'n0'") && Catch::Contains("broadcast"));
  auto mixed = RunNode(Op("Mul"), {F32({2}, {1, 2}), Typed<int64_t>(DType::kInt64, {2}, {1, 2})});
  REQUIRE_FALSE(mixed.ok());
  CHECK_THAT(mixed.status().message(), Catch::Contains("dtypes float32 and int64"));
  auto sqrt_int = RunNode(Op("Sqrt"), {Typed<int32_t>(DType::kInt32, {1}, {4})});
  REQUIRE_FALSE(sqrt_int.ok());
  CHECK(sqrt_int.status().code() == StatusCode::kUnsupported);
}

TEST_CASE("float16 results are computed in float32 and rounded to nearest even", "[runtime][ops]") {
  const float ulp = std::ldexp(1.0f, -10);  // fp16 spacing at 1.0
  // 1 + ulp/2 ties to 1 (even); (1 + ulp) + ulp/2 ties to 1 + 2 ulp (even).
  auto out = RunNode(Op("Add"), {F16({2}, {1.0f, 1.0f + ulp}), F16({1}, {ulp / 2})});
  REQUIRE(out.ok());
  REQUIRE((*out)[0].dtype() == DType::kFloat16);
  CHECK((*out)[0].FloatAt(0) == 1.0f);
  CHECK((*out)[0].FloatAt(1) == 1.0f + 2 * ulp);
  // Overflow past fp16 max becomes inf; Sqrt of fp16 matches rounded float.
  auto big = RunNode(Op("Mul"), {F16({1}, {60000.0f}), F16({1}, {2.0f})});
  REQUIRE(big.ok());
  CHECK(std::isinf((*big)[0].FloatAt(0)));
  auto s = RunNode(Op("Sqrt"), {F16({1}, {2.0f})});
  REQUIRE(s.ok());
  CHECK((*s)[0].FloatAt(0) == HalfToFloat(FloatToHalf(std::sqrt(2.0f))));
  // bfloat16 keeps its dtype too.
  const Tensor b16 =
      Tensor::FromVector(DType::kBFloat16, {1}, std::vector<uint16_t>{FloatToBFloat16(3.0f)});
  auto neg = RunNode(Op("Neg"), {b16});
  REQUIRE(neg.ok());
  CHECK((*neg)[0].dtype() == DType::kBFloat16);
  CHECK((*neg)[0].FloatAt(0) == -3.0f);
}

TEST_CASE("float64 is computed in double", "[runtime][ops]") {
  const double third = 1.0 / 3.0;
  auto out = RunNode(Op("Add"), {Typed<double>(DType::kFloat64, {1}, {third}),
                                 Typed<double>(DType::kFloat64, {1}, {1e-12})});
  REQUIRE(out.ok());
  CHECK(Values<double>((*out)[0])[0] == third + 1e-12);
}

TEST_CASE("integer arithmetic: Div truncates, Pow is exact, overflow wraps", "[runtime][ops]") {
  auto div = RunNode(Op("Div"), {Typed<int32_t>(DType::kInt32, {4}, {-7, 7, -7, 7}),
                                 Typed<int32_t>(DType::kInt32, {4}, {2, -2, -2, 2})});
  REQUIRE(div.ok());
  CHECK(Values<int32_t>((*div)[0]) == std::vector<int32_t>{-3, -3, 3, 3});
  auto zero = RunNode(Op("Div"), {Typed<int32_t>(DType::kInt32, {2}, {1, 2}),
                                  Typed<int32_t>(DType::kInt32, {2}, {1, 0})});
  REQUIRE_FALSE(zero.ok());
  CHECK_THAT(zero.status().message(), Catch::Contains("division by zero"));
  auto pow = RunNode(Op("Pow"), {Typed<int64_t>(DType::kInt64, {3}, {3, 2, 2}),
                                 Typed<int64_t>(DType::kInt64, {3}, {39, 10, -1})});
  REQUIRE(pow.ok());
  CHECK(Values<int64_t>((*pow)[0]) == std::vector<int64_t>{4052555153018976267LL, 1024, 0});
  auto powf =
      RunNode(Op("Pow"), {Typed<int32_t>(DType::kInt32, {2}, {2, 3}), F32({2}, {0.5f, 2.0f})});
  REQUIRE(powf.ok());
  CHECK((*powf)[0].dtype() == DType::kInt32);
  CHECK(Values<int32_t>((*powf)[0]) == std::vector<int32_t>{1, 9});
  auto wrap = RunNode(Op("Add"), {Typed<uint8_t>(DType::kUInt8, {1}, {250}),
                                  Typed<uint8_t>(DType::kUInt8, {1}, {10})});
  REQUIRE(wrap.ok());
  CHECK(Values<uint8_t>((*wrap)[0]) == std::vector<uint8_t>{4});
  auto imax =
      RunNode(Op("Mul"), {Typed<int64_t>(DType::kInt64, {1}, {std::numeric_limits<int64_t>::max()}),
                          Typed<int64_t>(DType::kInt64, {1}, {2})});
  REQUIRE(imax.ok());
  CHECK(Values<int64_t>((*imax)[0]) == std::vector<int64_t>{-2});
  auto fpow = RunNode(Op("Pow"), {F32({2}, {2.0f, 4.0f}), Typed<int64_t>(DType::kInt64, {1}, {3})});
  REQUIRE(fpow.ok());
  CHECK(Values<float>((*fpow)[0]) == std::vector<float>{8.0f, 64.0f});
}

TEST_CASE("Cast truncates, saturates and rounds to nearest even", "[runtime][ops]") {
  auto cast = [](const Tensor& x, DType to) {
    return RunNode(Op("Cast", {{"to", Attribute::Int(static_cast<int64_t>(to))}}), {x});
  };
  auto i32 = cast(F32({4}, {-1.7f, 2.9f, 300.5f, NAN}), DType::kInt32);
  REQUIRE(i32.ok());
  CHECK(Values<int32_t>((*i32)[0]) == std::vector<int32_t>{-1, 2, 300, 0});
  auto u8 = cast(F32({3}, {300.0f, -5.0f, 7.9f}), DType::kUInt8);
  REQUIRE(u8.ok());
  CHECK(Values<uint8_t>((*u8)[0]) == std::vector<uint8_t>{255, 0, 7});
  auto b = cast(F32({3}, {0.0f, -0.5f, NAN}), DType::kBool);
  REQUIRE(b.ok());
  CHECK(Values<uint8_t>((*b)[0]) == std::vector<uint8_t>{0, 1, 1});
  auto from_bool = cast(Typed<uint8_t>(DType::kBool, {2}, {1, 0}), DType::kFloat16);
  REQUIRE(from_bool.ok());
  CHECK((*from_bool)[0].FloatAt(0) == 1.0f);
  CHECK((*from_bool)[0].FloatAt(1) == 0.0f);
  // double -> fp16 rounds once: 1 + 2^-11 + 2^-40 is just above the tie
  // between 1 and 1 + 2^-10, so it rounds up, although double -> float
  // (1 + 2^-11, a tie) -> half would round down to 1.
  const double d = 1.0 + std::ldexp(1.0, -11) + std::ldexp(1.0, -40);
  auto h = cast(Typed<double>(DType::kFloat64, {1}, {d}), DType::kFloat16);
  REQUIRE(h.ok());
  CHECK((*h)[0].FloatAt(0) == 1.0f + std::ldexp(1.0f, -10));
  auto i2i = cast(Typed<int64_t>(DType::kInt64, {2}, {257, -1}), DType::kUInt8);
  REQUIRE(i2i.ok());
  CHECK(Values<uint8_t>((*i2i)[0]) == std::vector<uint8_t>{1, 255});
  auto like = RunNode(Op("CastLike"), {F32({1}, {2.5f}), F16({1}, {0.0f})});
  REQUIRE(like.ok());
  CHECK((*like)[0].dtype() == DType::kFloat16);
  CHECK((*like)[0].FloatAt(0) == 2.5f);
  auto bad = cast(F32({1}, {1.0f}), DType::kString);
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().code() == StatusCode::kUnsupported);
}

TEST_CASE("Clip bounds are attributes before opset 11 and inputs after", "[runtime][ops]") {
  const Tensor x = F32({5}, {-3, -1, 0, 1, 3});
  auto v6 =
      RunNode(Op("Clip", {{"min", Attribute::Float(-1.5f)}, {"max", Attribute::Float(2)}}), {x}, 9);
  REQUIRE(v6.ok());
  CHECK(Values<float>((*v6)[0]) == std::vector<float>{-1.5f, -1, 0, 1, 2});
  auto v13 = RunNode(Op("Clip"), {x, Tensor(), F32({}, {0.5f})}, 13);
  REQUIRE(v13.ok());
  CHECK(Values<float>((*v13)[0]) == std::vector<float>{-3, -1, 0, 0.5f, 0.5f});
  auto ints = RunNode(
      Op("Clip"),
      {Typed<int8_t>(DType::kInt8, {3}, {-128, 5, 127}), Typed<int8_t>(DType::kInt8, {}, {-4})},
      13);
  REQUIRE(ints.ok());
  CHECK(Values<int8_t>((*ints)[0]) == std::vector<int8_t>{-4, 5, 127});
  auto not_scalar = RunNode(Op("Clip"), {x, F32({2}, {0, 1})}, 13);
  REQUIRE_FALSE(not_scalar.ok());
  CHECK_THAT(not_scalar.status().message(), Catch::Contains("scalar"));
}

TEST_CASE("comparisons, logic and Where", "[runtime][ops]") {
  const Tensor a = F32({2, 2}, {1, 2, 3, NAN});
  const Tensor b = F32({2}, {2, 2});
  const std::map<std::string, std::vector<uint8_t>> expect = {{"Equal", {0, 1, 0, 0}},
                                                              {"Less", {1, 0, 0, 0}},
                                                              {"LessOrEqual", {1, 1, 0, 0}},
                                                              {"Greater", {0, 0, 1, 0}},
                                                              {"GreaterOrEqual", {0, 1, 1, 0}}};
  for (const auto& [name, want] : expect) {
    INFO(name);
    auto out = RunNode(Op(name), {a, b});
    REQUIRE(out.ok());
    CHECK((*out)[0].dtype() == DType::kBool);
    CHECK(Values<uint8_t>((*out)[0]) == want);
  }
  const Tensor t = Typed<uint8_t>(DType::kBool, {4}, {1, 1, 0, 0});
  const Tensor u = Typed<uint8_t>(DType::kBool, {4}, {1, 0, 1, 0});
  auto andv = RunNode(Op("And"), {t, u});
  auto orv = RunNode(Op("Or"), {t, u});
  auto notv = RunNode(Op("Not"), {t});
  REQUIRE((andv.ok() && orv.ok() && notv.ok()));
  CHECK(Values<uint8_t>((*andv)[0]) == std::vector<uint8_t>{1, 0, 0, 0});
  CHECK(Values<uint8_t>((*orv)[0]) == std::vector<uint8_t>{1, 1, 1, 0});
  CHECK(Values<uint8_t>((*notv)[0]) == std::vector<uint8_t>{0, 0, 1, 1});
  auto and_float = RunNode(Op("And"), {a, a});
  CHECK_FALSE(and_float.ok());

  // Where broadcasts all three inputs: cond [2,1], X [3], Y scalar.
  auto w = RunNode(Op("Where"), {Typed<uint8_t>(DType::kBool, {2, 1}, {1, 0}),
                                 Typed<int64_t>(DType::kInt64, {3}, {1, 2, 3}),
                                 Typed<int64_t>(DType::kInt64, {}, {-9})});
  REQUIRE(w.ok());
  CHECK((*w)[0].shape() == std::vector<int64_t>{2, 3});
  CHECK(Values<int64_t>((*w)[0]) == std::vector<int64_t>{1, 2, 3, -9, -9, -9});
  auto wbad = RunNode(Op("Where"), {F32({1}, {1}), F32({1}, {1}), F32({1}, {1})});
  REQUIRE_FALSE(wbad.ok());
  CHECK_THAT(wbad.status().message(), Catch::Contains("expected bool"));
}

TEST_CASE("variadic Max/Min broadcast every input and propagate NaN", "[runtime][ops]") {
  auto mx = RunNode(Op("Max"), {F32({3}, {1, 5, NAN}), F32({2, 1}, {2, 4}), F32({}, {3})});
  REQUIRE(mx.ok());
  const auto v = Values<float>((*mx)[0]);
  REQUIRE(v.size() == 6);
  CHECK(v[0] == 3);
  CHECK(v[1] == 5);
  CHECK(std::isnan(v[2]));
  CHECK(v[3] == 4);
  CHECK(v[4] == 5);
  auto mn = RunNode(Op("Min"), {Typed<uint16_t>(DType::kUInt16, {2}, {7, 65535})});
  REQUIRE(mn.ok());
  CHECK(Values<uint16_t>((*mn)[0]) == std::vector<uint16_t>{7, 65535});
  auto mn2 = RunNode(Op("Min"), {Typed<int32_t>(DType::kInt32, {2}, {7, -3}),
                                 Typed<int32_t>(DType::kInt32, {2}, {-8, 0})});
  REQUIRE(mn2.ok());
  CHECK(Values<int32_t>((*mn2)[0]) == std::vector<int32_t>{-8, -3});
}

TEST_CASE("unary math and activations match their formulas", "[runtime][ops]") {
  const std::vector<float> xs = {-4.0f, -0.5f, 0.0f, 0.25f, 3.0f};
  const Tensor x = F32({5}, xs);
  struct Case {
    Node node;
    double (*ref)(double);
  };
  const std::vector<Case> cases = {
      {Op("Exp"), [](double v) { return std::exp(v); }},
      {Op("Tanh"), [](double v) { return std::tanh(v); }},
      {Op("Erf"), [](double v) { return std::erf(v); }},
      {Op("Sigmoid"), [](double v) { return 1 / (1 + std::exp(-v)); }},
      {Op("Cos"), [](double v) { return std::cos(v); }},
      {Op("Sin"), [](double v) { return std::sin(v); }},
      {Op("Abs"), [](double v) { return std::fabs(v); }},
      {Op("Floor"), [](double v) { return std::floor(v); }},
      {Op("Ceil"), [](double v) { return std::ceil(v); }},
      {Op("Neg"), [](double v) { return -v; }},
      {Op("Relu"), [](double v) { return v > 0 ? v : 0; }},
      {Op("LeakyRelu", {{"alpha", Attribute::Float(0.1f)}}),
       [](double v) { return v > 0 ? v : 0.1 * v; }},
      {Op("HardSigmoid"), [](double v) { return std::max(0.0, std::min(1.0, 0.2 * v + 0.5)); }},
      {Op("HardSwish"), [](double v) { return v * std::max(0.0, std::min(1.0, v / 6 + 0.5)); }},
      {Op("Identity"), [](double v) { return v; }},
  };
  for (const auto& c : cases) {
    INFO(c.node.op_type);
    auto out = RunNode(c.node, {x});
    REQUIRE(out.ok());
    const auto got = Values<float>((*out)[0]);
    for (size_t i = 0; i < xs.size(); ++i) {
      CHECK(got[i] == Approx(c.ref(xs[i])).margin(1e-6));
    }
  }
  auto sq = RunNode(Op("Sqrt"), {F32({2}, {4.0f, -1.0f})});
  auto rc = RunNode(Op("Reciprocal"), {F32({2}, {4.0f, 0.0f})});
  auto lg = RunNode(Op("Log"), {F32({2}, {1.0f, 0.0f})});
  REQUIRE((sq.ok() && rc.ok() && lg.ok()));
  CHECK(Values<float>((*sq)[0])[0] == 2.0f);
  CHECK(std::isnan(Values<float>((*sq)[0])[1]));
  CHECK(Values<float>((*rc)[0]) == std::vector<float>{0.25f, INFINITY});
  CHECK(Values<float>((*lg)[0]) == std::vector<float>{0.0f, -INFINITY});
  auto abs8 = RunNode(Op("Abs"), {Typed<int8_t>(DType::kInt8, {3}, {-128, -5, 6})});
  REQUIRE(abs8.ok());
  CHECK(Values<int8_t>((*abs8)[0]) == std::vector<int8_t>{-128, 5, 6});  // wraps like int8 hardware
}
