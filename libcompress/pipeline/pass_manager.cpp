// Pipeline construction, the already-quantized check, running passes on a
// copy of the graph, and report formatting.
#include "libcompress/pipeline/pass_manager.h"

#include <chrono>
#include <cstdio>
#include <set>

#include <nlohmann/json.hpp>

#include "libcompress/pipeline/options.h"
#include "libcompress/pipeline/registry.h"

namespace slim {
namespace {

Expected<NamePattern> Compile(const std::string& pattern, const std::string& where) {
  try {
    return NamePattern{pattern, std::regex(pattern, std::regex::ECMAScript)};
  } catch (const std::regex_error& e) {
    return InvalidInput(where, ": bad regular expression '", pattern, "': ", e.what());
  }
}

// ONNX quantization operators: a graph using them carries quantized weights.
const std::set<std::string>& QuantizedOps() {
  static const std::set<std::string> k = {
      "DequantizeLinear", "QuantizeLinear", "DynamicQuantizeLinear", "MatMulInteger",
      "QLinearMatMul", "ConvInteger", "QLinearConv", "MatMulNBits", "GatherBlockQuantized",
      "DynamicQuantizeMatMul", "QGemm"};
  return k;
}

std::string Mb(uint64_t bytes) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.2f MB", static_cast<double>(bytes) / 1e6);
  return buf;
}

}  // namespace

Status CheckNotQuantized(const Graph& graph) {
  const char* hint =
      "; it is refused because quantizing quantized weights compounds their error (allow it "
      "with --allow-requantize or the recipe's \"allow_requantize\": true; quantized tensors "
      "are then left as they are)";
  for (const Node& n : graph.nodes) {
    if (n.domain == "slimpack") {
      return InvalidInput("input is already quantized: ", n.Describe(), " is a slimpack operator",
                          hint);
    }
    if (QuantizedOps().count(n.op_type)) {
      return InvalidInput("input is already quantized: ", n.Describe(),
                          " is an ONNX quantization operator", hint);
    }
  }
  for (const auto& name : graph.initializer_names()) {
    const DType t = graph.FindInitializer(name)->dtype();
    if (t == DType::kInt4Packed || t == DType::kInt8Packed) {
      return InvalidInput("input is already quantized: tensor '", name, "' is ", DTypeName(t),
                          hint);
    }
  }
  return Status::Ok();
}

Expected<PassManager> PassManager::Create(const Recipe& recipe, PipelineOptions options) {
  PassManager pm;
  pm.recipe_ = recipe;
  pm.strict_ = options.strict || recipe.strict.value_or(false);
  pm.allow_requantize_ = options.allow_requantize || recipe.allow_requantize.value_or(false);
  SLIM_CHECK_INPUT(options.threads >= 1, "threads must be at least 1, got ", options.threads);
  SLIM_CHECK_INPUT(!recipe.passes.empty(), recipe.source, ": the recipe runs no passes");

  std::vector<NamePattern> include, exclude;
  for (size_t i = 0; i < recipe.include.size(); ++i) {
    SLIM_ASSIGN_OR_RETURN(NamePattern p, Compile(recipe.include[i], StrCat(recipe.source, ": include[", i, "]")));
    include.push_back(std::move(p));
  }
  for (size_t i = 0; i < recipe.exclude.size(); ++i) {
    SLIM_ASSIGN_OR_RETURN(NamePattern p, Compile(recipe.exclude[i], StrCat(recipe.source, ": exclude[", i, "]")));
    exclude.push_back(std::move(p));
  }
  for (size_t i = 0; i < recipe.passes.size(); ++i) {
    const PassStep& s = recipe.passes[i];
    const std::string where = StrCat(recipe.source, ": passes[", i, "]");
    Step step;
    step.pass = FindPass(s.pass);
    SLIM_CHECK_INPUT(step.pass != nullptr, where, ": unknown pass '", s.pass, "'");
    auto resolved = ResolveOptions(*step.pass, s.options);
    if (!resolved.ok()) return resolved.status().WithContext(where);
    PassContext& ctx = step.ctx;
    ctx.pass_name = s.pass;
    ctx.pass_index = i;
    ctx.pass_count = recipe.passes.size();
    ctx.options = std::move(*resolved);
    ctx.selection.include = include;
    ctx.selection.exclude = exclude;
    ctx.selection.step_weights = options.step_weights;
    for (size_t k = 0; k < s.include.size(); ++k) {
      SLIM_ASSIGN_OR_RETURN(NamePattern p, Compile(s.include[k], StrCat(where, ".include[", k, "]")));
      ctx.selection.include.push_back(std::move(p));
    }
    for (size_t k = 0; k < s.exclude.size(); ++k) {
      SLIM_ASSIGN_OR_RETURN(NamePattern p, Compile(s.exclude[k], StrCat(where, ".exclude[", k, "]")));
      ctx.selection.exclude.push_back(std::move(p));
    }
    for (size_t k = 0; k < s.overrides.size(); ++k) {
      const auto& [pattern, opts] = s.overrides[k];
      const std::string w = StrCat(where, ".overrides[", k, "]");
      Status ok = CheckOverrideOptions(*step.pass, ctx.options, opts, pattern);
      if (!ok.ok()) return ok.WithContext(w);
      SLIM_ASSIGN_OR_RETURN(NamePattern p, Compile(pattern, w + ".pattern"));
      ctx.overrides.push_back({std::move(p), opts});
    }
    ctx.strict = pm.strict_;
    ctx.dry_run = options.dry_run;
    ctx.threads = options.threads;
    ctx.progress = options.progress;
    ctx.log = options.log;
    pm.steps_.push_back(std::move(step));
  }
  pm.options_ = std::move(options);
  return pm;
}

bool PassManager::NeedsHessians() const {
  for (const Step& step : steps_) {
    if (step.pass->NeedsHessians(step.ctx)) return true;
  }
  return false;
}

bool PassManager::WantsHessians() const {
  for (const Step& step : steps_) {
    if (step.pass->NeedsHessians(step.ctx) || step.pass->WantsHessians(step.ctx)) return true;
  }
  return false;
}

bool PassManager::PlansWithCalibration() const {
  for (const Step& step : steps_) {
    if (step.pass->PlansWithCalibration(step.ctx)) return true;
  }
  return false;
}

bool PassManager::NeedsActivations() const {
  for (const Step& step : steps_) {
    if (step.pass->NeedsActivations(step.ctx)) return true;
  }
  return false;
}

Expected<PipelineReport> PassManager::Run(Graph& graph, const ActivationStats* activations) const {
  const auto t0 = std::chrono::steady_clock::now();
  PipelineReport report;
  report.recipe_json = RecipeToJson(recipe_);
  report.target = options_.target ? options_.target->name : "";
  report.dry_run = options_.dry_run;
  auto log = [&](const std::string& line) {
    report.log.push_back(line);
    if (options_.log) options_.log(line);
  };
  if (!allow_requantize_) {
    SLIM_RETURN_IF_ERROR(CheckNotQuantized(graph));
  } else if (!CheckNotQuantized(graph).ok()) {
    log("input holds quantized weights (allowed): they are kept, float weights are quantized");
  }

  if (!options_.dry_run) {
    bool have_gram = false;
    if (activations) {
      for (const auto& [name, st] : activations->values) have_gram |= !st.gram.empty();
    }
    for (const Step& step : steps_) {
      SLIM_CHECK_INPUT(have_gram || !step.pass->NeedsHessians(step.ctx), "pass ", step.ctx.pass_name, ": ",
                       step.ctx.pass_name == "prune" ? "SparseGPT" : "GPTQ",
                       " needs calibration data with Hessians (compile --calib DATA)");
      SLIM_CHECK_INPUT(activations || !step.pass->NeedsActivations(step.ctx), "pass ", step.ctx.pass_name,
                       ": needs calibration data (compile --calib DATA)");
    }
  }

  report.before = ComputeWeightStats(graph);
  Graph work = graph;
  int64_t planned_delta = 0;  // dry run: bytes the plans would save
  for (const Step& step : steps_) {
    PassContext ctx = step.ctx;
    ctx.target = options_.target ? &*options_.target : nullptr;
    ctx.activations = activations;
    ctx.source = &graph;  // unchanged until every pass succeeded
    ctx.teacher_signals = options_.teacher_signals;
    ctx.scorer = options_.scorer;
    ctx.kv_bytes_per_context_token = options_.kv_bytes_per_context_token;
    ctx.default_context = options_.default_context;
    ctx.log = [&](const std::string& line) { log(ctx.pass_name + ": " + line); };
    auto r = step.pass->Run(work, ctx);
    if (!r.ok()) return r.status();
    for (const TensorReport& t : r->tensors) {
      if (!t.fallback) continue;
      ++report.fallbacks;
      log(StrCat(ctx.pass_name, ": '", t.name, "' fell back ", t.requested, " -> ", t.actual,
                 " (", t.requested_bits_per_weight, " -> ", t.BitsPerWeight(),
                 " bits per weight): ", t.reason));
    }
    planned_delta += r->counters["bytes_after"] - r->counters["bytes_before"];
    report.passes.push_back(std::move(*r));
  }
  if (options_.dry_run) {
    report.after = report.before;
    report.after.bytes = static_cast<uint64_t>(static_cast<int64_t>(report.before.bytes) + planned_delta);
  } else {
    report.after = ComputeWeightStats(work);
    graph = std::move(work);
  }
  report.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  log(report.Summary());
  return report;
}

std::string PipelineReport::Summary() const {
  int64_t quantized = 0;
  for (const auto& p : passes) {
    auto it = p.counters.find("quantized");
    if (it != p.counters.end()) quantized += it->second;
  }
  char bpw[64];
  std::snprintf(bpw, sizeof bpw, "%.2f -> %.2f", before.BitsPerWeight(), after.BitsPerWeight());
  return StrCat(dry_run ? "plan: " : "", "weights ", Mb(before.bytes), " -> ", Mb(after.bytes),
                ", ", bpw, " bits per weight (all ", after.params,
                " parameters, scales included), ", quantized, " tensors quantized, ", fallbacks,
                " fallbacks");
}

PipelineReport MergeStepReports(const std::vector<PipelineReport>& steps,
                                const std::vector<std::set<std::string>>& step_weights) {
  PipelineReport out;
  if (steps.empty()) return out;
  out.recipe_json = steps[0].recipe_json;
  out.target = steps[0].target;
  out.dry_run = steps[0].dry_run;
  out.before = steps[0].before;
  out.after = steps.back().after;
  std::set<std::string> logged;
  for (size_t s = 0; s < steps.size(); ++s) {
    const PipelineReport& r = steps[s];
    out.seconds += r.seconds;
    for (const std::string& line : r.log) {
      if (logged.insert(line).second) out.log.push_back(line);
    }
    if (out.passes.size() < r.passes.size()) out.passes.resize(r.passes.size());
    for (size_t p = 0; p < r.passes.size(); ++p) {
      const PassReport& pr = r.passes[p];
      PassReport& m = out.passes[p];
      m.pass = pr.pass;
      m.seconds += pr.seconds;
      if (m.details_json.empty()) m.details_json = pr.details_json;
      for (const std::string& l : pr.summary_lines) {
        if (std::find(m.summary_lines.begin(), m.summary_lines.end(), l) == m.summary_lines.end()) {
          m.summary_lines.push_back(l);
        }
      }
      for (const TensorReport& t : pr.tensors) {
        if (t.reason == kOutsideStep) continue;
        // A pass that ignores the selection (select_layout) lists weights of
        // other steps too: the owning step's row wins, else the first one.
        const bool owner = s < step_weights.size() && step_weights[s].count(t.name);
        auto it = std::find_if(m.tensors.begin(), m.tensors.end(),
                               [&](const TensorReport& x) { return x.name == t.name; });
        if (it == m.tensors.end()) {
          m.tensors.push_back(t);
        } else if (owner) {
          *it = t;
        }
      }
      for (const auto& [key, value] : pr.counters) m.counters[key] += value;
    }
  }
  for (PassReport& m : out.passes) {
    // Counters that follow from the rows: the merged rows. (A tensor a pass
    // rejects before its selection, e.g. a non-float one, has a row in every
    // step but one in the merge.)
    int64_t kept = 0, fallbacks = 0;
    for (const TensorReport& t : m.tensors) {
      kept += t.actual == "keep" ? 1 : 0;
      fallbacks += t.fallback ? 1 : 0;
    }
    if (m.counters.count("weights")) m.counters["weights"] = static_cast<int64_t>(m.tensors.size());
    if (m.counters.count("kept")) m.counters["kept"] = kept;
    if (m.counters.count("quantized")) m.counters["quantized"] = static_cast<int64_t>(m.tensors.size()) - kept;
    if (m.counters.count("fallbacks")) m.counters["fallbacks"] = fallbacks;
    for (const char* key : {"bytes_before", "bytes_after"}) {
      auto it = m.counters.find(key);
      if (it == m.counters.end() || it->second == 0) continue;
      int64_t sum = 0;
      for (const TensorReport& t : m.tensors) {
        sum += static_cast<int64_t>(std::string(key) == "bytes_before" ? t.bytes_before : t.bytes_after);
      }
      it->second = sum;
    }
    for (const TensorReport& t : m.tensors) out.fallbacks += t.fallback ? 1 : 0;
  }
  return out;
}

std::string PipelineReportToJson(const PipelineReport& r) {
  using Json = nlohmann::ordered_json;
  Json j;
  j["recipe"] = Json::parse(r.recipe_json);
  j["target"] = r.target;
  j["dry_run"] = r.dry_run;
  j["totals"] = {{"params", r.after.params},
                 {"weight_tensors", r.after.tensors},
                 {"bytes_before", r.before.bytes},
                 {"bytes_after", r.after.bytes},
                 {"bits_per_weight_before", r.before.BitsPerWeight()},
                 {"bits_per_weight_after", r.after.BitsPerWeight()},
                 {"fallbacks", r.fallbacks},
                 {"seconds", r.seconds}};
  Json passes = Json::array();
  for (const PassReport& p : r.passes) {
    Json pj;
    pj["name"] = p.pass;
    pj["seconds"] = p.seconds;
    pj["counters"] = Json(p.counters);
    Json tensors = Json::array();
    for (const TensorReport& t : p.tensors) {
      Json tj;
      tj["name"] = t.name;
      tj["shape"] = t.shape;
      tj["source_dtype"] = t.source_dtype;
      tj["role"] = t.role;
      tj["requested"] = t.requested;
      tj["actual"] = t.actual;
      tj["bits"] = t.bits;
      tj["group_size"] = t.group_size;
      tj["symmetric"] = t.symmetric;
      tj["layout"] = t.layout;
      tj["params"] = t.params;
      tj["bytes_before"] = t.bytes_before;
      tj["bytes_after"] = t.bytes_after;
      tj["bits_per_weight"] = t.BitsPerWeight();
      tj["requested_bits_per_weight"] = t.requested_bits_per_weight;
      if (t.error_measured) {
        tj["weight_rel_mse"] = t.rel_mse;
        tj["weight_max_abs_error"] = t.max_abs_error;
      } else {
        tj["weight_rel_mse"] = nullptr;
        tj["weight_max_abs_error"] = nullptr;
      }
      tj["method"] = t.method;
      tj["awq"] = t.awq;
      tj["sparsity"] = t.sparsity;
      tj["sparsity_pattern"] = t.sparsity_pattern;
      tj["importance"] = t.importance;
      if (t.output_error_measured) {
        tj["output_rel_error"] = t.output_rel_error;
      } else {
        tj["output_rel_error"] = nullptr;
      }
      tj["fallback"] = t.fallback;
      tj["reason"] = t.reason;
      tj["seconds"] = t.seconds;
      tensors.push_back(std::move(tj));
    }
    pj["tensors"] = std::move(tensors);
    if (!p.details_json.empty()) pj["details"] = Json::parse(p.details_json);
    passes.push_back(std::move(pj));
  }
  j["passes"] = std::move(passes);
  j["log"] = r.log;
  return j.dump(2);
}

std::string FormatReportTable(const PipelineReport& r) {
  std::string out;
  char line[512];
  for (const PassReport& p : r.passes) {
    out += StrCat(p.pass, " (", p.tensors.size(), " weights)\n");
    std::snprintf(line, sizeof line, "  %-40s %-14s %-14s %-16s %10s %10s %6s %9s %10s %10s  %s\n", "tensor",
                  "role", "requested", "layout", "bytes", "after", "bpw", "sparsity", "rel_mse", "out_err",
                  "note");
    out += line;
    for (const TensorReport& t : p.tensors) {
      char err[32] = "-", out_err[32] = "-";
      if (t.error_measured) std::snprintf(err, sizeof err, "%.3g", t.rel_mse);
      if (t.output_error_measured) std::snprintf(out_err, sizeof out_err, "%.3g", t.output_rel_error);
      std::string note = t.reason;
      if (t.fallback) note = "FALLBACK to " + t.actual + ": " + note;
      if (!t.awq.empty()) note += (note.empty() ? "" : "; ") + t.awq;
      char sparsity[32] = "-";
      if (!t.sparsity_pattern.empty()) {
        std::snprintf(sparsity, sizeof sparsity, "%.1f%%%s", 100.0 * t.sparsity,
                      t.sparsity_pattern == "unstructured" ? "" : (" " + t.sparsity_pattern).c_str());
      }
      std::snprintf(line, sizeof line, "  %-40s %-14s %-14s %-16s %10llu %10llu %6.2f %9s %10s %10s  %s\n",
                    t.name.c_str(), t.role.c_str(), t.requested.c_str(), t.layout.c_str(),
                    static_cast<unsigned long long>(t.bytes_before),
                    static_cast<unsigned long long>(t.bytes_after), t.BitsPerWeight(), sparsity, err, out_err,
                    note.c_str());
      out += line;
    }
    for (const std::string& l : p.summary_lines) out += "  " + l + "\n";
  }
  out += r.Summary() + "\n";
  return out;
}

}  // namespace slim
