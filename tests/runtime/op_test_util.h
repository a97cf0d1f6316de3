// One-node graphs for operator tests: build, run through the interpreter,
// return the outputs. Shared by the operator-family tests.
#pragma once

#include <catch2/catch.hpp>
#include <cstdint>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "libcompress/runtime/interpreter.h"
#include "tests/test_util.h"

namespace slim_test {

using namespace slim;

// Runs one node named n0 (error messages name it); inputs that are
// undefined Tensors become omitted ("") inputs. Returns the node's
// `num_outputs` outputs in order.
inline Expected<std::vector<Tensor>> RunNode(Node node, const std::vector<Tensor>& inputs,
                                             int64_t opset = 17, size_t num_outputs = 1) {
  Graph g;
  g.opset_imports[""] = opset;
  std::map<std::string, Tensor> feeds;
  node.name = "n0";
  node.inputs.clear();
  for (size_t i = 0; i < inputs.size(); ++i) {
    if (!inputs[i].defined()) {
      node.inputs.push_back("");
      continue;
    }
    const std::string name = "x" + std::to_string(i);
    node.inputs.push_back(name);
    g.inputs.push_back({name, inputs[i].dtype(), std::nullopt});
    feeds[name] = inputs[i];
  }
  for (size_t i = 0; i < num_outputs; ++i) {
    node.outputs.push_back("y" + std::to_string(i));
    g.outputs.push_back({node.outputs.back(), DType::kUndefined, std::nullopt});
  }
  g.nodes.push_back(node);
  auto interp = Interpreter::Create(g);
  if (!interp.ok()) return interp.status();
  auto out = (*interp)->Run(feeds);
  if (!out.ok()) return out.status();
  std::vector<Tensor> result;
  for (const auto& o : g.outputs) result.push_back(out->at(o.name));
  return result;
}

// The only output of a node that must run; fails the test case otherwise.
inline Tensor RunOne(Node node, const std::vector<Tensor>& inputs, int64_t opset = 17) {
  auto r = RunNode(std::move(node), inputs, opset);
  INFO(r.status().message());
  REQUIRE(r.ok());
  return r->at(0);
}

// Requires a run to fail with a message naming the node and containing
// `fragment`.
inline void RequireError(const Expected<std::vector<Tensor>>& r, const std::string& fragment) {
  REQUIRE_FALSE(r.ok());
  INFO(r.status().message());
  REQUIRE(r.status().message().find("node 'n0'") != std::string::npos);
  REQUIRE(r.status().message().find(fragment) != std::string::npos);
}

inline Node Op(const std::string& type, std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.op_type = type;
  n.attrs = std::move(attrs);
  return n;
}

inline Tensor F32(std::vector<int64_t> shape, const std::vector<float>& v) {
  return Tensor::FromVector(DType::kFloat32, std::move(shape), v);
}
inline Tensor I64(std::vector<int64_t> shape, const std::vector<int64_t>& v) {
  return Tensor::FromVector(DType::kInt64, std::move(shape), v);
}
inline std::vector<float> Floats(const Tensor& t) { return t.ToFloatVector(); }
inline std::vector<int64_t> Ints(const Tensor& t) { return t.ToInt64Vector(); }

}  // namespace slim_test
