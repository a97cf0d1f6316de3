// Shape and indexing operators run as one-node graphs through the
// interpreter: ONNX semantics per opset (attribute vs input forms), any
// element size, views instead of copies, and bad input named by node.
#include <catch2/catch.hpp>

#include <cstdint>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "libcompress/ir/graph.h"
#include "libcompress/runtime/interpreter.h"
#include "tests/runtime/op_test_util.h"

namespace slim {
namespace {

using slim_test::F32;
using slim_test::Floats;
using slim_test::I64;
using slim_test::Ints;
using slim_test::Op;
using slim_test::RequireError;
using slim_test::RunNode;
using slim_test::RunOne;

// 0, 1, 2, ... as float32 of the given shape.
Tensor Iota(std::vector<int64_t> shape) {
  std::vector<float> v(static_cast<size_t>(ShapeNumel(shape)));
  for (size_t i = 0; i < v.size(); ++i) v[i] = static_cast<float>(i);
  return F32(std::move(shape), v);
}

TEST_CASE("Shape honours start and end (opset 15), Size counts elements") {
  const Tensor x(DType::kFloat32, {2, 3, 4, 5});
  REQUIRE(Ints(RunOne(Op("Shape"), {x})) == std::vector<int64_t>{2, 3, 4, 5});
  REQUIRE(Ints(RunOne(Op("Shape", {{"start", Attribute::Int(1)}, {"end", Attribute::Int(-1)}}),
                      {x})) == std::vector<int64_t>{3, 4});
  REQUIRE(Ints(RunOne(Op("Shape", {{"start", Attribute::Int(-10)}}), {x})) ==
          std::vector<int64_t>{2, 3, 4, 5});
  REQUIRE(RunOne(Op("Shape", {{"start", Attribute::Int(3)}, {"end", Attribute::Int(1)}}), {x})
              .numel() == 0);
  const Tensor size = RunOne(Op("Size"), {x});
  REQUIRE(size.rank() == 0);
  REQUIRE(Ints(size) == std::vector<int64_t>{120});
}

TEST_CASE("Reshape: 0 copies, -1 infers, allowzero keeps 0, bytes are shared") {
  const Tensor x = Iota({2, 3, 4});
  const Tensor y = RunOne(Op("Reshape"), {x, I64({3}, {0, -1, 2})});
  REQUIRE(y.shape() == std::vector<int64_t>{2, 6, 2});
  REQUIRE(y.raw() == x.raw());  // a view, not a copy
  REQUIRE(Floats(y) == Floats(x));
  const Tensor empty(DType::kFloat32, {0, 3});
  REQUIRE(RunOne(Op("Reshape", {{"allowzero", Attribute::Int(1)}}), {empty, I64({2}, {3, 0})})
              .shape() == std::vector<int64_t>{3, 0});
  RequireError(RunNode(Op("Reshape"), {x, I64({2}, {5, 5})}), "cannot reshape [2, 3, 4]");
  RequireError(RunNode(Op("Reshape"), {x, I64({2}, {-1, -1})}), "more than one -1");
  RequireError(RunNode(Op("Reshape"), {x, I64({2}, {-1, 5})}), "not a multiple of 5");
  RequireError(RunNode(Op("Reshape"), {Iota({4}), I64({2}, {2, 0})}), "copies dimension 1");
}

TEST_CASE("Flatten, Squeeze and Unsqueeze are views") {
  const Tensor x = Iota({2, 1, 3, 1});
  const Tensor f = RunOne(Op("Flatten", {{"axis", Attribute::Int(-2)}}), {x});
  REQUIRE(f.shape() == std::vector<int64_t>{2, 3});
  REQUIRE(f.raw() == x.raw());
  REQUIRE(RunOne(Op("Flatten", {{"axis", Attribute::Int(0)}}), {x}).shape() ==
          std::vector<int64_t>{1, 6});
  // Opset 13+: axes as an input; before: an attribute.
  REQUIRE(RunOne(Op("Squeeze"), {x, I64({1}, {-1})}).shape() == std::vector<int64_t>{2, 1, 3});
  REQUIRE(RunOne(Op("Squeeze", {{"axes", Attribute::Ints({1})}}), {x}, 11).shape() ==
          std::vector<int64_t>{2, 3, 1});
  const Tensor sq = RunOne(Op("Squeeze"), {x});
  REQUIRE(sq.shape() == std::vector<int64_t>{2, 3});
  REQUIRE(sq.raw() == x.raw());
  RequireError(RunNode(Op("Squeeze"), {x, I64({1}, {0})}), "its size is not 1");
  const Tensor y = Iota({3, 4});
  REQUIRE(RunOne(Op("Unsqueeze"), {y, I64({2}, {-1, 0})}).shape() ==
          std::vector<int64_t>{1, 3, 4, 1});
  REQUIRE(RunOne(Op("Unsqueeze", {{"axes", Attribute::Ints({1, 3})}}), {y}, 11).shape() ==
          std::vector<int64_t>{3, 1, 4, 1});
  RequireError(RunNode(Op("Unsqueeze"), {y, I64({2}, {1, 1})}), "repeated");
}

TEST_CASE("Transpose moves any element size") {
  const Tensor x = Iota({2, 3, 4});
  const Tensor t = RunOne(Op("Transpose", {{"perm", Attribute::Ints({1, 2, 0})}}), {x});
  REQUIRE(t.shape() == std::vector<int64_t>{3, 4, 2});
  const auto v = Floats(t);
  for (int64_t i = 0; i < 3; ++i)
    for (int64_t j = 0; j < 4; ++j)
      for (int64_t k = 0; k < 2; ++k) REQUIRE(v[static_cast<size_t>((i * 4 + j) * 2 + k)] == static_cast<float>(k * 12 + i * 4 + j));
  // Default perm reverses; int8 and fp16 take the same byte path.
  const Tensor b = Tensor::FromVector(DType::kInt8, {2, 3}, std::vector<int8_t>{1, 2, 3, 4, 5, 6});
  REQUIRE(Ints(RunOne(Op("Transpose"), {b})) == std::vector<int64_t>{1, 4, 2, 5, 3, 6});
  const Tensor h = Tensor::FromVector(DType::kFloat16, {1, 2},
                                      std::vector<uint16_t>{FloatToHalf(1.5f), FloatToHalf(-2)});
  const Tensor ht = RunOne(Op("Transpose"), {h});
  REQUIRE(ht.dtype() == DType::kFloat16);
  REQUIRE(Floats(ht) == std::vector<float>{1.5f, -2.0f});
  RequireError(RunNode(Op("Transpose", {{"perm", Attribute::Ints({0, 0, 1})}}), {x}),
               "not a permutation");
  RequireError(RunNode(Op("Transpose"), {Tensor(DType::kString, {2})}), "string");
}

TEST_CASE("Concat along a negative axis, mismatched shapes are named") {
  const Tensor a = Iota({2, 2});
  const Tensor b = F32({2, 1}, {10, 11});
  const Tensor c =
      RunOne(Op("Concat", {{"axis", Attribute::Int(-1)}}), {a, b, Tensor(DType::kFloat32, {2, 0})});
  REQUIRE(c.shape() == std::vector<int64_t>{2, 3});
  REQUIRE(Floats(c) == std::vector<float>{0, 1, 10, 2, 3, 11});
  RequireError(RunNode(Op("Concat", {{"axis", Attribute::Int(0)}}), {a, b}), "outside axis 0");
}

TEST_CASE("Slice: negative steps, clamping, INT64 ends, opset 9 attributes") {
  const Tensor x = Iota({3, 5});
  const int64_t kMax = std::numeric_limits<int64_t>::max();
  const int64_t kMin = std::numeric_limits<int64_t>::min();
  // Rows 1.., columns reversed from the end with step -2.
  Tensor y = RunOne(Op("Slice"), {x, I64({2}, {1, -1}), I64({2}, {kMax, kMin}), I64({2}, {0, 1}),
                                  I64({2}, {1, -2})});
  REQUIRE(y.shape() == std::vector<int64_t>{2, 3});
  REQUIRE(Floats(y) == std::vector<float>{9, 7, 5, 14, 12, 10});
  // Out-of-range start clamps to an empty result; axes and steps default.
  y = RunOne(Op("Slice"), {x, I64({1}, {7}), I64({1}, {9})});
  REQUIRE(y.shape() == std::vector<int64_t>{0, 5});
  y = RunOne(Op("Slice"), {x, I64({1}, {-100}), I64({1}, {100}), I64({1}, {-1})});
  REQUIRE(Floats(y) == Floats(x));
  // Opset 9: starts/ends/axes are attributes.
  y = RunOne(Op("Slice", {{"starts", Attribute::Ints({1})},
                          {"ends", Attribute::Ints({3})},
                          {"axes", Attribute::Ints({1})}}),
             {x}, 9);
  REQUIRE(Floats(y) == std::vector<float>{1, 2, 6, 7, 11, 12});
  RequireError(
      RunNode(Op("Slice"), {x, I64({1}, {0}), I64({1}, {1}), I64({1}, {0}), I64({1}, {0})}),
      "step for axis 0 is 0");
}

TEST_CASE("Split: split as attribute (11), as input (13), equal parts, num_outputs (18)") {
  const Tensor x = Iota({2, 6});
  auto r = RunNode(Op("Split", {{"axis", Attribute::Int(1)}, {"split", Attribute::Ints({1, 5})}}),
                   {x}, 11, 2);
  REQUIRE(r.ok());
  REQUIRE(Floats(r->at(0)) == std::vector<float>{0, 6});
  REQUIRE(r->at(1).shape() == std::vector<int64_t>{2, 5});
  r = RunNode(Op("Split", {{"axis", Attribute::Int(-1)}}), {x, I64({3}, {2, 0, 4})}, 17, 3);
  REQUIRE(r.ok());
  REQUIRE(r->at(1).shape() == std::vector<int64_t>{2, 0});
  REQUIRE(Floats(r->at(2)) == std::vector<float>{2, 3, 4, 5, 8, 9, 10, 11});
  r = RunNode(Op("Split", {{"axis", Attribute::Int(1)}}), {x}, 17, 3);
  REQUIRE(r.ok());
  REQUIRE(Floats(r->at(1)) == std::vector<float>{2, 3, 8, 9});
  r = RunNode(Op("Split", {{"axis", Attribute::Int(1)}, {"num_outputs", Attribute::Int(4)}}), {x},
              18, 4);
  REQUIRE(r.ok());
  REQUIRE(r->at(3).shape() == std::vector<int64_t>{2, 0});
  REQUIRE(r->at(2).shape() == std::vector<int64_t>{2, 2});
  RequireError(RunNode(Op("Split", {{"axis", Attribute::Int(1)}}), {x}, 17, 4), "4 equal parts");
  RequireError(RunNode(Op("Split", {{"axis", Attribute::Int(1)}}), {x, I64({2}, {2, 3})}, 17, 2),
               "sums to 5");
}

TEST_CASE("Expand and Tile broadcast by strides") {
  const Tensor x = F32({3, 1}, {1, 2, 3});
  Tensor y = RunOne(Op("Expand"), {x, I64({3}, {2, 1, 2})});
  REQUIRE(y.shape() == std::vector<int64_t>{2, 3, 2});
  REQUIRE(Floats(y) == std::vector<float>{1, 1, 2, 2, 3, 3, 1, 1, 2, 2, 3, 3});
  REQUIRE(RunOne(Op("Expand"), {x, I64({1}, {1})}).shape() == std::vector<int64_t>{3, 1});
  RequireError(RunNode(Op("Expand"), {x, I64({2}, {2, 2})}), "do not broadcast");
  y = RunOne(Op("Tile"), {F32({2, 2}, {1, 2, 3, 4}), I64({2}, {2, 3})});
  REQUIRE(y.shape() == std::vector<int64_t>{4, 6});
  REQUIRE(Floats(y) == std::vector<float>{1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4,
                                          1, 2, 1, 2, 1, 2, 3, 4, 3, 4, 3, 4});
}

TEST_CASE("Gather with negative indices, out of range is an error") {
  const Tensor x = Iota({3, 2});
  Tensor y = RunOne(Op("Gather"), {x, I64({2, 2}, {0, -1, 1, 0})});
  REQUIRE(y.shape() == std::vector<int64_t>{2, 2, 2});
  REQUIRE(Floats(y) == std::vector<float>{0, 1, 4, 5, 2, 3, 0, 1});
  y = RunOne(Op("Gather", {{"axis", Attribute::Int(1)}}),
             {x, Tensor::FromVector(DType::kInt32, {}, std::vector<int32_t>{-1})});
  REQUIRE(y.shape() == std::vector<int64_t>{3});
  REQUIRE(Floats(y) == std::vector<float>{1, 3, 5});
  RequireError(RunNode(Op("Gather"), {x, I64({1}, {3})}), "index 3 is out of range");
}

TEST_CASE("GatherElements and GatherND pick elements and slices") {
  const Tensor x = Iota({2, 3});
  Tensor y =
      RunOne(Op("GatherElements", {{"axis", Attribute::Int(1)}}), {x, I64({2, 2}, {2, -3, 1, 0})});
  REQUIRE(Floats(y) == std::vector<float>{2, 0, 4, 3});
  RequireError(RunNode(Op("GatherElements", {{"axis", Attribute::Int(1)}}), {x, I64({1, 1}, {3})}),
               "index 3 is out of range");
  y = RunOne(Op("GatherND"), {x, I64({2, 1}, {1, -2})});
  REQUIRE(y.shape() == std::vector<int64_t>{2, 3});
  REQUIRE(Floats(y) == std::vector<float>{3, 4, 5, 0, 1, 2});
  // batch_dims 1: row b picks its own column.
  y = RunOne(Op("GatherND", {{"batch_dims", Attribute::Int(1)}}), {x, I64({2, 1}, {2, 0})});
  REQUIRE(Floats(y) == std::vector<float>{2, 3});
  RequireError(RunNode(Op("GatherND"), {x, I64({1, 3}, {0, 0, 0})}), "do not fit");
}

TEST_CASE("Range, ConstantOfShape, Constant") {
  auto scalar_i32 = [](int32_t v) { return Tensor::FromVector(DType::kInt32, {}, std::vector<int32_t>{v}); };
  Tensor r = RunOne(Op("Range"), {scalar_i32(10), scalar_i32(1), scalar_i32(-3)});
  REQUIRE(r.dtype() == DType::kInt32);
  REQUIRE(Ints(r) == std::vector<int64_t>{10, 7, 4});
  r = RunOne(Op("Range"), {Tensor::Scalar(1), Tensor::Scalar(5), Tensor::Scalar(1.5f)});
  REQUIRE(Floats(r) == std::vector<float>{1, 2.5f, 4});
  REQUIRE(RunOne(Op("Range"), {scalar_i32(1), scalar_i32(1), scalar_i32(1)}).numel() == 0);
  RequireError(RunNode(Op("Range"), {scalar_i32(1), scalar_i32(5), scalar_i32(0)}), "delta is 0");

  Tensor c = RunOne(Op("ConstantOfShape", {{"value", Attribute::FromTensor(I64({1}, {7}))}}),
                    {I64({2}, {2, 3})});
  REQUIRE(c.dtype() == DType::kInt64);
  REQUIRE(Ints(c) == std::vector<int64_t>(6, 7));
  c = RunOne(Op("ConstantOfShape"), {I64({0}, {})});
  REQUIRE(c.rank() == 0);
  REQUIRE(Floats(c) == std::vector<float>{0});

  REQUIRE(Floats(RunOne(Op("Constant", {{"value_floats", Attribute::Floats({1, 2})}}), {})) ==
          std::vector<float>{1, 2});
  REQUIRE(RunOne(Op("Constant", {{"value_int", Attribute::Int(4)}}), {}).rank() == 0);
  const Tensor v = Iota({2});
  REQUIRE(RunOne(Op("Constant", {{"value", Attribute::FromTensor(v)}}), {}).raw() == v.raw());
  RequireError(RunNode(Op("Constant", {{"sparse_value", Attribute::FromTensor(v)}}), {}),
               "sparse_value");
}

TEST_CASE("Trilu keeps the upper or lower triangle shifted by k") {
  const Tensor x = F32({2, 3}, {1, 2, 3, 4, 5, 6});
  REQUIRE(Floats(RunOne(Op("Trilu"), {x})) == std::vector<float>{1, 2, 3, 0, 5, 6});
  REQUIRE(Floats(RunOne(Op("Trilu", {{"upper", Attribute::Int(0)}}), {x, I64({}, {1})})) ==
          std::vector<float>{1, 2, 0, 4, 5, 6});
  REQUIRE(Floats(RunOne(Op("Trilu"), {x, I64({}, {-1})})) == std::vector<float>{1, 2, 3, 4, 5, 6});
}

}  // namespace
}  // namespace slim
