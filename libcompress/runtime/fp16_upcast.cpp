#include "libcompress/runtime/fp16_upcast.h"

#include <unordered_map>
#include <unordered_set>

#include "libcompress/runtime/ops_util.h"

namespace slim {
namespace {

bool Is16BitFloat(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }

Tensor ToFloat32(const Tensor& t) { return ops::StoreFloat(DType::kFloat32, t.shape(), t.ToFloatVector()); }

enum class Use { kMatMulB, kGatherTable, kCastToFloat, kOther };

Use UseOf(const Node& n, size_t input) {
  if (!n.domain.empty()) return Use::kOther;
  if ((n.op_type == "MatMul" || n.op_type == "Gemm") && input == 1) return Use::kMatMulB;
  if (n.op_type == "Gather" && input == 0) return Use::kGatherTable;
  if (n.op_type == "Cast" && n.GetInt("to", 0) == static_cast<int64_t>(DType::kFloat32)) return Use::kCastToFloat;
  return Use::kOther;
}

void UpcastValueInfo(ValueInfo& v) {
  if (Is16BitFloat(v.dtype)) v.dtype = DType::kFloat32;
}

Node CastToFloat(const std::string& name, const std::string& in, const std::string& out) {
  Node cast;
  cast.name = name;
  cast.op_type = "Cast";
  cast.inputs = {in};
  cast.outputs = {out};
  cast.attrs["to"] = Attribute::Int(static_cast<int64_t>(DType::kFloat32));
  return cast;
}

}  // namespace

Expected<Graph> UpcastFp16Compute(const Graph& graph) {
  Graph g = graph;
  // How each 16-bit constant (initializer or Constant-node output) is read.
  std::unordered_map<std::string, std::vector<Use>> uses;
  auto is_16bit_constant = [&](const std::string& v, const Node* producer) {
    if (const Tensor* t = g.FindInitializer(v)) return Is16BitFloat(t->dtype());
    return producer && producer->op_type == "Constant" && producer->HasAttr("value") &&
           Is16BitFloat(producer->attrs.at("value").t.dtype());
  };
  std::unordered_map<std::string, const Node*> producer;
  for (const Node& n : g.nodes) {
    for (const auto& o : n.outputs) producer[o] = &n;
  }
  for (const Node& n : g.nodes) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      const std::string& in = n.inputs[i];
      if (in.empty()) continue;
      auto p = producer.find(in);
      if (is_16bit_constant(in, p == producer.end() ? nullptr : p->second)) uses[in].push_back(UseOf(n, i));
    }
  }
  for (const auto& o : g.outputs) {
    if (uses.count(o.name)) uses[o.name].push_back(Use::kOther);
  }
  // A constant any other op reads is converted to FP32 once (norm weights,
  // biases: small). Weights read only by matmuls, Gather or Cast stay 16-bit:
  // matmuls read them through an elided Cast, Gather outputs are cast.
  std::unordered_set<std::string> convert, matmul_weight, gather_table;
  for (const auto& [value, list] : uses) {
    bool other = false;
    for (Use u : list) other = other || u == Use::kOther;
    if (other) {
      convert.insert(value);
      continue;
    }
    for (Use u : list) {
      if (u == Use::kMatMulB) matmul_weight.insert(value);
      if (u == Use::kGatherTable) gather_table.insert(value);
    }
  }
  for (const auto& name : graph.initializer_names()) {
    if (convert.count(name)) g.AddInitializer(name, ToFloat32(*g.FindInitializer(name)));
  }
  std::vector<Node> nodes;
  for (const auto& name : graph.initializer_names()) {
    if (matmul_weight.count(name)) nodes.push_back(CastToFloat(name + "/upcast", name, name + "/f32"));
  }
  for (Node n : g.nodes) {
    for (size_t i = 0; i < n.inputs.size(); ++i) {
      if (matmul_weight.count(n.inputs[i]) && UseOf(n, i) == Use::kMatMulB) n.inputs[i] += "/f32";
    }
    if (n.op_type == "Cast" && n.domain.empty() && Is16BitFloat(static_cast<DType>(n.GetInt("to", 0)))) {
      n.attrs["to"] = Attribute::Int(static_cast<int64_t>(DType::kFloat32));
    }
    const bool constant_weight = n.op_type == "Constant" && n.outputs.size() == 1 && uses.count(n.outputs[0]) &&
                                 !convert.count(n.outputs[0]);
    if (!constant_weight) {
      for (auto& [key, attr] : n.attrs) {
        if (attr.type == Attribute::Type::kTensor && Is16BitFloat(attr.t.dtype())) attr.t = ToFloat32(attr.t);
      }
    }
    const bool gather16 = n.op_type == "Gather" && n.domain.empty() && gather_table.count(n.Input(0));
    std::string gather_out;
    if (gather16) {
      gather_out = n.outputs[0];
      n.outputs[0] += "/f16";
    }
    nodes.push_back(std::move(n));
    const Node& placed = nodes.back();
    if (constant_weight && matmul_weight.count(placed.outputs[0])) {
      const std::string out = placed.outputs[0];
      nodes.push_back(CastToFloat(out + "/upcast", out, out + "/f32"));
    }
    if (gather16) nodes.push_back(CastToFloat(gather_out + "/upcast", gather_out + "/f16", gather_out));
  }
  g.nodes = std::move(nodes);
  for (auto& v : g.inputs) UpcastValueInfo(v);
  for (auto& v : g.outputs) UpcastValueInfo(v);
  for (auto& [name, v] : g.value_info) UpcastValueInfo(v);
  SLIM_RETURN_IF_ERROR(g.Validate().WithContext("FP32-compute rewrite"));
  return g;
}

}  // namespace slim
