// A small CNN for the Conv channel-pruning tests (passes and CLI):
// builder helpers, correlated images, and the issue's
// Conv-BN-Relu-Conv-Pool-Gemm graph.
#pragma once

#include <cmath>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "libcompress/ir/graph.h"

namespace slim::test {

struct Builder {
  Graph g;
  std::mt19937 rng{11};
  std::normal_distribution<float> d{0.0f, 1.0f};

  Tensor Random(std::vector<int64_t> shape, float scale, float offset = 0.0f) {
    std::vector<float> v(static_cast<size_t>(ShapeNumel(shape)));
    for (float& e : v) e = offset + scale * d(rng);
    return Tensor::FromVector(DType::kFloat32, shape, v);
  }
  std::string Init(const std::string& name, Tensor t) {
    g.AddInitializer(name, std::move(t));
    return name;
  }
  std::string Op(const std::string& op, const std::string& name, std::vector<std::string> in,
                 std::map<std::string, Attribute> attrs = {}) {
    Node n;
    n.op_type = op;
    n.name = name;
    n.inputs = std::move(in);
    n.outputs = {name + ".out"};
    n.attrs = std::move(attrs);
    g.nodes.push_back(std::move(n));
    return name + ".out";
  }
  std::string Conv(const std::string& name, const std::string& x, int64_t out, int64_t in, int64_t k,
                   int64_t group = 1) {
    const float scale = 1.0f / std::sqrt(static_cast<float>(in / group * k * k));
    const std::string w = Init(name + ".w", Random({out, in / group, k, k}, scale));
    const std::string b = Init(name + ".b", Random({out}, 0.1f));
    return Op("Conv", name, {x, w, b},
              {{"pads", Attribute::Ints({k / 2, k / 2, k / 2, k / 2})}, {"group", Attribute::Int(group)}});
  }
  std::string Bn(const std::string& name, const std::string& x, int64_t c) {
    return Op("BatchNormalization", name,
              {x, Init(name + ".scale", Random({c}, 0.3f, 1.0f)), Init(name + ".bias", Random({c}, 0.2f)),
               Init(name + ".mean", Random({c}, 0.1f)), Init(name + ".var", Random({c}, 0.1f, 1.0f))});
  }
};

// x [n, 3, 8, 8] with channels correlated (a smooth image plus noise).
inline Tensor Images(std::mt19937& rng, int64_t n) {
  std::normal_distribution<float> d(0.0f, 1.0f);
  std::vector<float> v(static_cast<size_t>(n * 3 * 64));
  for (int64_t i = 0; i < n; ++i) {
    const float a = d(rng), b = d(rng), c = d(rng);
    for (int64_t ch = 0; ch < 3; ++ch) {
      for (int64_t y = 0; y < 8; ++y) {
        for (int64_t x = 0; x < 8; ++x) {
          v[static_cast<size_t>(((i * 3 + ch) * 8 + y) * 8 + x)] =
              a * std::sin(0.4f * static_cast<float>(x + ch)) + b * std::cos(0.3f * static_cast<float>(y)) +
              c * static_cast<float>(ch) * 0.5f + 0.3f * d(rng);
        }
      }
    }
  }
  return Tensor::FromVector(DType::kFloat32, {n, 3, 8, 8}, v);
}

// Conv(3->32) - BN - Relu - Conv(32->32) - Relu - GlobalAveragePool -
// Flatten - Gemm(32->10): the graph the issue names.
inline Graph MakeCnn() {
  Builder b;
  b.g.name = "cnn";
  b.g.opset_imports[""] = 17;
  b.g.inputs.push_back({"x", DType::kFloat32, Shape{Dim("n"), Dim(3), Dim(8), Dim(8)}});
  std::string h = b.Conv("conv1", "x", 32, 3, 3);
  h = b.Op("Relu", "relu1", {b.Bn("bn1", h, 32)});
  h = b.Op("Relu", "relu2", {b.Conv("conv2", h, 32, 32, 3)});
  h = b.Op("Flatten", "flatten", {b.Op("GlobalAveragePool", "gap", {h})}, {{"axis", Attribute::Int(1)}});
  const std::string w = b.Init("fc.w", b.Random({10, 32}, 0.3f));
  b.g.nodes.push_back(Node{"fc", "Gemm", "", {h, w, b.Init("fc.b", b.Random({10}, 0.1f))}, {"y"},
                           {{"transB", Attribute::Int(1)}}});
  b.g.outputs.push_back({"y", DType::kFloat32, Shape{Dim("n"), Dim(10)}});
  return std::move(b.g);
}

}  // namespace slim::test
