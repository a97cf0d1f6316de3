// Interpreter planning: operators and packed weights are checked before
// anything runs, inputs are checked by name and dtype, weights read are
// counted once per run.
#include <catch2/catch.hpp>

#include "libcompress/kernels/quant.h"
#include "libcompress/runtime/interpreter.h"

using namespace slim;

namespace {

Graph OneNode(const std::string& op, const std::string& domain = "") {
  Graph g;
  g.opset_imports[""] = 17;
  g.inputs.push_back({"x", DType::kFloat32, Shape{2}});
  Node n;
  n.name = "the_node";
  n.op_type = op;
  n.domain = domain;
  n.inputs = {"x", "w"};
  n.outputs = {"y"};
  g.nodes.push_back(n);
  g.AddInitializer("w", Tensor::FromVector(DType::kFloat32, {2}, std::vector<float>{1, 2}));
  g.outputs.push_back({"y", DType::kFloat32, std::nullopt});
  return g;
}

}  // namespace

TEST_CASE("an unsupported operator is an error naming op and node before anything runs", "[runtime]") {
  const Graph g = OneNode("GridSample");
  auto interp = Interpreter::Create(g);
  REQUIRE_FALSE(interp.ok());
  CHECK(interp.status().code() == StatusCode::kUnsupported);
  CHECK_THAT(interp.status().message(), Catch::Contains("'GridSample'") && Catch::Contains("'the_node'"));
  const Graph custom = OneNode("FusedThing", "com.example");
  CHECK_THAT(Interpreter::Create(custom).status().message(), Catch::Contains("com.example"));
}

TEST_CASE("a packed weight that does not fit its layout is refused when the session is created", "[runtime]") {
  // q8_row [N = 3, K = 8]: 3 * 8 code bytes, aligned, then 3 FP32 scales.
  const size_t good = Q8RowLayout::Bytes(3, 8);
  auto graph = [](const std::string& op, const std::string& layout, size_t bytes) {
    Graph g = OneNode(op, "slimpack");
    Node& n = g.nodes[0];
    if (op == "MatMulQ") {
      n.attrs["K"] = Attribute::Int(8);
      n.attrs["N"] = Attribute::Int(3);
    } else {
      n.inputs = {"w", "x"};  // GatherQ(table, indices)
    }
    n.attrs["layout"] = Attribute::String(layout);
    const std::vector<uint8_t> blob(bytes, 0);
    g.AddInitializer("w", Tensor::FromBytes(DType::kInt8Packed, {3, 8}, blob.data(), blob.size()));
    return g;
  };
  CHECK(Interpreter::Create(graph("MatMulQ", "q8_row", good)).ok());
  CHECK(Interpreter::Create(graph("GatherQ", "q8_row", good)).ok());
  for (const std::string op : {"MatMulQ", "GatherQ"}) {
    INFO(op);
    auto short_blob = Interpreter::Create(graph(op, "q8_row", good - 1));
    REQUIRE_FALSE(short_blob.ok());
    CHECK(short_blob.status().code() == StatusCode::kInvalidInput);
    CHECK_THAT(short_blob.status().message(),
               Catch::Contains("'the_node'") && Catch::Contains(std::to_string(good - 1)));
    auto unknown = Interpreter::Create(graph(op, "q3_magic", good));
    REQUIRE_FALSE(unknown.ok());
    CHECK_THAT(unknown.status().message(), Catch::Contains("q3_magic"));
  }
}

TEST_CASE("feeds are checked by name and dtype, weight reads are counted", "[runtime]") {
  const Graph g = OneNode("Add");
  auto interp = Interpreter::Create(g);
  REQUIRE(interp.ok());
  CHECK_THAT((*interp)->Run({}).status().message(), Catch::Contains("'x' was not provided"));
  const Tensor wrong = Tensor::FromVector(DType::kInt64, {2}, std::vector<int64_t>{1, 2});
  CHECK_THAT((*interp)->Run({{"x", wrong}}).status().message(), Catch::Contains("expects float32"));
  RunStats stats;
  auto out = (*interp)->Run({{"x", Tensor::FromVector(DType::kFloat32, {2}, std::vector<float>{3, 4})}}, {}, &stats);
  REQUIRE(out.ok());
  CHECK(out->at("y").FloatAt(1) == 6);
  CHECK(stats.weight_bytes_read == 8);
  CHECK(stats.input_bytes_read.at("x") == 8);
}

TEST_CASE("an observer sees watched inputs and intermediates once per run, its error stops the run",
          "[runtime]") {
  // y = (x + w) + w: the intermediate "t" is freed after its last reader,
  // the observer must see it anyway.
  Graph g = OneNode("Add");
  g.nodes[0].outputs = {"t"};
  Node second = g.nodes[0];
  second.name = "second";
  second.inputs = {"t", "w"};
  second.outputs = {"y"};
  g.nodes.push_back(second);
  auto interp = Interpreter::Create(g);
  REQUIRE(interp.ok());
  std::vector<std::pair<std::string, float>> seen;
  ValueObserver obs;
  obs.values = {"t", "x"};
  obs.on_value = [&](const std::string& name, const Tensor& v) {
    seen.emplace_back(name, v.FloatAt(1));
    return Status::Ok();
  };
  const Tensor x = Tensor::FromVector(DType::kFloat32, {2}, std::vector<float>{3, 4});
  auto out = (*interp)->Run({{"x", x}}, {}, nullptr, &obs);
  REQUIRE(out.ok());
  CHECK(out->at("y").FloatAt(1) == 8);
  REQUIRE(seen.size() == 2);
  CHECK(seen[0] == std::make_pair(std::string("x"), 4.0f));  // inputs first
  CHECK(seen[1] == std::make_pair(std::string("t"), 6.0f));
  CHECK(out->count("t") == 0);  // watching does not make it an output

  obs.on_value = [](const std::string& name, const Tensor&) { return InvalidInput("stop at ", name); };
  CHECK_THAT((*interp)->Run({{"x", x}}, {}, nullptr, &obs).status().message(), Catch::Contains("stop at x"));
  obs.values = {"nope"};
  CHECK_THAT((*interp)->Run({{"x", x}}, {}, nullptr, &obs).status().message(),
             Catch::Contains("watched value 'nope'"));
}
