// Activation-aware scaling for the quantization passes; see awq.h.
#include "passes/awq.h"

#include <algorithm>
#include <cstdio>
#include <atomic>
#include <limits>
#include <optional>
#include <set>
#include <thread>

#include "libcompress/numerics/awq.h"

namespace slim {
namespace {

bool IsOnnxOp(const Node& n, const char* op) {
  return n.op_type == op && (n.domain.empty() || n.domain == "ai.onnx");
}

// The dtypes WeightFromRowsNK stores.
bool StorableFloat(DType t) { return t == DType::kFloat32 || t == DType::kFloat16 || t == DType::kBFloat16; }

const std::vector<int>& ConsumersOf(const GraphIndex& ix, const std::string& v) {
  static const std::vector<int> kNone;
  auto it = ix.consumers.find(v);
  return it == ix.consumers.end() ? kNone : it->second;
}

bool IsGraphIO(const Graph& g, const std::string& v) {
  for (const auto& i : g.inputs) {
    if (i.name == v) return true;
  }
  for (const auto& o : g.outputs) {
    if (o.name == v) return true;
  }
  return false;
}

// A float constant of exactly k elements along its last axis (a norm's
// weight or bias) behind input `value` of node `reader`: an initializer or
// Constant, directly or through Cast(to=float), read by nothing else.
struct ConstRef {
  std::string name;
  int constant_node = -1;
  Tensor tensor;
};
std::optional<ConstRef> SoleConstant(const Graph& g, const GraphIndex& ix, const std::string& value, int reader,
                                     size_t k) {
  auto only = [&](const std::string& v, int node) {
    const std::vector<int>& c = ConsumersOf(ix, v);
    return c.size() == 1 && c[0] == node && !IsGraphIO(g, v);
  };
  if (value.empty() || !only(value, reader)) return std::nullopt;
  std::string s = value;
  auto p = ix.producers.find(s);
  if (p != ix.producers.end() && IsCastToFloat(g.nodes[static_cast<size_t>(p->second)])) {
    const int cast = p->second;
    s = g.nodes[static_cast<size_t>(cast)].Input(0);
    if (!only(s, cast)) return std::nullopt;
    p = ix.producers.find(s);
  }
  ConstRef r;
  r.name = s;
  if (const Tensor* t = g.FindInitializer(s)) {
    r.tensor = *t;
  } else if (p != ix.producers.end() && IsOnnxOp(g.nodes[static_cast<size_t>(p->second)], "Constant") &&
             g.nodes[static_cast<size_t>(p->second)].HasAttr("value") &&
             g.nodes[static_cast<size_t>(p->second)].attrs.at("value").type == Attribute::Type::kTensor) {
    r.constant_node = p->second;
    r.tensor = g.nodes[static_cast<size_t>(p->second)].attrs.at("value").t;
  } else {
    return std::nullopt;
  }
  if (!StorableFloat(r.tensor.dtype()) || r.tensor.rank() == 0 || r.tensor.numel() != static_cast<int64_t>(k) ||
      r.tensor.shape().back() != static_cast<int64_t>(k)) {
    return std::nullopt;
  }
  return r;
}

std::string Sci(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

enum class Fold { kExplicit, kConstants, kRows };

struct Group {
  std::string value;             // the input the members multiply
  std::vector<size_t> members;   // indices into requests
  const ActivationStat* stat = nullptr;
  Fold fold = Fold::kExplicit;
  int producer = -1;             // node producing `value`
  std::vector<ConstRef> consts;  // kConstants: the norm's weight (and bias)
  size_t rows_cand = 0;          // kRows: the linear layer whose output rows take 1/s
  std::string where;             // for the notes
  Expected<AwqScales> scales = AwqScales{};
};

std::string FreshName(const Graph& g, const GraphIndex& ix, const std::string& base) {
  std::string name = base;
  for (int i = 1; ix.producers.count(name) || ix.consumers.count(name) || g.FindInitializer(name) ||
                  IsGraphIO(g, name);
       ++i) {
    name = StrCat(base, ".", i);
  }
  return name;
}

// Where the group's division by s can go (see awq.h), or why nowhere.
void PlanFold(const Graph& g, const GraphIndex& ix, const std::vector<WeightCandidate>& cands,
              const std::unordered_map<std::string, size_t>& linear_outputs, const std::set<int>& member_nodes,
              size_t k, Group* grp) {
  auto p = ix.producers.find(grp->value);
  if (p == ix.producers.end() || IsGraphIO(g, grp->value)) {
    grp->where = StrCat("explicit Mul: '", grp->value, "' is a graph input or output");
    return;
  }
  for (int ni : ConsumersOf(ix, grp->value)) {
    if (!member_nodes.count(ni)) {
      grp->where = StrCat("explicit Mul: '", grp->value, "' also feeds ", g.nodes[static_cast<size_t>(ni)].Describe());
      return;
    }
  }
  grp->producer = p->second;
  const Node& n = g.nodes[static_cast<size_t>(p->second)];
  // Mul(b, b) would square the scale: not foldable.
  if (IsOnnxOp(n, "Mul") && n.inputs.size() == 2 && n.Input(0) != n.Input(1)) {
    for (size_t j : {size_t{1}, size_t{0}}) {
      if (auto c = SoleConstant(g, ix, n.Input(j), p->second, k)) {
        grp->fold = Fold::kConstants;
        grp->consts = {*c};
        grp->where = StrCat("folded into '", c->name, "' (", n.Describe(), ")");
        return;
      }
    }
    for (size_t j : {size_t{1}, size_t{0}}) {
      auto lin = linear_outputs.find(n.Input(j));
      if (lin == linear_outputs.end()) continue;
      const WeightCandidate& l = cands[lin->second];
      const Node& ln = g.nodes[static_cast<size_t>(l.uses[0].node)];
      const std::vector<int>& readers = ConsumersOf(ix, n.Input(j));
      if (l.n != k || readers.size() != 1 || readers[0] != p->second || IsGraphIO(g, n.Input(j)) ||
          (IsOnnxOp(ln, "Gemm") && !ln.Input(2).empty()) || !StorableFloat(l.tensor.dtype())) {
        continue;
      }
      grp->fold = Fold::kRows;
      grp->rows_cand = lin->second;
      grp->where = StrCat("folded into the output rows of '", l.name, "' (", n.Describe(), ")");
      return;
    }
  }
  const bool norm = (n.op_type == "LayerNormalization" || n.op_type == "SimplifiedLayerNormalization" ||
                     n.op_type == "RMSNormalization") &&
                    (n.domain.empty() || n.domain == "ai.onnx" || n.domain == "com.microsoft") &&
                    !n.outputs.empty() && n.outputs[0] == grp->value;
  if (norm) {
    auto scale = SoleConstant(g, ix, n.Input(1), p->second, k);
    std::optional<ConstRef> bias;
    if (!n.Input(2).empty()) bias = SoleConstant(g, ix, n.Input(2), p->second, k);
    if (scale && (n.Input(2).empty() || bias)) {
      grp->fold = Fold::kConstants;
      grp->consts = {*scale};
      if (bias) grp->consts.push_back(*bias);
      grp->where = StrCat("folded into the scale", bias ? " and bias" : "", " of ", n.Describe());
      return;
    }
  }
  grp->where = StrCat("explicit Mul: ", n.Describe(), " cannot absorb a per-channel scale");
}

// Statistics of x / s from those of x (E[x x^T] only when `gram`).
ActivationStat ScaledStat(const ActivationStat& st, const std::vector<float>& s, bool gram) {
  const size_t k = s.size();
  ActivationStat out;
  out.dim = st.dim;
  out.rows = st.rows;
  out.mean_sq.resize(k);
  for (size_t i = 0; i < k; ++i) out.mean_sq[i] = st.mean_sq[i] / (static_cast<double>(s[i]) * s[i]);
  if (gram && !st.gram.empty()) {
    out.gram.resize(k * k);
    for (size_t i = 0; i < k; ++i) {
      for (size_t j = 0; j < k; ++j) out.gram[i * k + j] = st.gram[i * k + j] / (s[i] * s[j]);
    }
  }
  out.sample_rows = st.sample_rows;
  out.sample.resize(st.sample.size());
  for (size_t i = 0; i < st.sample.size(); ++i) out.sample[i] = st.sample[i] / s[i % k];
  return out;
}

}  // namespace

Expected<AwqRewrite> ApplyAwqScales(Graph& graph, const GraphIndex& ix, const std::vector<WeightCandidate>& cands,
                                    const std::vector<AwqRequest>& requests, const ActivationStats& stats, int grid,
                                    int threads) {
  AwqRewrite out;
  out.derived.source = stats.source;
  out.derived.sequences = stats.sequences;
  out.derived.tokens = stats.tokens;

  // Group the requests by the input they multiply.
  std::vector<Group> groups;
  std::map<std::string, size_t> group_of;
  for (size_t r = 0; r < requests.size(); ++r) {
    const WeightCandidate& c = cands[requests[r].cand];
    bool matmul_only = !c.uses.empty();
    for (const WeightUse& u : c.uses) matmul_only &= u.kind == UseKind::kMatMulB || u.kind == UseKind::kGemmB;
    if (!matmul_only) {
      out.notes[c.name] = "awq not applied: also read as a Gather table, whose rows cannot carry input scales";
      continue;
    }
    if (c.activations.size() != 1) {
      out.notes[c.name] = "awq not applied: read by matmuls of different inputs";
      continue;
    }
    const std::string& v = c.activations[0];
    const ActivationStat* st = stats.Find(v);
    if (!st || static_cast<size_t>(st->dim) != c.k || st->mean_sq.size() != c.k ||
        (!st->gram.empty() && st->gram.size() != c.k * c.k) ||
        st->sample.size() != static_cast<size_t>(st->sample_rows) * c.k) {
      out.notes[c.name] = StrCat("awq not applied: no calibration statistics of its input '", v, "'");
      continue;
    }
    auto [it, fresh] = group_of.emplace(v, groups.size());
    if (fresh) {
      groups.emplace_back();
      groups.back().value = v;
      groups.back().stat = st;
    }
    groups[it->second].members.push_back(r);
  }
  const std::unordered_map<std::string, size_t> linear_outputs = LinearOutputs(graph, cands);
  for (Group& grp : groups) {
    std::set<int> member_nodes;
    for (size_t r : grp.members) {
      for (const WeightUse& u : cands[requests[r].cand].uses) member_nodes.insert(u.node);
    }
    PlanFold(graph, ix, cands, linear_outputs, member_nodes, static_cast<size_t>(grp.stat->dim), &grp);
  }

  // Search every group; each result lands in its own group.
  std::atomic<size_t> next{0};
  auto worker = [&]() {
    for (size_t i = next++; i < groups.size(); i = next++) {
      Group& grp = groups[i];
      std::vector<std::vector<float>> weights;
      std::vector<AwqMember> members;
      weights.reserve(grp.members.size());
      for (size_t r : grp.members) {
        const WeightCandidate& c = cands[requests[r].cand];
        weights.push_back(WeightRowsNK(c));
        members.push_back({weights.back().data(), c.n, requests[r].options});
      }
      const ActivationStat& st = *grp.stat;
      grp.scales = SearchAwqScales(st.mean_sq.data(), st.gram.empty() ? nullptr : st.gram.data(),
                                   st.sample_rows > 0 ? st.sample.data() : nullptr,
                                   static_cast<size_t>(st.sample_rows), static_cast<size_t>(st.dim), members, grid);
    }
  };
  const size_t nthreads = std::min<size_t>(static_cast<size_t>(std::max(threads, 1)), groups.size());
  std::vector<std::thread> pool;
  for (size_t t = 1; t < nthreads; ++t) pool.emplace_back(worker);
  worker();
  for (std::thread& t : pool) t.join();

  // Apply on a copy: the graph is replaced only once it validates.
  Graph g = graph;
  std::map<size_t, std::vector<float>> weights;  // by candidate: the [N, K] matrix as rescaled so far
  auto current = [&](size_t ci) -> std::vector<float>& {
    auto it = weights.find(ci);
    if (it == weights.end()) it = weights.emplace(ci, WeightRowsNK(cands[ci])).first;
    return it->second;
  };
  struct Insert {
    int before;
    Node node;
  };
  std::vector<Insert> inserts;
  for (Group& grp : groups) {
    if (!grp.scales.ok()) {
      // A weight the quantizer refuses (non-finite values) falls back on
      // its own in the quantization that follows; its group is not scaled.
      for (size_t r : grp.members) {
        out.notes[cands[requests[r].cand].name] =
            StrCat("awq not applied to the weights of '", grp.value, "': ", grp.scales.status().message());
      }
      continue;
    }
    const AwqScales& sc = *grp.scales;
    std::vector<float> s = sc.s;
    const size_t k = s.size();
    const double den = sc.output_energy > 0 ? sc.output_energy : 1.0;
    const std::string figures =
        StrCat(sc.on_gram     ? "output error on the calibration data (E[x x^T])"
               : sc.on_sample ? "output error on the calibration sample"
                              : "estimated output error (E[x^2])",
               " of '", grp.value, "' ", Sci(sc.error_unscaled / den), " -> ", Sci(sc.error / den),
               " over ", grp.members.size(), " weight(s)");
    if (sc.alpha == 0) {
      for (size_t r : grp.members) {
        out.notes[cands[requests[r].cand].name] = StrCat("awq not applied: no scale beats none (", figures, ")");
      }
      continue;
    }
    // An explicit Mul's constant takes the input's dtype (an FP16-compute
    // graph multiplies FP16 values): the value's recorded type, else what
    // the first member's matmul reads (its weight's, or its Cast's target).
    DType dt = DType::kFloat32;
    if (grp.fold == Fold::kExplicit) {
      const WeightCandidate& first = cands[requests[grp.members[0]].cand];
      auto vi = g.value_info.find(grp.value);
      if (vi != g.value_info.end() && vi->second.dtype != DType::kUndefined) {
        dt = vi->second.dtype;
      } else if (!first.cast_nodes.empty()) {
        dt = static_cast<DType>(g.nodes[static_cast<size_t>(first.cast_nodes[0])].GetInt("to", 1));
      } else {
        dt = first.tensor.dtype();
      }
    }
    bool storable = StorableFloat(dt);
    for (size_t r : grp.members) storable &= StorableFloat(cands[requests[r].cand].tensor.dtype());
    if (!storable) {
      for (size_t r : grp.members) {
        out.notes[cands[requests[r].cand].name] = StrCat("awq not applied: the input or a weight is ", DTypeName(dt),
                                                         " (scales are stored as float32, float16 or bfloat16)");
      }
      continue;
    }
    // The explicit Mul's 1/s is rounded to its dtype; the weights take the
    // reciprocal of the stored value, so weights and Mul use one scale.
    Tensor inv_scale;
    if (grp.fold == Fold::kExplicit) {
      std::vector<float> inv(k);
      for (size_t i = 0; i < k; ++i) inv[i] = 1.0f / s[i];
      inv_scale = WeightFromRowsNK(dt, false, 1, k, inv).Reshaped({static_cast<int64_t>(k)});
      const std::vector<float> stored = inv_scale.ToFloatVector();
      for (size_t i = 0; i < k; ++i) s[i] = 1.0f / stored[i];
    }
    out.changed = true;
    for (size_t r : grp.members) {
      std::vector<float>& w = current(requests[r].cand);
      for (size_t i = 0; i < w.size(); ++i) w[i] *= s[i % k];
    }
    const std::string scaled = FreshName(g, ix, grp.value + ".awq");
    if (grp.fold == Fold::kConstants) {
      for (const ConstRef& c : grp.consts) {
        std::vector<float> v = c.tensor.ToFloatVector();
        for (size_t i = 0; i < k; ++i) v[i] /= s[i];
        Tensor t = WeightFromRowsNK(c.tensor.dtype(), false, 1, k, v).Reshaped(c.tensor.shape());
        if (c.constant_node >= 0) {
          g.nodes[static_cast<size_t>(c.constant_node)].attrs["value"].t = std::move(t);
        } else {
          *g.MutableInitializer(c.name) = std::move(t);
        }
      }
    } else if (grp.fold == Fold::kRows) {
      std::vector<float>& w = current(grp.rows_cand);
      const size_t kk = cands[grp.rows_cand].k;
      for (size_t n = 0; n < k; ++n) {
        for (size_t j = 0; j < kk; ++j) w[n * kk + j] /= s[n];
      }
    }
    auto vi = g.value_info.find(grp.value);
    std::optional<ValueInfo> info;
    if (vi != g.value_info.end()) {
      info = vi->second;
      info->name = scaled;
    }
    if (grp.fold != Fold::kExplicit) {
      // The producer now computes x / s: rename its output everywhere.
      for (auto& o : g.nodes[static_cast<size_t>(grp.producer)].outputs) {
        if (o == grp.value) o = scaled;
      }
      for (int ni : ConsumersOf(ix, grp.value)) {
        for (auto& in : g.nodes[static_cast<size_t>(ni)].inputs) {
          if (in == grp.value) in = scaled;
        }
      }
      if (info) g.value_info.erase(grp.value);
    } else {
      const std::string inv_name = FreshName(g, ix, grp.value + ".awq_inv_scale");
      g.AddInitializer(inv_name, inv_scale);
      Insert ins;
      ins.before = std::numeric_limits<int>::max();
      ins.node.name = scaled;
      ins.node.op_type = "Mul";
      ins.node.inputs = {grp.value, inv_name};
      ins.node.outputs = {scaled};
      for (size_t r : grp.members) {
        for (const WeightUse& u : cands[requests[r].cand].uses) {
          g.nodes[static_cast<size_t>(u.node)].inputs[0] = scaled;
          ins.before = std::min(ins.before, u.node);
        }
      }
      inserts.push_back(std::move(ins));
    }
    if (info) g.value_info[scaled] = std::move(*info);
    bool gptq = false;
    for (size_t r : grp.members) gptq |= requests[r].gptq;
    out.derived.values[scaled] = ScaledStat(*grp.stat, s, gptq);
    for (size_t r : grp.members) {
      out.scaled.insert(cands[requests[r].cand].name);
      out.notes[cands[requests[r].cand].name] = StrCat("awq alpha ", FormatFixed(sc.alpha, 2), ", ", grp.where, "; ",
                                                       figures);
    }
  }
  for (auto& [ci, w] : weights) SetWeight(g, cands[ci], WeightFromRowsNK(cands[ci], w));
  if (!inserts.empty()) {
    std::sort(inserts.begin(), inserts.end(), [](const Insert& a, const Insert& b) { return a.before < b.before; });
    std::vector<Node> nodes;
    nodes.reserve(g.nodes.size() + inserts.size());
    size_t next_insert = 0;
    for (size_t i = 0; i < g.nodes.size(); ++i) {
      while (next_insert < inserts.size() && inserts[next_insert].before == static_cast<int>(i)) {
        nodes.push_back(std::move(inserts[next_insert++].node));
      }
      nodes.push_back(std::move(g.nodes[i]));
    }
    g.nodes = std::move(nodes);
  }
  Status valid = g.Validate();
  if (!valid.ok()) return Internal("awq: rescaled graph does not validate: ", valid.message());
  graph = std::move(g);
  return out;
}

}  // namespace slim
