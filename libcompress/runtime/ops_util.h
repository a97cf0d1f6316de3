// Helpers shared by the operator families: float load/store across dtypes,
// numpy-style broadcasting, axis normalisation.
#pragma once

#include <cstdint>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim::ops {

// Element values as float32 (fp16/bf16/f64/ints converted).
std::vector<float> LoadFloat(const Tensor& t);
// New tensor of `dtype` (float32/float16/bfloat16/float64) from float32
// values; fp16/bf16 are rounded to nearest even.
Tensor StoreFloat(DType dtype, std::vector<int64_t> shape, const std::vector<float>& v);
// New int64/int32/... tensor from int64 values (truncating to the dtype).
Tensor StoreInt(DType dtype, std::vector<int64_t> shape, const std::vector<int64_t>& v);

// numpy broadcasting of two shapes; error names the node.
Expected<std::vector<int64_t>> BroadcastShapes(const Node& node, const std::vector<int64_t>& a,
                                               const std::vector<int64_t>& b);

// Maps each flat index of `out_shape` to the flat index of an input of shape
// `in_shape` broadcast to it (in_shape right-aligned, size-1 dims repeat).
std::vector<int64_t> BroadcastIndex(const std::vector<int64_t>& in_shape,
                                    const std::vector<int64_t>& out_shape);

// Row-major strides of a shape.
std::vector<int64_t> Strides(const std::vector<int64_t>& shape);

// Ops whose output size comes from tensor values (Range, ConstantOfShape,
// Expand, Tile, ...) check it before allocating: dims >= 0, no int64
// overflow, and at most this many elements. 2^32 elements (16 GiB as FP32)
// is far above any activation of a model this runtime runs on a device
// (TinyLlama's logits over an 8k-token prefill are 2^28); a larger one
// comes from a hostile or broken graph and is bad input, not an attempt to
// allocate it.
inline constexpr int64_t kMaxComputedElements = int64_t{1} << 32;
Status CheckOutputShape(const Node& node, const std::vector<int64_t>& shape);

// axis in [-rank, rank) -> [0, rank); error names the node otherwise.
Expected<int64_t> NormalizeAxis(const Node& node, int64_t axis, int64_t rank);

}  // namespace slim::ops
