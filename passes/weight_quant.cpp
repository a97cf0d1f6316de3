// Weight discovery, planning (with fallbacks), parallel quantization and the
// graph rewrite shared by the quantization passes; see weight_quant.h.
#include "passes/weight_quant.h"

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <mutex>
#include <optional>
#include <set>
#include <thread>
#include <unordered_map>

#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/quantize.h"
#include "libcompress/numerics/prune.h"
#include "passes/awq.h"
#include "passes/factor_units.h"
#include "passes/weight_finder.h"

namespace slim {
namespace {

using Clock = std::chrono::steady_clock;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

// The plan for one candidate.
struct Plan {
  TensorReport report;
  WeightRequest request;  // as requested (scheme may be adjusted below)
  WeightScheme actual;
  size_t n = 0, k = 0;
  bool quantize = false;
  std::vector<float> importance;          // K entries, empty: uniform
  const ActivationStat* sample = nullptr;  // rows to measure output error on
  const ActivationStat* hessian = nullptr;  // GPTQ: the input whose gram is used
  const WeightMask* mask = nullptr;  // pruned weights stay zero (Graph::weight_masks)
  QuantLayout layout;                // what the codes are packed into
  // int8 with a mask, read by matmuls only: the layout (q8_row, q8_s24_row
  // or q8_bm_row) is chosen from the codes once they exist (ChooseInt8Layout).
  bool choose_int8_layout = false;
};

struct Result {
  std::vector<uint8_t> blob;
  QuantLayout layout;          // what blob is packed in
  size_t layout_bytes = 0;     // its size by the layout's formula
  std::string layout_reason;   // why (sparse choices only)
  QuantErrorStats error;
  std::optional<double> output_error;  // with a calibration sample
  std::string failure;  // quantizer refused (non-finite weight): falls back to keep
  double seconds = 0;
};

QuantLayout RowLayout(const WeightScheme& s) {
  QuantLayout l;
  if (s.kind == WeightScheme::Kind::kInt8) {
    l.kind = QuantLayoutKind::kQ8Row;
    l.group_size = 0;
    l.symmetric = true;
  } else {
    // nl codes have one layout, the x8 tiles of its i8-dot kernels.
    l.kind = s.nl ? QuantLayoutKind::kQ4NlX8 : QuantLayoutKind::kQ4Row;
    l.group_size = static_cast<size_t>(s.group_size);
    l.symmetric = s.symmetric || s.nl;
  }
  return l;
}

int SourceBits(DType t) { return static_cast<int>(DTypeSize(t) * 8); }

// The smallest int8 layout for a sparse matrix with nnz nonzero codes, which
// fit 2:4 when fits_24: q8_row, q8_s24_row or q8_bm_row (ties go to the
// simpler layout, in that order), with the sizes behind the choice.
struct LayoutChoice {
  QuantLayout layout;
  size_t bytes = 0;
  std::string reason;
};
LayoutChoice ChooseInt8Layout(size_t n, size_t k, size_t nnz, bool fits_24) {
  const QuantLayout dense{QuantLayoutKind::kQ8Row, 0, true};
  const QuantLayout s24{QuantLayoutKind::kQ8S24Row, 0, true};
  const QuantLayout bm{QuantLayoutKind::kQ8BmRow, 0, true};
  const size_t dense_bytes = dense.PackedBytes(n, k), bm_bytes = bm.PackedBytes(n, k, nnz);
  LayoutChoice c{dense, dense_bytes, ""};
  if (fits_24 && s24.PackedBytes(n, k) < c.bytes) c = {s24, s24.PackedBytes(n, k), ""};
  if (bm_bytes < c.bytes) c = {bm, bm_bytes, ""};
  const double density = static_cast<double>(nnz) / static_cast<double>(n * k);
  auto ratio = [&](size_t bytes) { return StrCat(FormatFixed(static_cast<double>(bytes) / static_cast<double>(dense_bytes), 3), "x"); };
  if (c.layout == dense) {
    c.reason = StrCat("stored dense: at ", FormatFixed(100.0 * density, 1), "% nonzero codes q8_bm_row would be ",
                      ratio(bm_bytes), " of q8_row", fits_24 ? "" : " (and the codes are not 2:4)");
  } else {
    c.reason = StrCat(c.layout.Name(), ": ", ratio(c.bytes), " of q8_row at ", FormatFixed(100.0 * density, 1),
                      "% nonzero codes", c.layout == s24 ? "" : StrCat(" (2:4 ", fits_24 ? "larger" : "does not fit", ")"));
  }
  return c;
}

// Whether every quad (4 consecutive elements of a row) keeps at most two.
bool MaskIs24(const uint8_t* keep, size_t n, size_t k) {
  for (size_t r = 0; r < n; ++r) {
    for (size_t j = 0; j < k; j += 4) {
      int kept = 0;
      for (size_t e = j; e < std::min(k, j + 4); ++e) kept += keep[r * k + e] != 0;
      if (kept > 2) return false;
    }
  }
  return true;
}

}  // namespace

uint64_t DenseSchemeBytes(const WeightScheme& s, DType source, size_t n, size_t k) {
  if (s.kind == WeightScheme::Kind::kKeep) return static_cast<uint64_t>(n * k * DTypeSize(source));
  return RowLayout(s).PackedBytes(n, k);
}

namespace {

double SchemeBitsPerWeight(const WeightScheme& s, DType source, size_t n, size_t k) {
  return 8.0 * static_cast<double>(DenseSchemeBytes(s, source, n, k)) / static_cast<double>(n * k);
}

// Importance for the search and the sample for the output error, from the
// calibration statistics of the weight's matmul inputs. A weight read by
// several matmuls (rare: a shared projection) gets the mean of their
// E[x^2] and the first one's sample (and Hessian, for GPTQ). A Gather-only
// table has none of them.
void AttachActivationStats(const WeightCandidate& c, const PassContext& ctx, Plan* p) {
  p->report.importance = "uniform";
  if (!ctx.activations) return;
  std::vector<double> sum(p->k, 0.0);
  size_t found = 0;
  for (const std::string& v : c.activations) {
    const ActivationStat* st = ctx.activations->Find(v);
    if (!st || static_cast<size_t>(st->dim) != p->k) continue;
    ++found;
    for (size_t i = 0; i < p->k; ++i) sum[i] += st->mean_sq[i];
    if (!p->sample && st->sample_rows > 0) p->sample = st;
    // A tied table is also read row by row by Gather, where GPTQ's
    // compensated rows would only add error: the search alone serves both.
    if (!p->hessian && p->request.gptq && !st->gram.empty() && c.role != "tied-embedding") {
      p->hessian = st;
    }
  }
  if (found == 0 || !p->request.activation_importance) return;
  double mean = 0;
  for (double v : sum) mean += v;
  mean /= static_cast<double>(p->k);
  if (!(mean > 0) || !std::isfinite(mean)) return;
  // A floor of 1e-6 of the mean keeps columns that never fired in play (the
  // least-squares scale needs some weight on every code) without letting
  // them matter.
  p->importance.resize(p->k);
  for (size_t i = 0; i < p->k; ++i) {
    p->importance[i] = static_cast<float>((sum[i] + 1e-6 * mean) / static_cast<double>(found));
  }
  p->report.importance = "activations";
}

Plan MakePlan(const WeightCandidate* c, const PassContext& ctx, const WeightRequestFn& request) {
  Plan p;
  TensorReport& r = p.report;
  r.name = c->name;
  r.shape = c->tensor.shape();
  r.source_dtype = DTypeName(c->tensor.dtype());
  r.role = c->role;
  r.params = std::max<int64_t>(c->tensor.numel(), 0);
  r.bytes_before = c->tensor.nbytes();
  p.request = request(*c, ctx.OptionsFor(c->name));
  r.requested = p.request.scheme.Name();

  auto keep = [&](std::string reason, bool fallback) {
    p.actual = WeightScheme{};
    p.quantize = false;
    r.actual = p.actual.Name();
    r.bits = SourceBits(c->tensor.dtype());
    r.layout = r.source_dtype;
    r.bytes_after = r.bytes_before;
    r.fallback = fallback;
    r.reason = std::move(reason);
  };

  const bool is_float = IsFloat(c->tensor.dtype());
  const std::string& readers = c->problem;
  p.n = c->n;
  p.k = c->k;
  r.requested_bits_per_weight =
      c->tensor.rank() == 2 && is_float
          ? SchemeBitsPerWeight(p.request.scheme, c->tensor.dtype(), p.n, p.k)
          : SourceBits(c->tensor.dtype());

  if (!is_float) {
    keep(StrCat("dtype ", r.source_dtype, " is not a float weight"), false);
    return p;
  }
  const std::string excluded = ctx.selection.WhyExcluded(c->name);
  if (!excluded.empty()) {
    keep(excluded, false);
    return p;
  }
  if (p.request.scheme.kind == WeightScheme::Kind::kKeep) {
    keep(StrCat(c->role, " kept as requested"), false);
    return p;
  }
  if (!readers.empty()) {
    keep(readers, true);
    return p;
  }
  if (p.n == 0 || p.k == 0) {
    keep(StrCat("empty weight ", ShapeToString(c->tensor.shape())), true);
    return p;
  }

  p.actual = p.request.scheme;
  bool has_gather = false;
  for (const WeightUse& u : c->uses) has_gather |= u.kind == UseKind::kGather;
  if (p.actual.kind == WeightScheme::Kind::kInt4 && has_gather) {
    p.actual = WeightScheme{WeightScheme::Kind::kInt8, 0, true};
    r.fallback = true;
    r.reason = "also a Gather table: GatherQ reads int8 per-row codes, so int8 for both readers";
  } else if (p.actual.kind == WeightScheme::Kind::kInt4 && p.k < 32) {
    p.actual = WeightScheme{WeightScheme::Kind::kInt8, 0, true};
    r.fallback = true;
    r.reason = StrCat("K=", p.k, " < 32: a padded int4 group would cost more than int8 per row");
  } else if (p.actual.kind == WeightScheme::Kind::kInt4 &&
             p.k < static_cast<size_t>(p.actual.group_size)) {
    p.actual.group_size = p.k >= 64 ? 64 : 32;
    r.fallback = true;
    r.reason = StrCat("K=", p.k, " < group ", p.request.scheme.group_size, ": group ",
                      p.actual.group_size, " avoids storing padding");
  }
  p.quantize = true;
  const QuantLayout layout = RowLayout(p.actual);
  p.layout = layout;
  r.actual = p.actual.Name();
  r.bits = p.actual.kind == WeightScheme::Kind::kInt8 ? 8 : 4;
  r.group_size = p.actual.kind == WeightScheme::Kind::kInt8 ? static_cast<int64_t>(p.k)
                                                              : p.actual.group_size;
  r.symmetric = p.actual.symmetric;
  r.layout = layout.Name();
  r.bytes_after = layout.PackedBytes(p.n, p.k);
  AttachActivationStats(*c, ctx, &p);
  r.method = p.hessian ? "gptq" : p.request.search ? "search" : "rtn";
  return p;
}

// The weight's pruning mask (Graph::weight_masks), if any: pruned elements
// keep the code of 0.0, and the packed layout may be a sparse one.
Status AttachMask(const Graph& graph, const WeightCandidate& c, const PassContext& ctx, Plan* plan) {
  Plan& p = *plan;
  auto m = graph.weight_masks.find(p.report.name);
  if (m == graph.weight_masks.end()) return Status::Ok();
  const std::vector<int64_t> nk{static_cast<int64_t>(p.n), static_cast<int64_t>(p.k)};
  if (m->second.keep.shape() != nk || m->second.keep.dtype() != DType::kUInt8) {
    return Internal(ctx.pass_name, ": mask of '", p.report.name, "' is ", ShapeToString(m->second.keep.shape()),
                    ", the weight is ", ShapeToString(nk));
  }
  p.mask = &m->second;
  p.report.sparsity = MaskSparsity(m->second.keep.data<uint8_t>(), p.n * p.k);
  p.report.sparsity_pattern = m->second.pattern;
  if (!p.quantize) return Status::Ok();
  const uint8_t* keep = m->second.keep.data<uint8_t>();
  if (p.actual.kind == WeightScheme::Kind::kInt4 && p.actual.nl) {
    // nl has no level 0, so a pruned weight could not stay 0.
    p.actual.nl = false;
    p.actual.symmetric = true;
    p.layout = RowLayout(p.actual);
    p.report.actual = p.actual.Name();
    p.report.symmetric = true;
    p.report.layout = p.layout.Name();
    p.report.bytes_after = p.layout.PackedBytes(p.n, p.k);
    p.report.fallback = true;
    p.report.reason = StrCat(p.report.reason.empty() ? "" : p.report.reason + "; ",
                             "nl has no level 0, so a pruned weight could not stay 0: uniform symmetric int4");
  }
  if (p.actual.kind == WeightScheme::Kind::kInt8) {
    // The codes decide (a kept weight may round to 0); until they exist the
    // report shows the choice for the mask.
    for (const WeightUse& u : c.uses) {
      if (u.kind == UseKind::kGather) {
        p.report.reason = "sparse mask stored dense: also a Gather table, and GatherQ reads q8_row";
        return Status::Ok();
      }
    }
    const size_t kept = static_cast<size_t>(std::count_if(keep, keep + p.n * p.k, [](uint8_t v) { return v != 0; }));
    const LayoutChoice lc = ChooseInt8Layout(p.n, p.k, kept, MaskIs24(keep, p.n, p.k));
    p.choose_int8_layout = true;
    p.layout = lc.layout;
    p.report.layout = lc.layout.Name();
    p.report.bytes_after = lc.bytes;
    p.report.reason = lc.reason;
  } else if (m->second.pattern == "2:4" && p.actual.symmetric) {
    // 3.5 instead of 4.5 bits per weight at group 32.
    p.layout = QuantLayout{QuantLayoutKind::kQ4S24Row, static_cast<size_t>(p.actual.group_size), true};
    p.report.layout = p.layout.Name();
    p.report.bytes_after = p.layout.PackedBytes(p.n, p.k);
  } else {
    p.report.reason = StrCat(p.report.reason.empty() ? "" : p.report.reason + "; ", m->second.pattern,
                             " mask stored dense: the sparse int4 layout is 2:4 symmetric "
                             "(int8 has 2:4 and bitmask layouts)");
  }
  return Status::Ok();
}

// The quantizer options of a plan (without GPTQ's factor).
QuantOptions QuantOptionsOf(const Plan& p) {
  QuantOptions qo;
  qo.scheme.bits = p.actual.kind == WeightScheme::Kind::kInt8 ? 8 : 4;
  qo.scheme.group_size = p.actual.kind == WeightScheme::Kind::kInt8
                             ? 32
                             : static_cast<size_t>(p.actual.group_size);
  qo.scheme.symmetric = p.actual.symmetric;
  qo.scheme.nl = p.actual.nl;
  qo.search = p.request.search;
  qo.clip_steps = p.request.clip_steps;
  qo.refine_iters = p.request.refine_iters;
  qo.importance = p.importance.empty() ? nullptr : p.importance.data();
  qo.importance_row_stride = 0;  // one K-vector for every row
  qo.keep = p.mask ? p.mask->keep.data<uint8_t>() : nullptr;
  return qo;
}

Result Quantize(const WeightCandidate& c, const Plan& p, const GptqFactor* gptq) {
  const auto t0 = Clock::now();
  Result res;
  const std::vector<float> w = WeightRowsNK(c);
  QuantOptions qo = QuantOptionsOf(p);
  qo.gptq = gptq;
  auto q = QuantizeMatrix(w.data(), p.n, p.k, qo);
  if (!q.ok()) {
    res.failure = q.status().message();
  } else {
    res.error = q->error;
    if (p.sample) {
      res.output_error = MeasureOutputError(w.data(), *q, p.sample->sample.data(),
                                            static_cast<size_t>(p.sample->sample_rows));
    }
    res.layout = p.layout;
    res.layout_bytes = p.layout.PackedBytes(p.n, p.k);
    if (p.choose_int8_layout) {
      const LayoutChoice lc = ChooseInt8Layout(p.n, p.k, NonzeroCodes(*q),
                                               CodesFitLayout(*q, QuantLayout{QuantLayoutKind::kQ8S24Row, 0, true}));
      res.layout = lc.layout;
      res.layout_bytes = lc.bytes;
      res.layout_reason = lc.reason;
    }
    auto blob = PackQuantized(*q, res.layout);
    if (!blob.ok()) {
      res.failure = blob.status().message();
    } else {
      res.blob = std::move(*blob);
    }
  }
  res.seconds = SecondsSince(t0);
  return res;
}

// Quantizes plans[i] for every i with plans[i].quantize, on up to `threads`
// threads; results land at their plan's index, so the output does not
// depend on the thread count. Tensors that share a GPTQ input (q/k/v,
// gate/up) form one work unit, so its factor (O(K^3)) is computed once and
// freed when the unit is done.
std::vector<Result> QuantizeAll(const std::vector<WeightCandidate>& cands, const std::vector<Plan>& plans,
                                const PassContext& ctx) {
  std::vector<FactorItem> items;
  for (size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].quantize) items.push_back({i, plans[i].hessian, plans[i].request.gptq_damp});
  }
  std::vector<Result> results(plans.size());
  size_t done = 0;
  RunPerInput(
      items, ctx.threads,
      [&](size_t i, const Expected<GptqFactor>* factor) {
        if (factor && !factor->ok()) {
          results[i].failure = factor->status().message();
        } else {
          results[i] = Quantize(cands[i], plans[i], factor ? &**factor : nullptr);
        }
      },
      [&](size_t i) { ctx.Progress(++done, items.size(), cands[i].name); });
  return results;
}

Node MakeQuantNode(const Node& old, const WeightCandidate& c, const Plan& p, UseKind kind) {
  Node n;
  n.name = old.name;
  n.domain = "slimpack";
  n.outputs = old.outputs;
  const std::string layout = p.report.layout;
  if (kind == UseKind::kGather) {
    n.op_type = "GatherQ";
    n.inputs = {c.name, old.Input(1)};
    n.attrs["layout"] = Attribute::String(layout);
    return n;
  }
  n.op_type = "MatMulQ";
  n.inputs = {old.Input(0), c.name};
  if (kind == UseKind::kGemmB && !old.Input(2).empty()) {
    n.inputs.push_back(old.Input(2));
  }
  n.attrs["K"] = Attribute::Int(static_cast<int64_t>(p.k));
  n.attrs["N"] = Attribute::Int(static_cast<int64_t>(p.n));
  n.attrs["bits"] = Attribute::Int(p.report.bits);
  n.attrs["group_size"] = Attribute::Int(p.report.group_size);
  n.attrs["symmetric"] = Attribute::Int(p.actual.symmetric ? 1 : 0);
  n.attrs["layout"] = Attribute::String(layout);
  return n;
}

}  // namespace

WeightRequest SearchRequest(const WeightScheme& scheme, const Options& o) {
  WeightRequest r;
  r.scheme = scheme;
  r.search = o.GetBool("search");
  r.clip_steps = static_cast<int>(o.GetInt("clip_steps"));
  r.refine_iters = static_cast<int>(o.GetInt("refine_iters"));
  r.activation_importance = o.GetString("importance") == "activations";
  r.gptq = o.GetBool("gptq");
  r.gptq_damp = o.GetFloat("gptq_damp");
  r.awq = o.GetBool("awq");
  return r;
}

PassInfo WithSearchOptions(PassInfo info, const std::string& unit) {
  std::vector<OptionSpec> search = {
      BoolOption("search", true,
                 StrCat("search the clip ratio and refine each ", unit,
                        "'s scale by least squares; false = plain max-abs round-to-nearest (the "
                        "baseline)"),
                 true),
      IntOption("clip_steps", 32, 0, 512, "search grid: clip ratios 1.0 down to 0.5 in clip_steps steps"),
      IntOption("refine_iters", 4, 0, 64, StrCat("least-squares scale refinements per ", unit)),
      EnumOption("importance", "activations", {"activations", "uniform"},
                 "what weights the search's squared error: activations = E[x_k^2] of the weight's "
                 "input on the compile --calib data (uniform without --calib); uniform = every "
                 "element alike",
                 true),
      BoolOption("gptq", false,
                 "GPTQ: quantize input columns in order and compensate each column's rounding "
                 "error in the columns not yet quantized, through the inverse Hessian E[x x^T] of "
                 "the weight's input (needs compile --calib; Gather tables, tied classifiers "
                 "included, use the search alone)",
                 true),
      FloatOption("gptq_damp", 0.01, 1e-6, 10.0,
                  "GPTQ damping: this fraction of the Hessian's mean diagonal is added to its "
                  "diagonal (raise it if a Hessian is reported not positive definite)",
                  true),
  };
  info.options.insert(info.options.end(), search.begin(), search.end());
  return info;
}

PassInfo WithAwqOptions(PassInfo info) {
  info.options.push_back(BoolOption(
      "awq", false,
      "activation-aware scaling (AWQ): per input channel scales s, searched on the compile --calib data to "
      "minimise the layer's output error after quantization, multiply the weight's input columns, and 1/s is "
      "folded into the norm or linear layer producing the input (an explicit Mul where none can take it); "
      "then the search / GPTQ choose the codes. Needs compile --calib",
      true));
  info.options.push_back(IntOption("awq_grid", 20, 1, 100,
                                   "AWQ search grid: exponents alpha = i / awq_grid, i = 0..awq_grid-1, of "
                                   "s = sqrt(E[x^2])^alpha (alpha 0 = no scaling)"));
  return info;
}

namespace {
bool OptionSetAnywhere(const PassContext& ctx, const std::string& key) {
  if (ctx.options.GetBool(key)) return true;
  for (const auto& ov : ctx.overrides) {
    if (ov.options.GetBool(key)) return true;
  }
  return false;
}
}  // namespace

bool WeightPassNeedsHessians(const PassContext& ctx) { return OptionSetAnywhere(ctx, "gptq"); }

bool WeightPassNeedsActivations(const PassContext& ctx) {
  return OptionSetAnywhere(ctx, "gptq") || OptionSetAnywhere(ctx, "awq");
}

std::string WeightScheme::Name() const {
  switch (kind) {
    case Kind::kKeep: return "keep";
    case Kind::kInt8: return "int8";
    case Kind::kInt4:
      return StrCat("int4-g", group_size, nl ? "-nl" : symmetric ? "-sym" : "-asym");
  }
  return "?";
}

Expected<PassReport> RunWeightQuantization(Graph& graph, const PassContext& ctx,
                                           const WeightRequestFn& request) {
  const auto t0 = Clock::now();
  const Graph* work = &graph;  // the graph the codes are chosen on (AWQ rescales a copy)
  GraphIndex index = GraphIndex::Build(graph);
  std::vector<WeightCandidate> cands = FindWeights(graph, index);
  std::vector<Plan> plans;
  auto plan_all = [&](const PassContext& c) -> Status {
    plans.clear();
    plans.reserve(cands.size());
    for (auto& cand : cands) plans.push_back(MakePlan(&cand, c, request));
    for (size_t i = 0; i < plans.size(); ++i) SLIM_RETURN_IF_ERROR(AttachMask(*work, cands[i], c, &plans[i]));
    return Status::Ok();
  };
  SLIM_RETURN_IF_ERROR(plan_all(ctx));

  // AWQ rescales weights and inputs first; the plans are then made again on
  // the rescaled graph, with the statistics of the rescaled inputs.
  Graph awq_graph;
  ActivationStats awq_stats;
  PassContext awq_ctx;
  std::map<std::string, std::string> awq_notes;
  std::vector<AwqRequest> awq_requests;
  int64_t awq_scaled = 0;
  for (size_t i = 0; i < plans.size(); ++i) {
    if (plans[i].quantize && plans[i].request.awq) {
      awq_requests.push_back({i, QuantOptionsOf(plans[i]), plans[i].hessian != nullptr});
    }
  }
  if (!awq_requests.empty() && ctx.dry_run) {
    for (const AwqRequest& r : awq_requests) awq_notes[cands[r.cand].name] = "awq: searched when not a dry run";
  } else if (!awq_requests.empty() && ctx.activations) {
    awq_graph = graph;
    auto rw = ApplyAwqScales(awq_graph, index, cands, awq_requests, *ctx.activations,
                             static_cast<int>(ctx.options.GetInt("awq_grid")), ctx.threads);
    if (!rw.ok()) return rw.status();
    awq_notes = std::move(rw->notes);
    awq_scaled = static_cast<int64_t>(rw->scaled.size());
    if (rw->changed) {
      awq_stats = std::move(rw->derived);
      awq_stats.parent = ctx.activations;
      awq_ctx = ctx;
      awq_ctx.activations = &awq_stats;
      work = &awq_graph;
      index = GraphIndex::Build(awq_graph);
      cands = FindWeights(awq_graph, index);
      SLIM_RETURN_IF_ERROR(plan_all(awq_ctx));
    }
  }
  for (Plan& p : plans) {
    auto it = awq_notes.find(p.report.name);
    if (it != awq_notes.end()) p.report.awq = it->second;
  }

  if (!ctx.activations) {
    for (const Plan& p : plans) {
      if (p.quantize && p.request.search && p.request.activation_importance) {
        ctx.Log("no calibration data (compile --calib): the scale search weights every element alike");
        break;
      }
    }
  }

  PassReport report;
  report.pass = ctx.pass_name;
  std::vector<Result> results;
  if (!ctx.dry_run) {
    results = QuantizeAll(cands, plans, ctx);
    for (size_t i = 0; i < plans.size(); ++i) {
      Plan& p = plans[i];
      if (!p.quantize) continue;
      Result& res = results[i];
      p.report.seconds = res.seconds;
      if (!res.failure.empty()) {
        // Keep the tensor; the quantizer's message names row and column.
        p.quantize = false;
        p.actual = WeightScheme{};
        p.report.actual = p.actual.Name();
        p.report.bits = SourceBits(cands[i].tensor.dtype());
        p.report.group_size = 0;
        p.report.layout = p.report.source_dtype;
        p.report.bytes_after = p.report.bytes_before;
        p.report.fallback = true;
        p.report.reason = res.failure;
        continue;
      }
      if (p.choose_int8_layout) {
        p.layout = res.layout;
        p.report.layout = res.layout.Name();
        p.report.bytes_after = res.layout_bytes;
        p.report.reason = res.layout_reason;
      }
      if (res.blob.size() != p.report.bytes_after) {
        return Internal(ctx.pass_name, ": tensor '", cands[i].name, "' packed to ",
                        res.blob.size(), " bytes, layout ", p.report.layout, " specifies ",
                        p.report.bytes_after);
      }
      p.report.error_measured = true;
      p.report.rel_mse = res.error.sum_sq > 0 ? res.error.sq_error / res.error.sum_sq : 0.0;
      p.report.max_abs_error = res.error.max_abs_error;
      if (res.output_error) {
        p.report.output_error_measured = true;
        p.report.output_rel_error = *res.output_error;
      }
    }
  }

  if (ctx.strict) {
    std::string list;
    size_t count = 0;
    for (const Plan& p : plans) {
      if (!p.report.fallback) continue;
      if (count++ < 5) {
        list += StrCat("; '", p.report.name, "' ", p.report.requested, " -> ", p.report.actual,
                       ": ", p.report.reason);
      }
    }
    if (count > 0) {
      return InvalidInput(ctx.pass_name, ": strict mode: ", count, " tensor(s) fell back", list,
                          count > 5 ? "; ..." : "");
    }
  }

  if (!ctx.dry_run) {
    // Rewrite a copy; it replaces the graph only once it validates.
    Graph out = *work;
    std::vector<bool> remove(out.nodes.size(), false);
    std::vector<std::vector<Node>> after(out.nodes.size());  // nodes inserted after node i
    for (size_t i = 0; i < plans.size(); ++i) {
      const Plan& p = plans[i];
      if (!p.quantize) continue;
      const WeightCandidate& c = cands[i];
      const DType dt = p.actual.kind == WeightScheme::Kind::kInt8 ? DType::kInt8Packed
                                                                 : DType::kInt4Packed;
      const std::vector<uint8_t>& blob = results[i].blob;
      Tensor packed = Tensor::FromBytes(
          dt, {static_cast<int64_t>(p.n), static_cast<int64_t>(p.k)}, blob.data(), blob.size());
      if (c.constant_node >= 0) remove[static_cast<size_t>(c.constant_node)] = true;
      out.AddInitializer(c.name, std::move(packed));
      out.value_info.erase(c.name);
      for (int ci : c.cast_nodes) {
        remove[static_cast<size_t>(ci)] = true;
        for (const auto& o : out.nodes[static_cast<size_t>(ci)].outputs) out.value_info.erase(o);
      }
      for (const WeightUse& u : c.uses) {
        Node& old = out.nodes[static_cast<size_t>(u.node)];
        old = MakeQuantNode(old, c, p, u.kind);
        if (u.kind != UseKind::kGather || old.outputs.empty()) continue;
        if (!u.recast) {
          auto vi = out.value_info.find(old.outputs[0]);
          if (vi != out.value_info.end()) vi->second.dtype = DType::kFloat32;
          continue;
        }
        // GatherQ -> "<out>.f32" -> Cast(to=table dtype) -> "<out>".
        std::string f32 = old.outputs[0] + ".f32";
        for (int k = 1; index.producers.count(f32) || out.FindInitializer(f32); ++k) {
          f32 = StrCat(old.outputs[0], ".f32.", k);
        }
        Node cast;
        cast.name = old.name + ".cast_back";
        cast.op_type = "Cast";
        cast.inputs = {f32};
        cast.outputs = {old.outputs[0]};
        cast.attrs["to"] = Attribute::Int(static_cast<int64_t>(c.tensor.dtype()));
        old.outputs[0] = f32;
        after[static_cast<size_t>(u.node)].push_back(std::move(cast));
      }
    }
    std::vector<Node> kept;
    kept.reserve(out.nodes.size());
    for (size_t i = 0; i < out.nodes.size(); ++i) {
      if (!remove[i]) kept.push_back(std::move(out.nodes[i]));
      for (Node& n : after[i]) kept.push_back(std::move(n));
    }
    out.nodes = std::move(kept);
    out.opset_imports["slimpack"] = 1;
    Status valid = out.Validate();
    if (!valid.ok()) {
      return Internal(ctx.pass_name, ": rewritten graph does not validate: ", valid.message());
    }
    graph = std::move(out);
  }

  int64_t quantized = 0, fallbacks = 0, kept = 0, int4 = 0, int8 = 0;
  uint64_t before = 0, after = 0;
  for (Plan& p : plans) {
    if (p.quantize) {
      ++quantized;
      (p.actual.kind == WeightScheme::Kind::kInt4 ? int4 : int8) += 1;
    } else {
      ++kept;
    }
    fallbacks += p.report.fallback ? 1 : 0;
    before += p.report.bytes_before;
    after += p.report.bytes_after;
    report.tensors.push_back(std::move(p.report));
  }
  report.counters["weights"] = static_cast<int64_t>(plans.size());
  report.counters["quantized"] = quantized;
  report.counters["int4"] = int4;
  report.counters["int8"] = int8;
  report.counters["kept"] = kept;
  report.counters["fallbacks"] = fallbacks;
  if (!awq_requests.empty()) report.counters["awq_scaled"] = awq_scaled;
  report.counters["bytes_before"] = static_cast<int64_t>(before);
  report.counters["bytes_after"] = static_cast<int64_t>(after);
  report.seconds = SecondsSince(t0);
  return report;
}

Status TrialWeightSchemes(const Graph& graph, const PassContext& ctx, const TrialRequestsFn& requests,
                          const TrialVisitor& visit) {
  const GraphIndex index = GraphIndex::Build(graph);
  const std::vector<WeightCandidate> cands = FindWeights(graph, index);
  struct Trial {
    size_t cand;
    size_t request;
    Plan plan;
  };
  std::vector<Trial> trials;
  for (size_t i = 0; i < cands.size(); ++i) {
    const std::vector<WeightRequest> reqs = requests(cands[i], ctx.OptionsFor(cands[i].name));
    for (size_t r = 0; r < reqs.size(); ++r) {
      const WeightRequest& req = reqs[r];
      Trial t{i, r, MakePlan(&cands[i], ctx, [&req](const WeightCandidate&, const Options&) { return req; })};
      SLIM_RETURN_IF_ERROR(AttachMask(graph, cands[i], ctx, &t.plan));
      trials.push_back(std::move(t));
    }
  }
  std::vector<FactorItem> items;
  for (size_t i = 0; i < trials.size(); ++i) items.push_back({i, trials[i].plan.hessian, trials[i].plan.request.gptq_damp});
  Status failed = Status::Ok();
  std::mutex mu;
  size_t done = 0;
  RunPerInput(
      items, ctx.threads,
      [&](size_t i, const Expected<GptqFactor>* factor) {
        const Trial& t = trials[i];
        const Plan& p = t.plan;
        SchemeTrial out;
        out.scheme = p.quantize ? p.actual : WeightScheme{};
        out.layout = p.report.layout;
        out.bytes = p.report.bytes_after;
        out.reason = p.report.reason;
        std::vector<float> w;
        if (p.quantize) {
          Result res;
          if (factor && !factor->ok()) {
            res.failure = factor->status().message();
          } else {
            res = Quantize(cands[t.cand], p, factor ? &**factor : nullptr);
          }
          if (res.failure.empty()) {
            out.quantized = true;
            out.layout = res.layout.Name();
            out.bytes = res.blob.size();
            out.rel_mse = res.error.sum_sq > 0 ? res.error.sq_error / res.error.sum_sq : 0.0;
            out.output_error_measured = res.output_error.has_value();
            out.output_rel_error = res.output_error.value_or(0.0);
            w.resize(p.n * p.k);
            Status st = DequantizePacked(res.blob.data(), res.blob.size(), res.layout, p.n, p.k, w.data());
            if (!st.ok()) {
              std::lock_guard<std::mutex> lock(mu);
              if (failed.ok()) failed = st;
              return;
            }
          } else {
            // What RunWeightQuantization does on a refusal: keep the tensor.
            out.scheme = WeightScheme{};
            out.layout = p.report.source_dtype;
            out.bytes = p.report.bytes_before;
            out.reason = res.failure;
          }
        }
        std::lock_guard<std::mutex> lock(mu);
        if (!failed.ok()) return;
        failed = visit(cands[t.cand], t.request, out, out.quantized ? &w : nullptr);
      },
      [&](size_t i) { ctx.Progress(++done, items.size(), cands[trials[i].cand].name); });
  return failed;
}

}  // namespace slim
