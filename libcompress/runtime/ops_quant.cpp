// slimpack's quantized operators (docs/ARCHITECTURE.md "Quantized weights in
// the IR"): MatMulQ multiplies activations with a packed int4/int8 blob
// through the kernels of gemm_q.h (large products split by output columns
// over the session's threads, thread_pool.h); GatherQ looks rows up in a
// q8_row blob.
//
// Plus the two quantized operators `slimpack export` emits (docs/EXPORT.md),
// so an exported graph runs here too: ONNX DequantizeLinear (per tensor or
// per axis, opset 10-19 semantics: no block_size) and a reference of ONNX
// Runtime's contrib com.microsoft.MatMulNBits (4-bit codes, uint8 packed zero
// points or the default 8), which dequantizes B to FP32 and multiplies with
// the FP32 GEMM (gemm_f32.h), w' = scale * (float)(u - z) as MatMulQ.
#include <algorithm>
#include <cstring>

#include "libcompress/kernels/gemm_f32.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {
namespace {

Expected<QuantLayout> NodeLayout(const Node& node) {
  auto layout = ParseQuantLayout(node.GetString("layout", ""));
  if (!layout.ok()) return layout.status().WithContext(node.Describe());
  return layout;
}

// The compute path the node asks for (the packed file records it), else the
// layout's default.
Expected<QComputePath> NodeComputePath(const Node& node, const QuantLayout& layout) {
  if (!node.HasAttr("compute_path")) return DefaultComputePath(layout);
  auto path = ParseQComputePath(node.GetString("compute_path", ""));
  if (!path.ok()) return path.status().WithContext(node.Describe());
  return path;
}

// MatMulQ's layout, path, K, N and the kernel for them, with W's bytes
// checked against the layout; shared by the load-time check and the op.
struct MatMulQSetup {
  QuantLayout layout;
  int64_t k = 0, n = 0;
  QGemmPlan plan;
};

Expected<MatMulQSetup> SetUpMatMulQ(const Node& node, const Tensor& w) {
  MatMulQSetup s;
  SLIM_ASSIGN_OR_RETURN(s.layout, NodeLayout(node));
  SLIM_ASSIGN_OR_RETURN(QComputePath path, NodeComputePath(node, s.layout));
  s.k = node.GetInt("K", 0);
  s.n = node.GetInt("N", 0);
  SLIM_CHECK_INPUT(s.k > 0 && s.n > 0, node.Describe(), ": attributes K and N must be positive");
  auto plan = PlanQGemm(s.layout, path, static_cast<size_t>(s.k), static_cast<const uint8_t*>(w.raw()),
                        w.nbytes(), static_cast<size_t>(s.n));
  if (!plan.ok()) return plan.status().WithContext(node.Describe());
  s.plan = std::move(plan).value();
  return s;
}

Status CheckMatMulQ(const Node& node, const std::vector<const Tensor*>& constants) {
  if (constants.size() < 2 || !constants[1]) return Status::Ok();  // W computed at run time
  return SetUpMatMulQ(node, *constants[1]).status();
}

Status MatMulQ(const OpCall& call, std::vector<Tensor>& out) {
  const Node& node = call.node;
  const Tensor* a = call.in(0);
  const Tensor* w = call.in(1);
  const Tensor* bias = call.in(2);
  SLIM_CHECK_INPUT(a && w, node.Describe(), ": needs inputs A and W");
  SLIM_ASSIGN_OR_RETURN(MatMulQSetup setup, SetUpMatMulQ(node, *w));
  const QuantLayout& layout = setup.layout;
  const int64_t k = setup.k, n = setup.n;
  SLIM_CHECK_INPUT(a->rank() >= 1 && a->dim(a->rank() - 1) == k, node.Describe(), ": A has shape ",
                   ShapeToString(a->shape()), ", last dim must be K = ", k);
  const size_t m = static_cast<size_t>(a->numel() / k);
  std::vector<float> x = a->dtype() == DType::kFloat32 ? std::vector<float>() : ops::LoadFloat(*a);
  const float* xp = a->dtype() == DType::kFloat32 ? a->data<float>() : x.data();
  std::vector<int64_t> shape = a->shape();
  shape.back() = n;
  Tensor y(DType::kFloat32, shape);
  QGemmArgs args;
  args.m = m;
  args.n = static_cast<size_t>(n);
  args.k = static_cast<size_t>(k);
  args.group_size = layout.group_size;
  args.symmetric = layout.symmetric;
  const auto* wp = static_cast<const uint8_t*>(w->raw());
  float* yp = y.MutableData<float>();
  // Column ranges of Y on the session's threads: every output is the
  // kernel's function of its X row and W row alone (gemm_q.h), and ranges
  // start on kColumnAlign, a multiple of the x8 block (kQGemmColumnAlign).
  static_assert(kColumnAlign % kQGemmColumnAlign == 0, "column chunks must start on a q4x8 block");
  if (m > 0) {
    ParallelColumns(call.parallel, args.n, static_cast<uint64_t>(m) * args.n * args.k,
                    [&](size_t j0, size_t j1) {
                      QGemmArgs range = args;
                      range.n_begin = j0;
                      range.n_end = j1;
                      setup.plan.fn(range, xp, wp, yp);
                    });
  }
  if (bias) {
    SLIM_CHECK_INPUT(bias->numel() == n, node.Describe(), ": bias has ", bias->numel(), " elements, N = ", n);
    const std::vector<float> b = ops::LoadFloat(*bias);
    for (size_t r = 0; r < m; ++r) {
      for (size_t c = 0; c < static_cast<size_t>(n); ++c) yp[r * static_cast<size_t>(n) + c] += b[c];
    }
  }
  if (a->dtype() != DType::kFloat32) {
    out[0] = ops::StoreFloat(a->dtype(), shape, y.ToFloatVector());
  } else {
    out[0] = std::move(y);
  }
  return Status::Ok();
}

// GatherQ's table: q8_row, 2-D, bytes matching the layout.
Status CheckGatherQWeight(const Node& node, const Tensor& w) {
  SLIM_ASSIGN_OR_RETURN(QuantLayout layout, NodeLayout(node));
  SLIM_CHECK_INPUT(layout.kind == QuantLayoutKind::kQ8Row, node.Describe(), ": layout ", layout.Name(),
                   " is not q8_row");
  SLIM_CHECK_INPUT(w.rank() == 2, node.Describe(), ": W must be 2-D [V, D]");
  const size_t v = static_cast<size_t>(w.dim(0)), d = static_cast<size_t>(w.dim(1));
  SLIM_CHECK_INPUT(w.nbytes() == Q8RowLayout::Bytes(v, d), node.Describe(), ": W has ", w.nbytes(),
                   " bytes, q8_row [", v, ", ", d, "] needs ", Q8RowLayout::Bytes(v, d));
  return Status::Ok();
}

Status CheckGatherQ(const Node& node, const std::vector<const Tensor*>& constants) {
  if (constants.empty() || !constants[0]) return Status::Ok();
  return CheckGatherQWeight(node, *constants[0]);
}

Status GatherQ(const OpCall& call, std::vector<Tensor>& out) {
  const Node& node = call.node;
  const Tensor* w = call.in(0);
  const Tensor* idx = call.in(1);
  SLIM_CHECK_INPUT(w && idx, node.Describe(), ": needs inputs W and indices");
  SLIM_RETURN_IF_ERROR(CheckGatherQWeight(node, *w));
  const size_t v = static_cast<size_t>(w->dim(0)), d = static_cast<size_t>(w->dim(1));
  const auto* codes = static_cast<const int8_t*>(w->raw());
  const auto* scale_bytes = static_cast<const uint8_t*>(w->raw()) + Q8RowLayout::ScalesOffset(v, d);
  std::vector<int64_t> shape = idx->shape();
  shape.push_back(static_cast<int64_t>(d));
  Tensor y(DType::kFloat32, shape);
  float* yp = y.MutableData<float>();
  for (int64_t i = 0; i < idx->numel(); ++i) {
    int64_t row = idx->IntAt(i);
    if (row < 0) row += static_cast<int64_t>(v);
    SLIM_CHECK_INPUT(row >= 0 && row < static_cast<int64_t>(v), node.Describe(), ": index ", idx->IntAt(i),
                     " out of range for ", v, " rows");
    float scale;
    std::memcpy(&scale, scale_bytes + 4 * static_cast<size_t>(row), 4);
    const int8_t* src = codes + static_cast<size_t>(row) * d;
    float* dst = yp + static_cast<size_t>(i) * d;
    for (size_t j = 0; j < d; ++j) dst[j] = scale * static_cast<float>(src[j]);
  }
  out[0] = std::move(y);
  return Status::Ok();
}

Status DequantizeLinear(const OpCall& call, std::vector<Tensor>& out) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  const Tensor* scale = call.in(1);
  const Tensor* zero = call.in(2);
  SLIM_CHECK_INPUT(x && scale, node.Describe(), ": needs inputs x and x_scale");
  const DType xt = x->dtype();
  SLIM_CHECK_INPUT(xt == DType::kInt8 || xt == DType::kUInt8 || xt == DType::kInt16 || xt == DType::kUInt16 ||
                       xt == DType::kInt32,
                   node.Describe(), ": x has dtype ", DTypeName(xt), ", expected an 8, 16 or 32-bit integer");
  SLIM_CHECK_INPUT(node.GetInt("block_size", 0) == 0, node.Describe(),
                   ": blocked quantization (block_size) is not supported");
  SLIM_CHECK_INPUT(!zero || zero->dtype() == x->dtype(), node.Describe(), ": x_zero_point dtype ",
                   DTypeName(zero ? zero->dtype() : x->dtype()), " differs from x's ", DTypeName(x->dtype()));
  SLIM_CHECK_INPUT(!zero || zero->numel() == scale->numel(), node.Describe(), ": x_zero_point has ",
                   zero ? zero->numel() : 0, " elements, x_scale ", scale->numel());
  // One scale for the tensor, or one per index of `axis` (ONNX: a 1-D scale).
  size_t channels = 1, inner = static_cast<size_t>(x->numel());
  if (scale->rank() != 0 && scale->numel() != 1) {
    const int64_t rank = static_cast<int64_t>(x->rank());
    int64_t axis = node.GetInt("axis", 1);
    if (axis < 0) axis += rank;
    SLIM_CHECK_INPUT(axis >= 0 && axis < rank, node.Describe(), ": axis ", node.GetInt("axis", 1),
                     " out of range for rank ", rank);
    SLIM_CHECK_INPUT(scale->rank() == 1 && scale->numel() == x->dim(static_cast<size_t>(axis)), node.Describe(), ": x_scale has shape ",
                     ShapeToString(scale->shape()), ", per-axis needs [", x->dim(static_cast<size_t>(axis)), "]");
    channels = static_cast<size_t>(x->dim(static_cast<size_t>(axis)));
    inner = 1;
    for (int64_t d = axis + 1; d < rank; ++d) inner *= static_cast<size_t>(x->dim(static_cast<size_t>(d)));
  }
  const std::vector<float> s = ops::LoadFloat(*scale);
  std::vector<float> y(static_cast<size_t>(x->numel()));
  for (size_t i = 0; i < y.size(); ++i) {
    const size_t c = (i / inner) % channels;
    const int64_t z = zero ? zero->IntAt(static_cast<int64_t>(c)) : 0;
    y[i] = static_cast<float>(x->IntAt(static_cast<int64_t>(i)) - z) * s[c];
  }
  out[0] = ops::StoreFloat(scale->dtype(), x->shape(), y);
  return Status::Ok();
}

// com.microsoft.MatMulNBits (ONNX Runtime contrib op, bits = 4): B uint8
// [N, n_blocks, block_size / 2] with element 2j of a block in the low nibble
// of byte j; scales [N * n_blocks] (or [N, n_blocks]) in A's dtype;
// zero_points uint8 [N * ceil(n_blocks / 2)], block b of row n in the low
// nibble of byte n * ceil(n_blocks / 2) + b / 2 when b is even, else the high
// nibble; default 8. Inputs 4 (g_idx) and 5 (bias) as ORT numbers them.
Status MatMulNBits(const OpCall& call, std::vector<Tensor>& out) {
  const Node& node = call.node;
  const Tensor* a = call.in(0);
  const Tensor* b = call.in(1);
  const Tensor* scales = call.in(2);
  const Tensor* zeros = call.in(3);
  const Tensor* bias = call.in(5);
  SLIM_CHECK_INPUT(a && b && scales, node.Describe(), ": needs inputs A, B and scales");
  SLIM_CHECK_INPUT(!call.in(4), node.Describe(), ": g_idx (input 4) is not supported");
  const int64_t k = node.GetInt("K", 0), n = node.GetInt("N", 0), block = node.GetInt("block_size", 0);
  SLIM_CHECK_INPUT(node.GetInt("bits", 4) == 4, node.Describe(), ": bits ", node.GetInt("bits", 4),
                   " is not supported (4 only)");
  SLIM_CHECK_INPUT(k > 0 && n > 0 && block >= 16 && (block & (block - 1)) == 0, node.Describe(),
                   ": K and N must be positive and block_size a power of two >= 16");
  const size_t uk = static_cast<size_t>(k), un = static_cast<size_t>(n), ublock = static_cast<size_t>(block);
  const size_t blocks = (uk + ublock - 1) / ublock, blob = ublock / 2, zero_row = (blocks + 1) / 2;
  SLIM_CHECK_INPUT(a->rank() >= 1 && a->dim(a->rank() - 1) == k, node.Describe(), ": A has shape ",
                   ShapeToString(a->shape()), ", last dim must be K = ", k);
  SLIM_CHECK_INPUT(b->dtype() == DType::kUInt8 && b->nbytes() == un * blocks * blob, node.Describe(),
                   ": B must be uint8 [", n, ", ", blocks, ", ", blob, "], has ", DTypeName(b->dtype()), " ",
                   ShapeToString(b->shape()));
  SLIM_CHECK_INPUT(static_cast<size_t>(scales->numel()) == un * blocks, node.Describe(), ": scales has ",
                   scales->numel(), " elements, N * n_blocks = ", un * blocks);
  SLIM_CHECK_INPUT(!zeros || (zeros->dtype() == DType::kUInt8 && zeros->nbytes() == un * zero_row),
                   node.Describe(), ": zero_points must be uint8 packed 4-bit [", un * zero_row, "]");
  SLIM_CHECK_INPUT(!bias || bias->numel() == n, node.Describe(), ": bias must have N = ", n, " elements");
  const std::vector<float> s = ops::LoadFloat(*scales);
  const auto* bp = static_cast<const uint8_t*>(b->raw());
  const auto* zp = zeros ? static_cast<const uint8_t*>(zeros->raw()) : nullptr;
  std::vector<float> w(un * uk);
  for (size_t r = 0; r < un; ++r) {
    for (size_t g = 0; g < blocks; ++g) {
      int z = 8;
      if (zp) z = (zp[r * zero_row + g / 2] >> (4 * (g % 2))) & 0xF;
      const float scale = s[r * blocks + g];
      const uint8_t* src = bp + (r * blocks + g) * blob;
      for (size_t e = g * ublock; e < std::min(uk, (g + 1) * ublock); ++e) {
        const size_t j = e - g * ublock;
        const int u = (src[j / 2] >> (4 * (j % 2))) & 0xF;
        w[r * uk + e] = scale * static_cast<float>(u - z);
      }
    }
  }
  std::vector<float> x = a->dtype() == DType::kFloat32 ? std::vector<float>() : ops::LoadFloat(*a);
  const float* xp = a->dtype() == DType::kFloat32 ? a->data<float>() : x.data();
  const size_t m = static_cast<size_t>(a->numel()) / uk;
  std::vector<int64_t> shape = a->shape();
  shape.back() = n;
  std::vector<float> y(m * un);
  if (m > 0) {
    const GemmF32Fn gemm = GemmF32ForHost().gemm_f32;
    ParallelColumns(call.parallel, un, static_cast<uint64_t>(m) * un * uk, [&](size_t j0, size_t j1) {
      gemm(m, j1 - j0, uk, xp, uk, w.data() + j0 * uk, uk, GemmBLayout::kNK, y.data() + j0, un);
    });
  }
  if (bias) {
    const std::vector<float> bv = ops::LoadFloat(*bias);
    for (size_t r = 0; r < m; ++r) {
      for (size_t c = 0; c < un; ++c) y[r * un + c] += bv[c];
    }
  }
  out[0] = ops::StoreFloat(a->dtype(), shape, y);
  return Status::Ok();
}

}  // namespace

void RegisterQuantOps(OpTable& table) {
  table.Add("MatMulQ", MatMulQ, "slimpack", CheckMatMulQ);
  table.Add("GatherQ", GatherQ, "slimpack", CheckGatherQ);
  table.Add("DequantizeLinear", DequantizeLinear);
  table.Add("MatMulNBits", MatMulNBits, "com.microsoft");
}

}  // namespace slim
