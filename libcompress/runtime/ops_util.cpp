#include "libcompress/runtime/ops_util.h"

#include <cstring>

namespace slim::ops {

Status CheckOutputShape(const Node& node, const std::vector<int64_t>& shape) {
  const int64_t n = ShapeNumel(shape);
  SLIM_CHECK_INPUT(n >= 0, node.Describe(), ": output shape ", ShapeToString(shape),
                   " has a negative dimension or too many elements");
  SLIM_CHECK_INPUT(n <= kMaxComputedElements, node.Describe(), ": output shape ", ShapeToString(shape), " has ", n,
                   " elements, above the runtime's limit of ", kMaxComputedElements);
  return Status::Ok();
}

std::vector<float> LoadFloat(const Tensor& t) { return t.ToFloatVector(); }

Tensor StoreFloat(DType dtype, std::vector<int64_t> shape, const std::vector<float>& v) {
  Tensor out(dtype, std::move(shape));
  const size_t n = v.size();
  switch (dtype) {
    case DType::kFloat32:
      if (n) std::memcpy(out.MutableData<float>(), v.data(), n * 4);
      break;
    case DType::kFloat16: {
      auto* p = out.MutableData<uint16_t>();
      for (size_t i = 0; i < n; ++i) p[i] = FloatToHalf(v[i]);
      break;
    }
    case DType::kBFloat16: {
      auto* p = out.MutableData<uint16_t>();
      for (size_t i = 0; i < n; ++i) p[i] = FloatToBFloat16(v[i]);
      break;
    }
    case DType::kFloat64: {
      auto* p = out.MutableData<double>();
      for (size_t i = 0; i < n; ++i) p[i] = v[i];
      break;
    }
    default: {
      std::vector<int64_t> iv(n);
      for (size_t i = 0; i < n; ++i) iv[i] = static_cast<int64_t>(v[i]);
      return StoreInt(dtype, out.shape(), iv);
    }
  }
  return out;
}

Tensor StoreInt(DType dtype, std::vector<int64_t> shape, const std::vector<int64_t>& v) {
  Tensor out(dtype, std::move(shape));
  auto* p = static_cast<uint8_t*>(out.MutableRaw());
  const size_t n = v.size();
  for (size_t i = 0; i < n; ++i) {
    switch (dtype) {
      case DType::kInt64: { int64_t x = v[i]; std::memcpy(p + 8 * i, &x, 8); break; }
      case DType::kUInt64: { uint64_t x = static_cast<uint64_t>(v[i]); std::memcpy(p + 8 * i, &x, 8); break; }
      case DType::kInt32: { int32_t x = static_cast<int32_t>(v[i]); std::memcpy(p + 4 * i, &x, 4); break; }
      case DType::kUInt32: { uint32_t x = static_cast<uint32_t>(v[i]); std::memcpy(p + 4 * i, &x, 4); break; }
      case DType::kInt16: { int16_t x = static_cast<int16_t>(v[i]); std::memcpy(p + 2 * i, &x, 2); break; }
      case DType::kUInt16: { uint16_t x = static_cast<uint16_t>(v[i]); std::memcpy(p + 2 * i, &x, 2); break; }
      case DType::kInt8: p[i] = static_cast<uint8_t>(static_cast<int8_t>(v[i])); break;
      case DType::kUInt8: p[i] = static_cast<uint8_t>(v[i]); break;
      case DType::kBool: p[i] = v[i] != 0; break;
      case DType::kFloat32: { float x = static_cast<float>(v[i]); std::memcpy(p + 4 * i, &x, 4); break; }
      case DType::kFloat64: { double x = static_cast<double>(v[i]); std::memcpy(p + 8 * i, &x, 8); break; }
      case DType::kFloat16: { uint16_t x = FloatToHalf(static_cast<float>(v[i])); std::memcpy(p + 2 * i, &x, 2); break; }
      case DType::kBFloat16: { uint16_t x = FloatToBFloat16(static_cast<float>(v[i])); std::memcpy(p + 2 * i, &x, 2); break; }
      default: break;
    }
  }
  return out;
}

Expected<std::vector<int64_t>> BroadcastShapes(const Node& node, const std::vector<int64_t>& a,
                                               const std::vector<int64_t>& b) {
  const size_t rank = std::max(a.size(), b.size());
  std::vector<int64_t> out(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t da = i < rank - a.size() ? 1 : a[i - (rank - a.size())];
    const int64_t db = i < rank - b.size() ? 1 : b[i - (rank - b.size())];
    if (da == db || db == 1) {
      out[i] = da;
    } else if (da == 1) {
      out[i] = db;
    } else {
      return InvalidInput(node.Describe(), ": shapes ", ShapeToString(a), " and ",
                          ShapeToString(b), " do not broadcast");
    }
  }
  return out;
}

std::vector<int64_t> Strides(const std::vector<int64_t>& shape) {
  std::vector<int64_t> s(shape.size(), 1);
  for (size_t i = shape.size(); i-- > 1;) s[i - 1] = s[i] * shape[i];
  return s;
}

std::vector<int64_t> BroadcastIndex(const std::vector<int64_t>& in_shape,
                                    const std::vector<int64_t>& out_shape) {
  const int64_t n = ShapeNumel(out_shape);
  std::vector<int64_t> idx(static_cast<size_t>(n));
  const size_t rank = out_shape.size();
  const size_t offset = rank - in_shape.size();
  // Stride of each output dim in the input (0 where the input broadcasts).
  std::vector<int64_t> in_strides_full(rank, 0);
  const auto in_strides = Strides(in_shape);
  for (size_t i = 0; i < in_shape.size(); ++i) {
    in_strides_full[i + offset] = in_shape[i] == 1 ? 0 : in_strides[i];
  }
  std::vector<int64_t> counter(rank, 0);
  int64_t src = 0;
  for (int64_t k = 0; k < n; ++k) {
    idx[static_cast<size_t>(k)] = src;
    for (size_t d = rank; d-- > 0;) {
      ++counter[d];
      src += in_strides_full[d];
      if (counter[d] < out_shape[d]) break;
      src -= in_strides_full[d] * counter[d];
      counter[d] = 0;
    }
  }
  return idx;
}

Expected<int64_t> NormalizeAxis(const Node& node, int64_t axis, int64_t rank) {
  if (axis < -rank || axis >= rank) {
    return InvalidInput(node.Describe(), ": axis ", axis, " is out of range for rank ", rank);
  }
  return axis < 0 ? axis + rank : axis;
}

}  // namespace slim::ops
