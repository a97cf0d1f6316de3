// mixed: trials, sensitivity, knapsack allocation, then the quantization
// engine with the chosen scheme per tensor (mixed_precision.h).
#include "passes/mixed_precision.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>
#include <map>

#include <nlohmann/json.hpp>

#include "libcompress/metrics/model_stats.h"
#include "libcompress/numerics/allocate.h"
#include "passes/weight_quant.h"

namespace slim {
namespace {

const std::vector<std::string>& AllSchemes() {
  static const std::vector<std::string> k = {"keep",          "int8",          "int4-g32-sym",  "int4-g32-asym",
                                             "int4-g32-nl",   "int4-g64-sym",  "int4-g64-asym", "int4-g64-nl",
                                             "int4-g128-sym", "int4-g128-asym", "int4-g128-nl"};
  return k;
}

Expected<WeightScheme> ParseScheme(const std::string& name) {
  WeightScheme s;
  if (name == "keep") return s;
  if (name == "int8") {
    s.kind = WeightScheme::Kind::kInt8;
    return s;
  }
  for (int64_t g : {32, 64, 128}) {
    for (int v : {0, 1, 2}) {  // sym, asym, nl
      s = WeightScheme{WeightScheme::Kind::kInt4, g, v != 1, v == 2};
      if (s.Name() == name) return s;
    }
  }
  return InvalidInput("unknown scheme '", name, "' (known: keep, int8, int4-g{32,64,128}-{sym,asym,nl})");
}

std::string Sci(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.3g", v);
  return buf;
}

// The one budget the options give, in the unit the allocator sums: bytes
// of weights (bits per weight and file size) or bytes read per token.
struct Budget {
  bool per_token = false;
  double limit = 0;        // bytes, or bytes per token
  std::string text;        // as the user gave it, for messages
  double params = 0;       // weights the bits-per-weight figure divides by
  // The user's unit of a byte total: bits per weight, or bytes.
  std::string Express(double bytes) const {
    if (!text.empty() && text.rfind("bpw", 0) == 0) return FormatFixed(8.0 * bytes / params, 3) + " bits per weight";
    return StrCat(static_cast<uint64_t>(std::llround(bytes)), per_token ? " bytes per token" : " bytes");
  }
};

Expected<Budget> ResolveBudget(const Options& o, const PassContext& ctx, const WeightStats& stats) {
  Budget b;
  b.params = static_cast<double>(stats.params);
  int given = 0;
  if (o.GetFloat("bpw") > 0) {
    ++given;
    b.limit = o.GetFloat("bpw") * b.params / 8.0;
    b.text = StrCat("bpw ", o.GetFloat("bpw"));
  }
  if (o.GetFloat("max_size") > 0) {
    ++given;
    b.limit = o.GetFloat("max_size");
    b.text = StrCat("max_size ", static_cast<uint64_t>(o.GetFloat("max_size")), " bytes");
  }
  if (o.GetFloat("max_bytes_per_token") > 0) {
    ++given;
    b.per_token = true;
    b.limit = o.GetFloat("max_bytes_per_token");
    b.text = StrCat("max_bytes_per_token ", static_cast<uint64_t>(b.limit));
  }
  if (o.GetFloat("tokens_per_s") > 0) {
    ++given;
    b.per_token = true;
    const double rate = o.GetFloat("tokens_per_s");
    double gbps = 0;
    if (o.GetFloat("budget_per_b") > 0) {
      gbps = o.GetFloat("budget_per_b") * b.params / 1e9;
      b.text = StrCat(o.GetFloat("budget_per_b"), " GB/s per 1e9 parameters (", FormatFixed(gbps, 3), " GB/s) at ", rate,
                      " tokens/s");
    } else {
      SLIM_CHECK_INPUT(ctx.target != nullptr, "pass mixed: tokens_per_s needs a target profile (compile --target) "
                       "or budget_per_b");
      gbps = ctx.target->budget_gbps();
      b.text = StrCat("target ", ctx.target->name, " (", FormatFixed(gbps, 1), " GB/s usable) at ", rate, " tokens/s");
    }
    b.limit = gbps * 1e9 / rate;
  }
  SLIM_CHECK_INPUT(given == 1, "pass mixed: give exactly one budget (bpw, max_size, max_bytes_per_token or "
                   "tokens_per_s; compile --bpw, --max-size, --max-bytes-per-token, --tokens-per-s), got ", given);
  return b;
}

// Everything measured for one weight.
struct TensorPlan {
  std::string name, role;
  std::string pin;                        // "" = allocated
  uint64_t source_bytes = 0, source_per_token = 0, rows_per_token = 1;  // rows_per_token: Gather-only tables
  std::vector<WeightScheme> requested;    // per request
  std::vector<SchemeTrial> trials;        // per request
  std::vector<double> exact, proxy;       // per request; NaN until measured
  size_t reference = 0;                   // the request whose trial measures the proxy's gain
  double gain = std::numeric_limits<double>::quiet_NaN();
  uint64_t min_bytes = 0;                 // fewest bytes of any request, dense layouts
  std::vector<size_t> choices;            // requests that are distinct allocation choices
  size_t chosen = 0;                      // a request index
};

double RelError(const SchemeTrial& t) { return t.output_error_measured ? t.output_rel_error : t.rel_mse; }

// The graph with one weight replaced by w' (float32 [N, K] in the weight's
// own orientation), for the scorer.
Graph WithWeight(const Graph& graph, const WeightCandidate& c, const std::vector<float>& w) {
  Graph g = graph;
  Tensor t = WeightFromRowsNK(DType::kFloat32, c.kn, c.n, c.k, w);
  if (c.constant_node >= 0) {
    g.nodes[static_cast<size_t>(c.constant_node)].attrs["value"] = Attribute::FromTensor(std::move(t));
  } else {
    g.AddInitializer(c.name, std::move(t));
  }
  return g;
}

class MixedPrecisionPass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo = [] {
      PassInfo info = WithSearchOptions(
          {"mixed",
           "int4/int8/FP16 per tensor, chosen by estimated model loss under one budget (bits per weight, bytes, "
           "or bytes per token)",
           {
               StringListOption("candidates",
                                "schemes the allocator may choose (empty: keep, int8, "
                                "int4-g{32,64,128}-{sym,asym,nl}); Gather tables take keep or int8 only"),
               EnumOption("pin", "auto", [] {
                 std::vector<std::string> c = {"auto"};
                 c.insert(c.end(), AllSchemes().begin(), AllSchemes().end());
                 return c;
               }(),
                          "auto: the allocator chooses; a scheme: this tensor takes it and its cost comes off "
                          "the budget (use in overrides)",
                          true),
               EnumOption("sensitivity", "proxy", {"proxy", "exact", "both"},
                          "loss estimate per tensor and scheme: exact = model KL with only that tensor changed "
                          "(one model run per tensor and scheme); proxy = the layer's output error times a "
                          "per-tensor gain measured with one run per tensor; both = exact, with the proxy and "
                          "their rank correlation in the report"),
               FloatOption("bpw", 0, 0, 32, "budget: bits per weight over all weights, scales included (0 = unset)"),
               FloatOption("max_size", 0, 0, 1e15, "budget: packed weight bytes (0 = unset)"),
               FloatOption("max_bytes_per_token", 0, 0, 1e15,
                           "budget: bytes read per decoded token, weights plus the KV cache at `context` (0 = unset)"),
               FloatOption("tokens_per_s", 0, 0, 1e7,
                           "budget: decode rate; bytes per token = usable bandwidth (the target profile's, or "
                           "budget_per_b) / rate (0 = unset)"),
               FloatOption("budget_per_b", 0, 0, 1e5,
                           "with tokens_per_s: usable bandwidth in GB/s per 1e9 parameters of this model "
                           "instead of the target's (DESIGN.md's rule of thumb: 1.5)"),
               IntOption("context", 0, 0, 1e8,
                         "context length whose KV cache a bytes-per-token budget counts (0: the calibration "
                         "length, else the model's maximum)"),
               IntOption("score_sequences", 4, 1, 1024, "calibration sequences a model-loss measurement runs"),
               IntOption("score_tokens", 128, 2, 1 << 20, "tokens of each of those sequences"),
               IntOption("pareto_points", 12, 8, 16, "budgets in the Pareto table (all int4 to all int8)"),
           }},
          "group");
      // Where calibration Hessians exist, every int4/int8 trial uses GPTQ.
      for (OptionSpec& s : info.options) {
        if (s.key == "gptq") {
          s.default_value = true;
          s.help = "GPTQ for every trial when compile --calib gave Hessians (the search alone otherwise)";
        }
      }
      return info;
    }();
    return kInfo;
  }

  Status ValidateOptions(const Options& o) const override {
    for (const std::string& c : o.GetStringList("candidates")) SLIM_RETURN_IF_ERROR(ParseScheme(c).status());
    return Status::Ok();
  }

  bool WantsHessians(const PassContext& ctx) const override { return ctx.options.GetBool("gptq"); }
  bool PlansWithCalibration(const PassContext&) const override { return true; }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    const Options& o = ctx.options;
    const WeightStats stats = ComputeWeightStats(graph);
    SLIM_ASSIGN_OR_RETURN(const Budget budget, ResolveBudget(o, ctx, stats));
    const std::string mode = o.GetString("sensitivity");
    const size_t score_seqs = static_cast<size_t>(o.GetInt("score_sequences"));
    const size_t score_tokens = static_cast<size_t>(o.GetInt("score_tokens"));
    SLIM_CHECK_INPUT(mode == "proxy" || ctx.scorer, "pass mixed: sensitivity '", mode,
                     "' runs the model on calibration data: give token calibration data (compile --calib)");
    std::vector<WeightScheme> candidates;
    for (const std::string& c : o.GetStringList("candidates").empty() ? AllSchemes() : o.GetStringList("candidates")) {
      candidates.push_back(*ParseScheme(c));
    }
    if (!ctx.scorer) {
      ctx.Log("no token calibration data: each tensor's loss is estimated as its relative output (or weight) "
              "error, every tensor weighted alike");
    }

    // 1. Trials, for every weight the quantization passes would take.
    std::vector<TensorPlan> plans;
    std::map<std::string, size_t> index;
    {
      const GraphIndex gi = GraphIndex::Build(graph);
      for (const WeightCandidate& c : FindWeights(graph, gi)) {
        if (!c.problem.empty() || !c.IsFloatMatrix() || !ctx.selection.WhyExcluded(c.name).empty()) continue;
        const Options to = ctx.OptionsFor(c.name);
        TensorPlan tp;
        tp.name = c.name;
        tp.role = c.role;
        tp.source_bytes = c.tensor.nbytes();
        tp.source_per_token = TensorBytesPerToken(graph, c.name, c.tensor);
        tp.rows_per_token = tp.source_per_token > 0 ? std::max<uint64_t>(1, tp.source_bytes / tp.source_per_token) : 1;
        const bool table = c.role == "embedding" || c.role == "tied-embedding";
        if (to.GetString("pin") != "auto") {
          tp.pin = to.GetString("pin");
          tp.requested.push_back(*ParseScheme(tp.pin));
        } else {
          for (const WeightScheme& sch : candidates) {
            if (!table || sch.kind != WeightScheme::Kind::kInt4) tp.requested.push_back(sch);
          }
          if (tp.requested.empty()) tp.requested.push_back(WeightScheme{});
        }
        // The gain reference and the lower bound of the cost: the request
        // with the fewest bytes (dense; a sparse layout can only be smaller).
        uint64_t fewest = UINT64_MAX;
        for (size_t r = 0; r < tp.requested.size(); ++r) {
          const uint64_t b = DenseSchemeBytes(tp.requested[r], c.tensor.dtype(), c.n, c.k);
          if (b < fewest) {
            fewest = b;
            tp.reference = r;
          }
        }
        tp.min_bytes = fewest;
        const double nan = std::numeric_limits<double>::quiet_NaN();
        tp.trials.resize(tp.requested.size());
        tp.exact.assign(tp.requested.size(), nan);
        tp.proxy.assign(tp.requested.size(), nan);
        index[c.name] = plans.size();
        plans.push_back(std::move(tp));
      }
    }
    auto requests = [&](const WeightCandidate& c, const Options& to) {
      std::vector<WeightRequest> out;
      auto it = index.find(c.name);
      if (it == index.end()) return out;
      for (const WeightScheme& sch : plans[it->second].requested) out.push_back(SearchRequest(sch, to));
      return out;
    };

    // The part of the budget no allocation changes: other weights (and for
    // a bytes-per-token budget the KV cache at the context).
    double fixed = 0, lower = 0;
    int64_t context = 0;
    double kv_bytes = 0;
    if (budget.per_token) {
      Model as_model;
      as_model.graph = graph;
      fixed = static_cast<double>(ComputeModelStats(as_model).weight_bytes_per_token);
      for (const TensorPlan& tp : plans) fixed -= static_cast<double>(tp.source_per_token);
      context = o.GetInt("context") > 0 ? o.GetInt("context") : ctx.default_context;
      kv_bytes = static_cast<double>(ctx.kv_bytes_per_context_token) * static_cast<double>(context);
      fixed += kv_bytes;
    } else {
      fixed = static_cast<double>(stats.bytes);
      for (const TensorPlan& tp : plans) fixed -= static_cast<double>(tp.source_bytes);
    }
    auto per_token = [&](const TensorPlan& tp, double bytes) {
      return budget.per_token ? std::ceil(bytes / static_cast<double>(tp.rows_per_token)) : bytes;
    };
    for (const TensorPlan& tp : plans) lower += per_token(tp, static_cast<double>(tp.min_bytes));
    auto unreachable = [&](double smallest) {
      return InvalidInput("pass mixed: budget ", budget.text, " = ", budget.Express(budget.limit),
                          " cannot be met: the smallest reachable is ", budget.Express(fixed + smallest),
                          " (every tensor at its cheapest scheme",
                          budget.per_token ? StrCat(", KV cache at context ", context, ": ",
                                                    static_cast<uint64_t>(kv_bytes), " bytes") : std::string(),
                          ")");
    };
    // Before any trial when no mask can make a layout smaller than dense.
    if (graph.weight_masks.empty() && budget.limit < fixed + lower) return unreachable(lower);

    size_t model_runs = 0;
    auto score = [&](const WeightCandidate& c, const std::vector<float>& w) -> Expected<double> {
      ++model_runs;
      return ctx.scorer->Divergence(WithWeight(graph, c, w), score_seqs, score_tokens);
    };
    auto visit = [&](const WeightCandidate& c, size_t r, const SchemeTrial& trial,
                     const std::vector<float>* w) -> Status {
      TensorPlan& tp = plans[index.at(c.name)];
      tp.trials[r] = trial;
      const bool exact = mode != "proxy";
      if (!trial.quantized) {
        tp.exact[r] = 0;  // the source weights: no loss
      } else if (exact) {
        SLIM_ASSIGN_OR_RETURN(tp.exact[r], score(c, *w));
      }
      if (r == tp.reference && trial.quantized) {
        const double e = RelError(trial);
        if (!ctx.scorer) {
          tp.gain = 1.0;
        } else {
          double d = tp.exact[r];
          if (!exact) {
            SLIM_ASSIGN_OR_RETURN(d, score(c, *w));
          }
          tp.gain = e > 0 ? d / e : 0.0;
        }
      }
      return Status::Ok();
    };
    SLIM_RETURN_IF_ERROR(TrialWeightSchemes(graph, ctx, requests, visit));
    for (TensorPlan& tp : plans) {
      // A tensor whose reference trial fell back (nothing measured the gain)
      // is weighted as without a scorer.
      if (std::isnan(tp.gain)) tp.gain = 1.0;
      for (size_t r = 0; r < tp.trials.size(); ++r) {
        tp.proxy[r] = tp.trials[r].quantized ? tp.gain * RelError(tp.trials[r]) : 0.0;
      }
    }

    // 2. Allocation. Choices are the distinct schemes the trials applied
    // (a fallback can make two requests the same scheme).
    const bool use_exact = mode != "proxy";
    auto cost_of = [&](const TensorPlan& tp, size_t r) { return per_token(tp, static_cast<double>(tp.trials[r].bytes)); };
    std::vector<AllocItem> items;
    for (TensorPlan& tp : plans) {
      AllocItem item;
      std::vector<std::string> seen;
      for (size_t r = 0; r < tp.trials.size(); ++r) {
        const std::string applied = tp.trials[r].scheme.Name();
        if (std::find(seen.begin(), seen.end(), applied) != seen.end()) continue;
        seen.push_back(applied);
        tp.choices.push_back(r);
        item.choices.push_back({cost_of(tp, r), use_exact ? tp.exact[r] : tp.proxy[r]});
      }
      items.push_back(std::move(item));
    }
    SLIM_ASSIGN_OR_RETURN(KnapsackSolver solver, KnapsackSolver::Create(items));
    const double item_budget = budget.limit - fixed;
    if (item_budget < solver.min_cost()) return unreachable(solver.min_cost());
    SLIM_ASSIGN_OR_RETURN(const Allocation alloc, solver.Solve(item_budget));
    std::map<std::string, WeightScheme> chosen;
    for (size_t i = 0; i < plans.size(); ++i) {
      plans[i].chosen = plans[i].choices[alloc.choice[i]];
      chosen[plans[i].name] = plans[i].trials[plans[i].chosen].scheme;
    }

    // Pareto table: budgets from every tensor at its cheapest int4 choice to
    // every tensor at int8 (or the dearest choice without int8).
    double all_int4 = 0, all_int8 = 0;
    for (size_t i = 0; i < plans.size(); ++i) {
      double lo4 = std::numeric_limits<double>::infinity(), c8 = 0, hi = 0;
      for (size_t j = 0; j < plans[i].choices.size(); ++j) {
        const WeightScheme& s = plans[i].trials[plans[i].choices[j]].scheme;
        const double c = items[i].choices[j].cost;
        hi = std::max(hi, c);
        if (s.kind == WeightScheme::Kind::kInt4) lo4 = std::min(lo4, c);
        if (s.kind == WeightScheme::Kind::kInt8) c8 = c;
      }
      double lo = std::numeric_limits<double>::infinity();
      for (const AllocChoice& ch : items[i].choices) lo = std::min(lo, ch.cost);
      all_int4 += std::isfinite(lo4) ? lo4 : lo;
      all_int8 += c8 > 0 ? c8 : hi;
    }
    nlohmann::ordered_json pareto = nlohmann::ordered_json::array();
    std::vector<std::string> lines;
    lines.push_back(StrCat("mixed: budget ", budget.text, " = ", budget.Express(budget.limit), "; chosen ",
                           budget.Express(fixed + alloc.cost), ", estimated loss ", Sci(alloc.loss), " (",
                           use_exact ? "exact" : "proxy", ")"));
    lines.push_back(StrCat("Pareto (", budget.per_token ? "bytes per token" : "budget", " -> estimated loss):"));
    const int points = static_cast<int>(o.GetInt("pareto_points"));
    const double p_lo = std::max(all_int4, solver.min_cost()), p_hi = std::max(all_int8, p_lo);
    for (int p = 0; p < points; ++p) {
      const double b = p_lo + (p_hi - p_lo) * static_cast<double>(p) / static_cast<double>(points - 1);
      auto a = solver.Solve(b);
      if (!a.ok()) continue;
      size_t int8_count = 0;
      for (size_t i = 0; i < plans.size(); ++i) {
        int8_count += plans[i].trials[plans[i].choices[a->choice[i]]].scheme.kind == WeightScheme::Kind::kInt8;
      }
      pareto.push_back({{"budget", fixed + b}, {"budget_text", budget.Express(fixed + b)},
                        {"cost", fixed + a->cost}, {"estimated_loss", a->loss}, {"int8_tensors", int8_count}});
      lines.push_back(StrCat("  ", budget.Express(fixed + b), " -> ", Sci(a->loss), " (", int8_count, " int8)"));
    }

    // Rank correlation of proxy and exact over the quantized trials.
    nlohmann::ordered_json details;
    details["sensitivity"] = mode;
    details["scorer"] = ctx.scorer ? ctx.scorer->Describe() : "none (relative errors, every tensor weighted alike)";
    details["model_runs"] = model_runs;
    if (mode == "both") {
      std::vector<double> ex, px;
      for (const TensorPlan& tp : plans) {
        for (size_t r = 0; r < tp.trials.size(); ++r) {
          if (!tp.trials[r].quantized) continue;
          ex.push_back(tp.exact[r]);
          px.push_back(tp.proxy[r]);
        }
      }
      const double rho = SpearmanCorrelation(ex, px);
      details["proxy_exact_spearman"] = rho;
      lines.push_back(StrCat("proxy vs exact: Spearman rank correlation ", FormatFixed(rho, 3), " over ", ex.size(),
                             " trials"));
    }
    details["budget"] = {{"given", budget.text},
                         {"limit", budget.limit},
                         {"unit", budget.per_token ? "bytes per token" : "bytes"},
                         {"fixed", fixed},
                         {"kv_cache_bytes", kv_bytes},
                         {"context", context},
                         {"chosen", fixed + alloc.cost},
                         {"chosen_text", budget.Express(fixed + alloc.cost)},
                         {"optimality_gap",
                          StrCat("loss at most the exact optimum at a budget ", static_cast<uint64_t>(alloc.gap_cost),
                                 " smaller (", plans.size(), " tensors x quantum ", solver.quantum(), ")")}};
    details["estimated_loss"] = alloc.loss;
    nlohmann::ordered_json tensors = nlohmann::ordered_json::array();
    for (const TensorPlan& tp : plans) {
      nlohmann::ordered_json tj;
      tj["name"] = tp.name;
      tj["role"] = tp.role;
      tj["pinned"] = tp.pin;
      tj["gain"] = tp.gain;
      tj["chosen"] = tp.trials[tp.chosen].scheme.Name();
      nlohmann::ordered_json trials = nlohmann::ordered_json::array();
      for (size_t j = 0; j < tp.choices.size(); ++j) {
        const size_t r = tp.choices[j];
        const SchemeTrial& t = tp.trials[r];
        nlohmann::ordered_json trial{{"scheme", t.scheme.Name()},
                                     {"layout", t.layout},
                                     {"bytes", t.bytes},
                                     {"cost", cost_of(tp, r)},
                                     {"rel_error", t.quantized ? RelError(t) : 0.0},
                                     {"proxy_loss", tp.proxy[r]}};
        trial["exact_loss"] = std::isnan(tp.exact[r]) ? nlohmann::ordered_json() : nlohmann::ordered_json(tp.exact[r]);
        if (!t.reason.empty()) trial["note"] = t.reason;
        trials.push_back(std::move(trial));
      }
      tj["trials"] = std::move(trials);
      tensors.push_back(std::move(tj));
    }
    details["tensors"] = std::move(tensors);
    details["pareto"] = std::move(pareto);

    // 3. Apply.
    auto applied = RunWeightQuantization(graph, ctx, [&](const WeightCandidate& c, const Options& to) {
      auto it = chosen.find(c.name);
      return SearchRequest(it != chosen.end() ? it->second : WeightScheme{}, to);
    });
    if (!applied.ok()) return applied.status();
    PassReport report = std::move(*applied);
    report.details_json = details.dump();
    report.summary_lines = std::move(lines);
    report.counters["model_runs"] = static_cast<int64_t>(model_runs);
    return report;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeMixedPrecisionPass() { return std::make_unique<MixedPrecisionPass>(); }

}  // namespace slim
