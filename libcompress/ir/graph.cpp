#include "libcompress/ir/graph.h"

#include <algorithm>
#include <unordered_set>

namespace slim {

std::string ShapeToString(const Shape& shape) {
  std::string s = "[";
  for (size_t i = 0; i < shape.size(); ++i) {
    if (i) s += ", ";
    if (shape[i].is_static()) {
      s += std::to_string(shape[i].value);
    } else {
      s += shape[i].symbol.empty() ? "?" : shape[i].symbol;
    }
  }
  return s + "]";
}

int64_t Node::GetInt(const std::string& key, int64_t def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.i;
}
float Node::GetFloat(const std::string& key, float def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.f;
}
std::string Node::GetString(const std::string& key, const std::string& def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.s;
}
std::vector<int64_t> Node::GetInts(const std::string& key, std::vector<int64_t> def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.ints;
}
std::vector<float> Node::GetFloats(const std::string& key, std::vector<float> def) const {
  auto it = attrs.find(key);
  return it == attrs.end() ? def : it->second.floats;
}
const std::string& Node::Input(size_t i) const {
  static const std::string kEmpty;
  return i < inputs.size() ? inputs[i] : kEmpty;
}
std::string Node::Describe() const {
  return StrCat("op '", op_type, "' node '", name, "'");
}

void Graph::AddInitializer(const std::string& name, Tensor t) {
  if (initializers_.count(name) == 0) initializer_order_.push_back(name);
  initializers_[name] = std::move(t);
}
const Tensor* Graph::FindInitializer(const std::string& name) const {
  auto it = initializers_.find(name);
  return it == initializers_.end() ? nullptr : &it->second;
}
Tensor* Graph::MutableInitializer(const std::string& name) {
  auto it = initializers_.find(name);
  return it == initializers_.end() ? nullptr : &it->second;
}
bool Graph::RemoveInitializer(const std::string& name) {
  if (initializers_.erase(name) == 0) return false;
  initializer_order_.erase(std::find(initializer_order_.begin(), initializer_order_.end(), name));
  return true;
}

int64_t Graph::onnx_opset() const {
  for (const auto& [domain, version] : opset_imports) {
    if (domain.empty() || domain == "ai.onnx") return version;
  }
  return 0;
}

int Graph::Producer(const std::string& value) const {
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& o : nodes[i].outputs) {
      if (o == value) return static_cast<int>(i);
    }
  }
  return -1;
}

std::vector<int> Graph::Consumers(const std::string& value) const {
  std::vector<int> out;
  for (size_t i = 0; i < nodes.size(); ++i) {
    for (const auto& in : nodes[i].inputs) {
      if (in == value) {
        out.push_back(static_cast<int>(i));
        break;
      }
    }
  }
  return out;
}

Status Graph::Validate() const {
  std::unordered_set<std::string> defined;
  for (const auto& in : inputs) {
    SLIM_CHECK_INPUT(defined.insert(in.name).second, "graph input '", in.name, "' is declared twice");
  }
  for (const auto& name : initializer_order_) defined.insert(name);
  for (const auto& node : nodes) {
    for (const auto& in : node.inputs) {
      SLIM_CHECK_INPUT(in.empty() || defined.count(in), node.Describe(), " reads value '", in,
                       "' that no graph input, initializer or earlier node defines");
    }
    for (const auto& out : node.outputs) {
      if (out.empty()) continue;
      SLIM_CHECK_INPUT(defined.insert(out).second, node.Describe(), " writes value '", out,
                       "' that is already defined");
    }
  }
  for (const auto& out : outputs) {
    SLIM_CHECK_INPUT(defined.count(out.name), "graph output '", out.name, "' is never produced");
  }
  return Status::Ok();
}

Status Graph::TopologicalSort() {
  std::unordered_set<std::string> defined;
  for (const auto& in : inputs) defined.insert(in.name);
  for (const auto& name : initializer_order_) defined.insert(name);
  std::vector<size_t> order;
  order.reserve(nodes.size());
  std::vector<bool> placed(nodes.size(), false);
  // Repeated stable sweeps: O(n^2) worst case but linear for sorted input,
  // which is what every exporter writes. The graph is only rewritten once an
  // order exists, so a failure leaves it untouched.
  bool progress = true;
  while (order.size() < nodes.size() && progress) {
    progress = false;
    for (size_t i = 0; i < nodes.size(); ++i) {
      if (placed[i]) continue;
      bool ready = std::all_of(nodes[i].inputs.begin(), nodes[i].inputs.end(),
                               [&](const std::string& n) { return n.empty() || defined.count(n); });
      if (!ready) continue;
      for (const auto& o : nodes[i].outputs) defined.insert(o);
      order.push_back(i);
      placed[i] = true;
      progress = true;
    }
  }
  for (size_t i = 0; i < nodes.size(); ++i) {
    if (placed[i]) continue;
    for (const auto& in : nodes[i].inputs) {
      if (!in.empty() && !defined.count(in)) {
        return InvalidInput(nodes[i].Describe(), " reads value '", in,
                            "' that is never defined (or the graph has a cycle)");
      }
    }
  }
  std::vector<Node> sorted;
  sorted.reserve(nodes.size());
  for (size_t i : order) sorted.push_back(std::move(nodes[i]));
  nodes = std::move(sorted);
  return Status::Ok();
}

bool IsWeightDType(DType t) { return IsFloat(t) || t == DType::kInt4Packed || t == DType::kInt8Packed; }

WeightStats ComputeWeightStats(const Graph& graph) {
  WeightStats s;
  auto add = [&](const Tensor& t) {
    if (!IsWeightDType(t.dtype()) || t.rank() == 0 || t.numel() <= 0) return;
    ++s.tensors;
    s.params += t.numel();
    s.bytes += t.nbytes();
  };
  for (const auto& name : graph.initializer_names()) add(*graph.FindInitializer(name));
  for (const Node& n : graph.nodes) {
    if (n.op_type == "Constant" && n.HasAttr("value") &&
        n.attrs.at("value").type == Attribute::Type::kTensor) {
      add(n.attrs.at("value").t);
    }
  }
  return s;
}

}  // namespace slim
