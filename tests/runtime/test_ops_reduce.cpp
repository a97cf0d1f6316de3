// Reductions, Softmax/LogSoftmax and the layer norms run as one-node graphs:
// axes as attribute vs input by opset, keepdims and noop_with_empty_axes,
// the opset-13 change of Softmax from 2-D coercion to one axis, LayerNorm's
// optional statistics outputs and 16-bit dtypes, and errors naming the node.
#include <catch2/catch.hpp>
#include <cmath>
#include <cstring>
#include <map>
#include <string>
#include <vector>

#include "libcompress/runtime/interpreter.h"
#include "tests/runtime/op_test_util.h"

using namespace slim;

using slim_test::F32;
using slim_test::Floats;
using slim_test::I64;
using slim_test::Op;
using slim_test::RunNode;

namespace {

// 0..n-1 scaled, as the values of a [2,3,4] tensor.
std::vector<float> Iota(int64_t n, float scale = 1.0f) {
  std::vector<float> v(static_cast<size_t>(n));
  for (int64_t i = 0; i < n; ++i) v[static_cast<size_t>(i)] = scale * static_cast<float>(i);
  return v;
}

}  // namespace

TEST_CASE("ReduceSum takes axes as an input from opset 13, as an attribute before",
          "[runtime][ops]") {
  const Tensor x = F32({2, 3, 4}, Iota(24));
  auto v11 = RunNode(
      Op("ReduceSum", {{"axes", Attribute::Ints({1})}, {"keepdims", Attribute::Int(0)}}), {x}, 11);
  REQUIRE(v11.ok());
  CHECK((*v11)[0].shape() == std::vector<int64_t>{2, 4});
  CHECK(Floats((*v11)[0]) == std::vector<float>{12, 15, 18, 21, 48, 51, 54, 57});
  auto v13 = RunNode(Op("ReduceSum", {{"keepdims", Attribute::Int(0)}}), {x, I64({1}, {-2})}, 13);
  REQUIRE(v13.ok());
  CHECK(Floats((*v13)[0]) == Floats((*v11)[0]));
  // No axes: everything, kept as [1,1,1]; noop_with_empty_axes: identity.
  auto all = RunNode(Op("ReduceSum"), {x}, 13);
  REQUIRE(all.ok());
  CHECK((*all)[0].shape() == std::vector<int64_t>{1, 1, 1});
  CHECK(Floats((*all)[0]) == std::vector<float>{276});
  auto noop = RunNode(Op("ReduceSum", {{"noop_with_empty_axes", Attribute::Int(1)}}),
                      {x, I64({0}, {})}, 13);
  REQUIRE(noop.ok());
  CHECK((*noop)[0].shape() == x.shape());
  CHECK(Floats((*noop)[0]) == Floats(x));
}

TEST_CASE("Reduce Mean/Max/Min/Prod/L2 over several axes", "[runtime][ops]") {
  const Tensor x = F32({2, 3, 4}, Iota(24, 0.5f));
  auto mean = RunNode(Op("ReduceMean", {{"axes", Attribute::Ints({0, 2})}}), {x}, 13);
  REQUIRE(mean.ok());
  CHECK((*mean)[0].shape() == std::vector<int64_t>{1, 3, 1});
  // Mean over i in {0,12} + j in 0..3 of 0.5 * (i + 4k + j).
  CHECK(Floats((*mean)[0]) == std::vector<float>{3.75f, 5.75f, 7.75f});
  auto mx = RunNode(
      Op("ReduceMax", {{"axes", Attribute::Ints({-1})}, {"keepdims", Attribute::Int(0)}}), {x}, 13);
  REQUIRE(mx.ok());
  CHECK(Floats((*mx)[0]) == std::vector<float>{1.5f, 3.5f, 5.5f, 7.5f, 9.5f, 11.5f});
  auto mn = RunNode(
      Op("ReduceMin", {{"axes", Attribute::Ints({0})}, {"keepdims", Attribute::Int(0)}}), {x}, 11);
  REQUIRE(mn.ok());
  CHECK(Floats((*mn)[0]) == Iota(12, 0.5f));
  auto prod =
      RunNode(Op("ReduceProd", {{"axes", Attribute::Ints({1})}}), {I64({2, 2}, {2, 3, -4, 5})}, 13);
  REQUIRE(prod.ok());
  CHECK((*prod)[0].dtype() == DType::kInt64);
  CHECK((*prod)[0].ToInt64Vector() == std::vector<int64_t>{6, -20});
  auto l2 = RunNode(Op("ReduceL2", {{"keepdims", Attribute::Int(0)}}), {F32({2}, {3, 4})}, 13);
  REQUIRE(l2.ok());
  CHECK((*l2)[0].shape().empty());
  CHECK(Floats((*l2)[0]) == std::vector<float>{5});
  auto imean =
      RunNode(Op("ReduceMean"),
              {Tensor::FromVector(DType::kInt32, {3}, std::vector<int32_t>{-1, -2, -4})}, 13);
  REQUIRE(imean.ok());
  CHECK((*imean)[0].IntAt(0) == -2);  // -7/3 truncated toward zero
}

TEST_CASE("reductions reject bad axes naming the node", "[runtime][ops]") {
  const Tensor x = F32({2, 3}, Iota(6));
  auto range = RunNode(Op("ReduceMean", {{"axes", Attribute::Ints({2})}}), {x}, 13);
  REQUIRE_FALSE(range.ok());
  CHECK_THAT(range.status().message(), Catch::Contains("'n0'") && Catch::Contains("out of range"));
  auto dup = RunNode(Op("ReduceMax", {{"axes", Attribute::Ints({1, -1})}}), {x}, 13);
  REQUIRE_FALSE(dup.ok());
  CHECK_THAT(dup.status().message(), Catch::Contains("more than once"));
}

TEST_CASE("Softmax coerces to 2-D before opset 13 and is per-axis from 13", "[runtime][ops]") {
  const Tensor x = F32({2, 2, 2}, {0, 1, 2, 3, 0, 0, 5, 1});
  auto old = RunNode(Op("Softmax", {{"axis", Attribute::Int(1)}}), {x}, 11);
  auto now = RunNode(Op("Softmax", {{"axis", Attribute::Int(1)}}), {x}, 13);
  REQUIRE((old.ok() && now.ok()));
  const auto o = Floats((*old)[0]);
  const auto n = Floats((*now)[0]);
  // Opset 11: each of the 2 rows of 4 sums to 1.
  double row0 = 0;
  for (int i = 0; i < 4; ++i) row0 += o[static_cast<size_t>(i)];
  CHECK(row0 == Approx(1.0).epsilon(1e-6));
  const double e = std::exp(1.0), e2 = std::exp(2.0), e3 = std::exp(3.0);
  CHECK(o[3] == Approx(e3 / (1 + e + e2 + e3)).epsilon(1e-6));
  // Opset 13: pairs along axis 1 (stride 2) sum to 1.
  CHECK(n[0] == Approx(1 / (1 + e2)).epsilon(1e-6));
  CHECK(n[2] == Approx(e2 / (1 + e2)).epsilon(1e-6));
  CHECK(n[4] + n[6] == Approx(1.0f));
  // Default axis: 1 before 13, -1 from 13.
  auto def13 = RunNode(Op("Softmax"), {x}, 13);
  REQUIRE(def13.ok());
  CHECK(Floats((*def13)[0])[0] == Approx(1 / (1 + e)).epsilon(1e-6));
  auto def11 = RunNode(Op("Softmax"), {x}, 11);
  REQUIRE(def11.ok());
  CHECK(Floats((*def11)[0]) == o);
  // LogSoftmax is the log of Softmax and stable for large inputs.
  auto lsm = RunNode(Op("LogSoftmax"), {F32({3}, {1000, 1000, 0})}, 13);
  REQUIRE(lsm.ok());
  CHECK(Floats((*lsm)[0])[0] == Approx(-std::log(2.0)).epsilon(1e-6));
  CHECK(Floats((*lsm)[0])[2] == Approx(-1000 - std::log(2.0)).epsilon(1e-6));
  auto bad = RunNode(Op("Softmax", {{"axis", Attribute::Int(3)}}), {x}, 13);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("'n0'"));
}

TEST_CASE("LayerNormalization normalises over axis.. with optional statistics", "[runtime][ops]") {
  const Tensor x = F32({2, 4}, {1, 2, 3, 4, -2, 0, 2, 4});
  const Tensor scale = F32({4}, {1, 2, 1, 1});
  const Tensor bias = F32({4}, {0, 0, 0, 1});
  auto out = RunNode(Op("LayerNormalization", {{"epsilon", Attribute::Float(0)}}), {x, scale, bias},
                     17, 3);
  REQUIRE(out.ok());
  const auto y = Floats((*out)[0]);
  const double inv0 = 1 / std::sqrt(1.25);  // var of 1,2,3,4
  CHECK(y[0] == Approx(-1.5 * inv0).epsilon(1e-6));
  CHECK(y[1] == Approx(-0.5 * inv0 * 2).epsilon(1e-6));
  CHECK(y[3] == Approx(1.5 * inv0 + 1).epsilon(1e-6));
  CHECK((*out)[1].shape() == std::vector<int64_t>{2, 1});
  CHECK(Floats((*out)[1]) == std::vector<float>{2.5f, 1.0f});
  CHECK(Floats((*out)[2])[1] == Approx(1 / std::sqrt(5.0)).epsilon(1e-6));
  // float16 in, float16 out; statistics stay float32 (stash_type 1).
  std::vector<uint16_t> h;
  for (float v : Floats(x)) h.push_back(FloatToHalf(v));
  const Tensor xh = Tensor::FromVector(DType::kFloat16, {2, 4}, h);
  std::vector<uint16_t> sh(4, FloatToHalf(1.0f));
  auto half = RunNode(Op("LayerNormalization", {{"axis", Attribute::Int(0)}}),
                      {xh, Tensor::FromVector(DType::kFloat16, {1, 4}, sh)}, 17, 2);
  REQUIRE(half.ok());
  CHECK((*half)[0].dtype() == DType::kFloat16);
  CHECK((*half)[1].dtype() == DType::kFloat32);
  CHECK((*half)[1].shape() == std::vector<int64_t>{1, 1});
  auto bad = RunNode(Op("LayerNormalization"), {x, F32({3}, {1, 1, 1})}, 17);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("Scale shape"));
}

TEST_CASE("SimplifiedLayerNormalization is RMSNorm", "[runtime][ops]") {
  const Tensor x = F32({2, 2}, {3, 4, 1, -1});
  auto out = RunNode(Op("SimplifiedLayerNormalization", {{"epsilon", Attribute::Float(1e-6f)}}),
                     {x, F32({2}, {1, 0.5f})}, 17, 2);
  REQUIRE(out.ok());
  const auto y = Floats((*out)[0]);
  const double r0 = std::sqrt(12.5 + 1e-6), r1 = std::sqrt(1 + 1e-6);
  CHECK(y[0] == Approx(3 / r0).epsilon(1e-6));
  CHECK(y[1] == Approx(0.5 * 4 / r0).epsilon(1e-6));
  CHECK(y[2] == Approx(1 / r1).epsilon(1e-6));
  CHECK(y[3] == Approx(-0.5 / r1).epsilon(1e-6));
  CHECK((*out)[1].shape() == std::vector<int64_t>{2, 1});
  CHECK(Floats((*out)[1])[0] == Approx(1 / r0).epsilon(1e-6));
}
