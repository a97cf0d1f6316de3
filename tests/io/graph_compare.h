// Shared by the IO round-trip tests: file bytes helpers and a deep graph
// comparison (everything a writer promises to preserve; tensor bytes and
// float lists compared bit for bit, NaN equal to NaN). Scratch directories
// come from TempDir in tests/test_util.h, included here for all IO tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstring>
#include <fstream>
#include <iterator>
#include <string>
#include <vector>

#include "libcompress/ir/graph.h"
#include "tests/test_util.h"

namespace slim_test {

using namespace slim;

inline std::string ReadBytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}
inline void WriteBytes(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

inline bool SameBytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && a.nbytes() == b.nbytes() &&
         (a.nbytes() == 0 || std::memcmp(a.raw(), b.raw(), a.nbytes()) == 0);
}

inline void CheckSameValues(const std::vector<ValueInfo>& a, const std::vector<ValueInfo>& b) {
  REQUIRE(a.size() == b.size());
  for (size_t i = 0; i < a.size(); ++i) {
    INFO("value " << a[i].name);
    CHECK(a[i].name == b[i].name);
    CHECK(a[i].dtype == b[i].dtype);
    REQUIRE(a[i].shape.has_value() == b[i].shape.has_value());
    if (a[i].shape) CHECK(*a[i].shape == *b[i].shape);
  }
}

inline bool SameAttribute(const Attribute& a, const Attribute& b) {
  if (a.type != b.type) return false;
  switch (a.type) {
    case Attribute::Type::kFloat: return a.f == b.f || (a.f != a.f && b.f != b.f);
    case Attribute::Type::kInt: return a.i == b.i;
    case Attribute::Type::kString: return a.s == b.s;
    case Attribute::Type::kTensor: return SameBytes(a.t, b.t);
    case Attribute::Type::kFloats:
      return a.floats.size() == b.floats.size() &&
             std::memcmp(a.floats.data(), b.floats.data(), 4 * a.floats.size()) == 0;
    case Attribute::Type::kInts: return a.ints == b.ints;
    case Attribute::Type::kStrings: return a.strings == b.strings;
  }
  return false;
}

// Everything WritePacked promises to preserve.
inline void CheckSameGraph(const Graph& a, const Graph& b) {
  CHECK(a.name == b.name);
  CHECK(a.ir_version == b.ir_version);
  CHECK(a.producer_name == b.producer_name);
  CHECK(a.producer_version == b.producer_version);
  CHECK(a.opset_imports == b.opset_imports);
  CHECK(a.metadata == b.metadata);
  CheckSameValues(a.inputs, b.inputs);
  CheckSameValues(a.outputs, b.outputs);
  REQUIRE(a.value_info.size() == b.value_info.size());
  for (const auto& [name, v] : a.value_info) {
    REQUIRE(b.value_info.count(name) == 1);
    CheckSameValues({v}, {b.value_info.at(name)});
  }
  REQUIRE(a.nodes.size() == b.nodes.size());
  for (size_t i = 0; i < a.nodes.size(); ++i) {
    const Node& x = a.nodes[i];
    const Node& y = b.nodes[i];
    INFO(x.Describe());
    CHECK(x.name == y.name);
    CHECK(x.op_type == y.op_type);
    CHECK(x.domain == y.domain);
    CHECK(x.inputs == y.inputs);
    CHECK(x.outputs == y.outputs);
    REQUIRE(x.attrs.size() == y.attrs.size());
    for (const auto& [key, attr] : x.attrs) {
      INFO("attribute " << key);
      REQUIRE(y.attrs.count(key) == 1);
      CHECK(SameAttribute(attr, y.attrs.at(key)));
    }
  }
  REQUIRE(a.initializer_names() == b.initializer_names());
  for (const auto& name : a.initializer_names()) {
    INFO("initializer " << name);
    CHECK(SameBytes(*a.FindInitializer(name), *b.FindInitializer(name)));
  }
}

}  // namespace slim_test
