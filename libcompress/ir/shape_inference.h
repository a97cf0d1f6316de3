// Static shape and dtype inference over the IR (ONNX semantics).
//
// InferShapes walks the nodes in topological order and records the dtype
// and shape of every node output in graph.value_info. Dims stay symbolic
// where the graph inputs are symbolic ("batch", "sequence"); small integer
// tensors that carry shapes (Shape -> Gather -> Concat -> Reshape chains,
// Constant axes, Range bounds) are propagated as values so Reshape, Expand,
// Slice, Range and ConstantOfShape outputs keep their symbols.
//
// Unknown ops never fail: their outputs get an unknown shape (and dtype
// when it cannot be derived) and are counted in the returned stats. Only a
// provable inconsistency (static inner dims of a MatMul that differ, two
// different static dims > 1 broadcast together, ...) is an error, reported
// as InvalidInput naming the node.
#pragma once

#include <cstdint>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim {

struct ShapeInferenceStats {
  int64_t inferred = 0;  // node outputs whose rank (shape) is known
  int64_t partial = 0;   // of those, outputs with a dim neither static nor named
  int64_t unknown = 0;   // node outputs left with shape == nullopt
};

Expected<ShapeInferenceStats> InferShapes(Graph& graph);

}  // namespace slim
