#include <catch2/catch.hpp>

#include "libcompress/io/hf_llama.h"
#include "libcompress/io/onnx.h"
#include "libcompress/ir/shape_inference.h"

using namespace slim;

namespace {
Node MakeNode(const std::string& name, const std::string& op, std::vector<std::string> in,
              std::vector<std::string> out) {
  Node n;
  n.name = name;
  n.op_type = op;
  n.inputs = std::move(in);
  n.outputs = std::move(out);
  return n;
}

void AddInts(Graph& g, const std::string& name, const std::vector<int64_t>& v) {
  g.AddInitializer(name, Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(v.size())}, v));
}

// Runs inference and returns the shape string of `value` ("?" if unknown).
std::string Inferred(Graph& g, const std::string& value) {
  Expected<ShapeInferenceStats> st = InferShapes(g);
  REQUIRE(st.ok());
  auto it = g.value_info.find(value);
  REQUIRE(it != g.value_info.end());
  return it->second.shape ? ShapeToString(*it->second.shape) : "?";
}
}  // namespace

TEST_CASE("binary ops broadcast symbolic dims", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"a", DType::kFloat16, Shape{"batch", 1, "seq", 8}});
  g.inputs.push_back({"b", DType::kFloat16, Shape{"batch", 4, 1, 8}});
  g.inputs.push_back({"c", DType::kFloat16, Shape{"other", 1}});
  g.nodes.push_back(MakeNode("add", "Add", {"a", "b"}, {"y"}));
  g.nodes.push_back(MakeNode("eq", "Equal", {"a", "c"}, {"m"}));
  std::string y = Inferred(g, "y");
  CHECK(y == ShapeToString(Shape{"batch", 4, "seq", 8}));
  CHECK(g.value_info["y"].dtype == DType::kFloat16);
  // seq vs other: either may be 1, so the dim is unknown; the 8 survives.
  const Shape& m = *g.value_info["m"].shape;
  REQUIRE(m.size() == 4);
  CHECK(m[0] == Dim("batch"));
  CHECK_FALSE(m[2].is_static());
  CHECK(m[2].symbol.empty());
  CHECK(m[3] == Dim(8));
  CHECK(g.value_info["m"].dtype == DType::kBool);
}

TEST_CASE("static broadcast mismatch names the node", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"a", DType::kFloat32, Shape{"n", 3}});
  g.inputs.push_back({"b", DType::kFloat32, Shape{4}});
  g.nodes.push_back(MakeNode("bad_add", "Add", {"a", "b"}, {"y"}));
  Expected<ShapeInferenceStats> st = InferShapes(g);
  REQUIRE_FALSE(st.ok());
  CHECK(st.status().code() == StatusCode::kInvalidInput);
  CHECK_THAT(st.status().message(), Catch::Contains("bad_add"));
}

TEST_CASE("MatMul: batch broadcast, 1-D operands, inner-dim mismatch", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{"b", 1, "s", 16}});
  g.AddInitializer("w", Tensor(DType::kFloat32, {3, 16, 32}));
  g.AddInitializer("v", Tensor(DType::kFloat32, {32}));
  g.nodes.push_back(MakeNode("mm", "MatMul", {"x", "w"}, {"y"}));
  g.nodes.push_back(MakeNode("mv", "MatMul", {"y", "v"}, {"z"}));
  CHECK(Inferred(g, "y") == ShapeToString(Shape{"b", 3, "s", 32}));
  CHECK(Inferred(g, "z") == ShapeToString(Shape{"b", 3, "s"}));

  Graph bad;
  bad.inputs.push_back({"x", DType::kFloat32, Shape{"s", 16}});
  bad.AddInitializer("w", Tensor(DType::kFloat32, {15, 4}));
  bad.nodes.push_back(MakeNode("proj", "MatMul", {"x", "w"}, {"y"}));
  Expected<ShapeInferenceStats> st = InferShapes(bad);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.status().message(), Catch::Contains("proj") && Catch::Contains("inner dims"));
}

TEST_CASE("Reshape copies 0 and infers -1, also through Shape/Gather/Concat", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{"b", "s", 64}});
  AddInts(g, "target", {0, 0, 4, -1});
  g.nodes.push_back(MakeNode("r", "Reshape", {"x", "target"}, {"y"}));
  CHECK(Inferred(g, "y") == ShapeToString(Shape{"b", "s", 4, 16}));

  // A runtime-built shape [shape(x)[1], 8, -1]: s is carried through as a
  // value; -1 is b*64/8, named as the product.
  Graph h;
  h.inputs.push_back({"x", DType::kFloat32, Shape{"b", "s", 64}});
  AddInts(h, "idx", {1});
  AddInts(h, "tail", {8, -1});
  h.nodes.push_back(MakeNode("shape", "Shape", {"x"}, {"shp"}));
  h.nodes.push_back(MakeNode("pick", "Gather", {"shp", "idx"}, {"dim_s"}));
  h.nodes.push_back(MakeNode("cat", "Concat", {"dim_s", "tail"}, {"target"}));
  h.nodes.back().attrs["axis"] = Attribute::Int(0);
  h.nodes.push_back(MakeNode("r", "Reshape", {"x", "target"}, {"y"}));
  std::string y = Inferred(h, "y");
  const Shape& ys = *h.value_info["y"].shape;
  REQUIRE(ys.size() == 3);
  CHECK(ys[0] == Dim("s"));
  CHECK(ys[1] == Dim(8));
  CHECK(ys[2] == Dim("8*b"));  // canonical product name
  CHECK(h.value_info["shp"].dtype == DType::kInt64);
  CHECK(Inferred(h, "target") == ShapeToString(Shape{3}));
}

TEST_CASE("Transpose and Concat", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{"b", 2, 3}});
  g.inputs.push_back({"z", DType::kFloat32, Shape{"b", 5, 3}});
  g.inputs.push_back({"u", DType::kFloat32, Shape{"b", "n", 3}});
  g.nodes.push_back(MakeNode("t", "Transpose", {"x"}, {"xt"}));
  g.nodes.back().attrs["perm"] = Attribute::Ints({2, 0, 1});
  g.nodes.push_back(MakeNode("t2", "Transpose", {"x"}, {"xr"}));
  g.nodes.push_back(MakeNode("c", "Concat", {"x", "z"}, {"xz"}));
  g.nodes.back().attrs["axis"] = Attribute::Int(1);
  g.nodes.push_back(MakeNode("c2", "Concat", {"x", "u"}, {"xu"}));
  g.nodes.back().attrs["axis"] = Attribute::Int(-2);
  CHECK(Inferred(g, "xt") == ShapeToString(Shape{3, "b", 2}));
  CHECK(Inferred(g, "xr") == ShapeToString(Shape{3, 2, "b"}));
  CHECK(Inferred(g, "xz") == ShapeToString(Shape{"b", 7, 3}));
  CHECK(Inferred(g, "xu") == ShapeToString(Shape{"b", "n + 2", 3}));

  Graph bad;
  bad.inputs.push_back({"x", DType::kFloat32, Shape{2, 3}});
  bad.inputs.push_back({"z", DType::kFloat32, Shape{2, 4}});
  bad.nodes.push_back(MakeNode("cat0", "Concat", {"x", "z"}, {"y"}));
  bad.nodes.back().attrs["axis"] = Attribute::Int(0);
  Expected<ShapeInferenceStats> st = InferShapes(bad);
  REQUIRE_FALSE(st.ok());
  CHECK_THAT(st.status().message(), Catch::Contains("cat0"));
}

TEST_CASE("Conv and MaxPool compute spatial dims", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{"n", 3, 32, 30}});
  g.AddInitializer("w", Tensor(DType::kFloat32, {16, 3, 3, 3}));
  g.nodes.push_back(MakeNode("conv", "Conv", {"x", "w"}, {"y"}));
  g.nodes.back().attrs["pads"] = Attribute::Ints({1, 1, 1, 1});
  g.nodes.back().attrs["strides"] = Attribute::Ints({2, 2});
  g.nodes.push_back(MakeNode("pool", "MaxPool", {"y"}, {"p"}));
  g.nodes.back().attrs["kernel_shape"] = Attribute::Ints({2, 2});
  g.nodes.back().attrs["strides"] = Attribute::Ints({2, 2});
  g.nodes.push_back(MakeNode("gap", "GlobalAveragePool", {"p"}, {"q"}));
  g.nodes.push_back(MakeNode("flat", "Flatten", {"q"}, {"f"}));
  CHECK(Inferred(g, "y") == ShapeToString(Shape{"n", 16, 16, 15}));
  CHECK(Inferred(g, "p") == ShapeToString(Shape{"n", 16, 8, 7}));
  CHECK(Inferred(g, "f") == ShapeToString(Shape{"n", 16}));
}

TEST_CASE("Slice, Split, Unsqueeze, reductions, norms, slimpack ops", "[ir][shape]") {
  Graph g;
  g.opset_imports[""] = 17;
  g.inputs.push_back({"x", DType::kFloat16, Shape{"b", "s", 12}});
  g.inputs.push_back({"ids", DType::kInt64, Shape{"b", "s"}});
  AddInts(g, "starts", {2});
  AddInts(g, "ends", {-1});
  AddInts(g, "axes", {2});
  AddInts(g, "ax1", {1});
  g.AddInitializer("wq", Tensor(DType::kInt8, {50, 12}));
  g.nodes.push_back(MakeNode("slice", "Slice", {"x", "starts", "ends", "axes"}, {"sl"}));
  g.nodes.push_back(MakeNode("split", "Split", {"x"}, {"p0", "p1", "p2"}));
  g.nodes.back().attrs["axis"] = Attribute::Int(-1);
  g.nodes.push_back(MakeNode("unsq", "Unsqueeze", {"x", "ax1"}, {"u"}));
  g.nodes.push_back(MakeNode("mean", "ReduceMean", {"x"}, {"rm"}));
  g.nodes.back().attrs["axes"] = Attribute::Ints({-1});
  g.nodes.push_back(MakeNode("sum", "ReduceSum", {"x", "ax1"}, {"rs"}));
  g.nodes.back().attrs["keepdims"] = Attribute::Int(0);
  g.nodes.push_back(MakeNode("ln", "LayerNormalization", {"x"}, {"ln", "ln_mean"}));
  g.nodes.push_back(MakeNode("mmq", "MatMulQ", {"x", "wq"}, {"q"}));
  g.nodes.back().domain = "slimpack";
  g.nodes.back().attrs["N"] = Attribute::Int(50);
  g.nodes.push_back(MakeNode("gq", "GatherQ", {"wq", "ids"}, {"emb"}));
  g.nodes.back().domain = "slimpack";
  g.nodes.push_back(MakeNode("shape", "Shape", {"x"}, {"shp"}));
  g.nodes.push_back(MakeNode("range", "Range", {"zero", "dim", "one"}, {"r"}));
  g.AddInitializer("zero", Tensor::FromVector(DType::kInt64, {}, std::vector<int64_t>{0}));
  g.AddInitializer("one", Tensor::FromVector(DType::kInt64, {}, std::vector<int64_t>{1}));
  g.AddInitializer("idx1", Tensor::FromVector(DType::kInt64, {}, std::vector<int64_t>{1}));
  g.nodes.insert(g.nodes.end() - 1, MakeNode("dim", "Gather", {"shp", "idx1"}, {"dim"}));
  CHECK(Inferred(g, "sl") == ShapeToString(Shape{"b", "s", 9}));
  CHECK(Inferred(g, "p2") == ShapeToString(Shape{"b", "s", 4}));
  CHECK(Inferred(g, "u") == ShapeToString(Shape{"b", 1, "s", 12}));
  CHECK(Inferred(g, "rm") == ShapeToString(Shape{"b", "s", 1}));
  CHECK(Inferred(g, "rs") == ShapeToString(Shape{"b", 12}));
  CHECK(Inferred(g, "ln") == ShapeToString(Shape{"b", "s", 12}));
  CHECK(Inferred(g, "ln_mean") == ShapeToString(Shape{"b", "s", 1}));
  CHECK(g.value_info["ln_mean"].dtype == DType::kFloat32);
  CHECK(Inferred(g, "q") == ShapeToString(Shape{"b", "s", 50}));
  CHECK(g.value_info["q"].dtype == DType::kFloat16);
  CHECK(Inferred(g, "emb") == ShapeToString(Shape{"b", "s", 12}));
  CHECK(g.value_info["emb"].dtype == DType::kFloat32);
  CHECK(Inferred(g, "r") == ShapeToString(Shape{"s"}));
}

TEST_CASE("Expand through the Where(Equal(shape, -1)) guard keeps symbols", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{"b", 1, 8}});
  AddInts(g, "minus1", {-1});
  AddInts(g, "four", {4});
  AddInts(g, "i0", {0});
  AddInts(g, "i2", {2});
  AddInts(g, "len3", {3});
  g.nodes.push_back(MakeNode("shape", "Shape", {"x"}, {"shp"}));
  g.nodes.push_back(MakeNode("g0", "Gather", {"shp", "i0"}, {"d0"}));
  g.nodes.push_back(MakeNode("g2", "Gather", {"shp", "i2"}, {"d2"}));
  g.nodes.push_back(MakeNode("cat", "Concat", {"d0", "four", "d2"}, {"target"}));
  g.nodes.back().attrs["axis"] = Attribute::Int(0);
  g.nodes.push_back(MakeNode("ones", "ConstantOfShape", {"len3"}, {"ones"}));
  g.nodes.back().attrs["value"] =
      Attribute::FromTensor(Tensor::FromVector(DType::kInt64, {1}, std::vector<int64_t>{1}));
  g.nodes.push_back(MakeNode("eq", "Equal", {"target", "minus1"}, {"is_neg"}));
  g.nodes.push_back(MakeNode("where", "Where", {"is_neg", "ones", "target"}, {"guarded"}));
  g.nodes.push_back(MakeNode("expand", "Expand", {"x", "guarded"}, {"y"}));
  CHECK(Inferred(g, "y") == ShapeToString(Shape{"b", 4, 8}));
  CHECK(g.value_info["is_neg"].dtype == DType::kBool);
}

TEST_CASE("unknown ops are counted, not errors", "[ir][shape]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{2}});
  g.nodes.push_back(MakeNode("mystery", "FancyOp", {"x"}, {"y"}));
  g.nodes.push_back(MakeNode("after", "Relu", {"y"}, {"z"}));
  g.nodes.push_back(MakeNode("cast", "Cast", {"x"}, {"w"}));
  g.nodes.back().attrs["to"] = Attribute::Int(7);
  Expected<ShapeInferenceStats> st = InferShapes(g);
  REQUIRE(st.ok());
  CHECK(st.value().unknown == 2);
  CHECK(st.value().inferred == 1);
  CHECK(g.value_info["w"].dtype == DType::kInt64);
}

namespace {
void CheckDecoder(Model& model, int64_t vocab) {
  // Only what inference derives counts, not what the reader declared.
  model.graph.value_info.clear();
  Expected<ShapeInferenceStats> st = InferShapes(model.graph);
  REQUIRE(st.ok());
  const ShapeInferenceStats s = st.value();
  const double fraction = static_cast<double>(s.inferred) / static_cast<double>(s.inferred + s.unknown);
  WARN(model.path << ": inferred " << s.inferred << " of " << (s.inferred + s.unknown)
                  << " node outputs (" << fraction << "), " << s.partial
                  << " with an unnamed unknown dim; logits "
                  << ShapeToString(*model.graph.value_info.at("logits").shape));
  CHECK(fraction > 0.9);
  const ValueInfo& logits = model.graph.value_info.at("logits");
  REQUIRE(logits.shape);
  CHECK(logits.dtype == DType::kFloat32);
  REQUIRE(logits.shape->size() == 3);
  CHECK(logits.shape->back() == Dim(vocab));
  CHECK_FALSE((*logits.shape)[1].is_static());
}
}  // namespace

TEST_CASE("stories260k model_kv.onnx: logits and present shapes", "[ir][shape][models]") {
  Expected<Model> m = ReadOnnx(SLIMPACK_SOURCE_DIR "/models/stories260k/model_kv.onnx");
  REQUIRE(m.ok());
  Model model = std::move(m).value();
  CheckDecoder(model, 512);
  const ValueInfo& key = model.graph.value_info.at("present.0.key");
  REQUIRE(key.shape);
  REQUIRE(key.shape->size() == 4);
  CHECK((*key.shape)[1] == Dim(4));
  CHECK((*key.shape)[3] == Dim(8));
  WARN("present.0.key " << ShapeToString(*key.shape));
}

TEST_CASE("kjv-byte Hugging Face model: logits shape", "[ir][shape][models]") {
  Expected<Model> m = ReadHuggingFace(SLIMPACK_SOURCE_DIR "/models/kjv-byte");
  REQUIRE(m.ok());
  Model model = std::move(m).value();
  CheckDecoder(model, 264);
}
