// slimpack's quantized operators (docs/ARCHITECTURE.md "Quantized weights in
// the IR"): MatMulQ multiplies activations with a packed int4/int8 blob
// through the kernels of gemm_q.h (large products split by output columns
// over the session's threads, thread_pool.h); GatherQ looks rows up in a
// q8_row blob.
#include <cstring>

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

Status MatMulQ(const OpCall& call, std::vector<Tensor>& out) {
  const Node& node = call.node;
  const Tensor* a = call.in(0);
  const Tensor* w = call.in(1);
  const Tensor* bias = call.in(2);
  SLIM_CHECK_INPUT(a && w, node.Describe(), ": needs inputs A and W");
  SLIM_ASSIGN_OR_RETURN(QuantLayout layout, NodeLayout(node));
  SLIM_ASSIGN_OR_RETURN(QComputePath path, NodeComputePath(node, layout));
  const int64_t k = node.GetInt("K", 0), n = node.GetInt("N", 0);
  SLIM_CHECK_INPUT(k > 0 && n > 0, node.Describe(), ": attributes K and N must be positive");
  SLIM_CHECK_INPUT(a->rank() >= 1 && a->dim(a->rank() - 1) == k, node.Describe(), ": A has shape ",
                   ShapeToString(a->shape()), ", last dim must be K = ", k);
  const size_t m = static_cast<size_t>(a->numel() / k);
  std::vector<float> x = a->dtype() == DType::kFloat32 ? std::vector<float>() : ops::LoadFloat(*a);
  const float* xp = a->dtype() == DType::kFloat32 ? a->data<float>() : x.data();
  std::vector<int64_t> shape = a->shape();
  shape.back() = n;
  Tensor y(DType::kFloat32, shape);
  auto plan = PlanQGemm(layout, path, static_cast<size_t>(k), w->nbytes(), static_cast<size_t>(n));
  if (!plan.ok()) return plan.status().WithContext(node.Describe());
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
                      plan->fn(range, xp, wp, yp);
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

Status GatherQ(const OpCall& call, std::vector<Tensor>& out) {
  const Node& node = call.node;
  const Tensor* w = call.in(0);
  const Tensor* idx = call.in(1);
  SLIM_CHECK_INPUT(w && idx, node.Describe(), ": needs inputs W and indices");
  SLIM_ASSIGN_OR_RETURN(QuantLayout layout, NodeLayout(node));
  SLIM_CHECK_INPUT(layout.kind == QuantLayoutKind::kQ8Row, node.Describe(), ": layout ", layout.Name(),
                   " is not q8_row");
  SLIM_CHECK_INPUT(w->rank() == 2, node.Describe(), ": W must be 2-D [V, D]");
  const size_t v = static_cast<size_t>(w->dim(0)), d = static_cast<size_t>(w->dim(1));
  SLIM_CHECK_INPUT(w->nbytes() == Q8RowLayout::Bytes(v, d), node.Describe(), ": W has ", w->nbytes(),
                   " bytes, q8_row [", v, ", ", d, "] needs ", Q8RowLayout::Bytes(v, d));
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

}  // namespace

void RegisterQuantOps(OpTable& table) {
  table.Add("MatMulQ", MatMulQ, "slimpack");
  table.Add("GatherQ", GatherQ, "slimpack");
}

}  // namespace slim
