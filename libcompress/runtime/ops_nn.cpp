// CNN operators with ONNX semantics (opsets 9..17): Conv, BatchNormalization,
// MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool and Pad. Resize and
// Upsample live in ops_nn_resize.cpp.
//
// Float tensors are computed in float32 (FP16/BF16 rounded back on store).
// Conv lowers each (image, group) to im2col + one Eigen matrix product: the
// column matrix has one row per (input channel, kernel offset) and one column
// per output position, so each output map is a row of W * columns.
// MaxPool and Pad move elements by bytes, so they are exact for every dtype.
#include <algorithm>
#include <cmath>
#include <cstring>

#include <Eigen/Core>

#include "libcompress/runtime/conv_window.h"
#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {

void RegisterResizeOps(OpTable& table);  // ops_nn_resize.cpp

namespace {

Status RequireFloat(const Node& node, const Tensor& t, const char* what) {
  if (!IsFloat(t.dtype())) {
    return Unsupported(node.Describe(), ": ", what, " has dtype ", DTypeName(t.dtype()),
                       ", expected a float type");
  }
  return Status::Ok();
}

// Calls fn(i) for every valid input index of output position o in spatial
// dim d (window positions falling into padding are skipped).
template <typename Fn>
void ForWindow(const Window& w, size_t d, int64_t o, Fn fn) {
  const int64_t start = o * w.strides[d] - w.pad_begin[d];
  for (int64_t k = 0; k < w.kernel[d]; ++k) {
    const int64_t i = start + k * w.dilations[d];
    if (i >= 0 && i < w.in[d]) fn(i);
  }
}

// Valid input indices per (dim, output index), so an N-D window is the
// cartesian product of per-dim lists.
std::vector<std::vector<std::vector<int64_t>>> WindowTaps(const Window& w) {
  std::vector<std::vector<std::vector<int64_t>>> taps(w.in.size());
  for (size_t d = 0; d < w.in.size(); ++d) {
    taps[d].resize(static_cast<size_t>(w.out[d]));
    for (int64_t o = 0; o < w.out[d]; ++o) {
      ForWindow(w, d, o, [&](int64_t i) { taps[d][static_cast<size_t>(o)].push_back(i); });
    }
  }
  return taps;
}

std::vector<int64_t> SpatialDims(const Tensor& t) {
  return std::vector<int64_t>(t.shape().begin() + 2, t.shape().end());
}

// ---------------------------------------------------------------- Conv

using RowMajor = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

Status Conv(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  const Tensor* wt = call.in(1);
  const Tensor* b = call.in(2);
  SLIM_CHECK_INPUT(x && wt, node.Describe(), ": needs inputs X and W");
  SLIM_RETURN_IF_ERROR(RequireFloat(node, *x, "X"));
  SLIM_RETURN_IF_ERROR(RequireFloat(node, *wt, "W"));
  SLIM_CHECK_INPUT(x->rank() >= 3 && wt->rank() == x->rank(), node.Describe(), ": X ",
                   ShapeToString(x->shape()), " and W ", ShapeToString(wt->shape()),
                   " must both be N x C x spatial with at least one spatial dim");
  const int64_t group = node.GetInt("group", 1);
  const int64_t batch = x->dim(0), channels = x->dim(1), maps = wt->dim(0);
  SLIM_CHECK_INPUT(group > 0 && maps % group == 0 && channels == wt->dim(1) * group,
                   node.Describe(), ": X has ", channels, " channels but W ",
                   ShapeToString(wt->shape()), " with group ", group, " expects ",
                   wt->dim(1) * group, " (and M divisible by group)");
  const std::vector<int64_t> kernel = SpatialDims(*wt);
  if (node.HasAttr("kernel_shape")) {
    SLIM_CHECK_INPUT(node.GetInts("kernel_shape") == kernel, node.Describe(), ": kernel_shape ",
                     ShapeToString(node.GetInts("kernel_shape")), " does not match W ",
                     ShapeToString(wt->shape()));
  }
  if (b) {
    SLIM_RETURN_IF_ERROR(RequireFloat(node, *b, "B"));
    SLIM_CHECK_INPUT(b->rank() == 1 && b->dim(0) == maps, node.Describe(), ": B ",
                     ShapeToString(b->shape()), " must be [", maps, "]");
  }
  SLIM_ASSIGN_OR_RETURN(Window w, ComputeWindow(node, SpatialDims(*x), kernel, false));

  const std::vector<float> xv = ops::LoadFloat(*x);
  const std::vector<float> wv = ops::LoadFloat(*wt);
  const std::vector<float> bv =
      b ? ops::LoadFloat(*b) : std::vector<float>(static_cast<size_t>(maps), 0.0f);
  const int64_t cg = channels / group, mg = maps / group;
  const int64_t rows = cg * ShapeNumel(kernel);  // reduction length per output
  const int64_t positions = ShapeNumel(w.out);
  const int64_t in_size = ShapeNumel(w.in);
  std::vector<int64_t> out_shape{batch, maps};
  out_shape.insert(out_shape.end(), w.out.begin(), w.out.end());
  std::vector<float> out(static_cast<size_t>(ShapeNumel(out_shape)));
  // A 1x1 stride-1 unpadded conv reads X directly as its column matrix.
  bool pointwise = true;
  for (size_t d = 0; d < kernel.size(); ++d) {
    pointwise = pointwise && kernel[d] == 1 && w.strides[d] == 1 && w.pad_begin[d] == 0 &&
                w.out[d] == w.in[d];
  }
  std::vector<float> col(pointwise ? 0 : static_cast<size_t>(rows * positions));
  for (int64_t n = 0; n < batch; ++n) {
    for (int64_t g = 0; g < group; ++g) {
      const float* xg = xv.data() + (n * channels + g * cg) * in_size;
      const float* cols = xg;
      if (!pointwise) {
        Im2Col(xg, cg, w, col.data());
        cols = col.data();
      }
      // out[g maps x positions] = W[g maps x rows] * cols[rows x positions] + B.
      float* o = out.data() + (n * maps + g * mg) * positions;
      Eigen::Map<RowMajor>(o, mg, positions).noalias() =
          Eigen::Map<const RowMajor>(wv.data() + g * mg * rows, mg, rows) *
          Eigen::Map<const RowMajor>(cols, rows, positions);
      for (int64_t m = 0; m < mg; ++m) {
        const float bias = bv[static_cast<size_t>(g * mg + m)];
        for (int64_t p = 0; p < positions; ++p) o[m * positions + p] += bias;
      }
    }
  }
  outputs[0] = ops::StoreFloat(x->dtype(), out_shape, out);
  return Status::Ok();
}

// ---------------------------------------------------------------- pools

// Elements as double (ints exact up to 2^53) for comparisons.
std::vector<double> LoadDouble(const Tensor& t) {
  std::vector<double> v(static_cast<size_t>(t.numel()));
  if (t.dtype() == DType::kFloat64) {
    if (!v.empty()) std::memcpy(v.data(), t.raw(), v.size() * sizeof(double));
  } else if (IsFloat(t.dtype())) {
    const std::vector<float> f = t.ToFloatVector();
    std::copy(f.begin(), f.end(), v.begin());
  } else {
    const std::vector<int64_t> i = t.ToInt64Vector();
    std::copy(i.begin(), i.end(), v.begin());
  }
  return v;
}

Expected<Window> PoolWindow(const Node& node, const Tensor& x) {
  SLIM_CHECK_INPUT(x.rank() >= 3, node.Describe(), ": X ", ShapeToString(x.shape()),
                   " must be N x C x spatial with at least one spatial dim");
  SLIM_CHECK_INPUT(node.HasAttr("kernel_shape"), node.Describe(),
                   ": required attribute kernel_shape is missing");
  return ComputeWindow(node, SpatialDims(x), node.GetInts("kernel_shape"),
                       node.GetInt("ceil_mode", 0) != 0);
}

std::vector<int64_t> PoolOutShape(const Tensor& x, const Window& w) {
  std::vector<int64_t> shape{x.dim(0), x.dim(1)};
  shape.insert(shape.end(), w.out.begin(), w.out.end());
  return shape;
}

// Visits every output position of every (n, c) plane with the cartesian
// product of its per-dim window taps: fn(plane, out_flat, taps-per-dim).
template <typename Fn>
void ForEachWindow(const Window& w, int64_t planes, Fn fn) {
  const auto taps = WindowTaps(w);
  const size_t rank = w.in.size();
  const int64_t positions = ShapeNumel(w.out);
  std::vector<const std::vector<int64_t>*> lists(rank);
  for (int64_t plane = 0; plane < planes; ++plane) {
    std::vector<int64_t> op(rank, 0);
    for (int64_t p = 0; p < positions; ++p, NextIndex(op, w.out)) {
      for (size_t d = 0; d < rank; ++d) lists[d] = &taps[d][static_cast<size_t>(op[d])];
      fn(plane, p, lists);
    }
  }
}

// Calls fn(spatial multi-index) for each element of the cartesian product.
template <typename Fn>
void ForProduct(const std::vector<const std::vector<int64_t>*>& lists, Fn fn) {
  const size_t rank = lists.size();
  std::vector<int64_t> sizes(rank), pos(rank, 0), idx(rank);
  for (size_t d = 0; d < rank; ++d) {
    sizes[d] = static_cast<int64_t>(lists[d]->size());
    if (sizes[d] == 0) return;
  }
  do {
    for (size_t d = 0; d < rank; ++d) idx[d] = (*lists[d])[static_cast<size_t>(pos[d])];
    fn(idx);
  } while (NextIndex(pos, sizes));
}

Status MaxPool(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  SLIM_CHECK_INPUT(x, node.Describe(), ": needs input X");
  SLIM_ASSIGN_OR_RETURN(Window w, PoolWindow(node, *x));
  const int64_t storage_order = node.GetInt("storage_order", 0);
  SLIM_CHECK_INPUT(storage_order == 0 || storage_order == 1, node.Describe(), ": storage_order ",
                   storage_order, " must be 0 (row major) or 1 (column major)");
  const std::vector<double> xv = LoadDouble(*x);
  const std::vector<int64_t> out_shape = PoolOutShape(*x, w);
  Tensor y(x->dtype(), out_shape);
  const bool want_indices = node.outputs.size() > 1 && !node.outputs[1].empty();
  std::vector<int64_t> indices(want_indices ? static_cast<size_t>(ShapeNumel(out_shape)) : 0);
  const size_t elem = DTypeSize(x->dtype());
  const auto* src = static_cast<const uint8_t*>(x->raw());
  auto* dst = static_cast<uint8_t*>(y.MutableRaw());
  const int64_t in_size = ShapeNumel(w.in), positions = ShapeNumel(w.out);
  const auto row_strides = ops::Strides(w.in);
  // Column-major strides for storage_order = 1: first spatial dim fastest.
  std::vector<int64_t> col_strides(w.in.size(), 1);
  for (size_t d = 1; d < w.in.size(); ++d) col_strides[d] = col_strides[d - 1] * w.in[d - 1];
  Status status = Status::Ok();
  ForEachWindow(w, x->dim(0) * x->dim(1), [&](int64_t plane, int64_t p, const auto& lists) {
    int64_t best = -1;
    std::vector<int64_t> best_idx;
    ForProduct(lists, [&](const std::vector<int64_t>& idx) {
      int64_t flat = plane * in_size;
      for (size_t d = 0; d < idx.size(); ++d) flat += idx[d] * row_strides[d];
      if (best < 0 || xv[static_cast<size_t>(flat)] > xv[static_cast<size_t>(best)]) {
        best = flat;
        best_idx = idx;
      }
    });
    const int64_t o = plane * positions + p;
    if (best < 0) {
      // Only reachable when pads or dilations make a window skip the input.
      if (status.ok()) {
        status = InvalidInput(node.Describe(), ": output position ", p,
                              " has a window that lies entirely in padding");
      }
      return;
    }
    std::memcpy(dst + static_cast<size_t>(o) * elem, src + static_cast<size_t>(best) * elem, elem);
    if (want_indices) {
      int64_t index = best;
      if (storage_order == 1) {
        index = plane * in_size;
        for (size_t d = 0; d < best_idx.size(); ++d) index += best_idx[d] * col_strides[d];
      }
      indices[static_cast<size_t>(o)] = index;
    }
  });
  SLIM_RETURN_IF_ERROR(status);
  outputs[0] = std::move(y);
  if (want_indices) outputs[1] = ops::StoreInt(DType::kInt64, out_shape, indices);
  return Status::Ok();
}

Status AveragePool(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  SLIM_CHECK_INPUT(x, node.Describe(), ": needs input X");
  SLIM_RETURN_IF_ERROR(RequireFloat(node, *x, "X"));
  SLIM_ASSIGN_OR_RETURN(Window w, PoolWindow(node, *x));
  const bool include_pad = node.GetInt("count_include_pad", 0) != 0;
  // With count_include_pad the divisor counts window taps inside the padded
  // input [-pad_begin, in + pad_end); taps past it (ceil_mode) never count.
  std::vector<std::vector<int64_t>> padded_count(w.in.size());
  for (size_t d = 0; d < w.in.size(); ++d) {
    for (int64_t o = 0; o < w.out[d]; ++o) {
      const int64_t start = o * w.strides[d] - w.pad_begin[d];
      int64_t n = 0;
      for (int64_t k = 0; k < w.kernel[d]; ++k) {
        const int64_t i = start + k * w.dilations[d];
        n += i >= -w.pad_begin[d] && i < w.in[d] + w.pad_end[d];
      }
      padded_count[d].push_back(n);
    }
  }
  const std::vector<float> xv = ops::LoadFloat(*x);
  const std::vector<int64_t> out_shape = PoolOutShape(*x, w);
  std::vector<float> out(static_cast<size_t>(ShapeNumel(out_shape)));
  const int64_t in_size = ShapeNumel(w.in), positions = ShapeNumel(w.out);
  const auto strides = ops::Strides(w.in);
  ForEachWindow(w, x->dim(0) * x->dim(1), [&](int64_t plane, int64_t p, const auto& lists) {
    double sum = 0;
    int64_t count = 0;
    ForProduct(lists, [&](const std::vector<int64_t>& idx) {
      int64_t flat = plane * in_size;
      for (size_t d = 0; d < idx.size(); ++d) flat += idx[d] * strides[d];
      sum += xv[static_cast<size_t>(flat)];
      ++count;
    });
    if (include_pad) {
      // Recover the output multi-index of p to look up per-dim counts.
      count = 1;
      int64_t rest = p;
      for (size_t d = w.out.size(); d-- > 0;) {
        count *= padded_count[d][static_cast<size_t>(rest % w.out[d])];
        rest /= w.out[d];
      }
    }
    out[static_cast<size_t>(plane * positions + p)] =
        count > 0 ? static_cast<float>(sum / static_cast<double>(count)) : 0.0f;
  });
  outputs[0] = ops::StoreFloat(x->dtype(), out_shape, out);
  return Status::Ok();
}

// GlobalAveragePool / GlobalMaxPool: reduce every spatial position of each
// (n, c) plane; output N x C x 1 x ... x 1.
Status GlobalPool(const OpCall& call, std::vector<Tensor>& outputs, bool is_max) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  SLIM_CHECK_INPUT(x, node.Describe(), ": needs input X");
  SLIM_RETURN_IF_ERROR(RequireFloat(node, *x, "X"));
  SLIM_CHECK_INPUT(x->rank() >= 2, node.Describe(), ": X ", ShapeToString(x->shape()),
                   " must be N x C x spatial");
  const int64_t planes = x->dim(0) * x->dim(1);
  const int64_t size = ShapeNumel(SpatialDims(*x));
  SLIM_CHECK_INPUT(size > 0, node.Describe(), ": X ", ShapeToString(x->shape()),
                   " has no spatial elements to pool");
  std::vector<int64_t> out_shape(x->rank(), 1);
  out_shape[0] = x->dim(0);
  out_shape[1] = x->dim(1);
  const std::vector<float> xv = ops::LoadFloat(*x);
  std::vector<float> out(static_cast<size_t>(planes));
  for (int64_t c = 0; c < planes; ++c) {
    const float* p = xv.data() + c * size;
    if (is_max) {
      out[static_cast<size_t>(c)] = *std::max_element(p, p + size);
    } else {
      double sum = 0;
      for (int64_t i = 0; i < size; ++i) sum += p[i];
      out[static_cast<size_t>(c)] = static_cast<float>(sum / static_cast<double>(size));
    }
  }
  outputs[0] = ops::StoreFloat(x->dtype(), out_shape, out);
  return Status::Ok();
}

// ------------------------------------------------------- BatchNormalization

// Inference: y = (x - mean) / sqrt(var + eps) * scale + bias per channel.
// training_mode (opset 14+) normalises with the batch statistics (population
// variance) and outputs running_mean/var = input * momentum + batch * (1 -
// momentum). Opsets 9..13 signal training by requesting the extra outputs;
// their saved_mean/saved_var outputs are not implemented.
Status BatchNormalization(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  for (size_t i = 0; i < 5; ++i) {
    SLIM_CHECK_INPUT(call.in(i), node.Describe(), ": needs 5 inputs (X, scale, B, mean, var)");
    SLIM_RETURN_IF_ERROR(RequireFloat(node, *call.in(i), "input"));
  }
  const Tensor& x = *call.in(0);
  SLIM_CHECK_INPUT(x.rank() >= 2, node.Describe(), ": X ", ShapeToString(x.shape()),
                   " must be N x C x ...");
  const int64_t channels = x.dim(1);
  for (size_t i = 1; i < 5; ++i) {
    SLIM_CHECK_INPUT(call.in(i)->rank() == 1 && call.in(i)->dim(0) == channels, node.Describe(),
                     ": input ", i, " has shape ", ShapeToString(call.in(i)->shape()),
                     ", expected [", channels, "]");
  }
  bool training = call.opset >= 14 && node.GetInt("training_mode", 0) != 0;
  for (size_t i = 1; i < node.outputs.size(); ++i) {
    if (node.outputs[i].empty()) continue;
    if (i >= 3) {
      return Unsupported(node.Describe(), ": the saved_mean/saved_var training outputs ",
                         "(opset < 14) are not implemented");
    }
    if (call.opset < 14) training = true;
    SLIM_CHECK_INPUT(training, node.Describe(), ": running mean/var outputs need training_mode=1");
  }
  const double eps = node.GetFloat("epsilon", 1e-5f);
  const double momentum = node.GetFloat("momentum", 0.9f);
  const std::vector<float> xv = ops::LoadFloat(x);
  const std::vector<float> scale = ops::LoadFloat(*call.in(1));
  const std::vector<float> bias = ops::LoadFloat(*call.in(2));
  std::vector<float> mean = ops::LoadFloat(*call.in(3));
  std::vector<float> var = ops::LoadFloat(*call.in(4));
  const int64_t batch = x.dim(0);
  const int64_t size = ShapeNumel(std::vector<int64_t>(x.shape().begin() + 2, x.shape().end()));
  std::vector<float> running_mean(mean), running_var(var);
  if (training) {
    const double count = static_cast<double>(batch * size);
    for (int64_t c = 0; c < channels; ++c) {
      double sum = 0, sq = 0;
      for (int64_t n = 0; n < batch; ++n) {
        const float* p = xv.data() + (n * channels + c) * size;
        for (int64_t i = 0; i < size; ++i) sum += p[i];
      }
      const double m = sum / count;
      for (int64_t n = 0; n < batch; ++n) {
        const float* p = xv.data() + (n * channels + c) * size;
        for (int64_t i = 0; i < size; ++i) sq += (p[i] - m) * (p[i] - m);
      }
      const double v = sq / count;
      const auto ci = static_cast<size_t>(c);
      running_mean[ci] = static_cast<float>(mean[ci] * momentum + m * (1 - momentum));
      running_var[ci] = static_cast<float>(var[ci] * momentum + v * (1 - momentum));
      mean[ci] = static_cast<float>(m);
      var[ci] = static_cast<float>(v);
    }
  }
  std::vector<float> y(xv.size());
  for (int64_t c = 0; c < channels; ++c) {
    const auto ci = static_cast<size_t>(c);
    const double a = scale[ci] / std::sqrt(static_cast<double>(var[ci]) + eps);
    const double shift = bias[ci] - mean[ci] * a;
    for (int64_t n = 0; n < batch; ++n) {
      const int64_t base = (n * channels + c) * size;
      for (int64_t i = 0; i < size; ++i) {
        const auto k = static_cast<size_t>(base + i);
        y[k] = static_cast<float>(xv[k] * a + shift);
      }
    }
  }
  outputs[0] = ops::StoreFloat(x.dtype(), x.shape(), y);
  if (outputs.size() > 1)
    outputs[1] = ops::StoreFloat(call.in(3)->dtype(), {channels}, running_mean);
  if (outputs.size() > 2)
    outputs[2] = ops::StoreFloat(call.in(4)->dtype(), {channels}, running_var);
  return Status::Ok();
}

// ---------------------------------------------------------------- Pad

// Source index of output index o in a dim of size n padded by pad_begin, or
// -1 for the constant value.
int64_t PadSource(int64_t o, int64_t pad_begin, int64_t n, char mode) {
  int64_t i = o - pad_begin;
  if (i >= 0 && i < n) return i;
  if (mode == 'c') return -1;
  if (mode == 'e' || n == 1) return std::clamp<int64_t>(i, 0, n - 1);
  // reflect: mirror without repeating the edge, period 2 * (n - 1).
  const int64_t period = 2 * (n - 1);
  i %= period;
  if (i < 0) i += period;
  return i < n ? i : period - i;
}

Status Pad(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  SLIM_CHECK_INPUT(x, node.Describe(), ": needs input data");
  const size_t rank = x->rank();
  const std::string mode_name = node.GetString("mode", "constant");
  SLIM_CHECK_INPUT(mode_name == "constant" || mode_name == "reflect" || mode_name == "edge",
                   node.Describe(), ": mode '", mode_name,
                   "' is not one of constant, reflect, edge");
  const char mode = mode_name[0];
  const size_t elem = DTypeSize(x->dtype());
  std::vector<int64_t> pads;
  std::vector<uint8_t> fill(elem, 0);
  if (call.opset < 11) {
    pads = node.GetInts("pads");
    const Tensor v = ops::StoreFloat(x->dtype(), {}, {node.GetFloat("value", 0.0f)});
    std::memcpy(fill.data(), v.raw(), elem);
  } else {
    const Tensor* p = call.in(1);
    SLIM_CHECK_INPUT(p && (p->dtype() == DType::kInt64 || p->dtype() == DType::kInt32),
                     node.Describe(), ": needs an int64 'pads' input");
    pads = p->ToInt64Vector();
    const Tensor* value = call.in(2);
    if (value && value->numel() > 0) {
      SLIM_CHECK_INPUT(value->dtype() == x->dtype() && value->numel() == 1, node.Describe(),
                       ": constant_value must be one ", DTypeName(x->dtype()), " element, got ",
                       DTypeName(value->dtype()), " ", ShapeToString(value->shape()));
      std::memcpy(fill.data(), value->raw(), elem);
    }
    // Opset 18 'axes' input: pads cover only the listed axes.
    if (const Tensor* axes = call.in(3)) {
      const std::vector<int64_t> list = axes->ToInt64Vector();
      SLIM_CHECK_INPUT(pads.size() == 2 * list.size(), node.Describe(), ": pads has ", pads.size(),
                       " values for ", list.size(), " axes");
      std::vector<int64_t> full(2 * rank, 0);
      for (size_t a = 0; a < list.size(); ++a) {
        SLIM_ASSIGN_OR_RETURN(int64_t ax,
                              ops::NormalizeAxis(node, list[a], static_cast<int64_t>(rank)));
        full[static_cast<size_t>(ax)] = pads[a];
        full[static_cast<size_t>(ax) + rank] = pads[a + list.size()];
      }
      pads = full;
    }
  }
  SLIM_CHECK_INPUT(pads.size() == 2 * rank, node.Describe(), ": pads has ", pads.size(),
                   " values, expected ", 2 * rank, " for data ", ShapeToString(x->shape()));
  std::vector<int64_t> out_shape(rank);
  for (size_t d = 0; d < rank; ++d) {
    const int64_t n = x->dim(d);
    // Pads come from tensor values: bounded before the sum can overflow.
    for (const int64_t p : {pads[d], pads[d + rank]}) {
      SLIM_CHECK_INPUT(p >= -n && p <= ops::kMaxComputedElements, node.Describe(), ": pad ", p, " on axis ", d,
                       " of ", n, " elements is outside [-", n, ", ", ops::kMaxComputedElements, "]");
    }
    out_shape[d] = n + pads[d] + pads[d + rank];
    SLIM_CHECK_INPUT(out_shape[d] >= 0, node.Describe(), ": pads ", pads[d], "/", pads[d + rank],
                     " remove more than the ", n, " elements of axis ", d);
    SLIM_CHECK_INPUT(mode == 'c' || n > 0 || out_shape[d] == 0, node.Describe(), ": ", mode_name,
                     " padding of empty axis ", d);
  }
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, out_shape));
  std::vector<std::vector<int64_t>> source(rank);
  for (size_t d = 0; d < rank; ++d) {
    for (int64_t o = 0; o < out_shape[d]; ++o) source[d].push_back(PadSource(o, pads[d], x->dim(d), mode));
  }
  Tensor y(x->dtype(), out_shape);
  const int64_t total = ShapeNumel(out_shape);
  auto* dst = static_cast<uint8_t*>(y.MutableRaw());
  const auto* src = static_cast<const uint8_t*>(x->raw());
  const auto in_strides = ops::Strides(x->shape());
  std::vector<int64_t> idx(rank, 0);
  for (int64_t k = 0; k < total; ++k, NextIndex(idx, out_shape)) {
    int64_t from = 0;
    for (size_t d = 0; d < rank && from >= 0; ++d) {
      const int64_t s = source[d][static_cast<size_t>(idx[d])];
      from = s < 0 ? -1 : from + s * in_strides[d];
    }
    std::memcpy(dst + static_cast<size_t>(k) * elem,
                from < 0 ? fill.data() : src + static_cast<size_t>(from) * elem, elem);
  }
  outputs[0] = std::move(y);
  return Status::Ok();
}

}  // namespace

void RegisterNnOps(OpTable& table) {
  table.Add("Conv", Conv);
  table.Add("BatchNormalization", BatchNormalization);
  table.Add("MaxPool", MaxPool);
  table.Add("AveragePool", AveragePool);
  table.Add("GlobalAveragePool", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return GlobalPool(call, outputs, false);
  });
  table.Add("GlobalMaxPool", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return GlobalPool(call, outputs, true);
  });
  table.Add("Pad", Pad);
  RegisterResizeOps(table);
}

}  // namespace slim
