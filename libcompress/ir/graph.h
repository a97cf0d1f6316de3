// The IR: a graph of nodes that reference values by name, ONNX style.
//
// Values are named edges; a value is produced by exactly one node output,
// or is a graph input, or an initializer (a constant Tensor). Node op types
// and attributes follow ONNX (domain "" = ai.onnx), so readers, the runtime
// and the ONNX writer share one vocabulary; slimpack's own ops (packed
// quantized matmuls) use the domain "slimpack". Nodes are kept in
// topological order (Graph::Validate checks it, TopologicalSort restores it).
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/tensor.h"

namespace slim {

// One dimension: a known size, or a symbol ("batch", "sequence") when the
// size is decided at run time. An unknown, unnamed dim has value -1 and an
// empty symbol.
struct Dim {
  int64_t value = -1;
  std::string symbol;
  Dim() = default;
  Dim(int64_t v) : value(v) {}  // NOLINT: implicit for brevity in builders
  Dim(std::string s) : symbol(std::move(s)) {}  // NOLINT
  Dim(const char* s) : symbol(s) {}  // NOLINT
  bool is_static() const { return value >= 0; }
  bool operator==(const Dim& o) const { return value == o.value && symbol == o.symbol; }
};
using Shape = std::vector<Dim>;
std::string ShapeToString(const Shape& shape);

// Type and (optional) shape of a named value. shape == nullopt: rank unknown.
struct ValueInfo {
  std::string name;
  DType dtype = DType::kUndefined;
  std::optional<Shape> shape;
};

struct Attribute {
  enum class Type { kFloat, kInt, kString, kTensor, kFloats, kInts, kStrings };
  Type type = Type::kInt;
  float f = 0;
  int64_t i = 0;
  std::string s;
  Tensor t;
  std::vector<float> floats;
  std::vector<int64_t> ints;
  std::vector<std::string> strings;

  static Attribute Int(int64_t v) { Attribute a; a.type = Type::kInt; a.i = v; return a; }
  static Attribute Float(float v) { Attribute a; a.type = Type::kFloat; a.f = v; return a; }
  static Attribute String(std::string v) { Attribute a; a.type = Type::kString; a.s = std::move(v); return a; }
  static Attribute Ints(std::vector<int64_t> v) { Attribute a; a.type = Type::kInts; a.ints = std::move(v); return a; }
  static Attribute Floats(std::vector<float> v) { Attribute a; a.type = Type::kFloats; a.floats = std::move(v); return a; }
  static Attribute FromTensor(Tensor v) { Attribute a; a.type = Type::kTensor; a.t = std::move(v); return a; }
};

struct Node {
  std::string name;
  std::string op_type;
  std::string domain;  // "" or "ai.onnx" = standard ONNX
  std::vector<std::string> inputs;   // "" marks an omitted optional input
  std::vector<std::string> outputs;  // "" marks an omitted optional output
  std::map<std::string, Attribute> attrs;

  bool HasAttr(const std::string& key) const { return attrs.count(key) != 0; }
  int64_t GetInt(const std::string& key, int64_t def) const;
  float GetFloat(const std::string& key, float def) const;
  std::string GetString(const std::string& key, const std::string& def) const;
  std::vector<int64_t> GetInts(const std::string& key, std::vector<int64_t> def = {}) const;
  std::vector<float> GetFloats(const std::string& key, std::vector<float> def = {}) const;
  // The input name at i, or "" when absent (optional inputs).
  const std::string& Input(size_t i) const;
  // "op 'MatMul' node 'layer.0/MatMul'": used in every error about a node.
  std::string Describe() const;
};

// keep: uint8 [N, K] (the weight's logical shape: N outputs, K inputs),
// 1 = kept, 0 = pruned. pattern: "unstructured" or "N:M" (at most N kept in
// every M consecutive entries along K).
struct WeightMask {
  Tensor keep;
  std::string pattern;
};

class Graph {
 public:
  std::string name;
  std::vector<Node> nodes;
  std::vector<ValueInfo> inputs;
  std::vector<ValueInfo> outputs;
  std::unordered_map<std::string, ValueInfo> value_info;  // intermediate types/shapes
  std::map<std::string, int64_t> opset_imports;  // domain -> version ("" = ai.onnx)
  std::map<std::string, std::string> metadata;   // free-form key/value (ONNX metadata_props)
  // Sparsity masks of pruned weights, by weight name. The pruning passes
  // set them; every pass that rewrites a weight keeps its pruned entries
  // exactly zero (quantization codes them as the zero point). Writers do not
  // store them: the zeros are in the weights.
  std::map<std::string, WeightMask> weight_masks;
  int64_t ir_version = 8;
  std::string producer_name;
  std::string producer_version;

  // Initializers keep insertion order so writers reproduce the source order.
  void AddInitializer(const std::string& name, Tensor t);
  const Tensor* FindInitializer(const std::string& name) const;
  Tensor* MutableInitializer(const std::string& name);
  bool RemoveInitializer(const std::string& name);
  const std::vector<std::string>& initializer_names() const { return initializer_order_; }
  size_t initializer_count() const { return initializer_order_.size(); }

  // Opset of the default (ai.onnx) domain; 0 if not imported.
  int64_t onnx_opset() const;
  // Index of the node producing `value`, or -1 (graph input / initializer).
  int Producer(const std::string& value) const;
  // Indices of nodes that read `value`.
  std::vector<int> Consumers(const std::string& value) const;

  // Checks that names are unique, every node input is defined before use
  // (graph input, initializer or earlier node output) and every graph output
  // is produced. Messages name the node and the value.
  Status Validate() const;
  // Reorders nodes topologically (stable for already-sorted graphs).
  Status TopologicalSort();

 private:
  std::vector<std::string> initializer_order_;
  std::unordered_map<std::string, Tensor> initializers_;
};

// Weight tensors of a graph: float or packed initializers and Constant
// values of rank >= 1 (norms, biases and embedding tables included); the
// figures compile's "bits per weight" and the mixed-precision budget use.
struct WeightStats {
  int64_t tensors = 0;
  int64_t params = 0;   // logical elements (packed tensors count [N, K])
  uint64_t bytes = 0;   // stored bytes, scales and zero points included
  double BitsPerWeight() const {
    return params > 0 ? 8.0 * static_cast<double>(bytes) / static_cast<double>(params) : 0.0;
  }
};
bool IsWeightDType(DType t);
WeightStats ComputeWeightStats(const Graph& graph);

}  // namespace slim
