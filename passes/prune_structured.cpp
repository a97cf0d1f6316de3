// prune_structured: finds channel groups (a consumer linear layer fed
// elementwise by producer linear layers), scores their channels, keeps the
// best, and rewrites producers, constants and the (refitted) consumer in a
// copy of the graph; see prune_structured.h.
#include "passes/prune_structured.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <regex>
#include <set>
#include <unordered_map>

#include "libcompress/numerics/prune.h"
#include "passes/attention_heads.h"
#include "passes/conv_channels.h"
#include "passes/weight_finder.h"

namespace slim {
namespace {

using Clock = std::chrono::steady_clock;

bool IsOnnxNode(const Node& n) { return n.domain.empty() || n.domain == "ai.onnx"; }

// Ops that act on each channel of the last axis independently.
const std::set<std::string>& ElementwiseOps() {
  static const std::set<std::string> ops = {"Mul",  "Add",  "Sub",     "Div", "Sigmoid", "Tanh", "Relu",
                                            "Gelu", "Erf",  "Neg",     "Identity", "Softplus", "HardSigmoid",
                                            "Elu",  "LeakyRelu", "Cast", "Clip", "Pow", "Sqrt", "Exp"};
  return ops;
}

// A per-channel constant of an elementwise op: an initializer whose numel is
// the channel count and whose last dim is it ([I] or [1, .., I]).
struct ChannelConst {
  std::string name;
};

struct Group {
  size_t consumer = 0;                // candidate index of W_down
  std::vector<size_t> producers;      // candidate indices of W_gate, W_up, ...
  std::vector<std::string> biases;    // Gemm C inputs of producers (initializers [I])
  std::vector<ChannelConst> consts;   // per-channel constants of elementwise ops
  std::vector<std::string> values;    // values carrying the channels (for value_info)
  std::string input;                  // the consumer's input value (a)
  size_t channels = 0;                // I
  std::vector<size_t> keep;           // chosen channels, ascending
};

class Finder {
 public:
  Finder(const Graph& g, const GraphIndex& ix, const std::vector<WeightCandidate>& cands)
      : g_(g), ix_(ix), cands_(cands), linear_by_output_(LinearOutputs(g, cands)) {}

  // The group whose consumer is candidate `d`, or why there is none.
  std::string Trace(size_t d, Group* out) const {
    const WeightCandidate& down = cands_[d];
    // The consumer's outputs keep their shape, so it may be the classifier.
    if (!down.IsFloatMatrix() || !down.problem.empty() || down.uses.size() != 1 ||
        (down.role != "linear" && down.role != "classifier")) {
      return "not a plain linear layer";
    }
    const Node& dn = g_.nodes[static_cast<size_t>(down.uses[0].node)];
    Group grp;
    grp.consumer = d;
    grp.input = dn.Input(0);
    grp.channels = down.k;
    std::set<int> nodes;  // elementwise nodes inside the group
    std::vector<std::string> stack = {grp.input};
    std::set<std::string> seen;
    while (!stack.empty()) {
      const std::string v = stack.back();
      stack.pop_back();
      if (!seen.insert(v).second) continue;
      grp.values.push_back(v);
      auto lin = linear_by_output_.find(v);
      if (lin != linear_by_output_.end()) {
        const WeightCandidate& p = cands_[lin->second];
        if (p.n != grp.channels) return StrCat("producer '", p.name, "' has ", p.n, " outputs, not ", grp.channels);
        if (p.role != "linear") return StrCat("producer '", p.name, "' is a ", p.role);
        const Node& pn = g_.nodes[static_cast<size_t>(p.uses[0].node)];
        const std::string& bias = pn.Input(2);
        if (!bias.empty()) {
          if (!g_.FindInitializer(bias)) return StrCat("producer '", p.name, "' has a bias that is not an initializer");
          grp.biases.push_back(bias);
        }
        grp.producers.push_back(lin->second);
        continue;
      }
      const int pi = g_.Producer(v);
      if (pi < 0) return StrCat("value '", v, "' is a graph input or initializer, not a linear layer's output");
      const Node& n = g_.nodes[static_cast<size_t>(pi)];
      if (!IsOnnxNode(n) || !ElementwiseOps().count(n.op_type)) {
        return StrCat("value '", v, "' comes from ", n.Describe(), ", not an elementwise op");
      }
      nodes.insert(pi);
      for (const std::string& in : n.inputs) {
        if (in.empty()) continue;
        if (const Tensor* t = g_.FindInitializer(in)) {
          if (t->numel() == 1) continue;
          if (t->numel() == static_cast<int64_t>(grp.channels) && t->rank() >= 1 &&
              t->dim(t->rank() - 1) == static_cast<int64_t>(grp.channels)) {
            grp.consts.push_back({in});
            continue;
          }
          return StrCat(n.Describe(), " reads constant '", in, "' of shape ", ShapeToString(t->shape()),
                        ", neither a scalar nor per channel");
        }
        const int cp = g_.Producer(in);
        if (cp >= 0 && g_.nodes[static_cast<size_t>(cp)].op_type == "Constant") {
          const Node& cn = g_.nodes[static_cast<size_t>(cp)];
          if (cn.HasAttr("value") && cn.attrs.at("value").t.numel() == 1) continue;
          return StrCat(n.Describe(), " reads a non-scalar Constant '", in, "'");
        }
        stack.push_back(in);
      }
    }
    if (grp.producers.empty()) return "no producing linear layer";
    // Nothing outside the group may read its values (the consumer reads the
    // input; elementwise nodes read each other and the producers' outputs).
    std::set<std::string> outputs;
    for (const auto& o : g_.outputs) outputs.insert(o.name);
    for (const std::string& v : grp.values) {
      if (outputs.count(v)) return StrCat("value '", v, "' is a graph output");
      auto it = ix_.consumers.find(v);
      if (it == ix_.consumers.end()) continue;
      for (int ci : it->second) {
        if (nodes.count(ci) || (v == grp.input && ci == down.uses[0].node)) continue;
        return StrCat("value '", v, "' is also read by ", g_.nodes[static_cast<size_t>(ci)].Describe());
      }
    }
    for (const ChannelConst& c : grp.consts) {
      auto it = ix_.consumers.find(c.name);
      if (it != ix_.consumers.end() && it->second.size() > 1) return StrCat("constant '", c.name, "' is shared");
    }
    *out = std::move(grp);
    return "";
  }

 private:
  const Graph& g_;
  const GraphIndex& ix_;
  const std::vector<WeightCandidate>& cands_;
  const std::unordered_map<std::string, size_t> linear_by_output_;
};

class PruneStructuredPass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo{
        "prune_structured",
        "remove whole FFN neurons (rows of gate/up, columns of down), attention heads / KV groups and Conv "
        "output channels: a smaller dense model",
        {
            FloatOption("ffn_ratio", 0.25, 0.0, 0.95, "fraction of each FFN's neurons removed"),
            EnumOption("scope", "layer", {"layer", "global"},
                       "layer: every FFN loses ffn_ratio; global: one threshold over all FFNs' scores"),
            StringOption("protect", "",
                         "regular expression: FFNs, attention (all layers) and Conv groups any of whose weights match are "
                         "left alone (\"\" = none)"),
            IntOption("multiple", 8, 1, 4096, "kept neurons per FFN rounded to a multiple of this (SIMD / groups)"),
            BoolOption("reconstruct", true,
                       "refit the consumer (down projection) on the kept neurons by ridge least squares when "
                       "calibration data is given"),
            FloatOption("damp", 0.01, 1e-6, 10.0, "ridge term of the refit, relative to the mean Hessian diagonal"),
            IntOption("kv_groups", 0, 0, 1024,
                      "KV heads removed per attention layer, each with the query heads that read it (GQA)"),
            FloatOption("head_ratio", 0.0, 0.0, 0.95,
                        "fraction of query heads removed inside each KV group (the same count in every group)"),
            FloatOption("conv_ratio", 0.25, 0.0, 0.95,
                        "fraction of each Conv's output channels removed (CNN graphs; channels meeting in an "
                        "Add/Concat are left alone)"),
        }};
    return kInfo;
  }

  Status ValidateOptions(const Options& o) const override {
    try {
      std::regex re(o.GetString("protect"), std::regex::ECMAScript);
    } catch (const std::regex_error& e) {
      return InvalidInput("pass 'prune_structured' option protect: bad regular expression: ", e.what());
    }
    return Status::Ok();
  }

  bool WantsHessians(const PassContext& ctx) const override { return ctx.options.GetBool("reconstruct"); }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    const auto t0 = Clock::now();
    const GraphIndex index = GraphIndex::Build(graph);
    const std::vector<WeightCandidate> cands = FindWeights(graph, index);
    const Finder finder(graph, index, cands);
    const std::string protect_src = ctx.options.GetString("protect");
    const std::regex protect(protect_src.empty() ? std::string("$^") : protect_src, std::regex::ECMAScript);
    std::vector<Group> groups;
    for (size_t d = 0; d < cands.size(); ++d) {
      Group grp;
      if (!finder.Trace(d, &grp).empty()) continue;
      bool skip = !ctx.selection.WhyExcluded(cands[d].name).empty();
      for (size_t p : grp.producers) skip |= !ctx.selection.WhyExcluded(cands[p].name).empty();
      skip |= !protect_src.empty() && std::regex_search(cands[d].name, protect);
      for (size_t p : grp.producers) skip |= !protect_src.empty() && std::regex_search(cands[p].name, protect);
      if (skip) {
        ctx.Log(StrCat("FFN of '", cands[d].name, "' protected or excluded: kept"));
        continue;
      }
      groups.push_back(std::move(grp));
    }
    if (!ctx.activations) ctx.Log("no calibration data (compile --calib): neuron importance from weight norms only");

    // Scores per channel.
    std::vector<std::vector<double>> scores(groups.size());
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const Group& grp = groups[gi];
      const std::vector<float> down = WeightRowsNK(cands[grp.consumer]);
      const size_t n = cands[grp.consumer].n, I = grp.channels;
      std::vector<double> col(I, 0.0);
      for (size_t r = 0; r < n; ++r) {
        for (size_t j = 0; j < I; ++j) col[j] += static_cast<double>(down[r * I + j]) * down[r * I + j];
      }
      const ActivationStat* st = ctx.activations ? ctx.activations->Find(grp.input) : nullptr;
      if (st && static_cast<size_t>(st->dim) == I) {
        for (size_t j = 0; j < I; ++j) col[j] *= st->mean_sq[j];
      } else {
        for (size_t p : grp.producers) {
          const std::vector<float> w = WeightRowsNK(cands[p]);
          const size_t k = cands[p].k;
          for (size_t j = 0; j < I; ++j) {
            double s = 0;
            for (size_t e = 0; e < k; ++e) s += static_cast<double>(w[j * k + e]) * w[j * k + e];
            col[j] *= s;
          }
        }
      }
      scores[gi] = std::move(col);
    }
    const double ratio = ctx.options.GetFloat("ffn_ratio");
    const size_t multiple = static_cast<size_t>(ctx.options.GetInt("multiple"));
    auto rounded = [&](size_t keep, size_t I) {
      const size_t r = std::max(multiple, (keep + multiple / 2) / multiple * multiple);
      return std::min(I, r);
    };
    double threshold = 0;
    if (ctx.options.GetString("scope") == "global" && !groups.empty()) {
      std::vector<double> all;
      for (const auto& s : scores) all.insert(all.end(), s.begin(), s.end());
      std::sort(all.begin(), all.end());
      threshold = all[std::min(all.size() - 1, static_cast<size_t>(ratio * static_cast<double>(all.size())))];
    }
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const size_t I = groups[gi].channels;
      size_t keep = I - static_cast<size_t>(std::llround(ratio * static_cast<double>(I)));
      if (ctx.options.GetString("scope") == "global") {
        keep = static_cast<size_t>(std::count_if(scores[gi].begin(), scores[gi].end(),
                                                 [&](double v) { return v >= threshold; }));
      }
      const size_t count = rounded(keep, I);
      const Group& grp = groups[gi];
      const ActivationStat* st = ctx.activations ? ctx.activations->Find(grp.input) : nullptr;
      if (ctx.options.GetBool("reconstruct") && st && !st->gram.empty() && static_cast<size_t>(st->dim) == I &&
          count < I) {
        // With the Hessian: OBS selection, which accounts for what the
        // refit can compensate.
        const WeightCandidate& d = cands[grp.consumer];
        const std::vector<float> w = WeightRowsNK(d);
        auto sel = ObsSelectChannels(w.data(), d.n, I, st->gram.data(), ctx.options.GetFloat("damp"), I - count);
        if (!sel.ok()) return sel.status().WithContext(StrCat(ctx.pass_name, ": '", d.name, "'"));
        groups[gi].keep = std::move(*sel);
      } else {
        groups[gi].keep = TopChannels(scores[gi], count);
      }
    }

    PassReport report;
    report.pass = ctx.pass_name;
    std::vector<TensorReport> rows(cands.size());
    std::vector<bool> in_group(cands.size(), false);
    Graph out = graph;
    uint64_t before = 0, after = 0;
    int64_t removed = 0, refitted = 0;
    for (size_t gi = 0; gi < groups.size(); ++gi) {
      const Group& grp = groups[gi];
      const std::vector<size_t>& keep = grp.keep;
      const size_t I = grp.channels, I2 = keep.size();
      if (I2 == I) continue;  // nothing removed (global scope): weights untouched
      removed += static_cast<int64_t>(I - I2);
      const std::string what = StrCat("FFN neurons ", I, " -> ", I2);
      for (size_t p : grp.producers) {
        const WeightCandidate& c = cands[p];
        in_group[p] = true;
        TensorReport r = KeptRow(c);
        r.requested = r.actual = StrCat("neurons-", I2);
        r.reason = what;
        if (!ctx.dry_run) {
          const std::vector<float> w = WeightRowsNK(c);
          std::vector<float> kept(I2 * c.k);
          for (size_t j = 0; j < I2; ++j) std::copy_n(&w[keep[j] * c.k], c.k, &kept[j * c.k]);
          Tensor t = WeightFromRowsNK(c.tensor.dtype(), c.kn, I2, c.k, kept);
          r.bytes_after = t.nbytes();
          SetWeight(out, c, std::move(t));
        } else {
          r.bytes_after = r.bytes_before * I2 / I;
        }
        rows[p] = std::move(r);
      }
      const WeightCandidate& d = cands[grp.consumer];
      in_group[grp.consumer] = true;
      TensorReport r = KeptRow(d);
      r.requested = r.actual = StrCat("inputs-", I2);
      const ActivationStat* st = ctx.activations ? ctx.activations->Find(grp.input) : nullptr;
      const bool refit = ctx.options.GetBool("reconstruct") && st && !st->gram.empty() &&
                         static_cast<size_t>(st->dim) == I;
      r.method = refit ? "least-squares" : "select";
      r.importance = st ? "activations" : "weights";
      if (!ctx.dry_run) {
        const std::vector<float> w = WeightRowsNK(d);
        std::vector<float> kept(d.n * I2);
        for (size_t row = 0; row < d.n; ++row) {
          for (size_t j = 0; j < I2; ++j) kept[row * I2 + j] = w[row * I + keep[j]];
        }
        if (refit) {
          auto fit = RefitKeptInputs(w.data(), d.n, I, keep, st->gram.data(), ctx.options.GetFloat("damp"));
          if (!fit.ok()) return fit.status().WithContext(StrCat(ctx.pass_name, ": '", d.name, "'"));
          kept = std::move(*fit);
          ++refitted;
        }
        if (st && st->sample_rows > 0) {
          // Output error of the consumer on the sample, with the removed
          // channels' inputs gone: W x vs W' x_S.
          r.output_error_measured = true;
          r.output_rel_error = KeptInputsOutputError(w.data(), d.n, I, kept.data(), keep, st->sample.data(),
                                                     static_cast<size_t>(st->sample_rows));
        }
        Tensor t = WeightFromRowsNK(d.tensor.dtype(), d.kn, d.n, I2, kept);
        r.bytes_after = t.nbytes();
        SetWeight(out, d, std::move(t));
        for (const std::string& b : grp.biases) *out.MutableInitializer(b) = LastAxis(*graph.FindInitializer(b), keep);
        for (const ChannelConst& c : grp.consts) {
          *out.MutableInitializer(c.name) = LastAxis(*graph.FindInitializer(c.name), keep);
        }
        for (const std::string& v : grp.values) {
          auto vi = out.value_info.find(v);
          if (vi != out.value_info.end() && vi->second.shape && !vi->second.shape->empty() &&
              vi->second.shape->back().value == static_cast<int64_t>(I)) {
            vi->second.shape->back() = Dim(static_cast<int64_t>(I2));
          }
        }
        // Masks of pruned weights shrink with them.
        for (size_t p : grp.producers) ShrinkMask(out, cands[p].name, keep, true);
        ShrinkMask(out, d.name, keep, false);
      } else {
        r.bytes_after = r.bytes_before * I2 / I;
      }
      r.reason = StrCat(what, refit ? ", refitted by least squares" : "");
      rows[grp.consumer] = std::move(r);
    }
    if (!ctx.dry_run) {
      // A Hugging Face source records its FFN width; keep it true when uniform.
      std::set<size_t> widths;
      for (const Group& grp : groups) widths.insert(grp.keep.size());
      if (widths.size() == 1 && out.metadata.count("hf.intermediate_size")) {
        out.metadata["hf.intermediate_size"] = std::to_string(*widths.begin());
      }
      Status valid = out.Validate();
      if (!valid.ok()) return Internal(ctx.pass_name, ": rewritten graph does not validate: ", valid.message());
      graph = std::move(out);
    }
    for (size_t i = 0; i < cands.size(); ++i) {
      if (!in_group[i]) {
        rows[i] = KeptRow(cands[i]);
        rows[i].requested = "keep";
        rows[i].reason = "not in an FFN channel group";
      }
      report.tensors.push_back(std::move(rows[i]));
    }
    auto validated = [&]() -> Status {
      if (ctx.dry_run) return Status::Ok();
      Status valid = graph.Validate();
      return valid.ok() ? valid : Internal(ctx.pass_name, ": rewritten graph does not validate: ", valid.message());
    };
    if (ctx.options.GetInt("kv_groups") > 0 || ctx.options.GetFloat("head_ratio") > 0) {
      HeadPruneOptions hopt;
      hopt.kv_groups = ctx.options.GetInt("kv_groups");
      hopt.head_ratio = ctx.options.GetFloat("head_ratio");
      hopt.reconstruct = ctx.options.GetBool("reconstruct");
      hopt.damp = ctx.options.GetFloat("damp");
      hopt.protect = protect_src;
      SLIM_RETURN_IF_ERROR(PruneAttentionHeads(graph, ctx, hopt, &report));
      SLIM_RETURN_IF_ERROR(validated());
    }
    const double conv_ratio = ctx.options.GetFloat("conv_ratio");
    if (conv_ratio > 0 && std::any_of(graph.nodes.begin(), graph.nodes.end(),
                                      [](const Node& n) { return n.op_type == "Conv"; })) {
      ConvPruneOptions copt;
      copt.ratio = conv_ratio;
      copt.multiple = multiple;
      copt.reconstruct = ctx.options.GetBool("reconstruct");
      copt.damp = ctx.options.GetFloat("damp");
      copt.protect = protect_src;
      SLIM_RETURN_IF_ERROR(PruneConvChannels(graph, ctx, copt, &report));
      SLIM_RETURN_IF_ERROR(validated());
    }
    for (const TensorReport& r : report.tensors) {
      before += r.bytes_before;
      after += r.bytes_after;
    }
    report.counters["ffn_groups"] = static_cast<int64_t>(groups.size());
    report.counters["neurons_removed"] = removed;
    report.counters["refitted"] = refitted;
    report.counters["bytes_before"] = static_cast<int64_t>(before);
    report.counters["bytes_after"] = static_cast<int64_t>(after);
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    ctx.Log(StrCat(groups.size(), " FFN groups, ", removed, " neurons removed, ", refitted, " consumers refitted"));
    return report;
  }

 private:
  // Elements of `t` (last axis = channels) at the kept channels.
  static Tensor LastAxis(const Tensor& t, const std::vector<size_t>& keep) {
    return SelectAlongAxis(t, t.rank() - 1, keep);
  }
};

}  // namespace

std::unique_ptr<Pass> MakePruneStructuredPass() { return std::make_unique<PruneStructuredPass>(); }

}  // namespace slim
