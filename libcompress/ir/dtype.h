// Element types of IR tensors and their conversions.
//
// The numeric values of DType equal ONNX TensorProto::DataType so that the
// ONNX reader and writer map them 1:1; the packed types (kInt4Packed,
// kInt8Packed) live above ONNX's range and only appear after quantization
// passes. FP16/BF16 <-> FP32 conversions here are the scalar reference
// (round-to-nearest-even, NaN/Inf preserved); kernels may use F16C twins.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "libcompress/common/half.h"

namespace slim {

enum class DType : int32_t {
  kUndefined = 0,
  kFloat32 = 1,
  kUInt8 = 2,
  kInt8 = 3,
  kUInt16 = 4,
  kInt16 = 5,
  kInt32 = 6,
  kInt64 = 7,
  kString = 8,  // recognised so readers can name it; never stored by slimpack
  kBool = 9,
  kFloat16 = 10,
  kFloat64 = 11,
  kUInt32 = 12,
  kUInt64 = 13,
  kBFloat16 = 16,
  // Packed quantized weights (compression core). Byte size is not
  // elements * size: see libcompress/io packed layouts.
  kInt4Packed = 1001,
  kInt8Packed = 1002,
};

// Bytes per element; 0 for kUndefined/kString and the packed types.
size_t DTypeSize(DType t);
// Lower-case name as printed by inspect ("float16", "int64").
const char* DTypeName(DType t);
// DType from an ONNX TensorProto data_type code; kUndefined when unknown.
DType DTypeFromOnnx(int32_t onnx_type);
bool IsFloat(DType t);  // float32/float16/bfloat16/float64

}  // namespace slim
