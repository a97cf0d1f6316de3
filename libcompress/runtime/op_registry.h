// Operator implementations of the reference interpreter, looked up by
// (domain, op_type).
//
// Each ops_*.cpp file implements a family of ONNX operators with ONNX
// semantics and registers them from one Register*Ops function; op_registry.cpp
// calls those functions in an explicit list (no static self-registration).
// Float16/BFloat16 tensors are computed in float32 and rounded back to their
// dtype on output, so an FP16 graph behaves like an FP16 runtime that
// accumulates in FP32.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"
#include "libcompress/runtime/thread_pool.h"

namespace slim {

struct OpCall {
  const Node& node;
  int64_t opset;                      // ai.onnx opset of the model
  std::vector<const Tensor*> inputs;  // nullptr for omitted optional inputs
  // The session's threads; ops split work only as thread_pool.h allows, so
  // outputs do not depend on it.
  ParallelContext parallel = {};
  // Input i or nullptr when absent (past the end or omitted).
  const Tensor* in(size_t i) const { return i < inputs.size() ? inputs[i] : nullptr; }
};

// Fills `outputs` (already sized to node.outputs.size()); outputs whose name
// is empty may be left undefined. Errors name the node (call.node.Describe()).
using OpFn = std::function<Status(const OpCall& call, std::vector<Tensor>& outputs)>;

// An op's optional load-time check of a node against its constant inputs
// (initializers; nullptr for values computed at run time). Sessions run it
// for every node when they are created, before any kernel runs, so a packed
// weight that does not fit its layout is an error at load (docs/FORMAT.md),
// not at the first token.
using OpCheckFn = std::function<Status(const Node& node, const std::vector<const Tensor*>& constants)>;

class OpTable {
 public:
  void Add(const std::string& op_type, OpFn fn, const std::string& domain = "", OpCheckFn check = {});
  const OpFn* Find(const std::string& domain, const std::string& op_type) const;
  // nullptr when the op has no load-time check.
  const OpCheckFn* FindCheck(const std::string& domain, const std::string& op_type) const;
  // "MatMul", "slimpack.MatMulQ4" ...: sorted, for docs and the claim list.
  std::vector<std::string> Names() const;

 private:
  std::map<std::pair<std::string, std::string>, OpFn> ops_;
  std::map<std::pair<std::string, std::string>, OpCheckFn> checks_;
};

// The table with every operator the runtime claims.
const OpTable& BuiltinOps();

// Family registration functions (one per ops_*.cpp).
void RegisterElementwiseOps(OpTable& table);  // arithmetic, math, logic, Cast, Where
void RegisterShapeOps(OpTable& table);        // Shape, Reshape, Transpose, Concat, Slice, ...
void RegisterReduceOps(OpTable& table);       // Reduce*, Softmax, norms
void RegisterMatMulOps(OpTable& table);       // MatMul, Gemm
void RegisterNnOps(OpTable& table);           // Conv, pooling, Resize, Pad, BatchNorm, ...
void RegisterQuantOps(OpTable& table);        // slimpack.MatMulQ, slimpack.GatherQ

}  // namespace slim
