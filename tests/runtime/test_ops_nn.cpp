// CNN operators of the reference interpreter (ops_nn.cpp, ops_nn_resize.cpp)
// run as one-node graphs: results against independent direct loops or hand
// computed values, plus the error cases (each Status names the node).
#include <catch2/catch.hpp>
#include <limits>
#include <cmath>

#include "libcompress/runtime/interpreter.h"
#include "tests/runtime/op_test_util.h"

using namespace slim;

using slim_test::F32;
using slim_test::I64;
using slim_test::Op;
using slim_test::RandomFloats;
using slim_test::RunNode;

namespace {

// These tests pin the opset-13 forms of Pad, Resize and BatchNormalization;
// cases for other opsets say so.
constexpr int64_t kOpset = 13;

void CheckClose(const Tensor& got, const std::vector<float>& want, float tol = 1e-5f) {
  const std::vector<float> g = got.ToFloatVector();
  REQUIRE(g.size() == want.size());
  for (size_t i = 0; i < g.size(); ++i) {
    INFO("element " << i);
    CHECK(std::fabs(g[i] - want[i]) <= tol * (1 + std::fabs(want[i])));
  }
}

// Direct 2-D convolution (no im2col) as the independent reference.
std::vector<float> DirectConv2d(const std::vector<float>& x, const std::vector<float>& w,
                                const std::vector<float>& b, int64_t n, int64_t c, int64_t h,
                                int64_t wd, int64_t m, int64_t kh, int64_t kw, int64_t group,
                                int64_t sh, int64_t sw, int64_t dh, int64_t dw, int64_t pt,
                                int64_t pl, int64_t oh, int64_t ow) {
  std::vector<float> y(static_cast<size_t>(n * m * oh * ow));
  const int64_t cg = c / group, mg = m / group;
  for (int64_t in = 0; in < n; ++in)
    for (int64_t om = 0; om < m; ++om)
      for (int64_t oy = 0; oy < oh; ++oy)
        for (int64_t ox = 0; ox < ow; ++ox) {
          double acc = b.empty() ? 0.0 : b[static_cast<size_t>(om)];
          const int64_t g = om / mg;
          for (int64_t ic = 0; ic < cg; ++ic)
            for (int64_t ky = 0; ky < kh; ++ky)
              for (int64_t kx = 0; kx < kw; ++kx) {
                const int64_t iy = oy * sh - pt + ky * dh, ix = ox * sw - pl + kx * dw;
                if (iy < 0 || iy >= h || ix < 0 || ix >= wd) continue;
                acc += x[static_cast<size_t>(((in * c + g * cg + ic) * h + iy) * wd + ix)] *
                       w[static_cast<size_t>(((om * cg + ic) * kh + ky) * kw + kx)];
              }
          y[static_cast<size_t>(((in * m + om) * oh + oy) * ow + ox)] = static_cast<float>(acc);
        }
  return y;
}

}  // namespace

TEST_CASE("Conv matches a direct convolution with groups, strides, dilations, pads",
          "[runtime][ops_nn]") {
  // N=2, C=4, 7x6 input; M=6, group 2, 3x2 kernel, stride (2,1), dilation
  // (1,2), asymmetric pads (top 1, left 2, bottom 0, right 1).
  const auto x = RandomFloats(2 * 4 * 7 * 6, 1);
  const auto w = RandomFloats(6 * 2 * 3 * 2, 2);
  const auto b = RandomFloats(6, 3);
  auto out = RunNode(Op("Conv", {{"group", Attribute::Int(2)},
                                 {"strides", Attribute::Ints({2, 1})},
                                 {"dilations", Attribute::Ints({1, 2})},
                                 {"pads", Attribute::Ints({1, 2, 0, 1})}}),
                     {F32({2, 4, 7, 6}, x), F32({6, 2, 3, 2}, w), F32({6}, b)}, kOpset);
  REQUIRE(out.ok());
  // oh = (7 + 1 - 3) / 2 + 1 = 3, ow = (6 + 3 - 3) / 1 + 1 = 7.
  REQUIRE(out.value()[0].shape() == std::vector<int64_t>{2, 6, 3, 7});
  CheckClose(out.value()[0], DirectConv2d(x, w, b, 2, 4, 7, 6, 6, 3, 2, 2, 2, 1, 1, 2, 1, 2, 3, 7));

  SECTION("without bias and with a 1x1 kernel (direct column path)") {
    const auto w1 = RandomFloats(3 * 4, 4);
    auto y = RunNode(Op("Conv"), {F32({2, 4, 7, 6}, x), F32({3, 4, 1, 1}, w1)}, kOpset);
    REQUIRE(y.ok());
    CheckClose(y.value()[0],
               DirectConv2d(x, w1, {}, 2, 4, 7, 6, 3, 1, 1, 1, 1, 1, 1, 1, 0, 0, 7, 6));
  }
}

TEST_CASE("Conv 1-D and 3-D agree with the 2-D path", "[runtime][ops_nn]") {
  const auto x = RandomFloats(1 * 2 * 9, 5);
  const auto w = RandomFloats(3 * 2 * 3, 6);
  // 1-D conv == 2-D conv with a height-1 input and kernel.
  auto y1 =
      RunNode(Op("Conv", {{"pads", Attribute::Ints({1, 1})}, {"strides", Attribute::Ints({2})}}),
              {F32({1, 2, 9}, x), F32({3, 2, 3}, w)}, kOpset);
  REQUIRE(y1.ok());
  REQUIRE(y1.value()[0].shape() == std::vector<int64_t>{1, 3, 5});
  CheckClose(y1.value()[0], DirectConv2d(x, w, {}, 1, 2, 1, 9, 3, 1, 3, 1, 1, 2, 1, 1, 0, 1, 1, 5));
  // 3-D conv with a depth-1 kernel over a depth-1 input, same data.
  auto y3 = RunNode(Op("Conv", {{"pads", Attribute::Ints({0, 0, 1, 0, 0, 1})},
                                {"strides", Attribute::Ints({1, 1, 2})}}),
                    {F32({1, 2, 1, 1, 9}, x), F32({3, 2, 1, 1, 3}, w)}, kOpset);
  REQUIRE(y3.ok());
  REQUIRE(y3.value()[0].shape() == std::vector<int64_t>{1, 3, 1, 1, 5});
  CheckClose(y3.value()[0], y1.value()[0].ToFloatVector());
}

TEST_CASE("Conv auto_pad SAME_UPPER and SAME_LOWER place the odd pad differently",
          "[runtime][ops_nn]") {
  // 1-D input 1..4, kernel [1, 1] (sums neighbours), stride 1: total pad 1.
  const Tensor x = F32({1, 1, 4}, {1, 2, 3, 4});
  const Tensor w = F32({1, 1, 2}, {1, 1});
  auto upper = RunNode(Op("Conv", {{"auto_pad", Attribute::String("SAME_UPPER")}}), {x, w}, kOpset);
  auto lower = RunNode(Op("Conv", {{"auto_pad", Attribute::String("SAME_LOWER")}}), {x, w}, kOpset);
  auto valid = RunNode(Op("Conv", {{"auto_pad", Attribute::String("VALID")}}), {x, w}, kOpset);
  REQUIRE((upper.ok() && lower.ok() && valid.ok()));
  CheckClose(upper.value()[0], {3, 5, 7, 4});
  CheckClose(lower.value()[0], {1, 3, 5, 7});
  CheckClose(valid.value()[0], {3, 5, 7});
}

TEST_CASE("Conv on float16 computes in float32 and stores float16", "[runtime][ops_nn]") {
  std::vector<uint16_t> xh, wh;
  for (float v : {0.5f, 1.5f, -2.0f, 3.0f}) xh.push_back(FloatToHalf(v));
  for (float v : {2.0f, -1.0f}) wh.push_back(FloatToHalf(v));
  auto y = RunNode(Op("Conv"),
                   {Tensor::FromVector(DType::kFloat16, {1, 1, 4}, xh),
                    Tensor::FromVector(DType::kFloat16, {1, 1, 2}, wh)},
                   kOpset);
  REQUIRE(y.ok());
  CHECK(y.value()[0].dtype() == DType::kFloat16);
  CheckClose(y.value()[0], {-0.5f, 5.0f, -7.0f});
}

TEST_CASE("Conv rejects inconsistent shapes naming the node", "[runtime][ops_nn]") {
  const Tensor x = F32({1, 3, 4, 4}, std::vector<float>(48, 1.0f));
  SECTION("channel mismatch") {
    auto y = RunNode(Op("Conv"), {x, F32({2, 2, 3, 3}, std::vector<float>(36, 1.0f))}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK(y.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(y.status().message(), Catch::Contains("node 'n0'") && Catch::Contains("3 channels"));
  }
  SECTION("kernel larger than the padded input") {
    auto y = RunNode(Op("Conv"), {x, F32({1, 3, 5, 5}, std::vector<float>(75, 1.0f))}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(), Catch::Contains("node 'n0'") && Catch::Contains("exceeds"));
  }
  SECTION("bias of the wrong length") {
    auto y =
        RunNode(Op("Conv"),
                {x, F32({2, 3, 1, 1}, std::vector<float>(6, 1.0f)), F32({3}, {1, 2, 3})}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(), Catch::Contains("node 'n0'") && Catch::Contains("B [3]"));
  }
}

TEST_CASE("BatchNormalization inference and training statistics", "[runtime][ops_nn]") {
  // Two channels, N=2, 2 elements each.
  const Tensor x = F32({2, 2, 2}, {1, 3, 10, 20, 5, 7, 30, 40});
  const Tensor scale = F32({2}, {2, 1});
  const Tensor bias = F32({2}, {1, -1});
  const Tensor mean = F32({2}, {4, 25});
  const Tensor var = F32({2}, {4, 100});
  SECTION("inference uses the given mean and var") {
    auto y = RunNode(Op("BatchNormalization", {{"epsilon", Attribute::Float(0)}}),
                     {x, scale, bias, mean, var}, kOpset);
    REQUIRE(y.ok());
    // channel 0: (v - 4) / 2 * 2 + 1; channel 1: (v - 25) / 10 - 1.
    CheckClose(y.value()[0], {-2, 0, -2.5f, -1.5f, 2, 4, -0.5f, 0.5f});
  }
  SECTION("training_mode uses batch statistics and updates running ones") {
    auto y = RunNode(Op("BatchNormalization", {{"epsilon", Attribute::Float(0)},
                                               {"training_mode", Attribute::Int(1)},
                                               {"momentum", Attribute::Float(0.5f)}}),
                     {x, scale, bias, mean, var}, 15, 3);
    REQUIRE(y.ok());
    // channel 0 values 1,3,5,7: mean 4, population var 5.
    // channel 1 values 10,20,30,40: mean 25, population var 125.
    CheckClose(y.value()[1], {4, 25});
    CheckClose(y.value()[2], {4.5f, 112.5f});
    const float s5 = std::sqrt(5.0f), s125 = std::sqrt(125.0f);
    CheckClose(y.value()[0], {2 * -3 / s5 + 1, 2 * -1 / s5 + 1, -15 / s125 - 1, -5 / s125 - 1,
                              2 * 1 / s5 + 1, 2 * 3 / s5 + 1, 5 / s125 - 1, 15 / s125 - 1});
  }
  SECTION("running outputs without training_mode are an error") {
    auto y = RunNode(Op("BatchNormalization"), {x, scale, bias, mean, var}, 15, 2);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(),
               Catch::Contains("node 'n0'") && Catch::Contains("training_mode"));
  }
  SECTION("per-channel inputs of the wrong length are an error") {
    auto y = RunNode(Op("BatchNormalization"), {x, F32({3}, {1, 1, 1}), bias, mean, var}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(), Catch::Contains("node 'n0'") && Catch::Contains("[3]"));
  }
}

TEST_CASE("MaxPool values, indices, storage_order and ceil_mode", "[runtime][ops_nn]") {
  // 1x1x3x3 with a unique max per 2x2 window.
  const Tensor x = F32({1, 1, 3, 3}, {1, 9, 2, 8, 3, 7, 4, 6, 5});
  auto y = RunNode(Op("MaxPool", {{"kernel_shape", Attribute::Ints({2, 2})}}), {x}, kOpset, 2);
  REQUIRE(y.ok());
  CheckClose(y.value()[0], {9, 9, 8, 7});
  CHECK(y.value()[1].ToInt64Vector() == std::vector<int64_t>{1, 1, 3, 5});
  auto col = RunNode(Op("MaxPool", {{"kernel_shape", Attribute::Ints({2, 2})},
                                    {"storage_order", Attribute::Int(1)}}),
                     {x}, kOpset, 2);
  REQUIRE(col.ok());
  // Column-major flat index of (h, w) is w * 3 + h.
  CHECK(col.value()[1].ToInt64Vector() == std::vector<int64_t>{3, 3, 1, 7});
  auto ceil = RunNode(Op("MaxPool", {{"kernel_shape", Attribute::Ints({2, 2})},
                                     {"strides", Attribute::Ints({2, 2})},
                                     {"ceil_mode", Attribute::Int(1)}}),
                      {x}, kOpset);
  REQUIRE(ceil.ok());
  REQUIRE(ceil.value()[0].shape() == std::vector<int64_t>{1, 1, 2, 2});
  CheckClose(ceil.value()[0], {9, 7, 6, 5});
  auto uint8 = RunNode(
      Op("MaxPool", {{"kernel_shape", Attribute::Ints({3})}}),
      {Tensor::FromVector(DType::kUInt8, {1, 1, 4}, std::vector<uint8_t>{200, 3, 255, 1})}, kOpset);
  REQUIRE(uint8.ok());
  CHECK(uint8.value()[0].ToInt64Vector() == std::vector<int64_t>{255, 255});
  auto missing = RunNode(Op("MaxPool"), {x}, kOpset);
  REQUIRE_FALSE(missing.ok());
  CHECK_THAT(missing.status().message(),
             Catch::Contains("node 'n0'") && Catch::Contains("kernel_shape"));
}

TEST_CASE("AveragePool divisor with and without count_include_pad", "[runtime][ops_nn]") {
  const Tensor x = F32({1, 1, 3}, {3, 6, 9});
  Node pool = Op("AveragePool",
                 {{"kernel_shape", Attribute::Ints({2})}, {"pads", Attribute::Ints({1, 1})}});
  auto excl = RunNode(pool, {x}, kOpset);
  pool.attrs["count_include_pad"] = Attribute::Int(1);
  auto incl = RunNode(pool, {x}, kOpset);
  REQUIRE((excl.ok() && incl.ok()));
  CheckClose(excl.value()[0], {3, 4.5f, 7.5f, 9});
  CheckClose(incl.value()[0], {1.5f, 4.5f, 7.5f, 4.5f});
}

TEST_CASE("GlobalAveragePool and GlobalMaxPool reduce the spatial dims", "[runtime][ops_nn]") {
  const Tensor x = F32({1, 2, 2, 2}, {1, 2, 3, 6, -1, -5, -2, -8});
  auto avg = RunNode(Op("GlobalAveragePool"), {x}, kOpset);
  auto mx = RunNode(Op("GlobalMaxPool"), {x}, kOpset);
  REQUIRE((avg.ok() && mx.ok()));
  CHECK(avg.value()[0].shape() == std::vector<int64_t>{1, 2, 1, 1});
  CheckClose(avg.value()[0], {3, -4});
  CheckClose(mx.value()[0], {6, -1});
}

TEST_CASE("Pad constant, reflect, edge, negative pads and the opset 10 form", "[runtime][ops_nn]") {
  const Tensor x = Tensor::FromVector(DType::kInt32, {4}, std::vector<int32_t>{1, 2, 3, 4});
  const Tensor pads = I64({2}, {3, 2});
  auto run = [&](const char* mode, std::vector<Tensor> in) {
    auto y = RunNode(Op("Pad", {{"mode", Attribute::String(mode)}}), std::move(in), kOpset);
    REQUIRE(y.ok());
    return y.value()[0].ToInt64Vector();
  };
  const Tensor nine = Tensor::FromVector(DType::kInt32, {}, std::vector<int32_t>{9});
  CHECK(run("constant", {x, pads, nine}) == std::vector<int64_t>{9, 9, 9, 1, 2, 3, 4, 9, 9});
  CHECK(run("constant", {x, pads}) == std::vector<int64_t>{0, 0, 0, 1, 2, 3, 4, 0, 0});
  CHECK(run("reflect", {x, pads}) == std::vector<int64_t>{4, 3, 2, 1, 2, 3, 4, 3, 2});
  CHECK(run("edge", {x, pads}) == std::vector<int64_t>{1, 1, 1, 1, 2, 3, 4, 4, 4});
  CHECK(run("constant", {x, I64({2}, {-1, 1})}) == std::vector<int64_t>{2, 3, 4, 0});
  // 2-D: pad only the columns of a 2x2 float matrix, opset 10 attribute form.
  auto y10 =
      RunNode(Op("Pad", {{"pads", Attribute::Ints({0, 1, 0, 0})}, {"value", Attribute::Float(-1)}}),
              {F32({2, 2}, {1, 2, 3, 4})}, 10, 1);
  REQUIRE(y10.ok());
  CHECK(y10.value()[0].shape() == std::vector<int64_t>{2, 3});
  CheckClose(y10.value()[0], {-1, 1, 2, -1, 3, 4});
  SECTION("errors name the node") {
    auto bad_mode = RunNode(Op("Pad", {{"mode", Attribute::String("wrap")}}), {x, pads}, kOpset);
    REQUIRE_FALSE(bad_mode.ok());
    CHECK_THAT(bad_mode.status().message(),
               Catch::Contains("node 'n0'") && Catch::Contains("wrap"));
    auto bad_len = RunNode(Op("Pad"), {x, I64({4}, {1, 1, 1, 1})}, kOpset);
    REQUIRE_FALSE(bad_len.ok());
    CHECK_THAT(bad_len.status().message(),
               Catch::Contains("node 'n0'") && Catch::Contains("expected 2"));
    auto crop = RunNode(Op("Pad"), {x, I64({2}, {-3, -2})}, kOpset);
    REQUIRE_FALSE(crop.ok());
    CHECK_THAT(crop.status().message(), Catch::Contains("remove more"));
    // Pads from a hostile graph: bad input before any allocation, and no
    // signed overflow in n + pad + pad.
    for (const std::vector<int64_t>& huge :
         {std::vector<int64_t>{int64_t{1} << 40, 0}, std::vector<int64_t>{INT64_MAX, INT64_MAX},
          std::vector<int64_t>{INT64_MIN, 0}}) {
      auto big = RunNode(Op("Pad"), {x, I64({2}, huge)}, kOpset);
      REQUIRE_FALSE(big.ok());
      CHECK(big.status().code() == slim::StatusCode::kInvalidInput);
      CHECK_THAT(big.status().message(), Catch::Contains("node 'n0'"));
    }
  }
}

TEST_CASE("Resize nearest, linear and cubic follow the ONNX reference", "[runtime][ops_nn]") {
  const Tensor x = F32({1, 1, 1, 4}, {1, 2, 3, 4});
  const Tensor none;
  SECTION("hostile scales and sizes are bad input before any allocation") {
    for (float s : {std::numeric_limits<float>::infinity(), 1e30f, std::numeric_limits<float>::quiet_NaN()}) {
      auto y = RunNode(Op("Resize"), {x, none, F32({4}, {1, 1, 1, s})}, kOpset);
      REQUIRE_FALSE(y.ok());
      CHECK(y.status().code() == slim::StatusCode::kInvalidInput);
    }
    auto y = RunNode(Op("Resize"), {x, none, none, I64({4}, {1 << 20, 1 << 20, 1 << 20, 4})}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(), Catch::Contains("limit"));
  }
  SECTION("nearest, asymmetric, floor: upsample by 2 repeats elements") {
    auto y =
        RunNode(Op("Resize", {{"coordinate_transformation_mode", Attribute::String("asymmetric")},
                              {"nearest_mode", Attribute::String("floor")}}),
                {x, none, F32({4}, {1, 1, 1, 2})}, kOpset);
    REQUIRE(y.ok());
    CheckClose(y.value()[0], {1, 1, 2, 2, 3, 3, 4, 4});
  }
  SECTION("linear, half_pixel: 4 -> 8 interpolates and clamps at the edges") {
    auto y = RunNode(Op("Resize", {{"mode", Attribute::String("linear")}}),
                     {x, none, F32({4}, {1, 1, 1, 2})}, kOpset);
    REQUIRE(y.ok());
    // x_original = (o + 0.5) / 2 - 0.5 = -0.25, 0.25, 0.75, ...
    CheckClose(y.value()[0], {1, 1.25f, 1.75f, 2.25f, 2.75f, 3.25f, 3.75f, 4});
  }
  SECTION("linear, align_corners with sizes: 4 -> 7 hits every original sample") {
    auto y = RunNode(
        Op("Resize", {{"mode", Attribute::String("linear")},
                      {"coordinate_transformation_mode", Attribute::String("align_corners")}}),
        {x, none, none, I64({4}, {1, 1, 1, 7})}, kOpset);
    REQUIRE(y.ok());
    CheckClose(y.value()[0], {1, 1.5f, 2, 2.5f, 3, 3.5f, 4});
  }
  SECTION("cubic keeps linear data linear away from the edges") {
    const Tensor ramp = F32({1, 8}, {0, 1, 2, 3, 4, 5, 6, 7});
    auto y = RunNode(
        Op("Resize", {{"mode", Attribute::String("cubic")},
                      {"coordinate_transformation_mode", Attribute::String("align_corners")}}),
        {ramp, none, none, I64({2}, {1, 15})}, kOpset);
    REQUIRE(y.ok());
    const auto v = y.value()[0].ToFloatVector();
    for (size_t i = 3; i + 3 < v.size(); ++i)
      CHECK(v[i] == Approx(0.5 * static_cast<double>(i)).margin(1e-5));
  }
  SECTION("tf_crop_and_resize writes extrapolation_value outside the roi") {
    auto y = RunNode(
        Op("Resize", {{"mode", Attribute::String("linear")},
                      {"coordinate_transformation_mode", Attribute::String("tf_crop_and_resize")},
                      {"extrapolation_value", Attribute::Float(-7)}}),
        {x, F32({8}, {0, 0, 0, 0.5f, 1, 1, 1, 1.5f}), none, I64({4}, {1, 1, 1, 3})}, kOpset);
    REQUIRE(y.ok());
    // x_original = 0.5 * 3 + o * (1.5 - 0.5) * 3 / 2 = 1.5, 3, 4.5 (> 3: outside).
    CheckClose(y.value()[0], {2.5f, 4, -7});
  }
  SECTION("scales and sizes together are an error naming the node") {
    auto y =
        RunNode(Op("Resize"), {x, none, F32({4}, {1, 1, 1, 2}), I64({4}, {1, 1, 1, 8})}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(),
               Catch::Contains("node 'n0'") && Catch::Contains("exactly one"));
  }
  SECTION("unknown coordinate_transformation_mode is an error") {
    auto y = RunNode(Op("Resize", {{"coordinate_transformation_mode", Attribute::String("bogus")}}),
                     {x, none, F32({4}, {1, 1, 1, 2})}, kOpset);
    REQUIRE_FALSE(y.ok());
    CHECK_THAT(y.status().message(), Catch::Contains("bogus"));
  }
}

TEST_CASE("Resize-10 and Upsample use asymmetric floor sampling", "[runtime][ops_nn]") {
  const Tensor x = F32({1, 1, 2, 2}, {1, 2, 3, 4});
  const Tensor scales = F32({4}, {1, 1, 2, 1.5f});
  const std::vector<float> want{1, 1, 2, 1, 1, 2, 3, 3, 4, 3, 3, 4};
  auto up9 = RunNode(Op("Upsample"), {x, scales}, 9, 1);
  auto r10 = RunNode(Op("Resize"), {x, scales}, 10, 1);
  REQUIRE((up9.ok() && r10.ok()));
  CHECK(up9.value()[0].shape() == std::vector<int64_t>{1, 1, 4, 3});
  CheckClose(up9.value()[0], want);
  CheckClose(r10.value()[0], want);
  auto lin = RunNode(Op("Resize", {{"mode", Attribute::String("linear")}}),
                     {x, F32({4}, {1, 1, 1, 2})}, 10, 1);
  REQUIRE(lin.ok());
  CheckClose(lin.value()[0], {1, 1.5f, 2, 2, 3, 3.5f, 4, 4});
}
