// Conv output-channel pruning: channel groups traced forward from a Conv,
// scored, and rewritten; see conv_channels.h.
#include "passes/conv_channels.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <numeric>
#include <set>

#include "libcompress/ir/shape_inference.h"
#include "libcompress/numerics/prune.h"
#include "passes/weight_finder.h"

namespace slim {
namespace {

bool IsOnnxNode(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

// Ops with one data input that act on each channel alone (pools too: they
// mix positions, never channels).
const std::set<std::string>& ChannelwiseUnary() {
  static const std::set<std::string> ops = {
      "Relu",  "Sigmoid", "Tanh",     "LeakyRelu", "HardSigmoid", "HardSwish",      "Elu",           "Selu",
      "Celu",  "Softplus", "Softsign", "Identity", "Dropout",     "Neg",            "Abs",           "Exp",
      "Erf",   "Gelu",    "Mish",     "Cast",      "Clip",        "ThresholdedRelu", "MaxPool",      "AveragePool",
      "LpPool", "GlobalAveragePool", "GlobalMaxPool", "GlobalLpPool", "Sqrt", "Reciprocal"};
  return ops;
}
const std::set<std::string>& ChannelwiseBinary() {
  static const std::set<std::string> ops = {"Mul", "Add", "Sub", "Div", "PRelu", "Max", "Min", "Pow"};
  return ops;
}

struct ConvConsumer {
  int node = -1;
  std::string weight;
  int64_t group = 1;
};
struct FcConsumer {
  size_t cand = 0;      // index into the weight candidates
  size_t spatial = 1;   // S: columns per channel
};
struct Depthwise {
  int node = -1;
  std::string weight, bias;
};
struct Bn {
  std::string scale, var;
  float eps = 1e-5f;
};

struct ChannelGroup {
  int producer = -1;
  std::string weight, bias;
  size_t channels = 0;
  std::vector<std::string> per_channel;  // initializers with one axis of size C
  std::vector<Bn> bns;
  std::vector<Depthwise> depthwise;
  std::vector<ConvConsumer> convs;
  std::vector<FcConsumer> fcs;
  int64_t quantum = 1;              // kept channels per grouped consumer's group
  std::vector<size_t> keep;
};

class Tracer {
 public:
  Tracer(const Graph& g, const Graph& shaped, const GraphIndex& ix, const std::vector<WeightCandidate>& cands)
      : g_(g), shaped_(shaped), ix_(ix), cands_(cands) {
    for (size_t i = 0; i < cands.size(); ++i) by_name_[cands[i].name] = i;
    for (const auto& o : g.outputs) outputs_.insert(o.name);
  }

  // The group of Conv node `p`, or why there is none ("" and *out filled).
  std::string Trace(int p, ChannelGroup* out) const {
    const Node& pn = g_.nodes[static_cast<size_t>(p)];
    ChannelGroup grp;
    grp.producer = p;
    grp.weight = pn.Input(1);
    const Tensor* w = g_.FindInitializer(grp.weight);
    if (!w || !IsFloat(w->dtype()) || w->rank() < 3) return "its weight is not a float initializer";
    for (size_t a = 0; a < w->rank(); ++a) {
      if (w->dim(a) <= 0) return StrCat("its weight has shape ", ShapeToString(w->shape()));
    }
    if (pn.outputs.empty() || pn.outputs[0].empty()) return "it has no output";
    if (pn.GetInt("group", 1) != 1) return "a grouped Conv (its output channels are tied to its input groups)";
    if (!SingleUse(grp.weight)) return StrCat("weight '", grp.weight, "' is shared");
    grp.channels = static_cast<size_t>(w->dim(0));
    grp.bias = pn.Input(2);
    if (!grp.bias.empty() && !PerChannel(grp.bias, grp.channels, 0)) return StrCat("bias '", grp.bias, "' is not a [C] initializer");
    if (!grp.bias.empty()) grp.per_channel.push_back(grp.bias);
    const size_t spatial_rank = static_cast<size_t>(w->rank() - 2);

    // (value, its spatial rank: 0 after Flatten of a 1x1 map)
    std::vector<std::pair<std::string, size_t>> stack = {{pn.outputs[0], spatial_rank}};
    std::set<std::string> in_group;
    std::set<int> visited;
    std::vector<std::pair<int, std::string>> other_inputs;  // must be group values
    // A failure past an op that combines the channels with a value from
    // outside the walk (a residual Add) is that op's doing: say so.
    auto combined = [&]() -> std::string {
      for (const auto& [ci, other] : other_inputs) {
        if (!in_group.count(other)) {
          return StrCat(g_.nodes[static_cast<size_t>(ci)].Describe(), " combines the channels with '", other,
                        "' from another branch (channels meeting in an Add, Mul or Concat are left alone)");
        }
      }
      return "";
    };
    auto fail = [&](const std::string& why) {
      const std::string c = combined();
      return c.empty() ? why : c;
    };
    while (!stack.empty()) {
      const auto [v, srank] = stack.back();
      stack.pop_back();
      if (!in_group.insert(v).second) continue;
      if (outputs_.count(v)) return fail(StrCat("value '", v, "' is a graph output"));
      auto cit = ix_.consumers.find(v);
      if (cit == ix_.consumers.end()) return fail(StrCat("value '", v, "' is read by nothing"));
      for (int ci : cit->second) {
        if (!visited.insert(ci).second) continue;
        const Node& n = g_.nodes[static_cast<size_t>(ci)];
        const std::string& op = n.op_type;
        if (!IsOnnxNode(n)) return fail(StrCat("value '", v, "' is read by ", n.Describe()));
        if (n.outputs.empty() || n.outputs[0].empty()) return fail(StrCat(n.Describe(), " has no output"));
        if (op == "Conv") {
          if (n.Input(0) != v || srank == 0) return fail(StrCat(n.Describe(), " reads '", v, "' as a weight"));
          const std::string& cw = n.Input(1);
          const Tensor* t = g_.FindInitializer(cw);
          if (!t || !IsFloat(t->dtype()) || !SingleUse(cw)) {
            return fail(StrCat(n.Describe(), " has weight '", cw, "' that is not a single-use float initializer"));
          }
          const int64_t cg = n.GetInt("group", 1);
          const int64_t c = static_cast<int64_t>(grp.channels);
          bool positive = t->rank() == srank + 2;
          for (size_t a = 0; positive && a < t->rank(); ++a) positive = t->dim(a) > 0;
          if (!positive || cg <= 0 || c % cg != 0 || t->dim(1) * cg != c || t->dim(0) % cg != 0) {
            return fail(StrCat(n.Describe(), ": weight ", ShapeToString(t->shape()), " with group ", cg,
                               " does not read ", c, " channels"));
          }
          if (cg == 1) {
            grp.convs.push_back({ci, cw, 1});
          } else if (cg == c && t->dim(0) == c && t->dim(1) == 1) {
            Depthwise d{ci, cw, n.Input(2)};
            if (!d.bias.empty() && !PerChannel(d.bias, grp.channels, 0)) return fail(StrCat(n.Describe(), ": bias is not [C]"));
            grp.depthwise.push_back(d);
            grp.per_channel.push_back(cw);
            if (!d.bias.empty()) grp.per_channel.push_back(d.bias);
            stack.push_back({n.outputs[0], srank});
          } else {
            if (grp.quantum != 1 && grp.quantum != cg) return "grouped consumers with different group counts";
            grp.quantum = cg;
            grp.convs.push_back({ci, cw, cg});
          }
        } else if (op == "BatchNormalization" || op == "InstanceNormalization") {
          const size_t params = op == "BatchNormalization" ? 4 : 2;
          if (n.Input(0) != v) return fail(StrCat(n.Describe(), " reads '", v, "' as a parameter"));
          for (size_t i = 1; i <= params; ++i) {
            if (!PerChannel(n.Input(i), grp.channels, 0)) {
              return fail(StrCat(n.Describe(), ": parameter '", n.Input(i), "' is not a single-use [C] initializer"));
            }
            grp.per_channel.push_back(n.Input(i));
          }
          for (size_t o = 1; o < n.outputs.size(); ++o) {
            if (!n.outputs[o].empty()) return fail(StrCat(n.Describe(), " has training outputs"));
          }
          if (op == "BatchNormalization") grp.bns.push_back({n.Input(1), n.Input(4), n.GetFloat("epsilon", 1e-5f)});
          stack.push_back({n.outputs[0], srank});
        } else if (ChannelwiseUnary().count(op)) {
          if (n.Input(0) != v) return fail(StrCat(n.Describe(), " reads '", v, "' as a parameter"));
          for (size_t i = 1; i < n.inputs.size(); ++i) {
            if (!n.inputs[i].empty() && !IsScalarConst(n.inputs[i])) return fail(StrCat(n.Describe(), " has a non-scalar input '", n.inputs[i], "'"));
          }
          for (size_t o = 1; o < n.outputs.size(); ++o) {
            auto oc = ix_.consumers.find(n.outputs[o]);
            if (!n.outputs[o].empty() && (oc != ix_.consumers.end() || outputs_.count(n.outputs[o]))) {
              return fail(StrCat(n.Describe(), ": a second output is used"));
            }
          }
          // A global pool keeps the rank (spatial dims become 1).
          stack.push_back({n.outputs[0], srank});
        } else if (ChannelwiseBinary().count(op)) {
          if (n.inputs.size() != 2) return fail(StrCat(n.Describe(), " does not have two inputs"));
          const std::string& other = n.Input(0) == v ? n.Input(1) : n.Input(0);
          if (op == "PRelu" && n.Input(0) != v) return fail(StrCat(n.Describe(), " reads '", v, "' as its slope"));
          if (IsScalarConst(other)) {
            // nothing to select
          } else if (g_.FindInitializer(other)) {
            if (!PerChannel(other, grp.channels, srank)) {
              return fail(StrCat(n.Describe(), " reads constant '", other, "' of shape ",
                            ShapeToString(g_.FindInitializer(other)->shape()),
                            ", neither a scalar nor per channel"));
            }
            grp.per_channel.push_back(other);
          } else if (other != v) {
            other_inputs.push_back({ci, other});
          }
          stack.push_back({n.outputs[0], srank});
        } else if (op == "Flatten") {
          if (n.GetInt("axis", 1) != 1) return fail(StrCat(n.Describe(), " flattens at axis ", n.GetInt("axis", 1)));
          const size_t s = SpatialSize(v);
          if (s == 0) return fail(StrCat("the spatial size of '", v, "' before ", n.Describe(), " is not static"));
          if (s == 1) {
            stack.push_back({n.outputs[0], 0});
            continue;
          }
          // Columns c * S .. c * S + S - 1: only weight matmuls may read them.
          if (outputs_.count(n.outputs[0])) return fail(StrCat("value '", n.outputs[0], "' is a graph output"));
          auto fc = ix_.consumers.find(n.outputs[0]);
          if (fc == ix_.consumers.end()) return fail(StrCat("value '", n.outputs[0], "' is read by nothing"));
          for (int fi : fc->second) {
            std::string why = AddFc(fi, n.outputs[0], s, &grp);
            if (!why.empty()) return fail(why);
          }
        } else if ((op == "Gemm" || op == "MatMul") && srank == 0) {
          std::string why = AddFc(ci, v, 1, &grp);
          if (!why.empty()) return fail(why);
        } else {
          return fail(StrCat("value '", v, "' is read by ", n.Describe()));
        }
      }
    }
    const std::string c = combined();
    if (!c.empty()) return c;
    if (grp.convs.empty() && grp.fcs.empty()) return "no layer reads the channels";
    *out = std::move(grp);
    return "";
  }

 private:
  bool SingleUse(const std::string& name) const {
    auto it = ix_.consumers.find(name);
    return it != ix_.consumers.end() && it->second.size() == 1 && !outputs_.count(name);
  }
  bool IsScalarConst(const std::string& name) const {
    if (const Tensor* t = g_.FindInitializer(name)) return t->numel() == 1;
    auto p = ix_.producers.find(name);
    if (p == ix_.producers.end()) return false;
    const Node& n = g_.nodes[static_cast<size_t>(p->second)];
    return n.op_type == "Constant" && n.HasAttr("value") && n.attrs.at("value").t.numel() == 1;
  }
  // A single-use float initializer with C elements whose only non-1 axis
  // has size C and is followed by `trailing` axes (the spatial ones), so it
  // broadcasts along the channel axis; trailing 0 also accepts [C].
  bool PerChannel(const std::string& name, size_t c, size_t trailing) const {
    const Tensor* t = g_.FindInitializer(name);
    if (!t || !IsFloat(t->dtype()) || t->numel() != static_cast<int64_t>(c) || !SingleUse(name)) return false;
    if (trailing == 0 && t->rank() == 1) return true;
    for (size_t a = 0; a < t->rank(); ++a) {
      if (t->dim(a) == static_cast<int64_t>(c)) return t->rank() - 1 - a == trailing;
    }
    return false;
  }
  // Product of the static spatial dims of `v` (0 when unknown).
  size_t SpatialSize(const std::string& v) const {
    auto it = shaped_.value_info.find(v);
    if (it == shaped_.value_info.end() || !it->second.shape || it->second.shape->size() < 2) return 0;
    size_t s = 1;
    for (size_t d = 2; d < it->second.shape->size(); ++d) {
      const Dim& dim = (*it->second.shape)[d];
      if (!dim.is_static() || dim.value <= 0) return 0;
      s *= static_cast<size_t>(dim.value);
    }
    return s;
  }
  std::string AddFc(int node, const std::string& input, size_t spatial, ChannelGroup* grp) const {
    const Node& n = g_.nodes[static_cast<size_t>(node)];
    if ((n.op_type != "Gemm" && n.op_type != "MatMul") || n.Input(0) != input) {
      return StrCat("value '", input, "' is read by ", n.Describe());
    }
    auto it = by_name_.find(n.Input(1));
    if (it == by_name_.end()) return StrCat(n.Describe(), " does not multiply a constant weight");
    const WeightCandidate& c = cands_[it->second];
    if (!c.IsFloatMatrix() || !c.problem.empty() || c.uses.size() != 1 || c.k != grp->channels * spatial) {
      return StrCat(n.Describe(), ": weight '", c.name, "' is not a single-use float [N, ", grp->channels * spatial, "] matrix");
    }
    grp->fcs.push_back({it->second, spatial});
    return "";
  }

  const Graph& g_;
  const Graph& shaped_;
  const GraphIndex& ix_;
  const std::vector<WeightCandidate>& cands_;
  std::map<std::string, size_t> by_name_;
  std::set<std::string> outputs_;
};

// `t` with its first axis of size `c` (the channel axis: axis 0 of [C],
// [C, 1, ...] and depthwise filters, axis 1 of [1, C, 1, 1]) reduced to `keep`.
Tensor SelectChannels(const Tensor& t, size_t c, const std::vector<size_t>& keep) {
  size_t axis = 0;
  while (axis + 1 < t.rank() && t.dim(axis) != static_cast<int64_t>(c)) ++axis;
  return SelectAlongAxis(t, axis, keep);
}

// Columns of a channel-major input space (c * per + i) that the kept
// channels own.
std::vector<size_t> ExpandChannels(const std::vector<size_t>& keep, size_t per) {
  std::vector<size_t> cols;
  cols.reserve(keep.size() * per);
  for (size_t c : keep) {
    for (size_t i = 0; i < per; ++i) cols.push_back(c * per + i);
  }
  return cols;
}

}  // namespace

Status PruneConvChannels(Graph& g, const PassContext& ctx, const ConvPruneOptions& opt, PassReport* report) {
  const GraphIndex index = GraphIndex::Build(g);
  const std::vector<WeightCandidate> cands = FindWeights(g, index);
  Graph shaped = g;  // static spatial sizes for Flatten
  for (const Node& n : shaped.nodes) {
    for (const std::string& o : n.outputs) shaped.value_info.erase(o);
  }
  auto inferred = InferShapes(shaped);
  if (!inferred.ok()) return inferred.status().WithContext(StrCat(ctx.pass_name, ": shape inference"));
  const Tracer tracer(g, shaped, index, cands);
  const bool has_protect = !opt.protect.empty();
  const std::regex protect(has_protect ? opt.protect : std::string("$^"), std::regex::ECMAScript);

  std::vector<ChannelGroup> groups;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (!IsOnnxNode(n) || n.op_type != "Conv" || n.inputs.size() < 2) continue;
    ChannelGroup grp;
    const std::string why = tracer.Trace(static_cast<int>(i), &grp);
    if (!why.empty()) {
      ctx.Log(StrCat("Conv channels of '", n.Input(1), "' kept: ", why));
      continue;
    }
    std::vector<std::string> names = {grp.weight};
    for (const ConvConsumer& c : grp.convs) names.push_back(c.weight);
    for (const FcConsumer& f : grp.fcs) names.push_back(cands[f.cand].name);
    bool skip = false;
    for (const std::string& w : names) {
      skip |= !ctx.selection.WhyExcluded(w).empty() || (has_protect && std::regex_search(w, protect));
    }
    if (skip) {
      ctx.Log(StrCat("Conv channels of '", grp.weight, "' protected or excluded: kept"));
      continue;
    }
    groups.push_back(std::move(grp));
  }

  const ActivationStats* stats = ctx.activations;
  int64_t removed = 0, refitted = 0;
  std::map<std::string, TensorReport> rows;  // by weight name
  auto row = [&](const std::string& name, const Tensor& t) -> TensorReport& {
    auto it = rows.find(name);
    if (it != rows.end()) return it->second;
    TensorReport r;
    r.name = name;
    r.shape = t.shape();
    r.source_dtype = DTypeName(t.dtype());
    r.role = "conv";
    r.layout = DTypeName(t.dtype());
    r.bits = static_cast<int>(8 * DTypeSize(t.dtype()));
    r.params = t.numel();
    r.bytes_before = r.bytes_after = t.nbytes();
    r.requested = r.actual = "keep";
    return rows.emplace(name, std::move(r)).first->second;
  };

  for (ChannelGroup& grp : groups) {
    const size_t C = grp.channels;
    // Scores.
    std::vector<double> score(C, 0.0);
    bool from_activations = stats != nullptr;
    for (const ConvConsumer& cc : grp.convs) from_activations &= stats && stats->FindConv(cc.weight);
    for (const FcConsumer& f : grp.fcs) from_activations &= InputStats(cands[f.cand], stats) != nullptr;
    if (from_activations) {
      for (const ConvConsumer& cc : grp.convs) {
        const Tensor& t = *g.FindInitializer(cc.weight);
        const ActivationStat& st = *stats->FindConv(cc.weight);
        const std::vector<float> w = t.ToFloatVector();
        const size_t m = static_cast<size_t>(t.dim(0)), cin = static_cast<size_t>(t.dim(1));
        const size_t k = static_cast<size_t>(t.numel()) / (m * cin), mg = m / static_cast<size_t>(cc.group);
        for (size_t o = 0; o < m; ++o) {
          const size_t base = (o / mg) * cin;  // first input channel of o's group
          for (size_t j = 0; j < cin; ++j) {
            for (size_t e = 0; e < k; ++e) {
              const double wv = w[(o * cin + j) * k + e];
              score[base + j] += wv * wv * st.mean_sq[(base + j) * k + e];
            }
          }
        }
      }
      for (const FcConsumer& f : grp.fcs) {
        const WeightCandidate& c = cands[f.cand];
        const ActivationStat& st = *InputStats(c, stats);
        const std::vector<float> w = WeightRowsNK(c);
        for (size_t r = 0; r < c.n; ++r) {
          for (size_t col = 0; col < c.k; ++col) score[col / f.spatial] += static_cast<double>(w[r * c.k + col]) * w[r * c.k + col] * st.mean_sq[col];
        }
      }
    } else {
      const Tensor& pw = *g.FindInitializer(grp.weight);
      const std::vector<float> w = pw.ToFloatVector();
      const size_t per = static_cast<size_t>(pw.numel()) / C;
      std::vector<double> filt(C, 0.0), reads(C, 0.0);
      for (size_t c = 0; c < C; ++c) {
        for (size_t e = 0; e < per; ++e) filt[c] += static_cast<double>(w[c * per + e]) * w[c * per + e];
      }
      for (const Bn& bn : grp.bns) {
        const std::vector<float> gamma = g.FindInitializer(bn.scale)->ToFloatVector();
        const std::vector<float> var = g.FindInitializer(bn.var)->ToFloatVector();
        for (size_t c = 0; c < C; ++c) filt[c] *= static_cast<double>(gamma[c]) * gamma[c] / (var[c] + bn.eps);
      }
      for (const ConvConsumer& cc : grp.convs) {
        const Tensor& t = *g.FindInitializer(cc.weight);
        const std::vector<float> cw = t.ToFloatVector();
        const size_t m = static_cast<size_t>(t.dim(0)), cin = static_cast<size_t>(t.dim(1));
        const size_t k = static_cast<size_t>(t.numel()) / (m * cin), mg = m / static_cast<size_t>(cc.group);
        for (size_t o = 0; o < m; ++o) {
          for (size_t j = 0; j < cin; ++j) {
            for (size_t e = 0; e < k; ++e) reads[(o / mg) * cin + j] += static_cast<double>(cw[(o * cin + j) * k + e]) * cw[(o * cin + j) * k + e];
          }
        }
      }
      for (const FcConsumer& f : grp.fcs) {
        const WeightCandidate& c = cands[f.cand];
        const std::vector<float> fw = WeightRowsNK(c);
        for (size_t r = 0; r < c.n; ++r) {
          for (size_t col = 0; col < c.k; ++col) reads[col / f.spatial] += static_cast<double>(fw[r * c.k + col]) * fw[r * c.k + col];
        }
      }
      for (size_t c = 0; c < C; ++c) score[c] = filt[c] * reads[c];
    }

    // How many to keep: rounded to `multiple`, and equal per group of a
    // grouped consumer.
    const size_t q = static_cast<size_t>(grp.quantum), per_group = C / q;
    size_t keep = C - static_cast<size_t>(std::llround(opt.ratio * static_cast<double>(C)));
    keep = std::min(C, std::max(opt.multiple, (keep + opt.multiple / 2) / opt.multiple * opt.multiple));
    size_t keep_pg = std::max<size_t>(1, std::min(per_group, (keep + q / 2) / q));
    if (q == 1) {
      grp.keep = TopChannels(score, keep);
    } else {
      for (size_t gi = 0; gi < q; ++gi) {
        std::vector<double> part(score.begin() + static_cast<std::ptrdiff_t>(gi * per_group),
                                 score.begin() + static_cast<std::ptrdiff_t>((gi + 1) * per_group));
        for (size_t j : TopChannels(part, keep_pg)) grp.keep.push_back(gi * per_group + j);
      }
    }
    const std::vector<size_t>& kept = grp.keep;
    const size_t C2 = kept.size();
    const std::string what = StrCat("Conv channels ", C, " -> ", C2);
    if (C2 == C) {
      ctx.Log(StrCat("Conv channels of '", grp.weight, "': ", C, " kept after rounding to a multiple of ", opt.multiple));
    }
    removed += static_cast<int64_t>(C - C2);

    // Producer filters and every per-channel parameter.
    auto select = [&](const std::string& name) {
      const Tensor& t = *g.FindInitializer(name);
      TensorReport& r = row(name, t);
      Tensor nt = SelectChannels(t, C, kept);
      r.bytes_after = nt.nbytes();
      r.requested = r.actual = StrCat("channels-", C2);
      r.reason = what;
      if (!ctx.dry_run) *g.MutableInitializer(name) = std::move(nt);
    };
    select(grp.weight);
    for (const std::string& name : grp.per_channel) select(name);
    for (const Depthwise& d : grp.depthwise) {
      if (!ctx.dry_run) g.nodes[static_cast<size_t>(d.node)].attrs["group"] = Attribute::Int(static_cast<int64_t>(C2));
    }
    // Consumers: input channels removed, refitted where the Gram is known.
    for (const ConvConsumer& cc : grp.convs) {
      const Tensor& t = *g.FindInitializer(cc.weight);
      TensorReport& r = row(cc.weight, t);
      const size_t m = static_cast<size_t>(t.dim(0)), cin = static_cast<size_t>(t.dim(1));
      const size_t k = static_cast<size_t>(t.numel()) / (m * cin);
      std::vector<int64_t> shape = t.shape();
      const ActivationStat* st = stats ? stats->FindConv(cc.weight) : nullptr;
      const bool refit = opt.reconstruct && cc.group == 1 && st && !st->gram.empty();
      r.requested = r.actual = StrCat("inputs-", C2);
      r.method = refit ? "least-squares" : "select";
      r.importance = from_activations ? "activations" : "weights";
      std::vector<float> w = t.ToFloatVector(), out;
      if (cc.group == 1) {
        const std::vector<size_t> cols = ExpandChannels(kept, k);
        out.resize(m * cols.size());
        for (size_t o = 0; o < m; ++o) {
          for (size_t j = 0; j < cols.size(); ++j) out[o * cols.size() + j] = w[o * cin * k + cols[j]];
        }
        if (refit && !ctx.dry_run) {
          auto fit = RefitKeptInputs(w.data(), m, cin * k, cols, st->gram.data(), opt.damp);
          if (!fit.ok()) return fit.status().WithContext(StrCat(ctx.pass_name, ": '", cc.weight, "'"));
          out = std::move(*fit);
          ++refitted;
        }
        if (st && st->sample_rows > 0 && !ctx.dry_run) {
          r.output_error_measured = true;
          r.output_rel_error = KeptInputsOutputError(w.data(), m, cin * k, out.data(), cols, st->sample.data(),
                                                     static_cast<size_t>(st->sample_rows));
        }
        shape[1] = static_cast<int64_t>(C2);
      } else {
        const size_t mg = m / static_cast<size_t>(cc.group);
        const size_t keep_g = C2 / static_cast<size_t>(cc.group);
        out.resize(m * keep_g * k);
        for (size_t o = 0; o < m; ++o) {
          const size_t gi = o / mg;
          for (size_t j = 0; j < keep_g; ++j) {
            const size_t src = kept[gi * keep_g + j] - gi * cin;
            std::copy_n(&w[(o * cin + src) * k], k, &out[(o * keep_g + j) * k]);
          }
        }
        shape[1] = static_cast<int64_t>(keep_g);
      }
      const size_t cols_out = out.size() / m;
      Tensor nt = WeightFromRowsNK(t.dtype(), false, m, cols_out, out).Reshaped(shape);
      r.bytes_after = nt.nbytes();
      r.reason = StrCat(what, refit ? ", refitted by least squares" : "");
      if (!ctx.dry_run) *g.MutableInitializer(cc.weight) = std::move(nt);
    }
    for (const FcConsumer& f : grp.fcs) {
      const WeightCandidate& c = cands[f.cand];
      TensorReport& r = row(c.name, c.tensor);
      r.role = c.role;
      const std::vector<size_t> cols = ExpandChannels(kept, f.spatial);
      const ActivationStat* st = InputStats(c, stats);
      const bool refit = opt.reconstruct && st && !st->gram.empty();
      const std::vector<float> w = WeightRowsNK(c);
      std::vector<float> out(c.n * cols.size());
      for (size_t o = 0; o < c.n; ++o) {
        for (size_t j = 0; j < cols.size(); ++j) out[o * cols.size() + j] = w[o * c.k + cols[j]];
      }
      if (refit && !ctx.dry_run) {
        auto fit = RefitKeptInputs(w.data(), c.n, c.k, cols, st->gram.data(), opt.damp);
        if (!fit.ok()) return fit.status().WithContext(StrCat(ctx.pass_name, ": '", c.name, "'"));
        out = std::move(*fit);
        ++refitted;
      }
      if (st && st->sample_rows > 0 && !ctx.dry_run) {
        r.output_error_measured = true;
        r.output_rel_error = KeptInputsOutputError(w.data(), c.n, c.k, out.data(), cols, st->sample.data(),
                                                   static_cast<size_t>(st->sample_rows));
      }
      Tensor nt = WeightFromRowsNK(c.tensor.dtype(), c.kn, c.n, cols.size(), out);
      r.requested = r.actual = StrCat("inputs-", cols.size());
      r.method = refit ? "least-squares" : "select";
      r.importance = from_activations ? "activations" : "weights";
      r.bytes_after = nt.nbytes();
      r.reason = StrCat(what, refit ? ", refitted by least squares" : "");
      if (!ctx.dry_run) {
        SetWeight(g, c, std::move(nt));
        ShrinkMask(g, c.name, cols, false);
      }
    }
  }
  if (!ctx.dry_run && !groups.empty()) {
    // Shapes of the rewritten values, re-derived rather than patched.
    Status re = RefreshValueInfo(g);
    if (!re.ok()) return Internal(ctx.pass_name, ": rewritten graph fails shape inference: ", re.message());
  }
  // Rows: update the FFN part's rows of the same weights, append the rest.
  for (auto& [name, r] : rows) {
    auto it = std::find_if(report->tensors.begin(), report->tensors.end(),
                           [&tname = name](const TensorReport& t) { return t.name == tname; });
    if (it == report->tensors.end()) {
      report->tensors.push_back(std::move(r));
      continue;
    }
    it->bytes_after = r.bytes_after;
    it->requested = it->actual = r.requested;
    it->method = r.method;
    it->importance = r.importance;
    it->output_error_measured = r.output_error_measured;
    it->output_rel_error = r.output_rel_error;
    it->reason = it->reason == "not in an FFN channel group" ? r.reason : StrCat(it->reason, "; ", r.reason);
  }
  report->counters["conv_groups"] = static_cast<int64_t>(groups.size());
  report->counters["conv_channels_removed"] = removed;
  report->counters["conv_refitted"] = refitted;
  ctx.Log(StrCat(groups.size(), " Conv channel groups, ", removed, " channels removed, ", refitted, " consumers refitted"));
  return Status::Ok();
}

}  // namespace slim
