// Lowering of slimpack.MatMulQ / slimpack.GatherQ to ONNX; see onnx_export.h.
#include "libcompress/export/onnx_export.h"

#include <cstring>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "libcompress/ir/shape_inference.h"
#include "libcompress/kernels/quant.h"

namespace slim {

const char* Int4ModeName(Int4Mode mode) {
  return mode == Int4Mode::kMatMulNBits ? "matmulnbits" : "dequantize";
}

Expected<Int4Mode> ParseInt4Mode(const std::string& name) {
  if (name == "matmulnbits") return Int4Mode::kMatMulNBits;
  if (name == "dequantize") return Int4Mode::kDequantize;
  return InvalidInput("unknown int4 export mode '", name, "' (choose matmulnbits or dequantize)");
}

namespace {

constexpr int64_t kMinOpset = 13;  // DequantizeLinear with `axis`

bool IsPacked(DType t) { return t == DType::kInt4Packed || t == DType::kInt8Packed; }

// One packed weight, unpacked once however many nodes read it.
struct PackedWeight {
  QuantLayout layout;
  QuantizedMatrix q;
  std::string dq;    // DequantizeLinear output [N, K] float32 (q8_row)
  std::string dq_t;  // its Transpose [K, N]
  std::string nbits_scales, nbits_zeros;  // MatMulNBits inputs (int4)
  DType nbits_dtype = DType::kUndefined;
  Tensor replacement;  // what is stored under the weight's name afterwards
};

class Lowering {
 public:
  Lowering(const Graph& in, const Graph& typed, const ExportOptions& options)
      : in_(in), typed_(typed), options_(options) {
    for (const auto& v : in.inputs) used_.insert(v.name);
    for (const auto& v : in.outputs) used_.insert(v.name);
    for (const auto& n : in.initializer_names()) used_.insert(n);
    for (const auto& node : in.nodes) {
      used_.insert(node.name);
      for (const auto& o : node.outputs) used_.insert(o);
    }
  }

  Expected<Graph> Run(ExportStats* stats) {
    Graph out = in_;
    out.nodes.clear();
    for (const Node& node : in_.nodes) {
      if (node.domain != "slimpack") {
        for (const auto& name : node.inputs) {
          const Tensor* t = name.empty() ? nullptr : in_.FindInitializer(name);
          SLIM_CHECK_INPUT(!t || !IsPacked(t->dtype()), node.Describe(), ": reads the packed weight '", name,
                           "', which only slimpack.MatMulQ and slimpack.GatherQ can read");
        }
        out.nodes.push_back(node);
      } else if (node.op_type == "MatMulQ") {
        SLIM_RETURN_IF_ERROR(LowerMatMulQ(node, out.nodes));
      } else if (node.op_type == "GatherQ") {
        SLIM_RETURN_IF_ERROR(LowerGatherQ(node, out.nodes));
      } else {
        return Unsupported(node.Describe(), ": no ONNX lowering for slimpack op '", node.op_type, "'");
      }
    }
    for (auto& [name, w] : weights_) {
      out.RemoveInitializer(name);
      out.AddInitializer(name, std::move(w.replacement));
      out.value_info.erase(name);
    }
    for (auto& [name, t] : new_initializers_) out.AddInitializer(name, std::move(t));
    out.opset_imports.erase("slimpack");
    if (stats_.matmul_nbits > 0) out.opset_imports["com.microsoft"] = 1;
    SLIM_RETURN_IF_ERROR(out.Validate().WithContext("exported graph"));
    if (stats) *stats = stats_;
    return out;
  }

 private:
  std::string Fresh(const std::string& base) {
    std::string name = base;
    for (int i = 1; used_.count(name); ++i) name = base + "_" + std::to_string(i);
    used_.insert(name);
    return name;
  }

  void AddTensor(const std::string& name, Tensor t) { new_initializers_.emplace_back(name, std::move(t)); }

  Expected<DType> DTypeOf(const Node& node, const std::string& value) const {
    DType t = DType::kUndefined;
    if (auto it = typed_.value_info.find(value); it != typed_.value_info.end()) t = it->second.dtype;
    for (const auto& v : typed_.inputs) {
      if (v.name == value) t = v.dtype;
    }
    if (const Tensor* init = typed_.FindInitializer(value)) t = init->dtype();
    if (t != DType::kFloat32 && t != DType::kFloat16) {
      return Unsupported(node.Describe(), ": input '", value, "' has dtype ", DTypeName(t),
                         "; the export handles float32 and float16 activations");
    }
    return t;
  }

  // The packed weight `name` read by `node` with the node's layout; unpacked
  // and validated on first use, checked for a consistent layout afterwards.
  Expected<PackedWeight*> Weight(const Node& node, const std::string& name) {
    SLIM_CHECK_INPUT(!name.empty(), node.Describe(), ": has no weight input");
    const std::string layout_name = node.GetString("layout", "");
    auto layout = ParseQuantLayout(layout_name);
    if (!layout.ok()) return layout.status().WithContext(StrCat(node.Describe(), ", tensor '", name, "'"));
    if (auto it = weights_.find(name); it != weights_.end()) {
      SLIM_CHECK_INPUT(it->second.layout == *layout, node.Describe(), ": tensor '", name, "' read with layout ",
                       layout->Name(), " here and ", it->second.layout.Name(), " elsewhere");
      return &it->second;
    }
    const Tensor* t = in_.FindInitializer(name);
    SLIM_CHECK_INPUT(t != nullptr, node.Describe(), ": packed weight '", name, "' is not an initializer");
    SLIM_CHECK_INPUT(t->rank() == 2 && t->dim(0) > 0 && t->dim(1) > 0, node.Describe(), ": packed weight '", name,
                     "' has shape ", ShapeToString(t->shape()), ", expected [N, K]");
    const size_t rows = static_cast<size_t>(t->dim(0)), cols = static_cast<size_t>(t->dim(1));
    auto q = UnpackQuantized(static_cast<const uint8_t*>(t->raw()), t->nbytes(), *layout, rows, cols);
    if (!q.ok()) return q.status().WithContext(StrCat(node.Describe(), ", tensor '", name, "'"));
    PackedWeight w;
    w.layout = *layout;
    w.q = std::move(q).value();
    return &weights_.emplace(name, std::move(w)).first->second;
  }

  // DequantizeLinear(W int8 [N, K], scale [N], axis 0) for a q8_row weight;
  // the int8 codes replace the packed blob under the weight's name.
  std::string Dequantized(const std::string& name, PackedWeight& w, std::vector<Node>& nodes) {
    if (!w.dq.empty()) return w.dq;
    const int64_t n = static_cast<int64_t>(w.q.rows), k = static_cast<int64_t>(w.q.cols);
    Tensor codes(DType::kInt8, {n, k});
    std::memcpy(codes.MutableRaw(), w.q.codes.data(), w.q.codes.size());
    w.replacement = std::move(codes);
    Tensor scale(DType::kFloat32, {n});
    std::memcpy(scale.MutableRaw(), w.q.scales.data(), 4 * w.q.scales.size());
    const std::string scale_name = Fresh(name + ".scale");
    AddTensor(scale_name, std::move(scale));
    w.dq = Fresh(name + ".dq");
    Node dq;
    dq.name = Fresh(name + "/DequantizeLinear");
    dq.op_type = "DequantizeLinear";
    dq.inputs = {name, scale_name};
    dq.outputs = {w.dq};
    dq.attrs["axis"] = Attribute::Int(0);
    nodes.push_back(std::move(dq));
    return w.dq;
  }

  // `value` as dtype `to` (a Cast when it differs from float32).
  std::string AsDType(const std::string& value, DType to, std::vector<Node>& nodes) {
    if (to == DType::kFloat32) return value;
    Node cast;
    cast.name = Fresh(value + "/Cast");
    cast.op_type = "Cast";
    cast.inputs = {value};
    cast.outputs = {Fresh(value + "." + DTypeName(to))};
    cast.attrs["to"] = Attribute::Int(static_cast<int64_t>(to));
    nodes.push_back(cast);
    return cast.outputs[0];
  }

  // MatMulNBits inputs of an int4 weight (B replaces the blob).
  void BuildNBits(const std::string& name, PackedWeight& w, DType a_dtype) {
    const QuantizedMatrix& q = w.q;
    const size_t n = q.rows, k = q.cols, g = q.group_size, blocks = q.groups_per_row, half = g / 2;
    const bool sym = q.scheme.symmetric;
    Tensor b(DType::kUInt8, {static_cast<int64_t>(n), static_cast<int64_t>(blocks), static_cast<int64_t>(half)});
    auto* bp = static_cast<uint8_t*>(b.MutableRaw());
    for (size_t r = 0; r < n; ++r) {
      for (size_t blk = 0; blk < blocks; ++blk) {
        const int z = sym ? 8 : q.zeros[r * blocks + blk];
        uint8_t* dst = bp + (r * blocks + blk) * half;
        for (size_t j = 0; j < g; ++j) {
          const size_t e = blk * g + j;
          const int u = e < k ? q.codes[r * k + e] + (sym ? 8 : 0) : z;  // padding decodes to 0
          dst[j / 2] = static_cast<uint8_t>(dst[j / 2] | (u << (4 * (j % 2))));
        }
      }
    }
    w.replacement = std::move(b);
    Tensor scales(a_dtype, {static_cast<int64_t>(n * blocks)});
    if (a_dtype == DType::kFloat16) {
      auto* sp = scales.MutableData<uint16_t>();
      for (size_t i = 0; i < n * blocks; ++i) sp[i] = FloatToHalf(q.scales[i]);  // exact: FP16 values
    } else {
      std::memcpy(scales.MutableRaw(), q.scales.data(), 4 * n * blocks);
    }
    w.nbits_scales = Fresh(name + ".scales");
    AddTensor(w.nbits_scales, std::move(scales));
    w.nbits_dtype = a_dtype;
    if (!sym) {
      const size_t zero_row = (blocks + 1) / 2;
      Tensor zeros(DType::kUInt8, {static_cast<int64_t>(n * zero_row)});
      auto* zp = static_cast<uint8_t*>(zeros.MutableRaw());
      for (size_t r = 0; r < n; ++r) {
        for (size_t blk = 0; blk < blocks; ++blk) {
          zp[r * zero_row + blk / 2] |= static_cast<uint8_t>(q.zeros[r * blocks + blk] << (4 * (blk % 2)));
        }
      }
      w.nbits_zeros = Fresh(name + ".zero_points");
      AddTensor(w.nbits_zeros, std::move(zeros));
    }
  }

  Status LowerMatMulQ(const Node& node, std::vector<Node>& nodes) {
    const std::string& a = node.Input(0);
    const std::string& name = node.Input(1);
    const std::string& bias = node.Input(2);
    SLIM_CHECK_INPUT(!a.empty() && node.outputs.size() == 1, node.Describe(), ": needs input A and one output");
    SLIM_ASSIGN_OR_RETURN(PackedWeight * w, Weight(node, name));
    const int64_t k = node.GetInt("K", 0), n = node.GetInt("N", 0);
    SLIM_CHECK_INPUT(k == static_cast<int64_t>(w->q.cols) && n == static_cast<int64_t>(w->q.rows), node.Describe(),
                     ": attributes K = ", k, ", N = ", n, " do not match tensor '", name, "' [", w->q.rows, ", ",
                     w->q.cols, "]");
    SLIM_ASSIGN_OR_RETURN(DType a_dtype, DTypeOf(node, a));
    // Y, or the product before the bias Add.
    const std::string product = bias.empty() ? node.outputs[0] : Fresh(node.outputs[0] + ".product");
    Node mm;
    mm.name = node.name;
    mm.outputs = {product};
    if (w->layout.Scheme().bits == 8) {  // q8_row and the sparse int8 layouts: dense int8 in ONNX
      const std::string dq = Dequantized(name, *w, nodes);
      if (w->dq_t.empty()) {
        Node t;
        t.name = Fresh(name + "/Transpose");
        t.op_type = "Transpose";
        t.inputs = {dq};
        t.outputs = {w->dq_t = Fresh(name + ".dq_t")};
        t.attrs["perm"] = Attribute::Ints({1, 0});
        nodes.push_back(std::move(t));
      }
      mm.op_type = "MatMul";
      mm.inputs = {a, AsDType(w->dq_t, a_dtype, nodes)};
      ++stats_.int8_matmuls;
    } else if (options_.int4 == Int4Mode::kDequantize || w->q.scheme.nl) {
      // MatMulNBits dequantizes (u - zero) * scale: int4 nl levels have no
      // ONNX operator, so they go as float weights whatever --int4 says.
      if (!w->replacement.defined()) {
        std::vector<float> dense(w->q.rows * w->q.cols);
        DequantizeMatrix(w->q, dense.data());
        Tensor wt(DType::kFloat32, {k, n});
        float* p = wt.MutableData<float>();
        for (size_t r = 0; r < w->q.rows; ++r) {
          for (size_t c = 0; c < w->q.cols; ++c) p[c * w->q.rows + r] = dense[r * w->q.cols + c];
        }
        w->replacement = std::move(wt);
      }
      mm.op_type = "MatMul";
      mm.inputs = {a, AsDType(name, a_dtype, nodes)};
      ++stats_.int4_dequantized;
    } else {
      if (w->nbits_scales.empty()) BuildNBits(name, *w, a_dtype);
      SLIM_CHECK_INPUT(w->nbits_dtype == a_dtype, node.Describe(), ": tensor '", name,
                       "' is read by MatMulQ nodes with float32 and float16 activations");
      mm.op_type = "MatMulNBits";
      mm.domain = "com.microsoft";
      mm.inputs = {a, name, w->nbits_scales};
      if (!w->nbits_zeros.empty()) mm.inputs.push_back(w->nbits_zeros);
      mm.attrs["K"] = Attribute::Int(k);
      mm.attrs["N"] = Attribute::Int(n);
      mm.attrs["bits"] = Attribute::Int(4);
      mm.attrs["block_size"] = Attribute::Int(static_cast<int64_t>(w->q.group_size));
      ++stats_.matmul_nbits;
    }
    nodes.push_back(std::move(mm));
    if (!bias.empty()) {
      Node add;
      add.name = Fresh(node.name + "/Add");
      add.op_type = "Add";
      add.inputs = {product, bias};
      add.outputs = {node.outputs[0]};
      nodes.push_back(std::move(add));
    }
    return Status::Ok();
  }

  Status LowerGatherQ(const Node& node, std::vector<Node>& nodes) {
    const std::string& name = node.Input(0);
    const std::string& ids = node.Input(1);
    SLIM_CHECK_INPUT(!ids.empty() && node.outputs.size() == 1, node.Describe(), ": needs inputs W, ids and one output");
    SLIM_ASSIGN_OR_RETURN(PackedWeight * w, Weight(node, name));
    SLIM_CHECK_INPUT(w->layout.kind == QuantLayoutKind::kQ8Row, node.Describe(), ": tensor '", name, "' has layout ",
                     w->layout.Name(), ", GatherQ reads q8_row only");
    Node gather;
    gather.name = node.name;
    gather.op_type = "Gather";
    gather.inputs = {Dequantized(name, *w, nodes), ids};
    gather.outputs = node.outputs;
    gather.attrs["axis"] = Attribute::Int(0);
    nodes.push_back(std::move(gather));
    ++stats_.gathers;
    return Status::Ok();
  }

  const Graph& in_;
  const Graph& typed_;
  ExportOptions options_;
  std::set<std::string> used_;
  std::map<std::string, PackedWeight> weights_;
  std::vector<std::pair<std::string, Tensor>> new_initializers_;
  ExportStats stats_;
};

}  // namespace

Expected<Graph> LowerToOnnx(const Graph& packed_graph, const ExportOptions& options, ExportStats* stats) {
  bool packed = false;
  for (const Node& node : packed_graph.nodes) packed = packed || node.domain == "slimpack";
  if (!packed) {
    if (stats) *stats = ExportStats();
    return packed_graph;
  }
  if (packed_graph.onnx_opset() < kMinOpset) {
    return Unsupported("the graph imports ai.onnx opset ", packed_graph.onnx_opset(), "; the export needs >= ",
                       kMinOpset, " (DequantizeLinear with axis) and does not raise it, which would change the ",
                       "meaning of other operators");
  }
  // Activation dtypes (MatMulNBits scales and casts follow A's type).
  Graph typed = packed_graph;
  auto inferred = InferShapes(typed);
  if (!inferred.ok()) return inferred.status().WithContext("shape inference before export");
  return Lowering(packed_graph, typed, options).Run(stats);
}

}  // namespace slim
