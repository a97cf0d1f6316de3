#include "libcompress/runtime/op_registry.h"

namespace slim {

void OpTable::Add(const std::string& op_type, OpFn fn, const std::string& domain, OpCheckFn check) {
  ops_[{domain, op_type}] = std::move(fn);
  if (check) checks_[{domain, op_type}] = std::move(check);
}

const OpFn* OpTable::Find(const std::string& domain, const std::string& op_type) const {
  const std::string d = domain == "ai.onnx" ? "" : domain;
  auto it = ops_.find({d, op_type});
  return it == ops_.end() ? nullptr : &it->second;
}

const OpCheckFn* OpTable::FindCheck(const std::string& domain, const std::string& op_type) const {
  const std::string d = domain == "ai.onnx" ? "" : domain;
  auto it = checks_.find({d, op_type});
  return it == checks_.end() ? nullptr : &it->second;
}

std::vector<std::string> OpTable::Names() const {
  std::vector<std::string> names;
  for (const auto& [key, fn] : ops_) {
    names.push_back(key.first.empty() ? key.second : key.first + "." + key.second);
  }
  return names;
}

const OpTable& BuiltinOps() {
  static const OpTable table = [] {
    OpTable t;
    RegisterElementwiseOps(t);
    RegisterShapeOps(t);
    RegisterReduceOps(t);
    RegisterMatMulOps(t);
    RegisterNnOps(t);
    RegisterQuantOps(t);
    return t;
  }();
  return table;
}

}  // namespace slim
