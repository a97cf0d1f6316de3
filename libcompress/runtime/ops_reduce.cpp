// Reductions and normalisations with ONNX semantics (opsets 9..17):
// ReduceSum/Mean/Max/Min/Prod/SumSquare/L1/L2/LogSum/LogSumExp, Softmax,
// LogSoftmax, LayerNormalization (opset 17) and ONNX Runtime's
// SimplifiedLayerNormalization (RMSNorm, written in the default domain by
// ORT's transformer fusions).
//
// Opset differences handled here:
// - Reduce*: `axes` is an attribute, except ReduceSum from opset 13 (and all
//   reductions from opset 18) where it is the optional second input; an empty
//   or absent axes list reduces everything unless noop_with_empty_axes = 1.
// - Softmax/LogSoftmax before opset 13 coerce the input to 2-D at `axis`
//   (default 1) and normalise each row of the flattened [outer, rest] matrix;
//   from opset 13 they normalise along the single dimension `axis`
//   (default -1).
//
// Float inputs are read as float32 (double for float64) and accumulated in
// double, so sums over long rows do not drift; 16-bit results are rounded
// to nearest even on store. Integer reductions are exact (Sum/Prod wrap
// modulo 2^64 before the final narrowing, like the integer arithmetic ops).
#include <algorithm>
#include <cmath>
#include <limits>
#include <type_traits>

#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {
namespace {

Expected<const Tensor*> Required(const OpCall& call, size_t i) {
  const Tensor* t = call.in(i);
  if (!t) return InvalidInput(call.node.Describe(), ": required input ", i, " is missing");
  return t;
}

bool Is16Bit(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }

// Elements as float32, with direct loops for the float dtypes (Tensor's
// generic per-element accessor is several times slower on the fp16 path).
std::vector<float> LoadFloats(const Tensor& t) {
  const int64_t n = t.numel();
  std::vector<float> v(static_cast<size_t>(n));
  switch (t.dtype()) {
    case DType::kFloat16:
      for (int64_t i = 0; i < n; ++i)
        v[static_cast<size_t>(i)] = HalfToFloat(t.data<uint16_t>()[i]);
      break;
    case DType::kBFloat16:
      for (int64_t i = 0; i < n; ++i)
        v[static_cast<size_t>(i)] = BFloat16ToFloat(t.data<uint16_t>()[i]);
      break;
    case DType::kFloat64:
      for (int64_t i = 0; i < n; ++i)
        v[static_cast<size_t>(i)] = static_cast<float>(t.data<double>()[i]);
      break;
    default:
      return t.ToFloatVector();
  }
  return v;
}

// float32 copy of a 16-bit float tensor (others returned as they are).
Tensor ToCompute(const Tensor& t) {
  if (!Is16Bit(t.dtype())) return t;
  return Tensor::FromVector(DType::kFloat32, t.shape(), LoadFloats(t));
}

Tensor FromCompute(Tensor t, DType want) {
  if (!Is16Bit(want)) return t;
  return ops::StoreFloat(want, t.shape(), t.ToFloatVector());
}

Status RequireFloat(const Node& node, const Tensor& t, const char* what) {
  if (!IsFloat(t.dtype())) {
    return Unsupported(node.Describe(), ": ", what, " has dtype ", DTypeName(t.dtype()),
                       ", expected a float type");
  }
  return Status::Ok();
}

int64_t Product(const std::vector<int64_t>& shape, size_t begin, size_t end) {
  int64_t p = 1;
  for (size_t i = begin; i < end; ++i) p *= shape[i];
  return p;
}

// ------------------------------------------------------------- Reduce*

enum class Reduce { kSum, kMean, kMax, kMin, kProd, kSumSquare, kL1, kL2, kLogSum, kLogSumExp };

// The input walked in memory order: dims of size 1 dropped, adjacent dims
// with the same reduced/kept role merged, and per dim the stride of the
// output offset (0 along reduced dims).
struct ReducePlan {
  std::vector<int64_t> out_shape;
  std::vector<int64_t> dims;
  std::vector<bool> reduced;
  std::vector<int64_t> out_strides;
  int64_t in_numel = 0;
  int64_t out_numel = 0;
  int64_t count = 0;  // input elements per output element
};

ReducePlan MakeReducePlan(const std::vector<int64_t>& shape, const std::vector<bool>& mask,
                          bool keepdims) {
  ReducePlan p;
  p.in_numel = ShapeNumel(shape);
  p.count = 1;
  std::vector<int64_t> kept_shape;
  for (size_t d = 0; d < shape.size(); ++d) {
    if (mask[d]) {
      p.count *= shape[d];
      if (keepdims) p.out_shape.push_back(1);
    } else {
      p.out_shape.push_back(shape[d]);
      kept_shape.push_back(shape[d]);
    }
  }
  p.out_numel = ShapeNumel(p.out_shape);
  const auto kept_strides = ops::Strides(kept_shape);
  size_t k = 0;
  for (size_t d = 0; d < shape.size(); ++d) {
    const int64_t stride = mask[d] ? 0 : kept_strides[k++];
    if (shape[d] == 1) continue;
    if (!p.dims.empty() && p.reduced.back() == mask[d]) {
      p.dims.back() *= shape[d];
      p.out_strides.back() = stride;  // contiguous: the inner stride rules
    } else {
      p.dims.push_back(shape[d]);
      p.reduced.push_back(mask[d]);
      p.out_strides.push_back(stride);
    }
  }
  if (p.dims.empty()) {
    p.dims.push_back(1);
    p.reduced.push_back(false);
    p.out_strides.push_back(0);
  }
  return p;
}

// acc[out] = step(acc[out], x) over the plan, then y = fin(acc, count).
template <typename T, typename Acc, typename Step, typename Fin>
void ReduceKernel(const ReducePlan& p, const T* x, T* y, Acc init, Step step, Fin fin) {
  std::vector<Acc> acc(static_cast<size_t>(p.out_numel), init);
  if (p.in_numel > 0) {
    const size_t rank = p.dims.size();
    const int64_t row = p.dims[rank - 1];
    const bool row_reduced = p.reduced[rank - 1];
    std::vector<int64_t> counter(rank, 0);
    int64_t out = 0;
    for (int64_t in = 0;; in += row) {
      const T* px = x + in;
      if (row_reduced) {
        Acc a = acc[static_cast<size_t>(out)];
        for (int64_t i = 0; i < row; ++i) a = step(a, px[i]);
        acc[static_cast<size_t>(out)] = a;
      } else {
        Acc* pa = acc.data() + out;
        for (int64_t i = 0; i < row; ++i) pa[i] = step(pa[i], px[i]);
      }
      size_t d = rank - 1;
      bool done = true;
      while (d-- > 0) {
        ++counter[d];
        out += p.out_strides[d];
        if (counter[d] < p.dims[d]) {
          done = false;
          break;
        }
        out -= p.out_strides[d] * p.dims[d];
        counter[d] = 0;
      }
      if (done) break;
    }
  }
  for (int64_t o = 0; o < p.out_numel; ++o) y[o] = fin(acc[static_cast<size_t>(o)], p.count);
}

template <typename Acc>
Acc WrapAdd(Acc a, Acc b) {
  if constexpr (std::is_integral_v<Acc>) {
    return static_cast<Acc>(static_cast<uint64_t>(a) + static_cast<uint64_t>(b));
  } else {
    return a + b;
  }
}
template <typename Acc>
Acc WrapMul(Acc a, Acc b) {
  if constexpr (std::is_integral_v<Acc>) {
    return static_cast<Acc>(static_cast<uint64_t>(a) * static_cast<uint64_t>(b));
  } else {
    return a * b;
  }
}

// Result of one reduction in T from the accumulator (integer results of
// real-valued finals truncate toward zero like ONNX's astype).
template <typename T, typename Acc>
T Narrow(double v) {
  if constexpr (std::is_floating_point_v<T>) {
    return static_cast<T>(v);
  } else {
    if (std::isnan(v)) return 0;
    return static_cast<T>(static_cast<Acc>(v));
  }
}

template <typename T>
Status ReduceTyped(const Node& node, Reduce kind, const Tensor& x, const ReducePlan& p,
                   Tensor& out) {
  // double for floats; 64-bit integers of the input's signedness otherwise.
  using Acc = std::conditional_t<std::is_floating_point_v<T>, double,
                                 std::conditional_t<std::is_signed_v<T>, int64_t, uint64_t>>;
  const T* px = x.data<T>();
  T* py = out.MutableData<T>();
  auto same = [](Acc a, int64_t) { return static_cast<T>(a); };
  auto sum = [](Acc a, T v) { return WrapAdd<Acc>(a, static_cast<Acc>(v)); };
  auto square = [](Acc a, T v) {
    const Acc w = static_cast<Acc>(v);
    return WrapAdd<Acc>(a, WrapMul<Acc>(w, w));
  };
  switch (kind) {
    case Reduce::kSum:
      ReduceKernel(p, px, py, Acc(0), sum, same);
      break;
    case Reduce::kMean:
      ReduceKernel(p, px, py, Acc(0), sum, [](Acc a, int64_t n) {
        if constexpr (std::is_floating_point_v<T>) {
          return static_cast<T>(a / static_cast<double>(n));  // n == 0 gives NaN
        } else {
          return n == 0 ? T(0) : static_cast<T>(a / static_cast<Acc>(n));
        }
      });
      break;
    case Reduce::kMax:
    case Reduce::kMin: {
      const bool is_max = kind == Reduce::kMax;
      Acc init;
      if constexpr (std::is_floating_point_v<T>) {
        init = is_max ? -std::numeric_limits<double>::infinity()
                      : std::numeric_limits<double>::infinity();
      } else {
        init = is_max ? static_cast<Acc>(std::numeric_limits<T>::lowest())
                      : static_cast<Acc>(std::numeric_limits<T>::max());
      }
      ReduceKernel(
          p, px, py, init,
          [is_max](Acc a, T v) {
            const Acc w = static_cast<Acc>(v);
            if constexpr (std::is_floating_point_v<T>) {
              if (std::isnan(a) || std::isnan(w)) return std::numeric_limits<Acc>::quiet_NaN();
            }
            return is_max ? std::max(a, w) : std::min(a, w);
          },
          same);
      break;
    }
    case Reduce::kProd:
      ReduceKernel(
          p, px, py, Acc(1), [](Acc a, T v) { return WrapMul<Acc>(a, static_cast<Acc>(v)); }, same);
      break;
    case Reduce::kSumSquare:
      ReduceKernel(p, px, py, Acc(0), square, same);
      break;
    case Reduce::kL1:
      ReduceKernel(
          p, px, py, Acc(0),
          [](Acc a, T v) {
            Acc w = static_cast<Acc>(v);
            if constexpr (std::is_signed_v<Acc>) w = w < 0 ? WrapMul<Acc>(w, Acc(-1)) : w;
            return WrapAdd<Acc>(a, w);
          },
          same);
      break;
    case Reduce::kL2:
      ReduceKernel(p, px, py, Acc(0), square, [](Acc a, int64_t) {
        return Narrow<T, Acc>(std::sqrt(static_cast<double>(a)));
      });
      break;
    case Reduce::kLogSum:
      ReduceKernel(p, px, py, Acc(0), sum,
                   [](Acc a, int64_t) { return Narrow<T, Acc>(std::log(static_cast<double>(a))); });
      break;
    case Reduce::kLogSumExp:
      if constexpr (!std::is_floating_point_v<T>) {
        return Unsupported(node.Describe(), ": ReduceLogSumExp of integer dtype ",
                           DTypeName(x.dtype()), " is not supported");
      } else {
        ReduceKernel(
            p, px, py, 0.0, [](double a, T v) { return a + std::exp(static_cast<double>(v)); },
            [](double a, int64_t) { return static_cast<T>(std::log(a)); });
      }
      break;
  }
  return Status::Ok();
}

Status RunReduce(const OpCall& call, std::vector<Tensor>& outputs, Reduce kind) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  const int64_t rank = static_cast<int64_t>(x->rank());
  // Axes come from the second input when present (ReduceSum 13+, all 18+),
  // else from the attribute.
  std::vector<int64_t> axes;
  if (const Tensor* a = call.in(1)) {
    if (a->dtype() != DType::kInt64) {
      return InvalidInput(node.Describe(), ": axes input has dtype ", DTypeName(a->dtype()),
                          ", expected int64");
    }
    axes = a->ToInt64Vector();
  } else {
    axes = node.GetInts("axes");
  }
  if (axes.empty() && node.GetInt("noop_with_empty_axes", 0) != 0) {
    outputs[0] = *x;
    return Status::Ok();
  }
  std::vector<bool> mask(static_cast<size_t>(rank), axes.empty());
  for (int64_t axis : axes) {
    SLIM_ASSIGN_OR_RETURN(const int64_t a, ops::NormalizeAxis(node, axis, rank));
    if (mask[static_cast<size_t>(a)]) {
      // ONNX's shape inference rejects repeated axes; so do we.
      return InvalidInput(node.Describe(), ": axis ", axis, " is listed more than once");
    }
    mask[static_cast<size_t>(a)] = true;
  }
  const bool keepdims = node.GetInt("keepdims", 1) != 0;
  const ReducePlan plan = MakeReducePlan(x->shape(), mask, keepdims);
  const Tensor xc = ToCompute(*x);
  Tensor out(xc.dtype(), plan.out_shape);
  Status st;
  switch (xc.dtype()) {
    case DType::kFloat32:
      st = ReduceTyped<float>(node, kind, xc, plan, out);
      break;
    case DType::kFloat64:
      st = ReduceTyped<double>(node, kind, xc, plan, out);
      break;
    case DType::kInt8:
      st = ReduceTyped<int8_t>(node, kind, xc, plan, out);
      break;
    case DType::kInt16:
      st = ReduceTyped<int16_t>(node, kind, xc, plan, out);
      break;
    case DType::kInt32:
      st = ReduceTyped<int32_t>(node, kind, xc, plan, out);
      break;
    case DType::kInt64:
      st = ReduceTyped<int64_t>(node, kind, xc, plan, out);
      break;
    case DType::kUInt8:
      st = ReduceTyped<uint8_t>(node, kind, xc, plan, out);
      break;
    case DType::kUInt16:
      st = ReduceTyped<uint16_t>(node, kind, xc, plan, out);
      break;
    case DType::kUInt32:
      st = ReduceTyped<uint32_t>(node, kind, xc, plan, out);
      break;
    case DType::kUInt64:
      st = ReduceTyped<uint64_t>(node, kind, xc, plan, out);
      break;
    default:
      return Unsupported(node.Describe(), ": dtype ", DTypeName(x->dtype()),
                         " is not supported by reductions");
  }
  SLIM_RETURN_IF_ERROR(st);
  outputs[0] = FromCompute(std::move(out), x->dtype());
  return Status::Ok();
}

OpFn ReduceOp(Reduce kind) {
  return [kind](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunReduce(call, outputs, kind);
  };
}

// ------------------------------------------------------------- Softmax

// Normalises `n` elements spaced `stride` apart starting at x (and y).
template <typename T>
void SoftmaxLine(const T* x, T* y, int64_t n, int64_t stride, bool log) {
  T mx = -std::numeric_limits<T>::infinity();
  for (int64_t j = 0; j < n; ++j) mx = std::max(mx, x[j * stride]);
  double sum = 0;
  for (int64_t j = 0; j < n; ++j) {
    const T e = std::exp(x[j * stride] - mx);
    if (!log) y[j * stride] = e;
    sum += static_cast<double>(e);
  }
  if (log) {
    const T lse = static_cast<T>(std::log(sum));
    for (int64_t j = 0; j < n; ++j) y[j * stride] = x[j * stride] - mx - lse;
  } else {
    const T inv = static_cast<T>(1.0 / sum);
    for (int64_t j = 0; j < n; ++j) y[j * stride] *= inv;
  }
}

Status RunSoftmax(const OpCall& call, std::vector<Tensor>& outputs, bool log) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  SLIM_RETURN_IF_ERROR(RequireFloat(node, *x, "input"));
  const auto& shape = x->shape();
  const int64_t rank = static_cast<int64_t>(shape.size());
  const bool coerce_2d = call.opset < 13;
  if (rank == 0) {
    return InvalidInput(node.Describe(), ": input must have rank >= 1, got a scalar");
  }
  SLIM_ASSIGN_OR_RETURN(const int64_t axis,
                        ops::NormalizeAxis(node, node.GetInt("axis", coerce_2d ? 1 : -1), rank));
  const size_t a = static_cast<size_t>(axis);
  const int64_t outer = Product(shape, 0, a);
  const int64_t n = coerce_2d ? Product(shape, a, shape.size()) : shape[a];
  const int64_t inner = coerce_2d ? 1 : Product(shape, a + 1, shape.size());
  const Tensor xc = ToCompute(*x);
  Tensor out(xc.dtype(), shape);
  auto run = [&](auto tag) {
    using T = decltype(tag);
    const T* px = xc.data<T>();
    T* py = out.MutableData<T>();
    for (int64_t o = 0; o < outer; ++o) {
      for (int64_t i = 0; i < inner; ++i) {
        const int64_t base = o * n * inner + i;
        SoftmaxLine(px + base, py + base, n, inner, log);
      }
    }
  };
  if (xc.dtype() == DType::kFloat64) {
    run(double{});
  } else {
    run(float{});
  }
  outputs[0] = FromCompute(std::move(out), x->dtype());
  return Status::Ok();
}

// --------------------------------------------------- LayerNormalization

// Flat index into a Scale/B tensor for each element of the normalised shape
// (unidirectional broadcast: the parameter must broadcast to that shape).
Expected<std::vector<int64_t>> ParamIndex(const Node& node, const Tensor& param,
                                          const std::vector<int64_t>& norm_shape,
                                          const char* what) {
  SLIM_RETURN_IF_ERROR(RequireFloat(node, param, what));
  auto shape = ops::BroadcastShapes(node, norm_shape, param.shape());
  if (!shape.ok() || *shape != norm_shape) {
    return InvalidInput(node.Describe(), ": ", what, " shape ", ShapeToString(param.shape()),
                        " does not broadcast to the normalized shape ", ShapeToString(norm_shape));
  }
  return ops::BroadcastIndex(param.shape(), norm_shape);
}

// LayerNormalization (rms = false) and SimplifiedLayerNormalization
// (rms = true) over the dims [axis, rank): per row of n elements
//   LN:   y = (x - mean) / sqrt(var + eps) * scale + bias
//   RMS:  y = x / sqrt(mean(x^2) + eps) * scale
// Optional outputs: LN's Mean (1) and InvStdDev (2); RMS's inv_std_var (1),
// shaped like X with the normalised dims set to 1, in the stash type.
Status RunLayerNorm(const OpCall& call, std::vector<Tensor>& outputs, bool rms) {
  const Node& node = call.node;
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  SLIM_ASSIGN_OR_RETURN(const Tensor* scale, Required(call, 1));
  const Tensor* bias = rms ? nullptr : call.in(2);
  SLIM_RETURN_IF_ERROR(RequireFloat(node, *x, "X"));
  const auto& shape = x->shape();
  const int64_t rank = static_cast<int64_t>(shape.size());
  SLIM_ASSIGN_OR_RETURN(const int64_t axis,
                        ops::NormalizeAxis(node, node.GetInt("axis", -1), rank));
  const double eps = static_cast<double>(node.GetFloat("epsilon", 1e-5f));
  const DType stash = DTypeFromOnnx(static_cast<int32_t>(node.GetInt("stash_type", 1)));
  if (!IsFloat(stash)) {
    return InvalidInput(node.Describe(), ": stash_type ", node.GetInt("stash_type", 1),
                        " is not a float type");
  }
  const size_t a = static_cast<size_t>(axis);
  const std::vector<int64_t> norm_shape(shape.begin() + static_cast<std::ptrdiff_t>(a),
                                        shape.end());
  const int64_t outer = Product(shape, 0, a);
  const int64_t n = Product(shape, a, shape.size());
  SLIM_ASSIGN_OR_RETURN(const auto scale_idx, ParamIndex(node, *scale, norm_shape, "Scale"));
  std::vector<int64_t> bias_idx;
  if (bias) {
    SLIM_ASSIGN_OR_RETURN(bias_idx, ParamIndex(node, *bias, norm_shape, "B"));
  }

  const std::vector<float> xs = LoadFloats(*x);
  const std::vector<float> sv = LoadFloats(*scale);
  const std::vector<float> bv = bias ? LoadFloats(*bias) : std::vector<float>();
  std::vector<float> y(xs.size());
  std::vector<float> means(static_cast<size_t>(outer)), inv_stds(static_cast<size_t>(outer));
  for (int64_t o = 0; o < outer; ++o) {
    const float* px = xs.data() + o * n;
    float* py = y.data() + o * n;
    double mean = 0;
    if (!rms) {
      for (int64_t j = 0; j < n; ++j) mean += px[j];
      mean /= static_cast<double>(n);
    }
    double var = 0;
    for (int64_t j = 0; j < n; ++j) {
      const double d = px[j] - mean;
      var += d * d;
    }
    var /= static_cast<double>(n);
    const double inv = 1.0 / std::sqrt(var + eps);
    for (int64_t j = 0; j < n; ++j) {
      double v = (px[j] - mean) * inv * sv[static_cast<size_t>(scale_idx[static_cast<size_t>(j)])];
      if (bias) v += bv[static_cast<size_t>(bias_idx[static_cast<size_t>(j)])];
      py[j] = static_cast<float>(v);
    }
    means[static_cast<size_t>(o)] = static_cast<float>(mean);
    inv_stds[static_cast<size_t>(o)] = static_cast<float>(inv);
  }
  // ONNX types Y like X; ORT's SimplifiedLayerNormalization types it like
  // scale (the two agree in every model ORT writes).
  outputs[0] = ops::StoreFloat(rms ? scale->dtype() : x->dtype(), shape, y);
  std::vector<int64_t> stat_shape(shape.begin(), shape.begin() + static_cast<std::ptrdiff_t>(a));
  stat_shape.resize(shape.size(), 1);
  if (rms) {
    if (outputs.size() > 1) outputs[1] = ops::StoreFloat(stash, stat_shape, inv_stds);
  } else {
    if (outputs.size() > 1) outputs[1] = ops::StoreFloat(stash, stat_shape, means);
    if (outputs.size() > 2) outputs[2] = ops::StoreFloat(stash, stat_shape, inv_stds);
  }
  return Status::Ok();
}

}  // namespace

void RegisterReduceOps(OpTable& table) {
  table.Add("ReduceSum", ReduceOp(Reduce::kSum));
  table.Add("ReduceMean", ReduceOp(Reduce::kMean));
  table.Add("ReduceMax", ReduceOp(Reduce::kMax));
  table.Add("ReduceMin", ReduceOp(Reduce::kMin));
  table.Add("ReduceProd", ReduceOp(Reduce::kProd));
  table.Add("ReduceSumSquare", ReduceOp(Reduce::kSumSquare));
  table.Add("ReduceL1", ReduceOp(Reduce::kL1));
  table.Add("ReduceL2", ReduceOp(Reduce::kL2));
  table.Add("ReduceLogSum", ReduceOp(Reduce::kLogSum));
  table.Add("ReduceLogSumExp", ReduceOp(Reduce::kLogSumExp));
  table.Add("Softmax", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunSoftmax(call, outputs, /*log=*/false);
  });
  table.Add("LogSoftmax", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunSoftmax(call, outputs, /*log=*/true);
  });
  table.Add("LayerNormalization", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunLayerNorm(call, outputs, /*rms=*/false);
  });
  table.Add("SimplifiedLayerNormalization", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunLayerNorm(call, outputs, /*rms=*/true);
  });
}

}  // namespace slim
