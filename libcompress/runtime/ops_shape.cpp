// Shape and indexing operators with ONNX semantics (opsets 9..17, plus
// Split's num_outputs of opset 18): Shape, Size, Reshape, Flatten, Squeeze,
// Unsqueeze, Transpose, Concat, Slice, Split, Expand, Tile,
// Gather, GatherElements, GatherND, Range, ConstantOfShape, Constant, Trilu.
//
// These ops move bytes, so they work on the element size, not the dtype:
// every fixed-size dtype (ints, bools, all floats) takes the same path, and
// only string tensors are refused. Reshape, Flatten, Squeeze and Unsqueeze
// return a view of the input's bytes (Tensor::Reshaped), never a copy
// (Identity, the same kind of view, is registered with the elementwise ops).
// Inputs that changed from attributes to tensors across opsets
// (Slice's starts/ends at 10, Squeeze/Unsqueeze axes and Split's split at 13)
// are read from the input when the node has it and from the attribute
// otherwise, so a model of any opset in range runs.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <type_traits>
#include <set>
#include <vector>

#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {
namespace {

Expected<size_t> ElementSize(const Node& node, const Tensor& t) {
  const size_t size = DTypeSize(t.dtype());
  if (size == 0) {
    return Unsupported(node.Describe(), ": tensors of type ", DTypeName(t.dtype()),
                       " are not supported");
  }
  return size;
}

Expected<const Tensor*> Input(const OpCall& call, size_t i, const char* what) {
  const Tensor* t = call.in(i);
  if (!t) return InvalidInput(call.node.Describe(), ": missing input ", i, " (", what, ")");
  return t;
}

// An int32/int64 tensor of rank <= 1 as int64 values (shapes, axes, indices).
Expected<std::vector<int64_t>> IntList(const Node& node, const Tensor& t, const char* what) {
  if (t.dtype() != DType::kInt64 && t.dtype() != DType::kInt32) {
    return InvalidInput(node.Describe(), ": ", what, " must be int64 or int32, got ",
                        DTypeName(t.dtype()));
  }
  if (t.rank() > 1) {
    return InvalidInput(node.Describe(), ": ", what, " must be a scalar or 1-D, got shape ",
                        ShapeToString(t.shape()));
  }
  return t.ToInt64Vector();
}

// Values of input i if the node has it, else of attribute `attr`, else
// nullopt-like empty result with `present` false.
Expected<std::vector<int64_t>> IntsFromInputOrAttr(const OpCall& call, size_t i,
                                                   const char* attr, bool* present) {
  if (const Tensor* t = call.in(i)) {
    *present = true;
    return IntList(call.node, *t, attr);
  }
  *present = call.node.HasAttr(attr);
  return call.node.GetInts(attr);
}

// Normalises axes against `rank`, rejecting repeats.
Expected<std::vector<int64_t>> NormalizeAxes(const Node& node, const std::vector<int64_t>& axes,
                                             int64_t rank) {
  std::vector<int64_t> out;
  std::set<int64_t> seen;
  for (int64_t a : axes) {
    SLIM_ASSIGN_OR_RETURN(const int64_t n, ops::NormalizeAxis(node, a, rank));
    SLIM_CHECK_INPUT(seen.insert(n).second, node.Describe(), ": axis ", a, " is repeated");
    out.push_back(n);
  }
  return out;
}

template <size_t kSize>
void CopyElements(const uint8_t* src, int64_t stride, int64_t count, uint8_t* dst) {
  for (int64_t i = 0; i < count; ++i, src += stride, dst += kSize) std::memcpy(dst, src, kSize);
}

// Writes the strided view of `src` with output dims `dims` and byte strides
// `strides` (any sign, 0 to repeat) into contiguous `dst`. Transpose, Slice,
// Expand and Tile are all such views.
void StridedCopy(const uint8_t* src, std::vector<int64_t> dims, std::vector<int64_t> strides,
                 size_t esize, uint8_t* dst) {
  if (ShapeNumel(dims) == 0) return;
  // Drop size-1 dims and merge dims that are contiguous with their inner
  // neighbour, so the inner loop runs as long as possible.
  std::vector<int64_t> d, s;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] == 1) continue;
    if (!d.empty() && s.back() == strides[i] * dims[i]) {
      d.back() *= dims[i];
      s.back() = strides[i];
    } else {
      d.push_back(dims[i]);
      s.push_back(strides[i]);
    }
  }
  if (d.empty()) {
    std::memcpy(dst, src, esize);
    return;
  }
  const size_t inner = d.size() - 1;
  const int64_t count = d[inner];
  const int64_t stride = s[inner];
  const bool contiguous = stride == static_cast<int64_t>(esize);
  const size_t row_bytes = static_cast<size_t>(count) * esize;
  std::vector<int64_t> counter(inner, 0);
  const uint8_t* p = src;
  for (;;) {
    if (contiguous) {
      std::memcpy(dst, p, row_bytes);
    } else {
      switch (esize) {
        case 1: CopyElements<1>(p, stride, count, dst); break;
        case 2: CopyElements<2>(p, stride, count, dst); break;
        case 4: CopyElements<4>(p, stride, count, dst); break;
        case 8: CopyElements<8>(p, stride, count, dst); break;
        default:
          for (int64_t i = 0; i < count; ++i) std::memcpy(dst + i * esize, p + i * stride, esize);
      }
    }
    dst += row_bytes;
    size_t k = inner;
    for (; k-- > 0;) {
      p += s[k];
      if (++counter[k] < d[k]) break;
      p -= s[k] * d[k];
      counter[k] = 0;
    }
    if (k == static_cast<size_t>(-1)) return;
  }
}

// Byte strides of a contiguous tensor.
std::vector<int64_t> ByteStrides(const std::vector<int64_t>& shape, size_t esize) {
  std::vector<int64_t> s = ops::Strides(shape);
  for (auto& x : s) x *= static_cast<int64_t>(esize);
  return s;
}

uint8_t* Bytes(Tensor& t) { return static_cast<uint8_t*>(t.MutableRaw()); }
const uint8_t* Bytes(const Tensor& t) { return static_cast<const uint8_t*>(t.raw()); }

// ---------------------------------------------------------------- shape ops

Status ShapeOp(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  const int64_t rank = static_cast<int64_t>(x->rank());
  // Opset 15 start/end: negative counts from the back, then clamped.
  auto clamp = [rank](int64_t v) {
    if (v < 0) v += rank;
    return std::clamp<int64_t>(v, 0, rank);
  };
  const int64_t start = clamp(call.node.GetInt("start", 0));
  const int64_t end = clamp(call.node.GetInt("end", rank));
  std::vector<int64_t> dims;
  for (int64_t i = start; i < end; ++i) dims.push_back(x->dim(static_cast<size_t>(i)));
  outputs[0] = ops::StoreInt(DType::kInt64, {static_cast<int64_t>(dims.size())}, dims);
  return Status::Ok();
}

Status SizeOp(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  outputs[0] = ops::StoreInt(DType::kInt64, {}, {x->numel()});
  return Status::Ok();
}

Status Reshape(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* shape_t, Input(call, 1, "shape"));
  SLIM_ASSIGN_OR_RETURN(std::vector<int64_t> shape, IntList(node, *shape_t, "shape"));
  const bool allow_zero = node.GetInt("allowzero", 0) != 0;
  int64_t infer_at = -1;
  int64_t known = 1;
  for (size_t i = 0; i < shape.size(); ++i) {
    if (shape[i] == 0 && !allow_zero) {
      SLIM_CHECK_INPUT(i < x->rank(), node.Describe(), ": shape ", ShapeToString(shape),
                       " copies dimension ", i, " (0) of an input of rank ", x->rank());
      shape[i] = x->dim(i);
    }
    if (shape[i] == -1) {
      SLIM_CHECK_INPUT(infer_at < 0, node.Describe(), ": shape ", ShapeToString(shape),
                       " has more than one -1");
      infer_at = static_cast<int64_t>(i);
      continue;
    }
    SLIM_CHECK_INPUT(shape[i] >= 0, node.Describe(), ": shape ", ShapeToString(shape),
                     " has the invalid dimension ", shape[i]);
    SLIM_CHECK_INPUT(!__builtin_mul_overflow(known, shape[i], &known), node.Describe(), ": shape ",
                     ShapeToString(shape), " has more elements than int64 counts");
  }
  if (infer_at >= 0) {
    SLIM_CHECK_INPUT(known != 0, node.Describe(), ": cannot infer the -1 of shape ",
                     ShapeToString(shape), " when the other dimensions multiply to 0");
    SLIM_CHECK_INPUT(x->numel() % known == 0, node.Describe(), ": cannot reshape ",
                     ShapeToString(x->shape()), " to ", ShapeToString(shape),
                     ": element count ", x->numel(), " is not a multiple of ", known);
    shape[static_cast<size_t>(infer_at)] = x->numel() / known;
  }
  SLIM_CHECK_INPUT(ShapeNumel(shape) == x->numel(), node.Describe(), ": cannot reshape ",
                   ShapeToString(x->shape()), " (", x->numel(), " elements) to ",
                   ShapeToString(shape));
  outputs[0] = x->Reshaped(std::move(shape));
  return Status::Ok();
}

Status Flatten(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "input"));
  const int64_t rank = static_cast<int64_t>(x->rank());
  int64_t axis = call.node.GetInt("axis", 1);
  SLIM_CHECK_INPUT(axis >= -rank && axis <= rank, call.node.Describe(), ": axis ", axis,
                   " is out of range for rank ", rank);
  if (axis < 0) axis += rank;
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) (i < axis ? outer : inner) *= x->dim(static_cast<size_t>(i));
  outputs[0] = x->Reshaped({outer, inner});
  return Status::Ok();
}

Status Squeeze(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  bool present = false;
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> axes_in,
                        IntsFromInputOrAttr(call, 1, "axes", &present));
  const int64_t rank = static_cast<int64_t>(x->rank());
  std::vector<bool> drop(x->rank(), false);
  if (present) {
    SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, NormalizeAxes(node, axes_in, rank));
    for (int64_t a : axes) {
      SLIM_CHECK_INPUT(x->dim(static_cast<size_t>(a)) == 1, node.Describe(), ": cannot squeeze axis ",
                       a, " of shape ", ShapeToString(x->shape()), ": its size is not 1");
      drop[static_cast<size_t>(a)] = true;
    }
  } else {
    for (size_t i = 0; i < x->rank(); ++i) drop[i] = x->dim(i) == 1;
  }
  std::vector<int64_t> shape;
  for (size_t i = 0; i < x->rank(); ++i) {
    if (!drop[i]) shape.push_back(x->dim(i));
  }
  outputs[0] = x->Reshaped(std::move(shape));
  return Status::Ok();
}

Status Unsqueeze(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  bool present = false;
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> axes_in,
                        IntsFromInputOrAttr(call, 1, "axes", &present));
  SLIM_CHECK_INPUT(present, node.Describe(), ": needs axes (input from opset 13, attribute before)");
  const int64_t out_rank = static_cast<int64_t>(x->rank() + axes_in.size());
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> axes, NormalizeAxes(node, axes_in, out_rank));
  std::vector<bool> is_new(static_cast<size_t>(out_rank), false);
  for (int64_t a : axes) is_new[static_cast<size_t>(a)] = true;
  std::vector<int64_t> shape;
  size_t next = 0;
  for (int64_t i = 0; i < out_rank; ++i) {
    shape.push_back(is_new[static_cast<size_t>(i)] ? 1 : x->dim(next++));
  }
  outputs[0] = x->Reshaped(std::move(shape));
  return Status::Ok();
}

// ------------------------------------------------------------- copying ops

Status Transpose(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  const size_t rank = x->rank();
  std::vector<int64_t> perm = node.GetInts("perm");
  if (!node.HasAttr("perm")) {
    for (size_t i = rank; i-- > 0;) perm.push_back(static_cast<int64_t>(i));
  }
  SLIM_CHECK_INPUT(perm.size() == rank, node.Describe(), ": perm has ", perm.size(),
                   " entries for an input of rank ", rank);
  std::vector<bool> used(rank, false);
  const auto in_strides = ByteStrides(x->shape(), esize);
  std::vector<int64_t> dims(rank), strides(rank);
  for (size_t i = 0; i < rank; ++i) {
    const int64_t p = perm[i];
    SLIM_CHECK_INPUT(p >= 0 && p < static_cast<int64_t>(rank) && !used[static_cast<size_t>(p)],
                     node.Describe(), ": perm ", ShapeToString(perm), " is not a permutation of 0..",
                     rank - 1);
    used[static_cast<size_t>(p)] = true;
    dims[i] = x->dim(static_cast<size_t>(p));
    strides[i] = in_strides[static_cast<size_t>(p)];
  }
  Tensor out(x->dtype(), dims);
  StridedCopy(Bytes(*x), dims, strides, esize, Bytes(out));
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Concat(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_CHECK_INPUT(!call.inputs.empty(), node.Describe(), ": needs at least one input");
  SLIM_ASSIGN_OR_RETURN(const Tensor* first, Input(call, 0, "inputs"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *first));
  SLIM_CHECK_INPUT(node.HasAttr("axis"), node.Describe(), ": attribute 'axis' is required");
  const int64_t rank = static_cast<int64_t>(first->rank());
  SLIM_CHECK_INPUT(rank > 0, node.Describe(), ": inputs must have rank >= 1");
  SLIM_ASSIGN_OR_RETURN(const int64_t axis, ops::NormalizeAxis(node, node.GetInt("axis", 0), rank));
  std::vector<int64_t> shape = first->shape();
  shape[static_cast<size_t>(axis)] = 0;
  for (size_t i = 0; i < call.inputs.size(); ++i) {
    SLIM_ASSIGN_OR_RETURN(const Tensor* t, Input(call, i, "inputs"));
    SLIM_CHECK_INPUT(t->dtype() == first->dtype() && t->rank() == first->rank(), node.Describe(),
                     ": input ", i, " (", DTypeName(t->dtype()), " ", ShapeToString(t->shape()),
                     ") does not match input 0 (", DTypeName(first->dtype()), " ",
                     ShapeToString(first->shape()), ")");
    for (size_t d = 0; d < t->rank(); ++d) {
      SLIM_CHECK_INPUT(d == static_cast<size_t>(axis) || t->dim(d) == first->dim(d),
                       node.Describe(), ": input ", i, " shape ", ShapeToString(t->shape()),
                       " differs from ", ShapeToString(first->shape()), " outside axis ", axis);
    }
    shape[static_cast<size_t>(axis)] += t->dim(static_cast<size_t>(axis));
  }
  int64_t outer = 1, inner = 1;
  for (int64_t d = 0; d < rank; ++d) {
    if (d < axis) outer *= shape[static_cast<size_t>(d)];
    if (d > axis) inner *= shape[static_cast<size_t>(d)];
  }
  Tensor out(first->dtype(), shape);
  uint8_t* dst = Bytes(out);
  for (int64_t o = 0; o < outer; ++o) {
    for (const Tensor* t : call.inputs) {
      const size_t chunk = static_cast<size_t>(t->dim(static_cast<size_t>(axis)) * inner) * esize;
      if (chunk == 0) continue;
      std::memcpy(dst, Bytes(*t) + static_cast<size_t>(o) * chunk, chunk);
      dst += chunk;
    }
  }
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Slice(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  std::vector<int64_t> starts, ends, axes, steps;
  if (call.in(1) || call.in(2)) {  // opset >= 10: tensors
    SLIM_ASSIGN_OR_RETURN(const Tensor* s, Input(call, 1, "starts"));
    SLIM_ASSIGN_OR_RETURN(const Tensor* e, Input(call, 2, "ends"));
    SLIM_ASSIGN_OR_RETURN(starts, IntList(node, *s, "starts"));
    SLIM_ASSIGN_OR_RETURN(ends, IntList(node, *e, "ends"));
    if (call.in(3)) {
      SLIM_ASSIGN_OR_RETURN(axes, IntList(node, *call.in(3), "axes"));
    }
    if (call.in(4)) {
      SLIM_ASSIGN_OR_RETURN(steps, IntList(node, *call.in(4), "steps"));
    }
  } else {  // opset 9: attributes, no steps
    SLIM_CHECK_INPUT(node.HasAttr("starts") && node.HasAttr("ends"), node.Describe(),
                     ": needs starts and ends (inputs from opset 10, attributes before)");
    starts = node.GetInts("starts");
    ends = node.GetInts("ends");
    axes = node.GetInts("axes");
  }
  const int64_t rank = static_cast<int64_t>(x->rank());
  if (axes.empty() && !(call.in(3) || node.HasAttr("axes"))) {
    for (size_t i = 0; i < starts.size(); ++i) axes.push_back(static_cast<int64_t>(i));
  }
  if (steps.empty() && !call.in(4)) steps.assign(starts.size(), 1);
  SLIM_CHECK_INPUT(ends.size() == starts.size() && axes.size() == starts.size() &&
                       steps.size() == starts.size(),
                   node.Describe(), ": starts, ends, axes and steps have different lengths (",
                   starts.size(), ", ", ends.size(), ", ", axes.size(), ", ", steps.size(), ")");
  SLIM_ASSIGN_OR_RETURN(axes, NormalizeAxes(node, axes, rank));
  std::vector<int64_t> dims = x->shape();
  std::vector<int64_t> strides = ByteStrides(x->shape(), esize);
  int64_t offset = 0;
  for (size_t i = 0; i < axes.size(); ++i) {
    const size_t a = static_cast<size_t>(axes[i]);
    const int64_t d = x->dim(a);
    const int64_t step = steps[i];
    SLIM_CHECK_INPUT(step != 0, node.Describe(), ": step for axis ", axes[i], " is 0");
    int64_t start = starts[i];
    int64_t end = ends[i];
    // Negative positions count from the end; then clamp (INT64 min/max
    // mean "to the end" and survive: adding d cannot overflow here).
    if (start < 0) start += d;
    if (end < 0) end += d;
    int64_t len = 0;
    if (step > 0) {
      start = std::clamp<int64_t>(start, 0, d);
      end = std::clamp<int64_t>(end, 0, d);
      if (end > start) len = (end - start - 1) / step + 1;
    } else if (d > 0) {
      start = std::clamp<int64_t>(start, 0, d - 1);
      end = std::clamp<int64_t>(end, -1, d - 1);
      if (start > end) len = (start - end - 1) / (-step) + 1;
    }
    dims[a] = len;
    if (len > 0) offset += start * strides[a];
    strides[a] *= step;
  }
  Tensor out(x->dtype(), dims);
  if (out.numel() > 0) StridedCopy(Bytes(*x) + offset, dims, strides, esize, Bytes(out));
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Split(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "input"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  const int64_t rank = static_cast<int64_t>(x->rank());
  SLIM_ASSIGN_OR_RETURN(const int64_t axis, ops::NormalizeAxis(node, node.GetInt("axis", 0), rank));
  const int64_t d = x->dim(static_cast<size_t>(axis));
  const int64_t n_out = static_cast<int64_t>(outputs.size());
  bool present = false;
  SLIM_ASSIGN_OR_RETURN(std::vector<int64_t> split, IntsFromInputOrAttr(call, 1, "split", &present));
  if (!present) {
    if (node.HasAttr("num_outputs")) {
      // Opset 18: equal chunks of ceil(d / n); the last one may be smaller.
      const int64_t n = node.GetInt("num_outputs", 0);
      SLIM_CHECK_INPUT(n == n_out, node.Describe(), ": num_outputs ", n, " but the node has ",
                       n_out, " outputs");
      const int64_t chunk = n > 0 ? (d + n - 1) / n : 0;
      for (int64_t i = 0; i < n; ++i) split.push_back(std::clamp<int64_t>(d - i * chunk, 0, chunk));
    } else {
      SLIM_CHECK_INPUT(n_out > 0 && d % n_out == 0, node.Describe(), ": axis ", axis, " of size ",
                       d, " does not split into ", n_out, " equal parts");
      split.assign(static_cast<size_t>(n_out), d / n_out);
    }
  }
  SLIM_CHECK_INPUT(static_cast<int64_t>(split.size()) == n_out, node.Describe(), ": split has ",
                   split.size(), " entries for ", n_out, " outputs");
  int64_t total = 0;
  for (int64_t s : split) {
    SLIM_CHECK_INPUT(s >= 0, node.Describe(), ": split ", ShapeToString(split),
                     " has a negative entry");
    total += s;
  }
  SLIM_CHECK_INPUT(total == d, node.Describe(), ": split ", ShapeToString(split), " sums to ",
                   total, ", not the size ", d, " of axis ", axis);
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) {
    if (i < axis) outer *= x->dim(static_cast<size_t>(i));
    if (i > axis) inner *= x->dim(static_cast<size_t>(i));
  }
  const size_t in_row = static_cast<size_t>(d * inner) * esize;
  size_t col = 0;
  for (size_t k = 0; k < split.size(); ++k) {
    std::vector<int64_t> shape = x->shape();
    shape[static_cast<size_t>(axis)] = split[k];
    Tensor out(x->dtype(), shape);
    uint8_t* dst = Bytes(out);
    const size_t chunk = static_cast<size_t>(split[k] * inner) * esize;
    for (int64_t o = 0; chunk > 0 && o < outer; ++o) {
      std::memcpy(dst + static_cast<size_t>(o) * chunk,
                  Bytes(*x) + static_cast<size_t>(o) * in_row + col, chunk);
    }
    col += chunk;
    outputs[k] = std::move(out);
  }
  return Status::Ok();
}

// Input dims right-aligned to `out` with byte stride 0 where they broadcast.
std::vector<int64_t> BroadcastByteStrides(const std::vector<int64_t>& in,
                                          const std::vector<int64_t>& out, size_t esize) {
  const auto in_strides = ByteStrides(in, esize);
  std::vector<int64_t> s(out.size(), 0);
  const size_t offset = out.size() - in.size();
  for (size_t i = 0; i < in.size(); ++i) s[offset + i] = in[i] == 1 ? 0 : in_strides[i];
  return s;
}

Status Expand(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "input"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* shape_t, Input(call, 1, "shape"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, IntList(node, *shape_t, "shape"));
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, shape));
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> out_shape,
                        ops::BroadcastShapes(node, x->shape(), shape));
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, out_shape));
  Tensor out(x->dtype(), out_shape);
  StridedCopy(Bytes(*x), out_shape, BroadcastByteStrides(x->shape(), out_shape, esize), esize,
              Bytes(out));
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Tile(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "input"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* rep_t, Input(call, 1, "repeats"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> repeats, IntList(node, *rep_t, "repeats"));
  SLIM_CHECK_INPUT(repeats.size() == x->rank(), node.Describe(), ": repeats has ",
                   repeats.size(), " entries for an input of rank ", x->rank());
  // Tiling is the view [r0, d0, r1, d1, ...] with stride 0 on each r_i.
  const auto in_strides = ByteStrides(x->shape(), esize);
  std::vector<int64_t> view_dims, view_strides, out_shape;
  for (size_t i = 0; i < repeats.size(); ++i) {
    SLIM_CHECK_INPUT(repeats[i] >= 0, node.Describe(), ": repeats ", ShapeToString(repeats),
                     " has a negative entry");
    view_dims.insert(view_dims.end(), {repeats[i], x->dim(i)});
    view_strides.insert(view_strides.end(), {0, in_strides[i]});
  }
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, view_dims));  // before any product can overflow
  for (size_t i = 0; i < repeats.size(); ++i) out_shape.push_back(repeats[i] * x->dim(i));
  Tensor out(x->dtype(), out_shape);
  StridedCopy(Bytes(*x), view_dims, view_strides, esize, Bytes(out));
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Gather(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* idx_t, Input(call, 1, "indices"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  SLIM_CHECK_INPUT(idx_t->dtype() == DType::kInt64 || idx_t->dtype() == DType::kInt32,
                   node.Describe(), ": indices must be int64 or int32, got ",
                   DTypeName(idx_t->dtype()));
  const int64_t rank = static_cast<int64_t>(x->rank());
  SLIM_CHECK_INPUT(rank >= 1, node.Describe(), ": data must have rank >= 1");
  SLIM_ASSIGN_OR_RETURN(const int64_t axis, ops::NormalizeAxis(node, node.GetInt("axis", 0), rank));
  const int64_t d = x->dim(static_cast<size_t>(axis));
  std::vector<int64_t> indices = idx_t->ToInt64Vector();
  for (auto& i : indices) {
    SLIM_CHECK_INPUT(i >= -d && i < d, node.Describe(), ": index ", i,
                     " is out of range for axis ", axis, " of size ", d);
    if (i < 0) i += d;
  }
  std::vector<int64_t> shape(x->shape().begin(), x->shape().begin() + axis);
  shape.insert(shape.end(), idx_t->shape().begin(), idx_t->shape().end());
  shape.insert(shape.end(), x->shape().begin() + axis + 1, x->shape().end());
  int64_t outer = 1, inner = 1;
  for (int64_t i = 0; i < rank; ++i) {
    if (i < axis) outer *= x->dim(static_cast<size_t>(i));
    if (i > axis) inner *= x->dim(static_cast<size_t>(i));
  }
  Tensor out(x->dtype(), shape);
  uint8_t* dst = Bytes(out);
  const size_t row = static_cast<size_t>(inner) * esize;
  for (int64_t o = 0; row > 0 && o < outer; ++o) {
    const uint8_t* src = Bytes(*x) + static_cast<size_t>(o * d) * row;
    for (int64_t i : indices) {
      std::memcpy(dst, src + static_cast<size_t>(i) * row, row);
      dst += row;
    }
  }
  outputs[0] = std::move(out);
  return Status::Ok();
}

// Index values of an int32/int64 tensor, negative ones wrapped by `d`.
Expected<int64_t> WrapIndex(const Node& node, int64_t i, int64_t d, int64_t axis) {
  if (i < -d || i >= d) {
    return InvalidInput(node.Describe(), ": index ", i, " is out of range for axis ", axis,
                        " of size ", d);
  }
  return i < 0 ? i + d : i;
}

Status CheckIndexType(const Node& node, const Tensor& t) {
  SLIM_CHECK_INPUT(t.dtype() == DType::kInt64 || t.dtype() == DType::kInt32, node.Describe(),
                   ": indices must be int64 or int32, got ", DTypeName(t.dtype()));
  return Status::Ok();
}

// out[c] = data[c with coordinate `axis` replaced by indices[c]].
Status GatherElements(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* idx_t, Input(call, 1, "indices"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  SLIM_RETURN_IF_ERROR(CheckIndexType(node, *idx_t));
  const int64_t rank = static_cast<int64_t>(x->rank());
  SLIM_CHECK_INPUT(rank >= 1 && idx_t->rank() == x->rank(), node.Describe(),
                   ": data ", ShapeToString(x->shape()), " and indices ",
                   ShapeToString(idx_t->shape()), " must have the same rank >= 1");
  SLIM_ASSIGN_OR_RETURN(const int64_t axis, ops::NormalizeAxis(node, node.GetInt("axis", 0), rank));
  for (int64_t d = 0; d < rank; ++d) {
    SLIM_CHECK_INPUT(d == axis || idx_t->dim(static_cast<size_t>(d)) <= x->dim(static_cast<size_t>(d)),
                     node.Describe(), ": indices ", ShapeToString(idx_t->shape()),
                     " exceed data ", ShapeToString(x->shape()), " on axis ", d);
  }
  const auto strides = ops::Strides(x->shape());
  const auto indices = idx_t->ToInt64Vector();
  Tensor out(x->dtype(), idx_t->shape());
  uint8_t* dst = Bytes(out);
  std::vector<int64_t> coord(static_cast<size_t>(rank), 0);
  const size_t a = static_cast<size_t>(axis);
  for (size_t n = 0; n < indices.size(); ++n) {
    SLIM_ASSIGN_OR_RETURN(const int64_t i, WrapIndex(node, indices[n], x->dim(a), axis));
    int64_t src = i * strides[a];
    for (size_t d = 0; d < coord.size(); ++d) {
      if (d != a) src += coord[d] * strides[d];
    }
    std::memcpy(dst + n * esize, Bytes(*x) + static_cast<size_t>(src) * esize, esize);
    for (size_t d = coord.size(); d-- > 0;) {
      if (++coord[d] < idx_t->dim(d)) break;
      coord[d] = 0;
    }
  }
  outputs[0] = std::move(out);
  return Status::Ok();
}

// indices [..., k] pick slices data[b..., i0, .., ik-1, ...] per batch_dims.
Status GatherND(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "data"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* idx_t, Input(call, 1, "indices"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  SLIM_RETURN_IF_ERROR(CheckIndexType(node, *idx_t));
  const int64_t b = node.GetInt("batch_dims", 0);
  const int64_t r = static_cast<int64_t>(x->rank());
  const int64_t q = static_cast<int64_t>(idx_t->rank());
  SLIM_CHECK_INPUT(r >= 1 && q >= 1 && b >= 0 && b < std::min(r, q), node.Describe(),
                   ": batch_dims ", b, " must be below the ranks of data ", ShapeToString(x->shape()),
                   " and indices ", ShapeToString(idx_t->shape()));
  const int64_t k = idx_t->dim(static_cast<size_t>(q - 1));
  SLIM_CHECK_INPUT(k >= 1 && k <= r - b, node.Describe(), ": index tuples of length ", k,
                   " do not fit data ", ShapeToString(x->shape()), " after ", b, " batch dims");
  int64_t batches = 1;
  for (int64_t d = 0; d < b; ++d) {
    SLIM_CHECK_INPUT(x->dim(static_cast<size_t>(d)) == idx_t->dim(static_cast<size_t>(d)),
                     node.Describe(), ": batch dimension ", d, " differs between data ",
                     ShapeToString(x->shape()), " and indices ", ShapeToString(idx_t->shape()));
    batches *= x->dim(static_cast<size_t>(d));
  }
  std::vector<int64_t> shape(idx_t->shape().begin(), idx_t->shape().end() - 1);
  shape.insert(shape.end(), x->shape().begin() + b + k, x->shape().end());
  int64_t slice = 1;  // elements per gathered slice
  for (int64_t d = b + k; d < r; ++d) slice *= x->dim(static_cast<size_t>(d));
  int64_t batch_elems = 1;  // data elements per batch
  for (int64_t d = b; d < r; ++d) batch_elems *= x->dim(static_cast<size_t>(d));
  const auto strides = ops::Strides(x->shape());
  const auto indices = idx_t->ToInt64Vector();
  const size_t tuples_per_batch = batches == 0 ? 0 : indices.size() / static_cast<size_t>(k * batches);
  Tensor out(x->dtype(), shape);
  uint8_t* dst = Bytes(out);
  const size_t slice_bytes = static_cast<size_t>(slice) * esize;
  for (int64_t bi = 0; bi < batches; ++bi) {
    for (size_t t = 0; t < tuples_per_batch; ++t) {
      int64_t src = bi * batch_elems;
      for (int64_t j = 0; j < k; ++j) {
        const size_t axis = static_cast<size_t>(b + j);
        const int64_t raw = indices[(static_cast<size_t>(bi) * tuples_per_batch + t) * static_cast<size_t>(k) + static_cast<size_t>(j)];
        SLIM_ASSIGN_OR_RETURN(const int64_t i, WrapIndex(node, raw, x->dim(axis), b + j));
        src += i * strides[axis];
      }
      if (slice_bytes) std::memcpy(dst, Bytes(*x) + static_cast<size_t>(src) * esize, slice_bytes);
      dst += slice_bytes;
    }
  }
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Trilu(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Input(call, 0, "input"));
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, *x));
  SLIM_CHECK_INPUT(x->rank() >= 2, node.Describe(), ": input must have rank >= 2, got ",
                   ShapeToString(x->shape()));
  int64_t k = 0;
  if (const Tensor* k_t = call.in(1)) {
    SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> kv, IntList(node, *k_t, "k"));
    SLIM_CHECK_INPUT(kv.size() == 1, node.Describe(), ": k must hold one value");
    k = kv[0];
  }
  const bool upper = node.GetInt("upper", 1) != 0;
  const int64_t rows = x->dim(x->rank() - 2);
  const int64_t cols = x->dim(x->rank() - 1);
  Tensor out = x->Clone();
  uint8_t* p = Bytes(out);
  const int64_t mats = rows * cols == 0 ? 0 : x->numel() / (rows * cols);
  for (int64_t m = 0; m < mats; ++m) {
    for (int64_t i = 0; i < rows; ++i) {
      for (int64_t j = 0; j < cols; ++j) {
        // j - i is small, so comparing it with k cannot overflow.
        const bool keep = upper ? j - i >= k : j - i <= k;
        if (!keep) std::memset(p + static_cast<size_t>((m * rows + i) * cols + j) * esize, 0, esize);
      }
    }
  }
  outputs[0] = std::move(out);
  return Status::Ok();
}

// -------------------------------------------------------- generating ops

// max(ceil((limit - start) / delta), 0); in double for floats, exact in
// 128-bit integers otherwise (int64 limits span 2^64). Capped just above
// kMaxComputedElements so the caller's check reports it.
template <typename T>
int64_t RangeCount(T start, T limit, T delta) {
  constexpr double kCap = static_cast<double>(ops::kMaxComputedElements) + 1;
  if constexpr (std::is_floating_point_v<T>) {
    const double n = std::ceil((static_cast<double>(limit) - static_cast<double>(start)) / static_cast<double>(delta));
    return static_cast<int64_t>(std::min(std::max(n, 0.0), kCap));
  } else {
    const __int128 span = static_cast<__int128>(limit) - static_cast<__int128>(start);
    const __int128 step = static_cast<__int128>(delta);
    if (!((span > 0 && step > 0) || (span < 0 && step < 0))) return 0;
    const __int128 n = (span + step - (step > 0 ? 1 : -1)) / step;
    return static_cast<int64_t>(std::min<__int128>(n, static_cast<__int128>(kCap)));
  }
}

template <typename T>
Tensor RangeOf(DType dtype, T start, int64_t n, T delta) {
  Tensor out(dtype, {n});
  T* y = out.MutableData<T>();
  for (int64_t i = 0; i < n; ++i) {
    if constexpr (std::is_floating_point_v<T>) {
      y[i] = static_cast<T>(start + static_cast<T>(i) * delta);
    } else {  // the value lies in [start, limit); i * delta alone may not fit T
      y[i] = static_cast<T>(static_cast<__int128>(start) + static_cast<__int128>(i) * static_cast<__int128>(delta));
    }
  }
  return out;
}

template <typename T>
Status RangeTyped(const Node& node, const Tensor& s, const Tensor& l, const Tensor& d,
                  DType dtype, Tensor* out) {
  const T start = *s.data<T>(), limit = *l.data<T>(), delta = *d.data<T>();
  SLIM_CHECK_INPUT(delta != T(0), node.Describe(), ": delta is 0");
  if constexpr (std::is_floating_point_v<T>) {
    SLIM_CHECK_INPUT(std::isfinite(start) && std::isfinite(limit) && std::isfinite(delta),
                     node.Describe(), ": start, limit and delta must be finite");
  }
  const int64_t n = RangeCount<T>(start, limit, delta);
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, {n}));
  *out = RangeOf<T>(dtype, start, n, delta);
  return Status::Ok();
}

Status Range(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* s, Input(call, 0, "start"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* l, Input(call, 1, "limit"));
  SLIM_ASSIGN_OR_RETURN(const Tensor* d, Input(call, 2, "delta"));
  for (const Tensor* t : {s, l, d}) {
    SLIM_CHECK_INPUT(t->dtype() == s->dtype() && t->numel() == 1, node.Describe(),
                     ": start, limit and delta must be scalars of one type, got ",
                     DTypeName(t->dtype()), " ", ShapeToString(t->shape()));
  }
  switch (s->dtype()) {
    case DType::kFloat32: return RangeTyped<float>(node, *s, *l, *d, s->dtype(), &outputs[0]);
    case DType::kFloat64: return RangeTyped<double>(node, *s, *l, *d, s->dtype(), &outputs[0]);
    case DType::kInt16: return RangeTyped<int16_t>(node, *s, *l, *d, s->dtype(), &outputs[0]);
    case DType::kInt32: return RangeTyped<int32_t>(node, *s, *l, *d, s->dtype(), &outputs[0]);
    case DType::kInt64: return RangeTyped<int64_t>(node, *s, *l, *d, s->dtype(), &outputs[0]);
    default:
      return Unsupported(node.Describe(), ": Range of type ", DTypeName(s->dtype()),
                         " is not supported (float, double, int16, int32, int64)");
  }
}

Status ConstantOfShape(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* shape_t, Input(call, 0, "input"));
  SLIM_ASSIGN_OR_RETURN(const std::vector<int64_t> shape, IntList(node, *shape_t, "shape"));
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, shape));
  Tensor value = Tensor::Scalar(0.0f);
  if (node.HasAttr("value")) {
    value = node.attrs.at("value").t;
    SLIM_CHECK_INPUT(value.defined() && value.numel() == 1, node.Describe(),
                     ": attribute 'value' must be a tensor with one element");
  }
  SLIM_ASSIGN_OR_RETURN(const size_t esize, ElementSize(node, value));
  Tensor out(value.dtype(), shape);
  uint8_t* dst = Bytes(out);
  const int64_t n = out.numel();
  for (int64_t i = 0; i < n; ++i) std::memcpy(dst + static_cast<size_t>(i) * esize, Bytes(value), esize);
  outputs[0] = std::move(out);
  return Status::Ok();
}

Status Constant(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  for (const char* key : {"sparse_value", "value_string", "value_strings"}) {
    if (node.HasAttr(key)) {
      return Unsupported(node.Describe(), ": attribute '", key, "' is not supported");
    }
  }
  if (node.HasAttr("value")) {
    const Tensor& t = node.attrs.at("value").t;
    SLIM_CHECK_INPUT(t.defined(), node.Describe(), ": attribute 'value' is not a tensor");
    outputs[0] = t;
  } else if (node.HasAttr("value_float")) {
    outputs[0] = Tensor::Scalar(node.GetFloat("value_float", 0));
  } else if (node.HasAttr("value_floats")) {
    const auto v = node.GetFloats("value_floats");
    outputs[0] = Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(v.size())}, v);
  } else if (node.HasAttr("value_int")) {
    outputs[0] = ops::StoreInt(DType::kInt64, {}, {node.GetInt("value_int", 0)});
  } else if (node.HasAttr("value_ints")) {
    const auto v = node.GetInts("value_ints");
    outputs[0] = ops::StoreInt(DType::kInt64, {static_cast<int64_t>(v.size())}, v);
  } else {
    return InvalidInput(node.Describe(), ": needs one of the attributes value, value_float, "
                        "value_floats, value_int, value_ints");
  }
  return Status::Ok();
}

}  // namespace

void RegisterShapeOps(OpTable& table) {
  table.Add("Shape", ShapeOp);
  table.Add("Size", SizeOp);
  table.Add("Reshape", Reshape);
  table.Add("Flatten", Flatten);
  table.Add("Squeeze", Squeeze);
  table.Add("Unsqueeze", Unsqueeze);
  table.Add("Transpose", Transpose);
  table.Add("Concat", Concat);
  table.Add("Slice", Slice);
  table.Add("Split", Split);
  table.Add("Expand", Expand);
  table.Add("Tile", Tile);
  table.Add("Gather", Gather);
  table.Add("GatherElements", GatherElements);
  table.Add("GatherND", GatherND);
  table.Add("Trilu", Trilu);
  table.Add("Range", Range);
  table.Add("ConstantOfShape", ConstantOfShape);
  table.Add("Constant", Constant);
}

}  // namespace slim
