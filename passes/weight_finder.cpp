// Weight discovery shared by the quantization and pruning passes; see
// weight_finder.h.
#include "passes/weight_finder.h"

#include <cstring>

#include "libcompress/ir/shape_inference.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <set>

#include "libcompress/numerics/prune.h"

namespace slim {

bool IsCastToFloat(const Node& n) {
  if (n.op_type != "Cast" || !(n.domain.empty() || n.domain == "ai.onnx")) return false;
  const int64_t to = n.GetInt("to", 0);
  return to == static_cast<int64_t>(DType::kFloat32) || to == static_cast<int64_t>(DType::kFloat16);
}

namespace {

bool IsOnnx(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

// Walks from a matmul output through ops that keep its meaning (shape ops,
// casts, elementwise bias/softcap) to see whether it reaches a graph output.
bool ReachesGraphOutput(const Graph& g, const std::string& value,
                        const std::unordered_map<std::string, std::vector<int>>& consumers) {
  static const std::set<std::string> kThrough = {"Reshape", "Transpose", "Squeeze", "Unsqueeze",
                                                 "Identity", "Cast", "Flatten", "Add",
                                                 "Mul", "Div", "Tanh"};
  std::set<std::string> outputs;
  for (const auto& o : g.outputs) outputs.insert(o.name);
  std::vector<std::pair<std::string, int>> stack = {{value, 0}};
  std::set<std::string> seen;
  while (!stack.empty()) {
    auto [v, depth] = stack.back();
    stack.pop_back();
    if (outputs.count(v)) return true;
    if (depth >= 8 || !seen.insert(v).second) continue;
    auto it = consumers.find(v);
    if (it == consumers.end()) continue;
    for (int ni : it->second) {
      const Node& n = g.nodes[static_cast<size_t>(ni)];
      if (!IsOnnx(n) || !kThrough.count(n.op_type)) continue;
      for (const auto& o : n.outputs) {
        if (!o.empty()) stack.push_back({o, depth + 1});
      }
    }
  }
  return false;
}

// Shape of a value when it is known statically (initializer, Constant,
// Cast of either, or value_info with static dims).
std::optional<std::vector<int64_t>> StaticShape(
    const Graph& g, const std::string& value,
    const std::unordered_map<std::string, int>& producers) {
  if (const Tensor* t = g.FindInitializer(value)) return t->shape();
  auto p = producers.find(value);
  if (p != producers.end()) {
    const Node& n = g.nodes[static_cast<size_t>(p->second)];
    if (n.op_type == "Constant" && n.HasAttr("value")) return n.attrs.at("value").t.shape();
    if (n.op_type == "Cast") return StaticShape(g, n.Input(0), producers);
  }
  auto vi = g.value_info.find(value);
  if (vi != g.value_info.end() && vi->second.shape) {
    std::vector<int64_t> dims;
    for (const auto& d : *vi->second.shape) {
      if (!d.is_static()) return std::nullopt;
      dims.push_back(d.value);
    }
    return dims;
  }
  return std::nullopt;
}

std::string UseDescription(const Node& n, size_t input) {
  return StrCat(n.Describe(), " input ", input);
}

// Finds every weight read as MatMul/Gemm B or Gather table and classifies
// all of its readers.
std::vector<WeightCandidate> FindCandidates(const Graph& g,
                                      const std::unordered_map<std::string, int>& producers,
                                      const std::unordered_map<std::string, std::vector<int>>& consumers) {
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);

  // The weight behind a value: an initializer or Constant, directly or
  // through Cast(to=float).
  auto source_of = [&](const std::string& v) -> std::string {
    std::string s = v;
    auto p = producers.find(s);
    if (p != producers.end() && IsCastToFloat(g.nodes[static_cast<size_t>(p->second)])) {
      s = g.nodes[static_cast<size_t>(p->second)].Input(0);
      p = producers.find(s);
    }
    if (g.FindInitializer(s)) return s;
    if (p != producers.end()) {
      const Node& n = g.nodes[static_cast<size_t>(p->second)];
      if (n.op_type == "Constant" && IsOnnx(n) && n.HasAttr("value") &&
          n.attrs.at("value").type == Attribute::Type::kTensor) {
        return s;
      }
    }
    return "";
  };

  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const Node& n : g.nodes) {
    if (!IsOnnx(n)) continue;
    std::string v;
    if (n.op_type == "MatMul" || n.op_type == "Gemm") v = n.Input(1);
    if (n.op_type == "Gather") v = n.Input(0);
    if (v.empty()) continue;
    const std::string s = source_of(v);
    if (!s.empty() && seen.insert(s).second) names.push_back(s);
  }

  std::vector<WeightCandidate> out;
  for (const auto& name : names) {
    WeightCandidate c;
    c.name = name;
    if (const Tensor* t = g.FindInitializer(name)) {
      c.tensor = *t;
    } else {
      c.constant_node = producers.at(name);
      c.tensor = g.nodes[static_cast<size_t>(c.constant_node)].attrs.at("value").t;
    }
    // Records reader (node ni, input i) of the weight or of its Cast.
    auto add_use = [&](int ni, size_t i) {
      const Node& n = g.nodes[static_cast<size_t>(ni)];
      WeightUse u;
      u.node = ni;
      if (IsOnnx(n) && n.op_type == "MatMul" && i == 1) {
        u.kind = UseKind::kMatMulB;
      } else if (IsOnnx(n) && n.op_type == "Gemm" && i == 1) {
        u.kind = UseKind::kGemmB;
      } else if (IsOnnx(n) && n.op_type == "Gather" && i == 0) {
        u.kind = UseKind::kGather;
      } else if (c.problem.empty()) {
        c.problem = StrCat("read by ", UseDescription(n, i),
                           " (packed weights feed only MatMul/Gemm B and Gather tables)");
      }
      c.uses.push_back(u);
    };
    auto add_readers = [&](const std::string& value, bool look_through_casts) {
      if (graph_outputs.count(value)) c.problem = StrCat("value '", value, "' is a graph output");
      auto it = consumers.find(value);
      if (it == consumers.end()) return;
      for (int ni : it->second) {
        const Node& n = g.nodes[static_cast<size_t>(ni)];
        if (look_through_casts && IsCastToFloat(n) && !n.outputs.empty()) {
          c.cast_nodes.push_back(ni);  // its readers are added below
          continue;
        }
        for (size_t i = 0; i < n.inputs.size(); ++i) {
          if (n.inputs[i] == value) add_use(ni, i);
        }
      }
    };
    add_readers(name, true);
    for (size_t j = 0; j < c.cast_nodes.size(); ++j) {
      add_readers(g.nodes[static_cast<size_t>(c.cast_nodes[j])].outputs[0], false);
    }
    std::sort(c.uses.begin(), c.uses.end(), [](const WeightUse& a, const WeightUse& b) { return a.node < b.node; });
    for (const WeightUse& u : c.uses) {
      const Node& n = g.nodes[static_cast<size_t>(u.node)];
      if ((u.kind == UseKind::kMatMulB || u.kind == UseKind::kGemmB) && !n.Input(0).empty() &&
          std::find(c.activations.begin(), c.activations.end(), n.Input(0)) == c.activations.end()) {
        c.activations.push_back(n.Input(0));
      }
    }

    bool gather = false, matmul = false, classifier = false;
    for (const WeightUse& u : c.uses) {
      const Node& n = g.nodes[static_cast<size_t>(u.node)];
      if (u.kind == UseKind::kGather) gather = true;
      if (u.kind == UseKind::kMatMulB || u.kind == UseKind::kGemmB) {
        matmul = true;
        if (!n.outputs.empty() && ReachesGraphOutput(g, n.outputs[0], consumers)) classifier = true;
      }
    }
    if (gather && matmul) {
      c.role = "tied-embedding";
    } else if (gather) {
      c.role = "embedding";
    } else {
      c.role = classifier ? "classifier" : "linear";
    }
    out.push_back(std::move(c));
  }
  return out;
}

// Checks that every reader can take a packed [N, K] weight; sets c->kn and
// returns "" or why not.
std::string CheckReaders(const Graph& g, WeightCandidate* c,
                         const std::unordered_map<std::string, int>& producers,
                         const std::unordered_map<std::string, std::vector<int>>& consumers) {
  if (!c->problem.empty()) return c->problem;
  if (c->tensor.rank() != 2) {
    return StrCat("rank-", c->tensor.rank(), " weight ", ShapeToString(c->tensor.shape()),
                  " (packed layouts are 2-D)");
  }
  std::set<std::string> graph_outputs;
  for (const auto& o : g.outputs) graph_outputs.insert(o.name);
  bool any_kn = false, any_nk = false;
  for (WeightUse& u : c->uses) {
    const Node& n = g.nodes[static_cast<size_t>(u.node)];
    if (u.kind == UseKind::kMatMulB) {
      any_kn = true;
    } else if (u.kind == UseKind::kGemmB) {
      if (n.GetInt("transA", 0) != 0) return StrCat(n.Describe(), " has transA=1");
      if (n.GetFloat("alpha", 1.0f) != 1.0f) {
        return StrCat(n.Describe(), " has alpha=", n.GetFloat("alpha", 1.0f));
      }
      (n.GetInt("transB", 0) != 0 ? any_nk : any_kn) = true;
      const std::string& bias = n.Input(2);
      if (!bias.empty()) {
        if (n.GetFloat("beta", 1.0f) != 1.0f) {
          return StrCat(n.Describe(), " has beta=", n.GetFloat("beta", 1.0f));
        }
        const int64_t n_out = n.GetInt("transB", 0) != 0 ? c->tensor.dim(0) : c->tensor.dim(1);
        auto shape = StaticShape(g, bias, producers);
        if (!shape || *shape != std::vector<int64_t>{n_out}) {
          return StrCat(n.Describe(), " has bias C of shape ",
                        shape ? ShapeToString(*shape) : std::string("unknown"),
                        "; MatMulQ takes a bias of shape [", n_out, "]");
        }
      }
    } else if (u.kind == UseKind::kGather) {
      any_nk = true;  // table rows are [V, D]
      int64_t axis = n.GetInt("axis", 0);
      if (axis < 0) axis += 2;
      if (axis != 0) return StrCat(n.Describe(), " gathers along axis ", n.GetInt("axis", 0));
      if (c->tensor.dtype() != DType::kFloat32) {
        // GatherQ returns float32; readers that are all Cast(to=float32)
        // take that as is, anything else gets a Cast back to the old dtype.
        const std::string out = n.outputs.empty() ? std::string() : n.outputs[0];
        u.recast = graph_outputs.count(out) != 0;
        auto it = consumers.find(out);
        if (it != consumers.end()) {
          for (int ri : it->second) {
            const Node& r = g.nodes[static_cast<size_t>(ri)];
            if (!(r.op_type == "Cast" && IsOnnx(r) &&
                  r.GetInt("to", 0) == static_cast<int64_t>(DType::kFloat32))) {
              u.recast = true;
            }
          }
        }
      }
    }
  }
  if (any_kn && any_nk) return "read both as [K, N] (MatMul) and as [N, K] (Gemm transB=1 / Gather)";
  c->kn = any_kn;
  return "";
}

}  // namespace

GraphIndex GraphIndex::Build(const Graph& g) {
  GraphIndex ix;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    for (const auto& o : n.outputs) {
      if (!o.empty()) ix.producers[o] = static_cast<int>(i);
    }
    std::set<std::string> read;
    for (const auto& in : n.inputs) {
      if (!in.empty() && read.insert(in).second) ix.consumers[in].push_back(static_cast<int>(i));
    }
  }
  return ix;
}

std::vector<WeightCandidate> FindWeights(const Graph& g, const GraphIndex& index) {
  std::vector<WeightCandidate> cands = FindCandidates(g, index.producers, index.consumers);
  for (WeightCandidate& c : cands) {
    if (!IsFloat(c.tensor.dtype())) continue;
    c.problem = CheckReaders(g, &c, index.producers, index.consumers);
    if (c.tensor.rank() == 2) {
      c.n = static_cast<size_t>(c.kn ? c.tensor.dim(1) : c.tensor.dim(0));
      c.k = static_cast<size_t>(c.kn ? c.tensor.dim(0) : c.tensor.dim(1));
    }
  }
  return cands;
}

std::vector<float> WeightRowsNK(const WeightCandidate& c) {
  std::vector<float> src = c.tensor.ToFloatVector();
  if (!c.kn) return src;
  std::vector<float> out(c.n * c.k);
  for (size_t kk = 0; kk < c.k; ++kk) {
    for (size_t nn = 0; nn < c.n; ++nn) out[nn * c.k + kk] = src[kk * c.n + nn];
  }
  return out;
}

Tensor WeightFromRowsNK(const WeightCandidate& c, const std::vector<float>& w_nk) {
  return WeightFromRowsNK(c.tensor.dtype(), c.kn, c.n, c.k, w_nk);
}

Tensor WeightFromRowsNK(DType dtype, bool kn, size_t n, size_t k, const std::vector<float>& w_nk) {
  std::vector<float> stored = w_nk;
  if (kn) {
    for (size_t nn = 0; nn < n; ++nn) {
      for (size_t kk = 0; kk < k; ++kk) stored[kk * n + nn] = w_nk[nn * k + kk];
    }
  }
  const auto in = static_cast<int64_t>(n), ik = static_cast<int64_t>(k);
  Tensor t(dtype, kn ? std::vector<int64_t>{ik, in} : std::vector<int64_t>{in, ik});
  const size_t count = stored.size();
  switch (dtype) {
    case DType::kFloat32: std::copy(stored.begin(), stored.end(), t.MutableData<float>()); break;
    case DType::kFloat16: {
      uint16_t* out = t.MutableData<uint16_t>();
      for (size_t i = 0; i < count; ++i) out[i] = FloatToHalf(stored[i]);
      break;
    }
    case DType::kBFloat16: {
      uint16_t* out = t.MutableData<uint16_t>();
      for (size_t i = 0; i < count; ++i) out[i] = FloatToBFloat16(stored[i]);
      break;
    }
    default: break;  // callers only pass float weights
  }
  return t;
}

const ActivationStat* InputStats(const WeightCandidate& c, const ActivationStats* stats) {
  if (!stats) return nullptr;
  for (const std::string& v : c.activations) {
    const ActivationStat* st = stats->Find(v);
    if (st && static_cast<size_t>(st->dim) == c.k) return st;
  }
  return nullptr;
}

TensorReport KeptRow(const WeightCandidate& c) {
  TensorReport r;
  r.name = c.name;
  r.shape = c.tensor.shape();
  r.source_dtype = DTypeName(c.tensor.dtype());
  r.role = c.role;
  r.params = std::max<int64_t>(c.tensor.numel(), 0);
  r.bytes_before = r.bytes_after = c.tensor.nbytes();
  r.bits = static_cast<int>(DTypeSize(c.tensor.dtype()) * 8);
  r.layout = r.source_dtype;
  r.requested_bits_per_weight = r.bits;
  r.actual = "keep";
  return r;
}

void SetWeight(Graph& g, const WeightCandidate& c, Tensor t) {
  if (c.constant_node >= 0) {
    g.nodes[static_cast<size_t>(c.constant_node)].attrs["value"].t = std::move(t);
  } else {
    *g.MutableInitializer(c.name) = std::move(t);
  }
}

Tensor StoreAndMeasure(const WeightCandidate& c, const std::vector<float>& reference,
                       const std::vector<float>& w_nk, const ActivationStat* stat, WeightChangeError* error) {
  Tensor stored = WeightFromRowsNK(c, w_nk);
  WeightCandidate now_c = c;
  now_c.tensor = stored;
  const std::vector<float> now = WeightRowsNK(now_c);
  double sq = 0, ref = 0;
  *error = WeightChangeError{};
  for (size_t j = 0; j < now.size(); ++j) {
    const double d = static_cast<double>(reference[j]) - now[j];
    sq += d * d;
    ref += static_cast<double>(reference[j]) * reference[j];
    error->max_abs_error = std::max(error->max_abs_error, std::fabs(d));
  }
  error->rel_mse = ref > 0 ? sq / ref : 0.0;
  if (stat && stat->sample_rows > 0) {
    error->output_measured = true;
    error->output_rel_error = RelativeOutputError(reference.data(), now.data(), c.n, c.k, stat->sample.data(),
                                                  static_cast<size_t>(stat->sample_rows));
  }
  return stored;
}

std::unordered_map<std::string, size_t> LinearOutputs(const Graph& g, const std::vector<WeightCandidate>& cands) {
  std::unordered_map<std::string, size_t> out;
  for (size_t i = 0; i < cands.size(); ++i) {
    const WeightCandidate& c = cands[i];
    if (!c.IsFloatMatrix() || !c.problem.empty() || c.uses.size() != 1) continue;
    const WeightUse& u = c.uses[0];
    if (u.kind != UseKind::kMatMulB && u.kind != UseKind::kGemmB) continue;
    const Node& n = g.nodes[static_cast<size_t>(u.node)];
    if (!n.outputs.empty()) out[n.outputs[0]] = i;
  }
  return out;
}

Tensor SelectAlongAxis(const Tensor& t, size_t axis, const std::vector<size_t>& keep) {
  std::vector<int64_t> shape = t.shape();
  const size_t c = static_cast<size_t>(shape[axis]);
  size_t outer = 1, inner = 1;
  for (size_t a = 0; a < axis; ++a) outer *= static_cast<size_t>(shape[a]);
  for (size_t a = axis + 1; a < shape.size(); ++a) inner *= static_cast<size_t>(shape[a]);
  shape[axis] = static_cast<int64_t>(keep.size());
  Tensor out(t.dtype(), shape);
  const size_t es = DTypeSize(t.dtype());
  const auto* src = static_cast<const uint8_t*>(t.raw());
  auto* dst = static_cast<uint8_t*>(out.MutableRaw());
  for (size_t o = 0; o < outer; ++o) {
    for (size_t j = 0; j < keep.size(); ++j) {
      std::memcpy(dst + (o * keep.size() + j) * inner * es, src + (o * c + keep[j]) * inner * es, inner * es);
    }
  }
  return out;
}

void ShrinkMask(Graph& g, const std::string& name, const std::vector<size_t>& keep, bool keep_rows) {
  auto it = g.weight_masks.find(name);
  if (it != g.weight_masks.end()) it->second.keep = SelectAlongAxis(it->second.keep, keep_rows ? 0 : 1, keep);
}

Status RefreshValueInfo(Graph& g) {
  Graph shaped = g;
  for (const Node& n : shaped.nodes) {
    for (const std::string& o : n.outputs) shaped.value_info.erase(o);
  }
  SLIM_ASSIGN_OR_RETURN(ShapeInferenceStats st, InferShapes(shaped));
  (void)st;
  for (auto& [name, vi] : g.value_info) {
    auto it = shaped.value_info.find(name);
    if (it != shaped.value_info.end()) vi = it->second;
  }
  return Status::Ok();
}

}  // namespace slim
