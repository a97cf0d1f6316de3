// reconstruct: finds masked float weights (weight_finder.h), takes the
// teacher's values from PassContext::source, runs OBS reconstruction with
// the mask fixed (numerics/prune.h) per tensor in parallel, grouped by input
// (factor_units.h), and writes the refitted weights into a copy of the graph.
#include "passes/reconstruct.h"

#include <chrono>
#include <cmath>
#include <unordered_map>

#include "libcompress/numerics/prune.h"
#include "passes/factor_units.h"
#include "passes/weight_finder.h"

namespace slim {
namespace {

using Clock = std::chrono::steady_clock;

struct Plan {
  TensorReport report;
  bool refit = false;
  const WeightMask* mask = nullptr;
  const ActivationStat* stat = nullptr;
  const WeightCandidate* teacher = nullptr;
};

// One refitted tensor; workers load, refit and measure one tensor at a time
// so FP32 copies exist only for the tensors being worked on.
struct Result {
  Tensor stored;
  WeightChangeError error;  // against the teacher
  bool before_measured = false;
  double error_before = 0;  // output error of the weights as they were
  std::string failure;
  double seconds = 0;
};

Result Refit(const WeightCandidate& c, const Plan& p, const GptqFactor& factor) {
  const auto ts = Clock::now();
  Result res;
  const std::vector<float> teacher = WeightRowsNK(*p.teacher);
  const std::vector<float> before = WeightRowsNK(c);
  std::vector<float> w = teacher;
  SparseGptOptions o;
  o.fixed_mask = p.mask->keep.data<uint8_t>();
  auto mask = SparseGptPrune(w.data(), c.n, c.k, factor, o);
  if (!mask.ok()) {
    res.failure = mask.status().message();
    return res;
  }
  res.stored = StoreAndMeasure(c, teacher, w, p.stat, &res.error);
  if (res.error.output_measured) {
    res.before_measured = true;
    res.error_before = RelativeOutputError(teacher.data(), before.data(), c.n, c.k, p.stat->sample.data(),
                                           static_cast<size_t>(p.stat->sample_rows));
  }
  res.seconds = std::chrono::duration<double>(Clock::now() - ts).count();
  return res;
}

class ReconstructPass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo{
        "reconstruct",
        "refit the kept weights of pruned layers to the teacher's outputs on calibration data (OBS, masks kept)",
        {
            FloatOption("damp", 0.01, 1e-6, 10.0, "damping added to the Hessian diagonal, relative to its mean"),
        }};
    return kInfo;
  }

  bool NeedsHessians(const PassContext& /*ctx*/) const override { return true; }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    const auto t0 = Clock::now();
    SLIM_CHECK_INPUT(ctx.source != nullptr, ctx.pass_name, ": needs the teacher graph (run it in a pipeline)");
    std::vector<WeightCandidate> cands = FindWeights(graph, GraphIndex::Build(graph));
    std::unordered_map<std::string, WeightCandidate> teachers;
    for (WeightCandidate& c : FindWeights(*ctx.source, GraphIndex::Build(*ctx.source))) {
      teachers.emplace(c.name, std::move(c));
    }
    std::vector<Plan> plans;
    for (const WeightCandidate& c : cands) plans.push_back(MakePlan(graph, c, teachers, ctx));

    PassReport report;
    report.pass = ctx.pass_name;
    if (!ctx.dry_run) {
      std::vector<FactorItem> items;
      for (size_t i = 0; i < plans.size(); ++i) {
        if (plans[i].refit) items.push_back({i, plans[i].stat, ctx.options.GetFloat("damp")});
      }
      std::vector<Result> results(plans.size());
      size_t done = 0;
      RunPerInput(
          items, ctx.threads,
          [&](size_t i, const Expected<GptqFactor>* factor) {
            if (!factor->ok()) {
              results[i].failure = factor->status().message();
            } else {
              results[i] = Refit(cands[i], plans[i], **factor);
            }
          },
          [&](size_t i) { ctx.Progress(++done, items.size(), cands[i].name); });

      Graph out = graph;
      for (size_t i = 0; i < plans.size(); ++i) {
        Plan& p = plans[i];
        if (!p.refit) continue;
        const WeightCandidate& c = cands[i];
        if (!results[i].failure.empty()) {
          return InvalidInput(ctx.pass_name, ": tensor '", c.name, "': ", results[i].failure);
        }
        Result& res = results[i];
        SetWeight(out, c, std::move(res.stored));
        TensorReport& r = p.report;
        r.seconds = res.seconds;
        r.error_measured = true;
        r.rel_mse = res.error.rel_mse;
        r.max_abs_error = res.error.max_abs_error;
        if (res.before_measured) {
          r.output_error_measured = true;
          r.output_rel_error = res.error.output_rel_error;
          r.reason = StrCat("output error vs teacher ", res.error_before, " -> ", r.output_rel_error);
        }
      }
      Status valid = out.Validate();
      if (!valid.ok()) return Internal(ctx.pass_name, ": rewritten graph does not validate: ", valid.message());
      graph = std::move(out);
    }
    int64_t refit = 0, kept = 0, fallbacks = 0;
    for (Plan& p : plans) {
      (p.refit ? refit : kept) += 1;
      fallbacks += p.report.fallback ? 1 : 0;
      report.tensors.push_back(std::move(p.report));
    }
    report.counters["weights"] = static_cast<int64_t>(plans.size());
    report.counters["reconstructed"] = refit;
    report.counters["kept"] = kept;
    report.counters["fallbacks"] = fallbacks;
    report.counters["bytes_before"] = 0;  // values change, storage does not
    report.counters["bytes_after"] = 0;
    report.seconds = std::chrono::duration<double>(Clock::now() - t0).count();
    return report;
  }

 private:
  static Plan MakePlan(const Graph& g, const WeightCandidate& c,
                       const std::unordered_map<std::string, WeightCandidate>& teachers, const PassContext& ctx) {
    Plan p;
    p.report = KeptRow(c);
    TensorReport& r = p.report;
    r.requested = "reconstruct";
    r.actual = "keep";
    auto m = g.weight_masks.find(c.name);
    if (m == g.weight_masks.end()) {
      r.reason = "not pruned (no mask)";
      return p;
    }
    p.mask = &m->second;
    r.sparsity = MaskSparsity(m->second.keep.data<uint8_t>(), static_cast<size_t>(m->second.keep.numel()));
    r.sparsity_pattern = m->second.pattern;
    if (const std::string why = ctx.selection.WhyExcluded(c.name); !why.empty()) {
      r.reason = why;
      return p;
    }
    auto fallback = [&](std::string why) {
      r.reason = std::move(why);
      r.fallback = true;
      return p;
    };
    if (!c.IsFloatMatrix()) return fallback("not a float matrix (already quantized? reconstruct runs before quantization)");
    auto t = teachers.find(c.name);
    if (t == teachers.end() || t->second.tensor.shape() != c.tensor.shape() || t->second.n != c.n) {
      return fallback("the teacher graph has no weight of this name and shape");
    }
    p.stat = InputStats(c, ctx.activations);
    if (!p.stat || p.stat->gram.empty()) return fallback("no calibration Hessian of its input");
    p.teacher = &t->second;
    p.refit = true;
    r.actual = "reconstruct";
    r.method = "obs";
    r.importance = "activations";
    return p;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeReconstructPass() { return std::make_unique<ReconstructPass>(); }

}  // namespace slim
