// MatMul and Gemm through the interpreter, checked against float64 loops:
// numpy batching and 1-D operands, every Gemm attribute and C broadcast,
// 16-bit and float64/int types, and the FP16-weight path the interpreter
// creates by eliding Cast(fp16 initializer -> float) in front of B.
//
// Float32 tolerance: the kernels sum K products in float32 (some paths with
// FMA or 16 partial sums), so results are compared with
// K * eps * sum |a b| (+ the 16-bit output rounding where the output is
// 16-bit).
#include <catch2/catch.hpp>

#include <cfloat>
#include <cmath>
#include <map>
#include <string>
#include <vector>

#include "libcompress/ir/graph.h"
#include "libcompress/runtime/interpreter.h"
#include "tests/runtime/op_test_util.h"

namespace slim {
namespace {

using slim_test::Op;
using slim_test::RandomFloats;
using slim_test::RequireError;
using slim_test::RunNode;
using slim_test::RunOne;

Tensor RandomF32(std::vector<int64_t> shape, uint32_t seed) {
  return Tensor::FromVector(DType::kFloat32, shape,
                            RandomFloats(static_cast<size_t>(ShapeNumel(shape)), seed));
}

// Float tensor of `dtype` holding `t`'s values rounded to that dtype.
Tensor ToDType(const Tensor& t, DType dtype) {
  const auto v = t.ToFloatVector();
  std::vector<uint16_t> bits(v.size());
  for (size_t i = 0; i < v.size(); ++i) {
    bits[i] = dtype == DType::kFloat16 ? FloatToHalf(v[i]) : FloatToBFloat16(v[i]);
  }
  return Tensor::FromVector(dtype, t.shape(), bits);
}

// Y = alpha * op(A) op(B) + beta * C in float64, with op = optional transpose
// and C broadcast from `c_shape` (empty values: no C).
struct Reference {
  std::vector<double> y, bound;
};
Reference GemmReference(const std::vector<float>& a, const std::vector<float>& b, int64_t m,
                        int64_t n, int64_t k, bool ta, bool tb, double alpha, double beta,
                        const std::vector<float>& c, const std::vector<int64_t>& c_shape) {
  Reference r;
  for (int64_t i = 0; i < m; ++i) {
    for (int64_t j = 0; j < n; ++j) {
      double s = 0, abs_sum = 0;
      for (int64_t p = 0; p < k; ++p) {
        const double x = a[static_cast<size_t>(ta ? p * m + i : i * k + p)];
        const double w = b[static_cast<size_t>(tb ? j * k + p : p * n + j)];
        s += x * w;
        abs_sum += std::fabs(x * w);
      }
      double cv = 0;
      if (!c.empty()) {
        const int64_t ci = c_shape.size() == 2 ? (c_shape[0] == 1 ? 0 : i) : 0;
        const int64_t cj = c_shape.empty() ? 0 : (c_shape.back() == 1 ? 0 : j);
        cv = c[static_cast<size_t>(c_shape.size() == 2 ? ci * c_shape[1] + cj : cj)];
      }
      r.y.push_back(alpha * s + beta * cv);
      r.bound.push_back(static_cast<double>(k + 2) * FLT_EPSILON *
                        (std::fabs(alpha) * abs_sum + std::fabs(beta * cv)));
    }
  }
  return r;
}

// Runs x -> consumer(x, Cast(w16 -> float32)[, bias]) -> y, where the
// 16-bit weight and the bias are initializers: the pattern in which the
// interpreter elides the Cast and hands the kernel the 16-bit bytes.
Tensor RunOnCastWeight(Node consumer, const Tensor& x, const Tensor& w16,
                       const Tensor& bias = Tensor()) {
  Graph g;
  g.opset_imports[""] = 17;
  g.inputs.push_back({"x", DType::kFloat32, std::nullopt});
  g.AddInitializer("w16", w16);
  Node cast = Op("Cast", {{"to", Attribute::Int(static_cast<int64_t>(DType::kFloat32))}});
  cast.name = "cast_w";
  cast.inputs = {"w16"};
  cast.outputs = {"w32"};
  consumer.name = "consumer";
  consumer.inputs = {"x", "w32"};
  if (bias.defined()) {
    g.AddInitializer("bias", bias);
    consumer.inputs.push_back("bias");
  }
  consumer.outputs = {"y"};
  g.nodes = {cast, consumer};
  g.outputs.push_back({"y", DType::kUndefined, std::nullopt});
  auto interp = Interpreter::Create(g);
  INFO(interp.status().message());
  REQUIRE(interp.ok());
  auto out = (*interp)->Run({{"x", x}});
  INFO(out.status().message());
  REQUIRE(out.ok());
  return out->at("y");
}

void RequireClose(const Tensor& got, const Reference& ref, double rel_extra = 0) {
  const auto v = got.ToFloatVector();
  REQUIRE(v.size() == ref.y.size());
  for (size_t i = 0; i < v.size(); ++i) {
    INFO("element " << i << ": got " << v[i] << ", expected " << ref.y[i]);
    REQUIRE(std::fabs(v[i] - ref.y[i]) <= ref.bound[i] + rel_extra * std::fabs(ref.y[i]) + 1e-30);
  }
}

TEST_CASE("MatMul 2-D matches float64 on the blocked and small-M paths") {
  for (int64_t m : {1, 3, 7}) {
    const Tensor a = RandomF32({m, 37}, 1);
    const Tensor b = RandomF32({37, 19}, 2);
    const Tensor y = RunOne(Op("MatMul"), {a, b});
    REQUIRE(y.shape() == std::vector<int64_t>{m, 19});
    RequireClose(y, GemmReference(a.ToFloatVector(), b.ToFloatVector(), m, 19, 37, false, false,
                                  1, 0, {}, {}));
  }
}

TEST_CASE("MatMul broadcasts batch dimensions and handles 1-D operands") {
  const Tensor a = RandomF32({2, 1, 3, 4}, 3);
  const Tensor b = RandomF32({5, 4, 2}, 4);
  const Tensor y = RunOne(Op("MatMul"), {a, b});
  REQUIRE(y.shape() == std::vector<int64_t>{2, 5, 3, 2});
  const auto av = a.ToFloatVector(), bv = b.ToFloatVector(), yv = y.ToFloatVector();
  for (int64_t i = 0; i < 2; ++i) {
    for (int64_t j = 0; j < 5; ++j) {
      const std::vector<float> a_mat(av.begin() + i * 12, av.begin() + i * 12 + 12);
      const std::vector<float> b_mat(bv.begin() + j * 8, bv.begin() + j * 8 + 8);
      const Reference r = GemmReference(a_mat, b_mat, 3, 2, 4, false, false, 1, 0, {}, {});
      for (size_t e = 0; e < 6; ++e) {
        REQUIRE(std::fabs(yv[static_cast<size_t>((i * 5 + j) * 6) + e] - r.y[e]) <= r.bound[e] + 1e-30);
      }
    }
  }
  const Tensor v = RandomF32({4}, 5);
  REQUIRE(RunOne(Op("MatMul"), {v, RandomF32({3, 4, 2}, 6)}).shape() == std::vector<int64_t>{3, 2});
  REQUIRE(RunOne(Op("MatMul"), {RandomF32({3, 4}, 7), v}).shape() == std::vector<int64_t>{3});
  const Tensor dot = RunOne(Op("MatMul"), {v, v});
  REQUIRE(dot.rank() == 0);
  double s = 0;
  for (float x : v.ToFloatVector()) s += static_cast<double>(x) * x;
  REQUIRE(std::fabs(dot.FloatAt(0) - s) <= 6 * FLT_EPSILON * s);
}

TEST_CASE("MatMul in float16, bfloat16, float64 and int32") {
  const Tensor a = RandomF32({5, 9}, 8);
  const Tensor b = RandomF32({9, 3}, 9);
  for (DType dt : {DType::kFloat16, DType::kBFloat16}) {
    const Tensor a16 = ToDType(a, dt), b16 = ToDType(b, dt);
    const Tensor y = RunOne(Op("MatMul"), {a16, b16});
    REQUIRE(y.dtype() == dt);
    // float32 math on the 16-bit values, then one rounding to the dtype.
    const double unit = dt == DType::kFloat16 ? 1.0 / 1024 : 1.0 / 128;
    RequireClose(y, GemmReference(a16.ToFloatVector(), b16.ToFloatVector(), 5, 3, 9, false, false,
                                  1, 0, {}, {}),
                 unit / 2);
  }
  std::vector<double> ad(45), bd(27);
  for (size_t i = 0; i < ad.size(); ++i) ad[i] = 0.1 * static_cast<double>(i);
  for (size_t i = 0; i < bd.size(); ++i) bd[i] = 1.0 - 0.05 * static_cast<double>(i);
  const Tensor y64 = RunOne(Op("MatMul"), {Tensor::FromVector(DType::kFloat64, {5, 9}, ad),
                                           Tensor::FromVector(DType::kFloat64, {9, 3}, bd)});
  REQUIRE(y64.dtype() == DType::kFloat64);
  double e = 0;
  for (size_t p = 0; p < 9; ++p) e += ad[4 * 9 + p] * bd[p * 3 + 2];
  REQUIRE(y64.data<double>()[4 * 3 + 2] == Approx(e).epsilon(1e-14));
  const Tensor yi = RunOne(
      Op("MatMul"), {Tensor::FromVector(DType::kInt32, {1, 2}, std::vector<int32_t>{3, -4}),
                     Tensor::FromVector(DType::kInt32, {2, 2}, std::vector<int32_t>{1, 2, 5, 7})});
  REQUIRE(yi.dtype() == DType::kInt32);
  REQUIRE(yi.ToInt64Vector() == std::vector<int64_t>{-17, -22});
}

TEST_CASE("Gemm: transA, transB, alpha, beta and every C broadcast") {
  const int64_t m = 6, n = 5, k = 11;
  for (bool ta : {false, true}) {
    for (bool tb : {false, true}) {
      const Tensor a = RandomF32(ta ? std::vector<int64_t>{k, m} : std::vector<int64_t>{m, k}, 10);
      const Tensor b = RandomF32(tb ? std::vector<int64_t>{n, k} : std::vector<int64_t>{k, n}, 11);
      for (const std::vector<int64_t>& c_shape :
           {std::vector<int64_t>{}, std::vector<int64_t>{n}, std::vector<int64_t>{m, 1},
            std::vector<int64_t>{1, n}, std::vector<int64_t>{m, n}}) {
        const Tensor c = RandomF32(c_shape, 12);
        const Tensor y = RunOne(Op("Gemm", {{"transA", Attribute::Int(ta)},
                                            {"transB", Attribute::Int(tb)},
                                            {"alpha", Attribute::Float(0.5f)},
                                            {"beta", Attribute::Float(-2.0f)}}),
                                {a, b, c});
        REQUIRE(y.shape() == std::vector<int64_t>{m, n});
        RequireClose(y, GemmReference(a.ToFloatVector(), b.ToFloatVector(), m, n, k, ta, tb, 0.5,
                                      -2.0, c.ToFloatVector(), c_shape));
      }
    }
  }
  // No C, default attributes.
  const Tensor a = RandomF32({2, 3}, 13), b = RandomF32({3, 4}, 14);
  RequireClose(RunOne(Op("Gemm"), {a, b}), GemmReference(a.ToFloatVector(), b.ToFloatVector(), 2, 4,
                                                         3, false, false, 1, 0, {}, {}));
}

TEST_CASE("MatMul and Gemm errors name the node and the rule") {
  RequireError(RunNode(Op("MatMul"), {RandomF32({2, 3}, 1), RandomF32({4, 2}, 2)}),
               "inner dimensions differ");
  RequireError(RunNode(Op("Gemm"), {RandomF32({2, 3}, 1), RandomF32({3, 4}, 2), RandomF32({3}, 3)}),
               "does not broadcast");
  RequireError(
      RunNode(Op("MatMul"), {ToDType(RandomF32({2, 3}, 1), DType::kFloat16), RandomF32({3, 4}, 2)}),
      "float16 and float32");
}

// The Hugging Face linear layer: Gemm(A f32 [M, K], Cast(W fp16 [N, K]), transB=1).
// The interpreter skips the Cast and the kernel widens W on the fly; the
// result must equal float32 math on the widened weights.
TEST_CASE("Gemm and MatMul over a Cast fp16/bf16 weight run on the 16-bit bytes") {
  for (DType wtype : {DType::kFloat16, DType::kBFloat16}) {
    for (int64_t m : {1, 5, 33}) {
      const int64_t n = 21, k = 70;
      const Tensor w = ToDType(RandomF32({n, k}, 20), wtype);
      const Tensor a = RandomF32({m, k}, 21);
      const Tensor bias = RandomF32({n}, 22);
      const Tensor y = RunOnCastWeight(Op("Gemm", {{"transB", Attribute::Int(1)}}), a, w, bias);
      REQUIRE(y.dtype() == DType::kFloat32);
      REQUIRE(y.shape() == std::vector<int64_t>{m, n});
      RequireClose(y, GemmReference(a.ToFloatVector(), w.ToFloatVector(), m, n, k, false, true, 1,
                                    1, bias.ToFloatVector(), {n}));
    }
  }
  // MatMul(x [1, T, K], Cast(W fp16 [K, N])) -> float32 [1, T, N].
  const Tensor w = ToDType(RandomF32({40, 24}, 30), DType::kFloat16);
  const Tensor x = RandomF32({1, 9, 40}, 31);
  const Tensor y = RunOnCastWeight(Op("MatMul"), x, w);
  REQUIRE(y.shape() == std::vector<int64_t>{1, 9, 24});
  RequireClose(y, GemmReference(x.ToFloatVector(), w.ToFloatVector(), 9, 24, 40, false, false, 1, 0,
                                {}, {}));
}

}  // namespace
}  // namespace slim
