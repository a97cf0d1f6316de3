#include <catch2/catch.hpp>

#include "libcompress/common/sha256.h"
#include "libcompress/ir/graph.h"

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
}  // namespace

TEST_CASE("Validate names the node reading an undefined value", "[ir][graph]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, Shape{1, "n"}});
  g.nodes.push_back(MakeNode("relu", "Relu", {"y"}, {"z"}));
  g.outputs.push_back({"z", DType::kFloat32, std::nullopt});
  Status st = g.Validate();
  REQUIRE_FALSE(st.ok());
  CHECK(st.code() == StatusCode::kInvalidInput);
  CHECK_THAT(st.message(), Catch::Contains("node 'relu'") && Catch::Contains("'y'"));
}

TEST_CASE("Validate rejects a value defined twice and a missing output", "[ir][graph]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, {}});
  g.nodes.push_back(MakeNode("a", "Relu", {"x"}, {"y"}));
  g.nodes.push_back(MakeNode("b", "Relu", {"x"}, {"y"}));
  CHECK_THAT(g.Validate().message(), Catch::Contains("already defined"));
  g.nodes.pop_back();
  g.outputs.push_back({"w", DType::kFloat32, {}});
  CHECK_THAT(g.Validate().message(), Catch::Contains("'w' is never produced"));
}

TEST_CASE("TopologicalSort orders nodes and leaves a cyclic graph untouched", "[ir][graph]") {
  Graph g;
  g.inputs.push_back({"x", DType::kFloat32, {}});
  g.nodes.push_back(MakeNode("second", "Relu", {"y"}, {"z"}));
  g.nodes.push_back(MakeNode("first", "Relu", {"x"}, {"y"}));
  g.outputs.push_back({"z", DType::kFloat32, {}});
  REQUIRE(g.TopologicalSort().ok());
  CHECK(g.nodes[0].name == "first");
  CHECK(g.Validate().ok());

  Graph cyc;
  cyc.nodes.push_back(MakeNode("a", "Relu", {"q"}, {"p"}));
  cyc.nodes.push_back(MakeNode("b", "Relu", {"p"}, {"q"}));
  CHECK_FALSE(cyc.TopologicalSort().ok());
  CHECK(cyc.nodes[0].name == "a");  // not half-rewritten
  CHECK(cyc.nodes[1].name == "b");
}

TEST_CASE("initializers keep insertion order, tensors share or copy bytes", "[ir][graph]") {
  Graph g;
  g.AddInitializer("b", Tensor::Scalar(1));
  g.AddInitializer("a", Tensor::Scalar(2));
  REQUIRE(g.initializer_names() == std::vector<std::string>{"b", "a"});
  REQUIRE(g.RemoveInitializer("b"));
  CHECK(g.initializer_names() == std::vector<std::string>{"a"});
  CHECK(g.FindInitializer("b") == nullptr);

  Tensor t = Tensor::FromVector(DType::kFloat32, {2}, std::vector<float>{1, 2});
  Tensor alias = t;
  alias.MutableData<float>()[0] = 5;  // copy-on-write: t keeps its bytes
  CHECK(t.FloatAt(0) == 1);
  CHECK(alias.FloatAt(0) == 5);
  CHECK(ShapeNumel({3, -1}) == -1);
  CHECK(ShapeNumel({1ll << 40, 1ll << 40}) == -1);  // overflow
}

TEST_CASE("sha256 matches FIPS 180-4 test vectors", "[common]") {
  CHECK(Sha256Hex("abc", 3) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  CHECK(Sha256Hex("", 0) == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  const std::string m = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
  CHECK(Sha256Hex(m.data(), m.size()) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 chunked;
  for (char c : m) chunked.Update(&c, 1);
  CHECK(chunked.HexDigest() == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}
