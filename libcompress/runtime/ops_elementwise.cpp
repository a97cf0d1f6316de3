// Elementwise operators with ONNX semantics (opsets 9..17): arithmetic
// (Add, Sub, Mul, Div, Pow, variadic Max/Min), unary math, activations
// (Relu, LeakyRelu, Clip, HardSigmoid, HardSwish, Sigmoid), comparisons,
// logic (Not, And, Or), Where, Cast, CastLike and Identity.
//
// Compute types: float32 for float32/float16/bfloat16 (16-bit inputs are
// converted once per op and the result is rounded to nearest even on store),
// double for float64, the native type for integers, and uint8 0/1 for bool.
// Integer arithmetic wraps like two's-complement hardware (computed in
// unsigned types so overflow is defined); integer Div truncates toward zero
// as ONNX's reference and ONNX Runtime do, and division by zero is an error.
//
// Broadcasting collapses the output into rows along which every input
// advances with stride 1 or 0 (BroadcastPlan), so same-shape, scalar and
// row-broadcast cases run as plain loops the compiler vectorises; only the
// row starts walk an index counter.
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {
namespace {

// ---------------------------------------------------------------- helpers

Expected<const Tensor*> Required(const OpCall& call, size_t i) {
  const Tensor* t = call.in(i);
  if (!t) return InvalidInput(call.node.Describe(), ": required input ", i, " is missing");
  return t;
}

bool Is16Bit(DType t) { return t == DType::kFloat16 || t == DType::kBFloat16; }

// float32 copy of a float16/bfloat16 tensor; other tensors are returned as
// they are (a handle copy).
Tensor ToCompute(const Tensor& t) {
  if (!Is16Bit(t.dtype())) return t;
  Tensor out(DType::kFloat32, t.shape());
  const uint16_t* src = t.data<uint16_t>();
  float* dst = out.MutableData<float>();
  const int64_t n = t.numel();
  if (t.dtype() == DType::kFloat16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = HalfToFloat(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = BFloat16ToFloat(src[i]);
  }
  return out;
}

// Rounds a float32 result back to `want` when the op's dtype is 16-bit.
Tensor FromCompute(Tensor t, DType want) {
  if (!Is16Bit(want)) return t;
  Tensor out(want, t.shape());
  const float* src = t.data<float>();
  auto* dst = out.MutableData<uint16_t>();
  const int64_t n = t.numel();
  if (want == DType::kFloat16) {
    for (int64_t i = 0; i < n; ++i) dst[i] = FloatToHalf(src[i]);
  } else {
    for (int64_t i = 0; i < n; ++i) dst[i] = FloatToBFloat16(src[i]);
  }
  return out;
}

// Type classes an operator accepts (bitmask, a template argument so that an
// op is only instantiated for the types it supports).
constexpr unsigned kFloats = 1;    // float32, float16, bfloat16, float64
constexpr unsigned kSigned = 2;    // int8..int64
constexpr unsigned kUnsigned = 4;  // uint8..uint64
constexpr unsigned kBools = 8;     // bool, computed as uint8 0/1
constexpr unsigned kNumeric = kFloats | kSigned | kUnsigned;

// Calls f(T{}) with the compute type of `t`, or fails naming the node.
template <unsigned kAllowed, typename F>
Status VisitCompute(const Node& node, DType t, F&& f) {
  switch (t) {
    case DType::kFloat32:
    case DType::kFloat16:
    case DType::kBFloat16:
      if constexpr ((kAllowed & kFloats) != 0) return f(float{});
      break;
    case DType::kFloat64:
      if constexpr ((kAllowed & kFloats) != 0) return f(double{});
      break;
    case DType::kInt8:
      if constexpr ((kAllowed & kSigned) != 0) return f(int8_t{});
      break;
    case DType::kInt16:
      if constexpr ((kAllowed & kSigned) != 0) return f(int16_t{});
      break;
    case DType::kInt32:
      if constexpr ((kAllowed & kSigned) != 0) return f(int32_t{});
      break;
    case DType::kInt64:
      if constexpr ((kAllowed & kSigned) != 0) return f(int64_t{});
      break;
    case DType::kUInt8:
      if constexpr ((kAllowed & kUnsigned) != 0) return f(uint8_t{});
      break;
    case DType::kUInt16:
      if constexpr ((kAllowed & kUnsigned) != 0) return f(uint16_t{});
      break;
    case DType::kUInt32:
      if constexpr ((kAllowed & kUnsigned) != 0) return f(uint32_t{});
      break;
    case DType::kUInt64:
      if constexpr ((kAllowed & kUnsigned) != 0) return f(uint64_t{});
      break;
    case DType::kBool:
      if constexpr ((kAllowed & kBools) != 0) return f(uint8_t{});
      break;
    default:
      break;
  }
  return Unsupported(node.Describe(), ": dtype ", DTypeName(t),
                     " is not supported by this operator");
}

// Wrapping integer arithmetic: computed in an unsigned type at least 32 bits
// wide, so neither signed overflow nor int promotion of small unsigned types
// (uint16 * uint16 overflows int) is undefined behaviour.
template <typename T>
using WrapType = std::conditional_t<(sizeof(T) < 4), uint32_t, std::make_unsigned_t<T>>;

template <typename T>
T AddT(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<WrapType<T>>(a) + static_cast<WrapType<T>>(b));
  } else {
    return a + b;
  }
}
template <typename T>
T SubT(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<WrapType<T>>(a) - static_cast<WrapType<T>>(b));
  } else {
    return a - b;
  }
}
template <typename T>
T MulT(T a, T b) {
  if constexpr (std::is_integral_v<T>) {
    return static_cast<T>(static_cast<WrapType<T>>(a) * static_cast<WrapType<T>>(b));
  } else {
    return a * b;
  }
}
template <typename T>
T DivT(T a, T b) {
  if constexpr (std::is_integral_v<T> && std::is_signed_v<T>) {
    // INT_MIN / -1 overflows; its wrapped result is the negation.
    if (b == -1) return SubT<T>(0, a);
    return static_cast<T>(a / b);
  } else {
    return static_cast<T>(a / b);
  }
}
// numpy maximum/minimum: a NaN operand gives NaN.
template <typename T>
T MaxT(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
  }
  return a > b ? a : b;  // b when b is NaN
}
template <typename T>
T MinT(T a, T b) {
  if constexpr (std::is_floating_point_v<T>) {
    if (std::isnan(a)) return a;
  }
  return a < b ? a : b;
}

// x**y for int64 by squaring, wrapping on overflow. Negative exponents give
// the truncated value of the real power (1, -1 or 0).
int64_t IntPow(int64_t base, int64_t exp) {
  if (exp < 0) {
    if (base == 1) return 1;
    if (base == -1) return (exp & 1) ? -1 : 1;
    return 0;
  }
  uint64_t result = 1;
  uint64_t b = static_cast<uint64_t>(base);
  for (uint64_t e = static_cast<uint64_t>(exp); e; e >>= 1) {
    if (e & 1) result *= b;
    b *= b;
  }
  return static_cast<int64_t>(result);
}

// ---------------------------------------------------------- broadcasting

// The broadcast output shape and, per input, the stride of each output dim
// (0 where the input repeats). Dims of size 1 are dropped and adjacent dims
// along which every input is contiguous (or every input repeats) are merged,
// so the innermost dim is as long as possible and each input's stride along
// it is 1 or 0.
struct BroadcastPlan {
  std::vector<int64_t> out_shape;
  int64_t numel = 0;
  std::vector<int64_t> dims;                  // collapsed dims, at least one
  std::vector<std::vector<int64_t>> strides;  // [input][collapsed dim]

  int64_t inner_stride(size_t input) const { return strides[input].back(); }

  // fn(out_offset, input_offsets, row_length) for every innermost row.
  template <typename Fn>
  void ForEachRow(Fn&& fn) const {
    if (numel == 0) return;
    const size_t rank = dims.size();
    const size_t inputs = strides.size();
    const int64_t row = dims[rank - 1];
    std::vector<int64_t> counter(rank, 0);
    std::vector<int64_t> offsets(inputs, 0);
    for (int64_t out = 0;; out += row) {
      fn(out, offsets.data(), row);
      size_t d = rank - 1;
      for (;;) {
        if (d == 0) return;
        --d;
        ++counter[d];
        for (size_t k = 0; k < inputs; ++k) offsets[k] += strides[k][d];
        if (counter[d] < dims[d]) break;
        for (size_t k = 0; k < inputs; ++k) offsets[k] -= strides[k][d] * dims[d];
        counter[d] = 0;
      }
    }
  }
};

Expected<BroadcastPlan> MakePlan(const Node& node,
                                 const std::vector<const std::vector<int64_t>*>& shapes) {
  BroadcastPlan plan;
  plan.out_shape = *shapes[0];
  for (size_t k = 1; k < shapes.size(); ++k) {
    SLIM_ASSIGN_OR_RETURN(plan.out_shape, ops::BroadcastShapes(node, plan.out_shape, *shapes[k]));
  }
  plan.numel = ShapeNumel(plan.out_shape);
  const size_t rank = plan.out_shape.size();
  std::vector<std::vector<int64_t>> full(shapes.size(), std::vector<int64_t>(rank, 0));
  for (size_t k = 0; k < shapes.size(); ++k) {
    const auto& s = *shapes[k];
    const auto st = ops::Strides(s);
    const size_t offset = rank - s.size();
    for (size_t i = 0; i < s.size(); ++i) full[k][i + offset] = s[i] == 1 ? 0 : st[i];
  }
  plan.strides.assign(shapes.size(), {});
  for (size_t d = 0; d < rank; ++d) {
    const int64_t n = plan.out_shape[d];
    if (n == 1) continue;
    bool merge = !plan.dims.empty();
    for (size_t k = 0; merge && k < shapes.size(); ++k) {
      merge = plan.strides[k].back() == full[k][d] * n;
    }
    if (merge) {
      plan.dims.back() *= n;
      for (size_t k = 0; k < shapes.size(); ++k) plan.strides[k].back() = full[k][d];
    } else {
      plan.dims.push_back(n);
      for (size_t k = 0; k < shapes.size(); ++k) plan.strides[k].push_back(full[k][d]);
    }
  }
  if (plan.dims.empty()) {
    plan.dims.push_back(1);
    for (auto& s : plan.strides) s.push_back(0);
  }
  return plan;
}

// out[i] = f(a[i], b[i]) over a two-input plan; the four stride cases are
// separate loops so each vectorises.
template <typename T, typename R, typename F>
void BinaryRows(const BroadcastPlan& plan, const T* a, const T* b, R* out, F f) {
  const bool step_a = plan.inner_stride(0) != 0;
  const bool step_b = plan.inner_stride(1) != 0;
  plan.ForEachRow([&](int64_t o, const int64_t* off, int64_t n) {
    const T* pa = a + off[0];
    const T* pb = b + off[1];
    R* po = out + o;
    if (step_a && step_b) {
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], pb[i]);
    } else if (step_a) {
      const T vb = *pb;
      for (int64_t i = 0; i < n; ++i) po[i] = f(pa[i], vb);
    } else if (step_b) {
      const T va = *pa;
      for (int64_t i = 0; i < n; ++i) po[i] = f(va, pb[i]);
    } else {
      std::fill(po, po + n, f(*pa, *pb));
    }
  });
}

// --------------------------------------------------------- op templates

// f applied to every element of x, computed in T and stored as x's dtype.
template <typename T, typename F>
Tensor MapCompute(const Tensor& x, F f) {
  const Tensor xc = ToCompute(x);
  Tensor out(xc.dtype(), x.shape());
  const T* px = xc.data<T>();
  T* po = out.MutableData<T>();
  const int64_t n = x.numel();
  for (int64_t i = 0; i < n; ++i) po[i] = static_cast<T>(f(px[i]));
  return FromCompute(std::move(out), x.dtype());
}

template <unsigned kAllowed, typename F>
Status RunUnary(const OpCall& call, std::vector<Tensor>& outputs, F f) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  return VisitCompute<kAllowed>(call.node, x->dtype(), [&](auto tag) -> Status {
    outputs[0] = MapCompute<decltype(tag)>(*x, f);
    return Status::Ok();
  });
}

Status SameDType(const Node& node, const Tensor& a, const Tensor& b) {
  if (a.dtype() != b.dtype()) {
    return InvalidInput(node.Describe(), ": inputs have dtypes ", DTypeName(a.dtype()), " and ",
                        DTypeName(b.dtype()), ", expected the same dtype");
  }
  return Status::Ok();
}

// a (op) b with broadcasting into a tensor of the same compute type (or bool
// for comparisons). a and b are compute tensors (no 16-bit floats).
template <typename T, bool kCompare, typename F>
Expected<Tensor> BinaryCompute(const Node& node, const Tensor& a, const Tensor& b, F f) {
  SLIM_ASSIGN_OR_RETURN(BroadcastPlan plan, MakePlan(node, {&a.shape(), &b.shape()}));
  using R = std::conditional_t<kCompare, uint8_t, T>;
  Tensor out(kCompare ? DType::kBool : a.dtype(), plan.out_shape);
  BinaryRows(plan, a.data<T>(), b.data<T>(), out.MutableData<R>(), f);
  return out;
}

template <unsigned kAllowed, bool kCompare, typename F>
Status RunBinary(const OpCall& call, std::vector<Tensor>& outputs, F f) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* a, Required(call, 0));
  SLIM_ASSIGN_OR_RETURN(const Tensor* b, Required(call, 1));
  SLIM_RETURN_IF_ERROR(SameDType(call.node, *a, *b));
  const DType dtype = a->dtype();
  return VisitCompute<kAllowed>(call.node, dtype, [&](auto tag) -> Status {
    using T = decltype(tag);
    SLIM_ASSIGN_OR_RETURN(Tensor out,
                          (BinaryCompute<T, kCompare>(call.node, ToCompute(*a), ToCompute(*b),
                                                      [&](T x, T y) { return f(x, y); })));
    outputs[0] = kCompare ? std::move(out) : FromCompute(std::move(out), dtype);
    return Status::Ok();
  });
}

template <unsigned kAllowed, typename F>
OpFn Unary(F f) {
  return [f](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunUnary<kAllowed>(call, outputs, f);
  };
}
template <unsigned kAllowed, bool kCompare, typename F>
OpFn Binary(F f) {
  return [f](const OpCall& call, std::vector<Tensor>& outputs) {
    return RunBinary<kAllowed, kCompare>(call, outputs, f);
  };
}

// ----------------------------------------------------------------- Cast

// Storage tags for the 16-bit floats and bool, so Cast can tell them apart
// from uint16/uint8 by type.
struct Half {
  uint16_t bits;
};
struct BF16 {
  uint16_t bits;
};
struct Bool {
  uint8_t v;
};

template <typename F>
Status VisitStorage(const Node& node, DType t, F&& f) {
  switch (t) {
    case DType::kFloat32:
      return f(float{});
    case DType::kFloat64:
      return f(double{});
    case DType::kFloat16:
      return f(Half{});
    case DType::kBFloat16:
      return f(BF16{});
    case DType::kInt8:
      return f(int8_t{});
    case DType::kInt16:
      return f(int16_t{});
    case DType::kInt32:
      return f(int32_t{});
    case DType::kInt64:
      return f(int64_t{});
    case DType::kUInt8:
      return f(uint8_t{});
    case DType::kUInt16:
      return f(uint16_t{});
    case DType::kUInt32:
      return f(uint32_t{});
    case DType::kUInt64:
      return f(uint64_t{});
    case DType::kBool:
      return f(Bool{});
    default:
      return Unsupported(node.Describe(), ": cast from or to dtype ", DTypeName(t),
                         " is not supported");
  }
}

template <typename S>
constexpr bool kIsFloatStorage =
    std::is_floating_point_v<S> || std::is_same_v<S, Half> || std::is_same_v<S, BF16>;

// Exact value of a float-like storage element.
template <typename S>
double FloatValue(S s) {
  if constexpr (std::is_same_v<S, Half>) {
    return HalfToFloat(s.bits);
  } else if constexpr (std::is_same_v<S, BF16>) {
    return BFloat16ToFloat(s.bits);
  } else {
    return static_cast<double>(s);
  }
}

// double -> float rounded to odd: rounding that float once more to a
// narrower format (fp16, bf16) then equals rounding the double directly,
// avoiding double-rounding errors of double -> float -> half.
float RoundToOddFloat(double d) {
  float f = static_cast<float>(d);
  if (static_cast<double>(f) == d || std::isnan(d) || std::isinf(f)) return f;
  uint32_t bits;
  std::memcpy(&bits, &f, 4);
  if (std::fabs(static_cast<double>(f)) > std::fabs(d)) --bits;  // truncate toward zero
  bits |= 1u;
  std::memcpy(&f, &bits, 4);
  return f;
}

// float -> integer: truncation toward zero (ONNX/numpy astype), saturating
// out-of-range values and mapping NaN to 0 so the result is always defined.
template <typename D>
D FloatToInt(double v) {
  if (std::isnan(v)) return 0;
  constexpr double lo = static_cast<double>(std::numeric_limits<D>::lowest());
  // 2^(bits) for unsigned / 2^(bits-1) for signed: the first value past max.
  constexpr double past_hi = static_cast<double>(std::numeric_limits<D>::max() / 2 + 1) * 2.0;
  if (v <= lo) return std::numeric_limits<D>::lowest();
  if (v >= past_hi) return std::numeric_limits<D>::max();
  return static_cast<D>(v);
}

template <typename D, typename S>
D Convert(S s) {
  if constexpr (std::is_same_v<D, S>) {
    return s;
  } else if constexpr (std::is_same_v<S, Bool>) {
    return Convert<D>(static_cast<uint8_t>(s.v != 0));
  } else if constexpr (std::is_same_v<D, Bool>) {
    if constexpr (kIsFloatStorage<S>) {
      return Bool{static_cast<uint8_t>(FloatValue(s) != 0.0)};
    } else {
      return Bool{static_cast<uint8_t>(s != 0)};
    }
  } else if constexpr (std::is_same_v<D, Half> || std::is_same_v<D, BF16>) {
    float f;
    if constexpr (std::is_same_v<S, float> || std::is_same_v<S, Half> || std::is_same_v<S, BF16>) {
      f = static_cast<float>(FloatValue(s));  // exact
    } else {
      f = RoundToOddFloat(static_cast<double>(s));  // double and integers
    }
    if constexpr (std::is_same_v<D, Half>) {
      return Half{FloatToHalf(f)};
    } else {
      return BF16{FloatToBFloat16(f)};
    }
  } else if constexpr (std::is_floating_point_v<D>) {
    if constexpr (kIsFloatStorage<S>) {
      return static_cast<D>(FloatValue(s));
    } else {
      return static_cast<D>(s);
    }
  } else if constexpr (kIsFloatStorage<S>) {
    return FloatToInt<D>(FloatValue(s));
  } else {
    return static_cast<D>(s);  // integer -> integer wraps modulo 2^bits
  }
}

Expected<Tensor> CastTensor(const Node& node, const Tensor& in, DType to) {
  if (in.dtype() == to) return in;
  Tensor out;
  Status st = VisitStorage(node, in.dtype(), [&](auto src_tag) -> Status {
    using S = decltype(src_tag);
    return VisitStorage(node, to, [&](auto dst_tag) -> Status {
      using D = decltype(dst_tag);
      out = Tensor(to, in.shape());
      const S* src = static_cast<const S*>(in.raw());
      D* dst = static_cast<D*>(out.MutableRaw());
      const int64_t n = in.numel();
      for (int64_t i = 0; i < n; ++i) dst[i] = Convert<D>(src[i]);
      return Status::Ok();
    });
  });
  if (!st.ok()) return st;
  return out;
}

Status Cast(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  if (!call.node.HasAttr("to")) {
    return InvalidInput(call.node.Describe(), ": required attribute 'to' is missing");
  }
  const int64_t to = call.node.GetInt("to", 0);
  const DType dt = DTypeFromOnnx(static_cast<int32_t>(to));
  if (dt == DType::kUndefined) {
    return Unsupported(call.node.Describe(), ": cast to ONNX data type ", to, " is not supported");
  }
  SLIM_ASSIGN_OR_RETURN(outputs[0], CastTensor(call.node, *x, dt));
  return Status::Ok();
}

Status CastLike(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  SLIM_ASSIGN_OR_RETURN(const Tensor* like, Required(call, 1));
  SLIM_ASSIGN_OR_RETURN(outputs[0], CastTensor(call.node, *x, like->dtype()));
  return Status::Ok();
}

// ------------------------------------------------------------ other ops

Status Div(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* b, Required(call, 1));
  if (!IsFloat(b->dtype())) {
    const int64_t n = b->numel();
    for (int64_t i = 0; i < n; ++i) {
      if (b->IntAt(i) == 0) {
        return InvalidInput(call.node.Describe(), ": integer division by zero (divisor element ", i,
                            ")");
      }
    }
  }
  return RunBinary<kNumeric, false>(call, outputs, [](auto x, auto y) { return DivT(x, y); });
}

// Pow(X, Y): the result has X's dtype; Y may be any numeric dtype (opset
// 12+). Float bases compute in X's compute type; integer bases use exact
// integer powers for integer exponents and double pow truncated otherwise.
Status Pow(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  SLIM_ASSIGN_OR_RETURN(const Tensor* y, Required(call, 1));
  const Node& node = call.node;
  const DType dtype = x->dtype();
  if (dtype == DType::kBool || y->dtype() == DType::kBool) {
    return Unsupported(node.Describe(), ": Pow of bool tensors is not defined");
  }
  if (IsFloat(dtype)) {
    const DType compute = dtype == DType::kFloat64 ? DType::kFloat64 : DType::kFloat32;
    SLIM_ASSIGN_OR_RETURN(Tensor yc, CastTensor(node, *y, compute));
    Tensor out;
    if (compute == DType::kFloat64) {
      SLIM_ASSIGN_OR_RETURN(
          out, (BinaryCompute<double, false>(node, *x, yc,
                                             [](double a, double b) { return std::pow(a, b); })));
    } else {
      SLIM_ASSIGN_OR_RETURN(
          out, (BinaryCompute<float, false>(node, ToCompute(*x), yc,
                                            [](float a, float b) { return std::pow(a, b); })));
    }
    outputs[0] = FromCompute(std::move(out), dtype);
    return Status::Ok();
  }
  Tensor out;
  if (IsFloat(y->dtype())) {
    SLIM_ASSIGN_OR_RETURN(Tensor xd, CastTensor(node, *x, DType::kFloat64));
    SLIM_ASSIGN_OR_RETURN(Tensor yd, CastTensor(node, *y, DType::kFloat64));
    SLIM_ASSIGN_OR_RETURN(out, (BinaryCompute<double, false>(node, xd, yd, [](double a, double b) {
                            return std::pow(a, b);
                          })));
  } else {
    SLIM_ASSIGN_OR_RETURN(Tensor xi, CastTensor(node, *x, DType::kInt64));
    SLIM_ASSIGN_OR_RETURN(Tensor yi, CastTensor(node, *y, DType::kInt64));
    SLIM_ASSIGN_OR_RETURN(out, (BinaryCompute<int64_t, false>(node, xi, yi, IntPow)));
  }
  SLIM_ASSIGN_OR_RETURN(outputs[0], CastTensor(node, out, dtype));
  return Status::Ok();
}

// Max/Min over one or more inputs, broadcast together (folded pairwise,
// which gives the same shape as broadcasting all at once).
template <typename F>
OpFn Variadic(F f) {
  return [f](const OpCall& call, std::vector<Tensor>& outputs) -> Status {
    SLIM_ASSIGN_OR_RETURN(const Tensor* first, Required(call, 0));
    for (size_t i = 1; i < call.inputs.size(); ++i) {
      SLIM_ASSIGN_OR_RETURN(const Tensor* t, Required(call, i));
      SLIM_RETURN_IF_ERROR(SameDType(call.node, *first, *t));
    }
    const DType dtype = first->dtype();
    return VisitCompute<kNumeric>(call.node, dtype, [&](auto tag) -> Status {
      using T = decltype(tag);
      Tensor acc = ToCompute(*first);
      for (size_t i = 1; i < call.inputs.size(); ++i) {
        SLIM_ASSIGN_OR_RETURN(acc,
                              (BinaryCompute<T, false>(call.node, acc, ToCompute(*call.inputs[i]),
                                                       [&](T a, T b) { return f(a, b); })));
      }
      outputs[0] = FromCompute(std::move(acc), dtype);
      return Status::Ok();
    });
  };
}

// A scalar bound of Clip (input or attribute) in compute type T.
template <typename T>
Expected<T> ClipBound(const Node& node, const Tensor* t, const char* attr, T def, int64_t opset) {
  if (opset < 11) {
    if (!node.HasAttr(attr)) return def;
    return static_cast<T>(node.GetFloat(attr, 0.0f));
  }
  if (!t) return def;
  if (t->numel() != 1) {
    return InvalidInput(node.Describe(), ": '", attr, "' must be a scalar, got shape ",
                        ShapeToString(t->shape()));
  }
  if constexpr (std::is_floating_point_v<T>) {
    if (t->dtype() == DType::kFloat64) return static_cast<T>(t->data<double>()[0]);
    return static_cast<T>(t->FloatAt(0));
  } else {
    return static_cast<T>(t->IntAt(0));
  }
}

Status Clip(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
  const Node& node = call.node;
  for (size_t i = 1; i < 3; ++i) {
    if (call.opset >= 11 && call.in(i)) SLIM_RETURN_IF_ERROR(SameDType(node, *x, *call.in(i)));
  }
  return VisitCompute<kNumeric>(node, x->dtype(), [&](auto tag) -> Status {
    using T = decltype(tag);
    SLIM_ASSIGN_OR_RETURN(const T lo, ClipBound<T>(node, call.in(1), "min",
                                                   std::numeric_limits<T>::lowest(), call.opset));
    SLIM_ASSIGN_OR_RETURN(const T hi, ClipBound<T>(node, call.in(2), "max",
                                                   std::numeric_limits<T>::max(), call.opset));
    // numpy clip order: a bound pair with min > max yields max everywhere.
    outputs[0] = MapCompute<T>(*x, [lo, hi](T v) { return std::min(std::max(v, lo), hi); });
    return Status::Ok();
  });
}

// Where(cond, X, Y): selects bytes, so it is exact for every dtype.
template <typename T>
void WhereRows(const BroadcastPlan& plan, const uint8_t* c, const T* x, const T* y, T* out) {
  const int64_t sc = plan.inner_stride(0), sx = plan.inner_stride(1), sy = plan.inner_stride(2);
  plan.ForEachRow([&](int64_t o, const int64_t* off, int64_t n) {
    const uint8_t* pc = c + off[0];
    const T* px = x + off[1];
    const T* py = y + off[2];
    T* po = out + o;
    for (int64_t i = 0; i < n; ++i) po[i] = pc[i * sc] ? px[i * sx] : py[i * sy];
  });
}

Status Where(const OpCall& call, std::vector<Tensor>& outputs) {
  SLIM_ASSIGN_OR_RETURN(const Tensor* c, Required(call, 0));
  SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 1));
  SLIM_ASSIGN_OR_RETURN(const Tensor* y, Required(call, 2));
  const Node& node = call.node;
  if (c->dtype() != DType::kBool) {
    return InvalidInput(node.Describe(), ": condition has dtype ", DTypeName(c->dtype()),
                        ", expected bool");
  }
  SLIM_RETURN_IF_ERROR(SameDType(node, *x, *y));
  SLIM_ASSIGN_OR_RETURN(BroadcastPlan plan,
                        MakePlan(node, {&c->shape(), &x->shape(), &y->shape()}));
  Tensor out(x->dtype(), plan.out_shape);
  const auto* pc = c->data<uint8_t>();
  switch (DTypeSize(x->dtype())) {
    case 1:
      WhereRows(plan, pc, x->data<uint8_t>(), y->data<uint8_t>(), out.MutableData<uint8_t>());
      break;
    case 2:
      WhereRows(plan, pc, x->data<uint16_t>(), y->data<uint16_t>(), out.MutableData<uint16_t>());
      break;
    case 4:
      WhereRows(plan, pc, x->data<uint32_t>(), y->data<uint32_t>(), out.MutableData<uint32_t>());
      break;
    case 8:
      WhereRows(plan, pc, x->data<uint64_t>(), y->data<uint64_t>(), out.MutableData<uint64_t>());
      break;
    default:
      return Unsupported(node.Describe(), ": dtype ", DTypeName(x->dtype()),
                         " is not supported by Where");
  }
  outputs[0] = std::move(out);
  return Status::Ok();
}

template <typename T>
T Sigmoid(T x) {
  return T(1) / (T(1) + std::exp(-x));
}

}  // namespace

void RegisterElementwiseOps(OpTable& table) {
  table.Add("Add", Binary<kNumeric, false>([](auto a, auto b) { return AddT(a, b); }));
  table.Add("Sub", Binary<kNumeric, false>([](auto a, auto b) { return SubT(a, b); }));
  table.Add("Mul", Binary<kNumeric, false>([](auto a, auto b) { return MulT(a, b); }));
  table.Add("Div", Div);
  table.Add("Pow", Pow);
  table.Add("Max", Variadic([](auto a, auto b) { return MaxT(a, b); }));
  table.Add("Min", Variadic([](auto a, auto b) { return MinT(a, b); }));

  table.Add("Sqrt", Unary<kFloats>([](auto x) { return std::sqrt(x); }));
  table.Add("Reciprocal", Unary<kFloats>([](auto x) { return decltype(x)(1) / x; }));
  table.Add("Exp", Unary<kFloats>([](auto x) { return std::exp(x); }));
  table.Add("Log", Unary<kFloats>([](auto x) { return std::log(x); }));
  table.Add("Tanh", Unary<kFloats>([](auto x) { return std::tanh(x); }));
  table.Add("Erf", Unary<kFloats>([](auto x) { return std::erf(x); }));
  table.Add("Sigmoid", Unary<kFloats>([](auto x) { return Sigmoid(x); }));
  table.Add("Cos", Unary<kFloats>([](auto x) { return std::cos(x); }));
  table.Add("Sin", Unary<kFloats>([](auto x) { return std::sin(x); }));
  table.Add("Floor", Unary<kFloats>([](auto x) { return std::floor(x); }));
  table.Add("Ceil", Unary<kFloats>([](auto x) { return std::ceil(x); }));
  table.Add("Neg", Unary<kFloats | kSigned>([](auto x) { return SubT<decltype(x)>(0, x); }));
  table.Add("Abs", Unary<kNumeric>([](auto x) {
              using T = decltype(x);
              if constexpr (std::is_unsigned_v<T>) {
                return x;
              } else {
                return x < T(0) ? SubT<T>(0, x) : x;
              }
            }));
  table.Add("Relu", Unary<kFloats | kSigned>([](auto x) {
              using T = decltype(x);
              return x > T(0) ? x : T(0);
            }));
  table.Add("LeakyRelu", [](const OpCall& call, std::vector<Tensor>& outputs) {
    const float alpha = call.node.GetFloat("alpha", 0.01f);
    return RunUnary<kFloats>(call, outputs, [alpha](auto x) {
      using T = decltype(x);
      return x >= T(0) ? x : static_cast<T>(alpha) * x;
    });
  });
  table.Add("HardSigmoid", [](const OpCall& call, std::vector<Tensor>& outputs) {
    const float alpha = call.node.GetFloat("alpha", 0.2f);
    const float beta = call.node.GetFloat("beta", 0.5f);
    return RunUnary<kFloats>(call, outputs, [alpha, beta](auto x) {
      using T = decltype(x);
      return std::max(T(0), std::min(T(1), static_cast<T>(alpha) * x + static_cast<T>(beta)));
    });
  });
  table.Add("HardSwish", Unary<kFloats>([](auto x) {
              using T = decltype(x);
              return x * std::max(T(0), std::min(T(1), x / T(6) + T(0.5)));
            }));
  table.Add("Clip", Clip);

  table.Add("Equal", Binary<kNumeric | kBools, true>(
                         [](auto a, auto b) { return static_cast<uint8_t>(a == b); }));
  table.Add("Less",
            Binary<kNumeric, true>([](auto a, auto b) { return static_cast<uint8_t>(a < b); }));
  table.Add("LessOrEqual",
            Binary<kNumeric, true>([](auto a, auto b) { return static_cast<uint8_t>(a <= b); }));
  table.Add("Greater",
            Binary<kNumeric, true>([](auto a, auto b) { return static_cast<uint8_t>(a > b); }));
  table.Add("GreaterOrEqual",
            Binary<kNumeric, true>([](auto a, auto b) { return static_cast<uint8_t>(a >= b); }));
  table.Add("Not", Unary<kBools>([](auto x) { return static_cast<uint8_t>(x == 0); }));
  table.Add("And", Binary<kBools, true>(
                       [](auto a, auto b) { return static_cast<uint8_t>(a != 0 && b != 0); }));
  table.Add("Or", Binary<kBools, true>(
                      [](auto a, auto b) { return static_cast<uint8_t>(a != 0 || b != 0); }));
  table.Add("Where", Where);
  table.Add("Cast", Cast);
  table.Add("CastLike", CastLike);
  table.Add("Identity", [](const OpCall& call, std::vector<Tensor>& outputs) -> Status {
    SLIM_ASSIGN_OR_RETURN(const Tensor* x, Required(call, 0));
    outputs[0] = *x;  // tensors are immutable handles: no copy needed
    return Status::Ok();
  });
}

}  // namespace slim
