// prune: finds the weights (weight_finder.h), plans each tensor's sparsity,
// computes masks and compensated weights with numerics/prune.h in parallel,
// then writes weights and masks back into a copy of the graph.
#include "passes/prune.h"

#include <algorithm>
#include <chrono>
#include <cmath>

#include "libcompress/numerics/prune.h"
#include "passes/factor_units.h"
#include "passes/weight_finder.h"

namespace slim {
namespace {

using Clock = std::chrono::steady_clock;

// Largest per-tensor sparsity the global scope may give one tensor (the
// option's own maximum).
constexpr double kMaxSparsity = 0.95;
// Scores sampled for the global threshold: evenly strided over all tensors,
// so the cost and memory stay bounded on billion-parameter models.
constexpr size_t kGlobalSample = size_t{1} << 24;

struct Plan {
  TensorReport report;
  bool prune = false;
  std::string method;  // "magnitude", "wanda", "sparsegpt"
  SparsityPattern pattern;
  double sparsity = 0;   // unstructured: fraction to prune
  const ActivationStat* stat = nullptr;  // the weight's input statistics
  const WeightMask* old_mask = nullptr;  // a mask from an earlier prune, kept
};

// One pruned tensor, ready to replace the old one. Workers load, prune and
// measure one tensor at a time, so FP32 copies exist only for the tensors
// being worked on (a 1B-parameter model does not fit twice in FP32).
struct Result {
  Tensor stored;  // the new weight in its own dtype and orientation
  std::vector<uint8_t> mask;
  WeightChangeError error;
  std::string failure;
  double seconds = 0;
};

std::string RoleOption(const std::string& role) {
  if (role == "linear") return "linear";
  if (role == "embedding") return "embeddings";
  return "classifier";  // classifier and tied-embedding
}

Plan MakePlan(const WeightCandidate& c, const PassContext& ctx) {
  Plan p;
  p.report = KeptRow(c);
  TensorReport& r = p.report;
  const Options o = ctx.OptionsFor(c.name);
  p.pattern = *SparsityPattern::Parse(o.GetString("pattern"));  // validated in ValidateOptions
  p.method = o.GetString("method");
  p.sparsity = p.pattern.unstructured() ? o.GetFloat("sparsity") : p.pattern.Sparsity();
  const std::string what = p.pattern.unstructured()
                               ? StrCat("prune-", static_cast<int>(std::lround(100 * p.sparsity)), "%")
                               : "prune-" + p.pattern.Name();
  r.requested = o.GetString(RoleOption(c.role)) == "prune" ? what : "keep";
  auto keep = [&](std::string reason, bool fallback) {
    r.reason = std::move(reason);
    r.fallback = fallback;
  };
  if (!c.IsFloatMatrix()) {
    keep(IsFloat(c.tensor.dtype()) ? StrCat("rank-", c.tensor.rank(), " weight (masks are [N, K])")
                                   : StrCat("dtype ", r.source_dtype, " is not a float weight"),
         false);
    return p;
  }
  if (const std::string why = ctx.selection.WhyExcluded(c.name); !why.empty()) {
    keep(why, false);
    return p;
  }
  if (r.requested == "keep") {
    keep(StrCat(c.role, " kept as requested (option ", RoleOption(c.role), ")"), false);
    return p;
  }
  if (!c.problem.empty()) {
    keep(c.problem, true);
    return p;
  }
  p.stat = InputStats(c, ctx.activations);
  if (p.method != "magnitude" && (!p.stat || (p.method == "sparsegpt" && p.stat->gram.empty()))) {
    // Only Gather tables lack input statistics when calibration ran.
    r.fallback = true;
    r.reason = StrCat("no calibration statistics of its input (", c.role, "): magnitude instead of ", p.method);
    p.method = "magnitude";
  }
  if (!p.pattern.unstructured() && c.k < static_cast<size_t>(p.pattern.m)) {
    keep(StrCat("K=", c.k, " is shorter than one ", p.pattern.Name(), " group"), true);
    return p;
  }
  p.prune = true;
  r.actual = what;
  r.method = p.method;
  r.sparsity_pattern = p.pattern.Name();
  r.importance = p.method == "magnitude" ? "uniform" : "activations";
  return p;
}

// SparseGPT's mask-selection block for K columns (option `block`, 0 = auto).
size_t MaskBlock(int64_t option, size_t k) {
  if (option > 0) return static_cast<size_t>(option);
  return std::max<size_t>(1, std::min<size_t>(128, k / 8));
}

Result PruneOne(const WeightCandidate& c, const Plan& p, const GptqFactor* factor, int64_t block) {
  const auto t0 = Clock::now();
  const size_t n = c.n, k = c.k;
  Result res;
  const std::vector<float> w0 = WeightRowsNK(c);
  std::vector<float> w = w0;
  if (p.method == "sparsegpt") {
    SparseGptOptions o;
    o.sparsity = p.sparsity;
    o.pattern = p.pattern;
    o.block = MaskBlock(block, k);
    auto mask = SparseGptPrune(w.data(), n, k, *factor, o);
    if (!mask.ok()) {
      res.failure = mask.status().message();
      return res;
    }
    res.mask = std::move(*mask);
  } else {
    const bool wanda = p.method == "wanda";
    const std::vector<float> scores = PruneScores(w.data(), n, k, wanda ? p.stat->mean_sq.data() : nullptr);
    // Wanda compares within each output row (the paper's choice); magnitude
    // over the whole matrix.
    res.mask = SelectMask(scores.data(), n, k, p.sparsity, p.pattern, wanda);
  }
  // A weight pruned before keeps its old zeros too.
  const uint8_t* prev = p.old_mask ? p.old_mask->keep.data<uint8_t>() : nullptr;
  for (size_t j = 0; j < w.size(); ++j) {
    if (prev) res.mask[j] = static_cast<uint8_t>(res.mask[j] & prev[j]);
    if (!res.mask[j]) w[j] = 0.0f;
  }
  res.stored = StoreAndMeasure(c, w0, w, p.stat, &res.error);
  res.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
  return res;
}

class PrunePass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo{
        "prune",
        "weight pruning, unstructured or N:M along K (magnitude, Wanda, SparseGPT); later passes keep the zeros",
        {
            FloatOption("sparsity", 0.5, 0.0, kMaxSparsity,
                        "fraction of weights removed (unstructured; an N:M pattern removes 1 - N/M)", true),
            StringOption("pattern", "unstructured",
                         "'unstructured', or N:M = at most N kept of every M consecutive weights along K "
                         "(2:4, 4:8, ...)",
                         true),
            EnumOption("method", "sparsegpt", {"magnitude", "wanda", "sparsegpt"},
                       "magnitude: smallest |w| (no calibration data); wanda: |w| * ||x|| per output row; "
                       "sparsegpt: OBS selection + error compensation (needs --calib)",
                       true),
            EnumOption("scope", "layer", {"layer", "global"},
                       "layer: every tensor gets `sparsity`; global: one threshold over all selected "
                       "tensors (unstructured only; per-tensor sparsity capped at 0.95)"),
            EnumOption("linear", "prune", {"prune", "keep"}, "linear layers", true),
            EnumOption("classifier", "keep", {"keep", "prune"},
                       "output projection (and a tied embedding, which is one tensor)", true),
            EnumOption("embeddings", "keep", {"keep", "prune"}, "embedding tables read by Gather", true),
            FloatOption("damp", 0.01, 1e-6, 10.0,
                        "sparsegpt: damping added to the Hessian diagonal, relative to its mean"),
            IntOption("block", 0, 0, 4096,
                      "sparsegpt: columns per mask-selection block, rounded to a multiple of M; 0 = "
                      "min(128, K/8): the paper's 128 where K >= 1024, and at least 8 blocks along K "
                      "below (one block over all of K concentrates the pruning in the first columns)"),
        }};
    return kInfo;
  }

  Status ValidateOptions(const Options& o) const override {
    auto p = SparsityPattern::Parse(o.GetString("pattern"));
    if (!p.ok()) return InvalidInput("pass 'prune' option pattern: ", p.status().message());
    return Status::Ok();
  }

  bool NeedsHessians(const PassContext& ctx) const override { return AnyMethod(ctx, "sparsegpt"); }
  bool NeedsActivations(const PassContext& ctx) const override {
    return AnyMethod(ctx, "sparsegpt") || AnyMethod(ctx, "wanda");
  }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    const auto t0 = Clock::now();
    const GraphIndex index = GraphIndex::Build(graph);
    std::vector<WeightCandidate> cands = FindWeights(graph, index);
    std::vector<Plan> plans;
    for (const WeightCandidate& c : cands) {
      plans.push_back(MakePlan(c, ctx));
      auto old = graph.weight_masks.find(c.name);
      if (old != graph.weight_masks.end()) plans.back().old_mask = &old->second;
    }
    if (ctx.options.GetString("scope") == "global") ApplyGlobalScope(cands, &plans, ctx);

    if (ctx.strict) {
      for (const Plan& p : plans) {
        if (p.report.fallback) {
          return InvalidInput(ctx.pass_name, ": strict mode: '", p.report.name, "' ", p.report.requested,
                              " -> ", p.report.actual, ": ", p.report.reason);
        }
      }
    }

    PassReport report;
    report.pass = ctx.pass_name;
    if (!ctx.dry_run) {
      std::vector<Result> results = PruneAll(cands, plans, ctx);
      Graph out = graph;
      for (size_t i = 0; i < plans.size(); ++i) {
        Plan& p = plans[i];
        if (!p.prune) continue;
        const WeightCandidate& c = cands[i];
        Result& res = results[i];
        if (!res.failure.empty()) {
          return InvalidInput(ctx.pass_name, ": tensor '", c.name, "': ", res.failure);
        }
        SetWeight(out, c, std::move(res.stored));
        TensorReport& r = p.report;
        r.seconds = res.seconds;
        r.sparsity = MaskSparsity(res.mask.data(), res.mask.size());
        r.error_measured = true;
        r.rel_mse = res.error.rel_mse;
        r.max_abs_error = res.error.max_abs_error;
        r.output_error_measured = res.error.output_measured;
        r.output_rel_error = res.error.output_rel_error;
        Tensor mask = Tensor::FromVector(DType::kUInt8, {static_cast<int64_t>(c.n), static_cast<int64_t>(c.k)},
                                         res.mask);
        res.mask = {};
        out.weight_masks[c.name] = WeightMask{std::move(mask), p.pattern.Name()};
      }
      Status valid = out.Validate();
      if (!valid.ok()) return Internal(ctx.pass_name, ": rewritten graph does not validate: ", valid.message());
      graph = std::move(out);
    }

    int64_t pruned = 0, kept = 0, fallbacks = 0, zeros = 0, params = 0;
    for (Plan& p : plans) {
      (p.prune ? pruned : kept) += 1;
      fallbacks += p.report.fallback ? 1 : 0;
      if (p.prune) {
        params += p.report.params;
        zeros += static_cast<int64_t>(std::llround(p.report.sparsity * static_cast<double>(p.report.params)));
      }
      report.tensors.push_back(std::move(p.report));
    }
    report.counters["weights"] = static_cast<int64_t>(plans.size());
    report.counters["pruned"] = pruned;
    report.counters["kept"] = kept;
    report.counters["fallbacks"] = fallbacks;
    report.counters["pruned_params"] = params;
    report.counters["zeros"] = zeros;
    report.counters["bytes_before"] = 0;  // dense storage: bytes change when a packing pass runs
    report.counters["bytes_after"] = 0;
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return report;
  }

 private:
  static bool AnyMethod(const PassContext& ctx, const std::string& method) {
    if (ctx.options.GetString("method") == method) return true;
    for (const auto& ov : ctx.overrides) {
      if (ov.options.Has("method") && ov.options.GetString("method") == method) return true;
    }
    return false;
  }

  // One threshold over evenly strided samples of every unstructured
  // tensor's scores; each tensor's sparsity is the fraction of its own
  // scores below it.
  static void ApplyGlobalScope(const std::vector<WeightCandidate>& cands, std::vector<Plan>* plans,
                               const PassContext& ctx) {
    const double target = ctx.options.GetFloat("sparsity");
    auto selected = [&](size_t i) { return (*plans)[i].prune && (*plans)[i].pattern.unstructured(); };
    // Scores are recomputed from the weights on each of the two walks
    // rather than held for the whole model.
    auto scores_of = [&](size_t i) {
      const Plan& p = (*plans)[i];
      const bool act = p.method != "magnitude" && p.stat;
      const std::vector<float> w = WeightRowsNK(cands[i]);
      return PruneScores(w.data(), cands[i].n, cands[i].k, act ? p.stat->mean_sq.data() : nullptr);
    };
    size_t total = 0;
    for (size_t i = 0; i < plans->size(); ++i) {
      if (selected(i)) total += cands[i].n * cands[i].k;
    }
    if (total == 0) return;
    // One stride for every tensor, so each contributes in proportion to its
    // size.
    const size_t stride = std::max<size_t>(1, total / kGlobalSample);
    std::vector<float> sample;
    for (size_t i = 0; i < plans->size(); ++i) {
      if (!selected(i)) continue;
      const std::vector<float> s = scores_of(i);
      for (size_t j = 0; j < s.size(); j += stride) sample.push_back(s[j]);
    }
    std::sort(sample.begin(), sample.end());
    const float threshold =
        sample[std::min(sample.size() - 1, static_cast<size_t>(target * static_cast<double>(sample.size())))];
    for (size_t i = 0; i < plans->size(); ++i) {
      if (!selected(i)) continue;
      Plan& p = (*plans)[i];
      const std::vector<float> s = scores_of(i);
      size_t below = 0;
      for (float v : s) below += v < threshold;
      p.sparsity = std::min(kMaxSparsity, static_cast<double>(below) / static_cast<double>(s.size()));
      p.report.actual = StrCat("prune-", static_cast<int>(std::lround(100 * p.sparsity)), "%");
      p.report.reason = "scope global";
    }
    ctx.Log(StrCat("global threshold ", threshold, " for ", target * 100, "% over the selected tensors"));
  }

  // SparseGPT tensors sharing one input share its factor (factor_units.h).
  static std::vector<Result> PruneAll(const std::vector<WeightCandidate>& cands, const std::vector<Plan>& plans,
                                      const PassContext& ctx) {
    std::vector<FactorItem> items;
    for (size_t i = 0; i < plans.size(); ++i) {
      if (!plans[i].prune) continue;
      items.push_back({i, plans[i].method == "sparsegpt" ? plans[i].stat : nullptr, ctx.options.GetFloat("damp")});
    }
    const int64_t block = ctx.options.GetInt("block");
    std::vector<Result> results(plans.size());
    size_t done = 0;
    RunPerInput(
        items, ctx.threads,
        [&](size_t i, const Expected<GptqFactor>* factor) {
          if (factor && !factor->ok()) {
            results[i].failure = factor->status().message();
          } else {
            results[i] = PruneOne(cands[i], plans[i], factor ? &**factor : nullptr, block);
          }
        },
        [&](size_t i) { ctx.Progress(++done, items.size(), cands[i].name); });
    return results;
  }
};

}  // namespace

std::unique_ptr<Pass> MakePrunePass() { return std::make_unique<PrunePass>(); }

}  // namespace slim
