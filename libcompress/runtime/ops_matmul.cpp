// MatMul and Gemm with ONNX semantics (opsets 9..17).
//
// Float types run on the gemm_f32 kernels: float32 operands are read in
// place, float16/bfloat16 activations are widened to float32 and the result
// rounded back, and a float16/bfloat16 B is passed to the kernels as stored.
// That last case is also how the interpreter's Cast elision arrives here
// (interpreter.h): A float32 with B a 16-bit weight means "B was cast to
// float32", so the output is float32 and the weight is widened on the fly,
// never copied. float64 and the integer types use plain loops (integers
// wrap, as two's complement hardware does).
#include <type_traits>
#include <vector>

#include "libcompress/kernels/gemm_f32.h"
#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {
namespace {

bool Is32Or16Float(DType t) {
  return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16;
}
bool IsIntegerMatMulType(DType t) {
  return t == DType::kInt32 || t == DType::kInt64 || t == DType::kUInt32 || t == DType::kUInt64;
}

// A float tensor as float32: its own bytes when float32, else a widened copy.
class F32Operand {
 public:
  explicit F32Operand(const Tensor& t) {
    if (t.dtype() == DType::kFloat32) {
      data_ = t.data<float>();
    } else {
      copy_ = ops::LoadFloat(t);
      data_ = copy_.data();
    }
  }
  F32Operand(const F32Operand&) = delete;
  F32Operand& operator=(const F32Operand&) = delete;
  const float* data() const { return data_; }

 private:
  std::vector<float> copy_;
  const float* data_ = nullptr;
};

// Checks the operand types and returns the output dtype. Same-type float,
// float64 and integer products are ONNX's; float32 A with float16/bfloat16 B
// is the interpreter's elided weight Cast.
Expected<DType> ResultType(const Node& node, DType a, DType b) {
  const bool same = a == b && (Is32Or16Float(a) || a == DType::kFloat64 || IsIntegerMatMulType(a));
  const bool elided_cast =
      a == DType::kFloat32 && (b == DType::kFloat16 || b == DType::kBFloat16);
  if (same || elided_cast) return a;
  return Unsupported(node.Describe(), ": operand types ", DTypeName(a), " and ", DTypeName(b),
                     " are not supported (both must be float32, float16, bfloat16, float64, "
                     "int32, int64, uint32 or uint64, or A float32 with a 16-bit B weight)");
}

// C[m, n] = A[m, k] * B for one matrix pair, with B (float32/16-bit) read at
// `b_offset` elements into `b` as stored. Large products are split into
// column ranges [j0, j1) on the session's threads: each range is the same
// kernel on B's columns j0.. (kKN: b + j0; kNK: b + j0 * ldb) writing C's
// columns j0.., and every gemm_f32 path computes an element from its A row
// and B column alone (gemm_f32.h), so the split does not change a bit.
void Gemm2D(const ParallelContext& parallel, size_t m, size_t n, size_t k, const float* a,
            size_t lda, const Tensor& b, size_t b_offset, size_t ldb, GemmBLayout layout,
            float* c, size_t ldc) {
  const GemmF32Kernels& kernels = GemmF32ForHost();
  const size_t column_step = layout == GemmBLayout::kKN ? 1 : ldb;
  const uint64_t work = static_cast<uint64_t>(m) * n * k;
  ParallelColumns(parallel, n, work, [&](size_t j0, size_t j1) {
    const size_t off = b_offset + j0 * column_step;
    switch (b.dtype()) {
      case DType::kFloat16:
        kernels.gemm_f32_f16w(m, j1 - j0, k, a, lda, b.data<uint16_t>() + off, ldb, layout, c + j0, ldc);
        break;
      case DType::kBFloat16:
        kernels.gemm_f32_bf16w(m, j1 - j0, k, a, lda, b.data<uint16_t>() + off, ldb, layout, c + j0, ldc);
        break;
      default:
        kernels.gemm_f32(m, j1 - j0, k, a, lda, b.data<float>() + off, ldb, layout, c + j0, ldc);
        break;
    }
  });
}

// Plain product for float64 and integers: C = A[m, k] * B with B [k, n]
// (b_col_stride 1, b_row_stride n) or [n, k] (strides swapped). Acc is the
// accumulation type (uint64 for integers so overflow wraps instead of UB).
template <typename T, typename Acc>
void PlainGemm(size_t m, size_t n, size_t k, const T* a, size_t a_row_stride,
               size_t a_col_stride, const T* b, size_t b_row_stride, size_t b_col_stride,
               Acc* c) {
  for (size_t i = 0; i < m; ++i) {
    for (size_t j = 0; j < n; ++j) {
      Acc acc = 0;
      for (size_t p = 0; p < k; ++p) {
        acc += static_cast<Acc>(a[i * a_row_stride + p * a_col_stride]) *
               static_cast<Acc>(b[p * b_row_stride + j * b_col_stride]);
      }
      c[i * n + j] = acc;
    }
  }
}

struct MatMulShapes {
  size_t m = 0, n = 0, k = 0;
  std::vector<int64_t> batch;           // broadcast batch shape
  std::vector<int64_t> a_batch, b_batch;
  std::vector<int64_t> out_shape;
};

// numpy.matmul shape rules: 1-D A is a row [1, K], 1-D B a column [K, 1],
// and the prepended/appended 1 is removed from the result.
Expected<MatMulShapes> MatMulShape(const Node& node, const std::vector<int64_t>& a,
                                   const std::vector<int64_t>& b) {
  if (a.empty() || b.empty()) {
    return InvalidInput(node.Describe(), ": operands must have rank >= 1, got ",
                        ShapeToString(a), " and ", ShapeToString(b));
  }
  std::vector<int64_t> a2 = a.size() == 1 ? std::vector<int64_t>{1, a[0]} : a;
  std::vector<int64_t> b2 = b.size() == 1 ? std::vector<int64_t>{b[0], 1} : b;
  const int64_t k = a2.back();
  if (b2[b2.size() - 2] != k) {
    return InvalidInput(node.Describe(), ": inner dimensions differ: A ", ShapeToString(a),
                        " and B ", ShapeToString(b));
  }
  MatMulShapes s;
  s.m = static_cast<size_t>(a2[a2.size() - 2]);
  s.k = static_cast<size_t>(k);
  s.n = static_cast<size_t>(b2.back());
  s.a_batch.assign(a2.begin(), a2.end() - 2);
  s.b_batch.assign(b2.begin(), b2.end() - 2);
  SLIM_ASSIGN_OR_RETURN(s.batch, ops::BroadcastShapes(node, s.a_batch, s.b_batch));
  s.out_shape = s.batch;
  if (a.size() > 1) s.out_shape.push_back(a2[a2.size() - 2]);
  if (b.size() > 1) s.out_shape.push_back(b2.back());
  return s;
}

template <typename T>
Tensor PlainMatMul(DType dtype, const MatMulShapes& s, const Tensor& a, const Tensor& b) {
  using Acc = std::conditional_t<std::is_floating_point_v<T>, T, uint64_t>;
  Tensor out(dtype, s.out_shape);
  T* y = out.MutableData<T>();
  const auto a_idx = ops::BroadcastIndex(s.a_batch, s.batch);
  const auto b_idx = ops::BroadcastIndex(s.b_batch, s.batch);
  std::vector<Acc> acc(s.m * s.n);
  for (size_t bi = 0; bi < a_idx.size(); ++bi) {
    PlainGemm<T, Acc>(s.m, s.n, s.k, a.data<T>() + static_cast<size_t>(a_idx[bi]) * s.m * s.k,
                      s.k, 1, b.data<T>() + static_cast<size_t>(b_idx[bi]) * s.k * s.n, s.n, 1,
                      acc.data());
    for (size_t i = 0; i < acc.size(); ++i) y[bi * acc.size() + i] = static_cast<T>(acc[i]);
  }
  return out;
}

Status MatMul(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  const Tensor* a = call.in(0);
  const Tensor* b = call.in(1);
  SLIM_CHECK_INPUT(a && b, node.Describe(), ": needs inputs A and B");
  SLIM_ASSIGN_OR_RETURN(const DType out_type, ResultType(node, a->dtype(), b->dtype()));
  SLIM_ASSIGN_OR_RETURN(const MatMulShapes s, MatMulShape(node, a->shape(), b->shape()));
  switch (out_type) {
    case DType::kFloat64: outputs[0] = PlainMatMul<double>(out_type, s, *a, *b); return Status::Ok();
    case DType::kInt32: outputs[0] = PlainMatMul<int32_t>(out_type, s, *a, *b); return Status::Ok();
    case DType::kInt64: outputs[0] = PlainMatMul<int64_t>(out_type, s, *a, *b); return Status::Ok();
    case DType::kUInt32: outputs[0] = PlainMatMul<uint32_t>(out_type, s, *a, *b); return Status::Ok();
    case DType::kUInt64: outputs[0] = PlainMatMul<uint64_t>(out_type, s, *a, *b); return Status::Ok();
    default: break;
  }
  const F32Operand a32(*a);
  Tensor out(DType::kFloat32, s.out_shape);
  float* y = out.MutableData<float>();
  if (ShapeNumel(s.b_batch) == 1) {
    // One B for every batch: all A rows form one [batch * M, K] product,
    // so prefill over [1, T, hidden] is a single kernel call.
    const size_t rows = static_cast<size_t>(ShapeNumel(s.batch)) * s.m;
    Gemm2D(call.parallel, rows, s.n, s.k, a32.data(), s.k, *b, 0, s.n, GemmBLayout::kKN, y, s.n);
  } else {
    const auto a_idx = ops::BroadcastIndex(s.a_batch, s.batch);
    const auto b_idx = ops::BroadcastIndex(s.b_batch, s.batch);
    for (size_t bi = 0; bi < a_idx.size(); ++bi) {
      Gemm2D(call.parallel, s.m, s.n, s.k, a32.data() + static_cast<size_t>(a_idx[bi]) * s.m * s.k, s.k, *b,
             static_cast<size_t>(b_idx[bi]) * s.k * s.n, s.n, GemmBLayout::kKN,
             y + bi * s.m * s.n, s.n);
    }
  }
  outputs[0] = out_type == DType::kFloat32
                   ? std::move(out)
                   : ops::StoreFloat(out_type, s.out_shape,
                                     std::vector<float>(y, y + ShapeNumel(s.out_shape)));
  return Status::Ok();
}

// Y = alpha * A' * B' + beta * C, with C broadcast to [M, N] one way only.
Status Gemm(const OpCall& call, std::vector<Tensor>& outputs) {
  const Node& node = call.node;
  const Tensor* a = call.in(0);
  const Tensor* b = call.in(1);
  const Tensor* c = call.in(2);
  SLIM_CHECK_INPUT(a && b, node.Describe(), ": needs inputs A and B");
  SLIM_CHECK_INPUT(a->rank() == 2 && b->rank() == 2, node.Describe(),
                   ": A and B must be 2-D, got ", ShapeToString(a->shape()), " and ",
                   ShapeToString(b->shape()));
  SLIM_ASSIGN_OR_RETURN(const DType out_type, ResultType(node, a->dtype(), b->dtype()));
  const bool trans_a = node.GetInt("transA", 0) != 0;
  const bool trans_b = node.GetInt("transB", 0) != 0;
  const float alpha = node.GetFloat("alpha", 1.0f);
  const float beta = node.GetFloat("beta", 1.0f);
  const int64_t m = a->dim(trans_a ? 1 : 0);
  const int64_t k = a->dim(trans_a ? 0 : 1);
  const int64_t kb = b->dim(trans_b ? 1 : 0);
  const int64_t n = b->dim(trans_b ? 0 : 1);
  SLIM_CHECK_INPUT(k == kb, node.Describe(), ": inner dimensions differ: A ",
                   ShapeToString(a->shape()), (trans_a ? " (transposed)" : ""), " and B ",
                   ShapeToString(b->shape()), (trans_b ? " (transposed)" : ""));
  const std::vector<int64_t> out_shape = {m, n};
  if (c) {
    bool ok = c->rank() <= 2;
    for (size_t i = 0; ok && i < c->rank(); ++i) {
      const int64_t want = out_shape[2 - c->rank() + i];
      ok = c->dim(i) == want || c->dim(i) == 1;
    }
    SLIM_CHECK_INPUT(ok, node.Describe(), ": C ", ShapeToString(c->shape()),
                     " does not broadcast to the output [", m, ", ", n, "]");
    SLIM_CHECK_INPUT(out_type == DType::kFloat64 ? c->dtype() == DType::kFloat64
                                                 : Is32Or16Float(c->dtype()),
                     node.Describe(), ": C has type ", DTypeName(c->dtype()),
                     ", which does not match A and B");
  }
  if (!IsFloat(out_type)) {
    return Unsupported(node.Describe(), ": integer Gemm (", DTypeName(out_type),
                       ") is not supported");
  }
  const size_t mm = static_cast<size_t>(m), nn = static_cast<size_t>(n), kk = static_cast<size_t>(k);
  std::vector<double> y64;
  Tensor out(DType::kFloat32, out_shape);
  float* y = out.MutableData<float>();
  if (out_type == DType::kFloat64) {
    y64.resize(mm * nn);
    PlainGemm<double, double>(mm, nn, kk, a->data<double>(), trans_a ? 1 : kk, trans_a ? mm : 1,
                              b->data<double>(), trans_b ? 1 : nn, trans_b ? kk : 1, y64.data());
  } else {
    const F32Operand a32(*a);
    const float* a_rows = a32.data();
    std::vector<float> a_t;
    if (trans_a) {  // A is [K, M]: the kernels want rows of A contiguous
      a_t.resize(mm * kk);
      for (size_t p = 0; p < kk; ++p) {
        for (size_t i = 0; i < mm; ++i) a_t[i * kk + p] = a_rows[p * mm + i];
      }
      a_rows = a_t.data();
    }
    Gemm2D(call.parallel, mm, nn, kk, a_rows, kk, *b, 0, trans_b ? kk : nn,
           trans_b ? GemmBLayout::kNK : GemmBLayout::kKN, y, nn);
  }
  const std::vector<float> c_vals = c && beta != 0.0f ? ops::LoadFloat(*c) : std::vector<float>{};
  const std::vector<int64_t> c_idx =
      c_vals.empty() ? std::vector<int64_t>{} : ops::BroadcastIndex(c->shape(), out_shape);
  if (out_type == DType::kFloat64) {
    Tensor out64(DType::kFloat64, out_shape);
    double* d = out64.MutableData<double>();
    const double* c64 = c && beta != 0.0f ? c->data<double>() : nullptr;
    for (size_t i = 0; i < y64.size(); ++i) {
      d[i] = alpha * y64[i] + (c64 ? beta * c64[c_idx[i]] : 0.0);
    }
    outputs[0] = std::move(out64);
    return Status::Ok();
  }
  const size_t total = mm * nn;
  if (alpha != 1.0f) {
    for (size_t i = 0; i < total; ++i) y[i] *= alpha;
  }
  if (!c_vals.empty()) {
    for (size_t i = 0; i < total; ++i) y[i] += beta * c_vals[static_cast<size_t>(c_idx[i])];
  }
  outputs[0] = out_type == DType::kFloat32
                   ? std::move(out)
                   : ops::StoreFloat(out_type, out_shape, std::vector<float>(y, y + total));
  return Status::Ok();
}

}  // namespace

void RegisterMatMulOps(OpTable& table) {
  table.Add("MatMul", MatMul);
  table.Add("Gemm", Gemm);
}

}  // namespace slim
