// Attention head pruning (GQA-aware): attention found around each layer's
// KV cache, heads scored, and the graph rewritten; see attention_heads.h.
#include "passes/attention_heads.h"

#include <algorithm>
#include <cmath>
#include <regex>
#include <set>
#include <unordered_map>

#include "libcompress/io/model.h"
#include "libcompress/numerics/prune.h"
#include "passes/weight_finder.h"

namespace slim {
namespace {

// One layer's attention: candidates of W_q, W_k, W_v, W_o, their biases
// (initializers, "" when none) and the shape constants of its Reshapes.
struct Attention {
  int64_t layer = 0;
  size_t q = 0, k = 0, v = 0, o = 0;
  std::string q_bias, k_bias, v_bias;
  std::string c_q, c_k, c_v, c_grouped, c_ctx4, c_ctx2;
  int64_t heads = 0, kv = 0, head_dim = 0;
};

class Finder {
 public:
  Finder(const Graph& g, const GraphIndex& ix, const std::vector<WeightCandidate>& cands)
      : g_(g), ix_(ix), cands_(cands), linear_by_output_(LinearOutputs(g, cands)) {}

  // Layer l's attention, or why it is not recognised ("" and *out filled).
  std::string Find(int64_t l, Attention* out) const {
    Attention a;
    a.layer = l;
    const Node* pk = ProducerOf(DecoderSpec::PresentKey(l));
    const Node* pv = ProducerOf(DecoderSpec::PresentValue(l));
    if (!pk || !pv || pk->op_type != "Concat" || pv->op_type != "Concat" || pk->inputs.size() != 2 ||
        pv->inputs.size() != 2 || pk->Input(0) != DecoderSpec::PastKey(l) || pv->Input(0) != DecoderSpec::PastValue(l)) {
      return StrCat("present.", l, ".key/value are not Concat(past, new) of the KV cache");
    }
    int rk = -1, rv = -1, rq = -1;
    std::string why = Projection(pk->Input(1), &a.k, &rk);
    if (!why.empty()) return StrCat("keys: ", why);
    why = Projection(pv->Input(1), &a.v, &rv);
    if (!why.empty()) return StrCat("values: ", why);
    // Queries: the scores MatMul reads Unsqueeze(Transpose(present key)).
    const Node* kt = OnlyConsumer(DecoderSpec::PresentKey(l), "Transpose");
    const Node* kt5 = kt ? OnlyConsumer(kt->outputs[0], "Unsqueeze") : nullptr;
    const Node* scores = kt5 ? OnlyConsumer(kt5->outputs[0], "MatMul") : nullptr;
    if (!scores || scores->Input(1) != kt5->outputs[0]) return "no scores MatMul reads the keys";
    const Node* grouped = ProducerOf(scores->Input(0));
    if (!grouped || grouped->op_type != "Reshape") return "the scores MatMul's queries do not come from a Reshape";
    why = Projection(grouped->Input(0), &a.q, &rq);
    if (!why.empty()) return StrCat("queries: ", why);
    // Output: ctx = MatMul(probs, Unsqueeze(present value)) -> Reshape ->
    // Transpose -> Reshape -> W_o.
    const Node* v5 = OnlyConsumer(DecoderSpec::PresentValue(l), "Unsqueeze");
    const Node* ctx = v5 ? OnlyConsumer(v5->outputs[0], "MatMul") : nullptr;
    const Node* ctx4 = ctx ? OnlyConsumer(ctx->outputs[0], "Reshape") : nullptr;
    const Node* ctxt = ctx4 ? OnlyConsumer(ctx4->outputs[0], "Transpose") : nullptr;
    const Node* ctx2 = ctxt ? OnlyConsumer(ctxt->outputs[0], "Reshape") : nullptr;
    if (!ctx2) return "the attention context does not reach a Reshape -> Transpose -> Reshape chain";
    auto consumers = ix_.consumers.find(ctx2->outputs[0]);
    if (consumers == ix_.consumers.end() || consumers->second.size() != 1) return "the context feeds more than W_o";
    bool found = false;
    for (size_t i = 0; i < cands_.size(); ++i) {
      const WeightCandidate& c = cands_[i];
      if (c.uses.size() == 1 && c.uses[0].node == consumers->second[0] && c.problem.empty() && c.IsFloatMatrix() &&
          g_.nodes[static_cast<size_t>(c.uses[0].node)].Input(0) == ctx2->outputs[0]) {
        a.o = i;
        found = true;
      }
    }
    if (!found) return "the context is not multiplied by a plain linear weight";
    // Shape constants and the head counts they must hold.
    const Node& nq = g_.nodes[static_cast<size_t>(rq)];
    const Node& nk = g_.nodes[static_cast<size_t>(rk)];
    const Node& nv = g_.nodes[static_cast<size_t>(rv)];
    for (auto [node, name] : {std::pair<const Node*, std::string*>{&nq, &a.c_q}, {&nk, &a.c_k}, {&nv, &a.c_v},
                              {grouped, &a.c_grouped}, {ctx4, &a.c_ctx4}, {ctx2, &a.c_ctx2}}) {
      *name = ShapeConstant(*node);
      if (name->empty()) return StrCat(node->Describe(), ": its shape is not built from an int64 constant");
    }
    const std::vector<int64_t> cq = Values(a.c_q);
    if (cq.size() < 2 || cq.back() <= 0) return StrCat("shape constant '", a.c_q, "' does not end in head_dim");
    a.head_dim = cq.back();
    const int64_t hd = a.head_dim;
    if (cands_[a.q].n % static_cast<size_t>(hd) != 0 || cands_[a.k].n % static_cast<size_t>(hd) != 0) {
      return "projection widths are not multiples of head_dim";
    }
    a.heads = static_cast<int64_t>(cands_[a.q].n) / hd;
    a.kv = static_cast<int64_t>(cands_[a.k].n) / hd;
    if (a.kv <= 0 || a.heads % a.kv != 0 || cands_[a.v].n != cands_[a.k].n ||
        cands_[a.o].k != static_cast<size_t>(a.heads * hd)) {
      return "q/k/v/o widths do not fit heads x head_dim";
    }
    const int64_t rep = a.heads / a.kv;
    auto tail = [&](const std::string& name, std::vector<int64_t> want) {
      const std::vector<int64_t> v = Values(name);
      if (v.size() < want.size()) return false;
      for (size_t i = 0; i < want.size(); ++i) {
        if (want[i] != -2 && v[v.size() - want.size() + i] != want[i]) return false;
      }
      return true;
    };
    if (!tail(a.c_q, {a.heads, hd}) || !tail(a.c_k, {a.kv, hd}) || !tail(a.c_v, {a.kv, hd}) ||
        !tail(a.c_grouped, {a.kv, rep, -1, hd}) || !tail(a.c_ctx4, {a.heads, -1, hd}) ||
        !tail(a.c_ctx2, {a.heads * hd})) {
      return "the Reshape shape constants do not hold the head counts the weights imply";
    }
    for (auto [cand, bias] : {std::pair<size_t, std::string*>{a.q, &a.q_bias}, {a.k, &a.k_bias}, {a.v, &a.v_bias}}) {
      const Node& n = g_.nodes[static_cast<size_t>(cands_[cand].uses[0].node)];
      if (n.Input(2).empty()) continue;
      *bias = InitializerThroughCast(n.Input(2));
      if (bias->empty()) return StrCat(n.Describe(), ": its bias is not an initializer");
    }
    *out = std::move(a);
    return "";
  }

  std::vector<int64_t> Values(const std::string& name) const { return g_.FindInitializer(name)->ToInt64Vector(); }

 private:
  const Node* ProducerOf(const std::string& v) const {
    auto it = ix_.producers.find(v);
    return it == ix_.producers.end() ? nullptr : &g_.nodes[static_cast<size_t>(it->second)];
  }
  const Node* OnlyConsumer(const std::string& v, const char* op) const {
    auto it = ix_.consumers.find(v);
    if (it == ix_.consumers.end()) return nullptr;
    const Node* found = nullptr;
    for (int ci : it->second) {
      const Node& n = g_.nodes[static_cast<size_t>(ci)];
      if (n.op_type != op || n.outputs.empty() || n.outputs[0].empty()) continue;
      if (found) return nullptr;
      found = &n;
    }
    return found;
  }
  // The initializer a value is, directly or through one Cast.
  std::string InitializerThroughCast(const std::string& v) const {
    if (g_.FindInitializer(v)) return v;
    const Node* p = ProducerOf(v);
    if (p && p->op_type == "Cast" && g_.FindInitializer(p->Input(0))) return p->Input(0);
    return "";
  }
  // The int64 initializer a Reshape's shape is (or ends with, through a
  // Concat of a dynamic prefix and the constant), or "".
  std::string ShapeConstant(const Node& reshape) const {
    std::string s = reshape.Input(1);
    if (const Node* p = ProducerOf(s); p && p->op_type == "Concat" && !p->inputs.empty()) s = p->inputs.back();
    const Tensor* t = g_.FindInitializer(s);
    return t && t->dtype() == DType::kInt64 && t->rank() == 1 ? s : "";
  }
  // From a value computed from a projection (Linear -> Reshape -> Transpose
  // -> rotary ops), back to the projection's candidate and Reshape node.
  std::string Projection(const std::string& value, size_t* cand, int* reshape) const {
    static const std::set<std::string> through = {"Add", "Mul", "Sub", "Concat", "Slice", "Neg", "Cast", "Identity"};
    std::vector<std::string> stack = {value};
    std::set<std::string> seen;
    std::set<std::pair<size_t, int>> found;
    while (!stack.empty()) {
      const std::string v = stack.back();
      stack.pop_back();
      if (!seen.insert(v).second) continue;
      const Node* n = ProducerOf(v);
      if (!n) continue;
      if (n->op_type == "Transpose") {
        const Node* r = ProducerOf(n->Input(0));
        if (!r || r->op_type != "Reshape") continue;
        auto lin = linear_by_output_.find(r->Input(0));
        if (lin != linear_by_output_.end() && cands_[lin->second].role == "linear") {
          found.insert({lin->second, static_cast<int>(r - g_.nodes.data())});
        }
        continue;
      }
      // Rotary tables and scales are side inputs: walking into them finds no
      // projection, so every input is followed.
      if (!through.count(n->op_type)) continue;
      for (const std::string& in : n->inputs) {
        if (!in.empty()) stack.push_back(in);
      }
    }
    if (found.size() != 1) return StrCat(found.size(), " projections (Linear -> Reshape -> Transpose) feed '", value, "'");
    *cand = found.begin()->first;
    *reshape = found.begin()->second;
    return "";
  }

  const Graph& g_;
  const GraphIndex& ix_;
  const std::vector<WeightCandidate>& cands_;
  const std::unordered_map<std::string, size_t> linear_by_output_;
};

// Rows `rows` of an [N, K] matrix, or columns when !by_rows.
std::vector<float> Select(const std::vector<float>& w, size_t n, size_t k, const std::vector<size_t>& idx, bool by_rows) {
  std::vector<float> out;
  if (by_rows) {
    for (size_t r : idx) out.insert(out.end(), w.begin() + static_cast<std::ptrdiff_t>(r * k),
                                    w.begin() + static_cast<std::ptrdiff_t>((r + 1) * k));
  } else {
    for (size_t r = 0; r < n; ++r) {
      for (size_t c : idx) out.push_back(w[r * k + c]);
    }
  }
  return out;
}

std::vector<size_t> HeadRows(const std::vector<size_t>& heads, size_t hd) {
  std::vector<size_t> rows;
  for (size_t h : heads) {
    for (size_t i = 0; i < hd; ++i) rows.push_back(h * hd + i);
  }
  return rows;
}

}  // namespace

Status PruneAttentionHeads(Graph& g, const PassContext& ctx, const HeadPruneOptions& opt, PassReport* report) {
  const GraphIndex index = GraphIndex::Build(g);
  const std::vector<WeightCandidate> cands = FindWeights(g, index);
  const Finder finder(g, index, cands);
  std::vector<Attention> layers;
  for (int64_t l = 0;; ++l) {
    bool has_cache = false;
    for (const ValueInfo& o : g.outputs) has_cache |= o.name == DecoderSpec::PresentKey(l);
    if (!has_cache) break;
    Attention a;
    const std::string why = finder.Find(l, &a);
    if (!why.empty()) {
      ctx.Log(StrCat("attention heads kept: layer ", l, ": ", why));
      return Status::Ok();
    }
    layers.push_back(a);
  }
  if (layers.empty()) {
    ctx.Log("attention heads kept: no KV-cache layers (present.N.key/value) in the graph");
    return Status::Ok();
  }
  const std::regex protect(opt.protect.empty() ? std::string("$^") : opt.protect, std::regex::ECMAScript);
  for (const Attention& a : layers) {
    if (a.heads != layers[0].heads || a.kv != layers[0].kv || a.head_dim != layers[0].head_dim) {
      ctx.Log("attention heads kept: layers differ in head counts");
      return Status::Ok();
    }
    for (size_t c : {a.q, a.k, a.v, a.o}) {
      if (!ctx.selection.WhyExcluded(cands[c].name).empty() || (!opt.protect.empty() && std::regex_search(cands[c].name, protect))) {
        ctx.Log(StrCat("attention heads kept in every layer: '", cands[c].name,
                       "' is protected or excluded, and the head counts are shared by all layers"));
        return Status::Ok();
      }
    }
  }
  const int64_t H = layers[0].heads, KV = layers[0].kv, hd = layers[0].head_dim, rep = H / KV;
  const int64_t kv_remove = std::min(opt.kv_groups, KV - 1);
  const int64_t rep_remove = std::min<int64_t>(rep - 1, std::llround(opt.head_ratio * static_cast<double>(rep)));
  if (opt.kv_groups > kv_remove) ctx.Log(StrCat("kv_groups ", opt.kv_groups, " leaves no KV head: ", kv_remove, " removed"));
  if (kv_remove == 0 && rep_remove == 0) return Status::Ok();
  const int64_t KV2 = KV - kv_remove, rep2 = rep - rep_remove, H2 = KV2 * rep2;
  const std::string what = StrCat("attention heads ", H, " -> ", H2, ", KV heads ", KV, " -> ", KV2);
  const ActivationStats* stats = ctx.activations;
  const size_t uhd = static_cast<size_t>(hd);

  auto row = [&](const WeightCandidate& c) -> TensorReport& {
    auto it = std::find_if(report->tensors.begin(), report->tensors.end(),
                           [&](const TensorReport& t) { return t.name == c.name; });
    if (it != report->tensors.end()) return *it;
    report->tensors.push_back(KeptRow(c));
    return report->tensors.back();
  };
  int64_t refitted = 0;
  for (const Attention& a : layers) {
    const WeightCandidate &cq = cands[a.q], &ck = cands[a.k], &cv = cands[a.v], &co = cands[a.o];
    const std::vector<float> wo = WeightRowsNK(co), wq = WeightRowsNK(cq);
    const ActivationStat* st = InputStats(co, stats);
    std::vector<double> score(static_cast<size_t>(H), 0.0);
    for (size_t h = 0; h < static_cast<size_t>(H); ++h) {
      double q_norm = 0;
      for (size_t e = h * uhd * cq.k; e < (h + 1) * uhd * cq.k; ++e) q_norm += static_cast<double>(wq[e]) * wq[e];
      for (size_t r = 0; r < co.n; ++r) {
        for (size_t c = h * uhd; c < (h + 1) * uhd; ++c) {
          const double w2 = static_cast<double>(wo[r * co.k + c]) * wo[r * co.k + c];
          score[h] += st ? w2 * st->mean_sq[c] : w2 * q_norm;
        }
      }
    }
    const size_t urep = static_cast<size_t>(rep);
    std::vector<size_t> groups, heads;
    if (opt.reconstruct && st && !st->gram.empty()) {
      // Structured OBS over W_o's input columns: KV groups (the columns of
      // their query heads) first, then heads inside the kept groups on the
      // kept columns' sub-problem, the same count per group.
      std::vector<std::vector<size_t>> blocks(static_cast<size_t>(KV));
      for (size_t gi = 0; gi < blocks.size(); ++gi) {
        for (size_t j = 0; j < urep; ++j) {
          for (size_t c = 0; c < uhd; ++c) blocks[gi].push_back((gi * urep + j) * uhd + c);
        }
      }
      auto removed = ObsRemoveBlocks(wo.data(), co.n, co.k, st->gram.data(), opt.damp, blocks, {}, {},
                                     static_cast<size_t>(kv_remove));
      if (!removed.ok()) return removed.status().WithContext(StrCat(ctx.pass_name, ": '", co.name, "'"));
      for (size_t gi = 0; gi < blocks.size(); ++gi) {
        if (!std::binary_search(removed->begin(), removed->end(), gi)) groups.push_back(gi);
      }
      std::vector<size_t> cols;  // kept groups' columns, ascending
      for (size_t gi : groups) cols.insert(cols.end(), blocks[gi].begin(), blocks[gi].end());
      std::vector<float> sub_w = Select(wo, co.n, co.k, cols, false), sub_h;
      for (size_t r : cols) {
        for (size_t c : cols) sub_h.push_back(st->gram[r * co.k + c]);
      }
      std::vector<std::vector<size_t>> head_blocks;
      std::vector<size_t> cls;
      for (size_t i = 0; i < groups.size() * urep; ++i) {
        head_blocks.emplace_back();
        for (size_t c = 0; c < uhd; ++c) head_blocks.back().push_back(i * uhd + c);
        cls.push_back(i / urep);
      }
      auto gone = ObsRemoveBlocks(sub_w.data(), co.n, cols.size(), sub_h.data(), opt.damp, head_blocks, cls,
                                  std::vector<size_t>(groups.size(), static_cast<size_t>(rep_remove)),
                                  groups.size() * static_cast<size_t>(rep_remove));
      if (!gone.ok()) return gone.status().WithContext(StrCat(ctx.pass_name, ": '", co.name, "'"));
      for (size_t i = 0; i < head_blocks.size(); ++i) {
        if (!std::binary_search(gone->begin(), gone->end(), i)) heads.push_back(groups[i / urep] * urep + i % urep);
      }
    } else {
      std::vector<double> group_score(static_cast<size_t>(KV), 0.0);
      for (size_t h = 0; h < score.size(); ++h) group_score[h / urep] += score[h];
      groups = TopChannels(group_score, static_cast<size_t>(KV2));
      for (size_t gi : groups) {
        std::vector<double> part(score.begin() + static_cast<std::ptrdiff_t>(gi * urep),
                                 score.begin() + static_cast<std::ptrdiff_t>((gi + 1) * urep));
        for (size_t j : TopChannels(part, static_cast<size_t>(rep2))) heads.push_back(gi * urep + j);
      }
    }
    const std::vector<size_t> q_rows = HeadRows(heads, uhd), kv_rows = HeadRows(groups, uhd);
    // Projections: rows of the kept heads.
    for (auto [cand, rows, bias] : {std::tuple<const WeightCandidate*, const std::vector<size_t>*, std::string>{
                                        &cq, &q_rows, a.q_bias},
                                    {&ck, &kv_rows, a.k_bias}, {&cv, &kv_rows, a.v_bias}}) {
      TensorReport& r = row(*cand);
      r.requested = r.actual = StrCat("heads-", rows->size() / uhd);
      r.reason = what;
      Tensor t = WeightFromRowsNK(cand->tensor.dtype(), cand->kn, rows->size(), cand->k,
                                  Select(WeightRowsNK(*cand), cand->n, cand->k, *rows, true));
      r.bytes_after = t.nbytes();
      if (ctx.dry_run) continue;
      SetWeight(g, *cand, std::move(t));
      ShrinkMask(g, cand->name, *rows, true);
      if (!bias.empty()) {
        const Tensor& b = *g.FindInitializer(bias);
        const std::vector<float> bv = b.ToFloatVector();
        *g.MutableInitializer(bias) =
            WeightFromRowsNK(b.dtype(), false, 1, rows->size(), Select(bv, 1, bv.size(), *rows, false))
                .Reshaped({static_cast<int64_t>(rows->size())});
      }
    }
    // Output projection: columns of the kept heads, refitted when the
    // Hessian of its input is known.
    TensorReport& r = row(co);
    const bool refit = opt.reconstruct && st && !st->gram.empty();
    std::vector<float> kept = Select(wo, co.n, co.k, q_rows, false);
    if (refit && !ctx.dry_run) {
      auto fit = RefitKeptInputs(wo.data(), co.n, co.k, q_rows, st->gram.data(), opt.damp);
      if (!fit.ok()) return fit.status().WithContext(StrCat(ctx.pass_name, ": '", co.name, "'"));
      kept = std::move(*fit);
      ++refitted;
    }
    if (st && st->sample_rows > 0 && !ctx.dry_run) {
      r.output_error_measured = true;
      r.output_rel_error = KeptInputsOutputError(wo.data(), co.n, co.k, kept.data(), q_rows, st->sample.data(),
                                                 static_cast<size_t>(st->sample_rows));
    }
    Tensor t = WeightFromRowsNK(co.tensor.dtype(), co.kn, co.n, q_rows.size(), kept);
    r.requested = r.actual = StrCat("inputs-", q_rows.size());
    r.method = refit ? "least-squares" : "select";
    r.importance = st ? "activations" : "weights";
    r.reason = StrCat(what, refit ? ", refitted by least squares" : "");
    r.bytes_after = t.nbytes();
    if (!ctx.dry_run) {
      SetWeight(g, co, std::move(t));
      ShrinkMask(g, co.name, q_rows, false);
    }
  }
  report->counters["attention_layers"] = static_cast<int64_t>(layers.size());
  report->counters["heads_removed"] = static_cast<int64_t>(layers.size()) * (H - H2);
  report->counters["kv_heads_removed"] = static_cast<int64_t>(layers.size()) * (KV - KV2);
  report->counters["attention_refitted"] = refitted;
  ctx.Log(StrCat(layers.size(), " attention layers: ", what, ", ", refitted, " output projections refitted"));
  if (ctx.dry_run) return Status::Ok();

  // Shape constants (shared by the layers: each rewritten once), checked by
  // the finder to hold these values.
  std::set<std::string> done;
  auto set_tail = [&](const std::string& name, std::vector<int64_t> tail) {
    if (!done.insert(name).second) return;
    std::vector<int64_t> v = g.FindInitializer(name)->ToInt64Vector();
    for (size_t i = 0; i < tail.size(); ++i) {
      if (tail[i] != -2) v[v.size() - tail.size() + i] = tail[i];
    }
    *g.MutableInitializer(name) = Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(v.size())}, v);
  };
  for (const Attention& a : layers) {
    set_tail(a.c_q, {H2, -2});
    set_tail(a.c_k, {KV2, -2});
    set_tail(a.c_v, {KV2, -2});
    set_tail(a.c_grouped, {KV2, rep2, -2, -2});
    set_tail(a.c_ctx4, {H2, -2, -2});
    set_tail(a.c_ctx2, {H2 * hd});
  }
  // The KV cache: inputs and outputs [batch, kv, length, head_dim].
  for (std::vector<ValueInfo>* list : {&g.inputs, &g.outputs}) {
    for (ValueInfo& vi : *list) {
      if ((vi.name.rfind("past_key_values.", 0) == 0 || vi.name.rfind("present.", 0) == 0) && vi.shape &&
          vi.shape->size() == 4 && (*vi.shape)[1].value == KV) {
        (*vi.shape)[1] = Dim(KV2);
      }
    }
  }
  if (g.metadata.count("hf.num_attention_heads")) g.metadata["hf.num_attention_heads"] = std::to_string(H2);
  if (g.metadata.count("hf.num_key_value_heads")) g.metadata["hf.num_key_value_heads"] = std::to_string(KV2);
  Status re = RefreshValueInfo(g);
  if (!re.ok()) return Internal(ctx.pass_name, ": rewritten graph fails shape inference: ", re.message());
  return Status::Ok();
}

}  // namespace slim
