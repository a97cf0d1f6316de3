#include "libcompress/metrics/model_stats.h"

#include <functional>

namespace slim {
bool OnlyGathered(const Graph& g, const std::string& value) {
  const auto consumers = g.Consumers(value);
  if (consumers.empty()) return false;
  for (int c : consumers) {
    const Node& n = g.nodes[static_cast<size_t>(c)];
    if (n.op_type == "Cast" && !n.outputs.empty()) {
      if (!OnlyGathered(g, n.outputs[0])) return false;
    } else if ((n.op_type != "Gather" && n.op_type != "GatherQ") || n.inputs.empty() || n.inputs[0] != value) {
      return false;
    }
  }
  return true;
}

uint64_t TensorBytesPerToken(const Graph& g, const std::string& value, const Tensor& t) {
  if (t.rank() >= 1 && t.dim(0) > 0 && OnlyGathered(g, value)) return t.nbytes() / static_cast<uint64_t>(t.dim(0));
  return t.nbytes();
}

ModelStats ComputeModelStats(const Model& model) {
  const Graph& g = model.graph;
  ModelStats s;
  s.nodes = g.nodes.size();
  auto add_tensor = [&](const std::string& value, const Tensor& t) {
    ++s.tensors;
    s.weight_bytes += t.nbytes();
    auto& d = s.by_dtype[DTypeName(t.dtype())];
    ++d.tensors;
    d.elements += static_cast<uint64_t>(t.numel());
    d.bytes += t.nbytes();
    // Packed tensors carry their logical [N, K] shape, so they count as the
    // weights they replace.
    const bool weight = IsFloat(t.dtype()) || t.dtype() == DType::kInt4Packed || t.dtype() == DType::kInt8Packed;
    if (weight && t.numel() > 1) s.parameters += static_cast<uint64_t>(t.numel());
    s.weight_bytes_per_token += TensorBytesPerToken(g, value, t);
  };
  for (const auto& name : g.initializer_names()) add_tensor(name, *g.FindInitializer(name));
  for (const auto& n : g.nodes) {
    ++s.op_counts[n.domain.empty() ? n.op_type : n.domain + "." + n.op_type];
    if (n.op_type == "Constant" && n.HasAttr("value") && !n.outputs.empty()) {
      add_tensor(n.outputs[0], n.attrs.at("value").t);
    }
  }
  if (model.decoder && model.decoder->num_kv_heads > 0 && model.decoder->head_dim > 0) {
    const auto& d = *model.decoder;
    s.kv_bytes_per_context_token = static_cast<uint64_t>(2 * d.num_layers * d.num_kv_heads * d.head_dim) *
                                   DTypeSize(d.kv_dtype);
  }
  return s;
}

}  // namespace slim
