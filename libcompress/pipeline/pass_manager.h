// The pass manager: builds a pipeline from a recipe (validating every pass,
// option, pattern and override before anything runs), refuses
// already-quantized input unless allowed, runs the passes in recipe order on
// a copy of the graph (the caller's graph changes only if every pass
// succeeds), and collects the per-pass reports with model totals.
//
// Libraries never print: progress goes to PipelineOptions::progress, log
// lines (e.g. "recipe r.json overrides preset int4: ...") to
// PipelineOptions::log and into PipelineReport::log.
#pragma once

#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "libcompress/pipeline/pass.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/pipeline/target_profile.h"

namespace slim {

struct PipelineOptions {
  bool strict = false;            // OR-ed with the recipe's "strict"
  bool allow_requantize = false;  // OR-ed with the recipe's "allow_requantize"
  bool dry_run = false;           // plan and report; the graph is not changed
  int threads = 1;                // quantization threads (results do not depend on it)
  std::optional<TargetProfile> target;
  ProgressFn progress;
  LogFn log;
  // The teacher's signals on the calibration data (eval/distill_signals.h),
  // handed to hook_external steps; nullptr when not computed.
  const std::vector<std::pair<std::string, Tensor>>* teacher_signals = nullptr;
  // PassContext::scorer, kv_bytes_per_context_token and default_context.
  const GraphScorer* scorer = nullptr;
  uint64_t kv_bytes_per_context_token = 0;
  int64_t default_context = 0;
  // Sequential calibration: every pass considers only these weights
  // (TensorSelection::step_weights); nullptr: all.
  std::shared_ptr<const std::set<std::string>> step_weights;
};

// OK when the graph holds no quantized weights; otherwise InvalidInput
// naming the first quantized node or tensor.
Status CheckNotQuantized(const Graph& graph);

struct PipelineReport {
  std::string recipe_json;  // the merged recipe that ran
  std::string target;       // profile name, "" when none
  bool dry_run = false;
  std::vector<PassReport> passes;
  WeightStats before;
  WeightStats after;  // dry run: estimated from the plans
  int64_t fallbacks = 0;
  double seconds = 0;
  std::vector<std::string> log;

  // "weights 0.52 MB -> 0.16 MB, 16.00 -> 4.87 bits per weight (scales
  // included), 31 tensors quantized, 0 fallbacks"
  std::string Summary() const;
};

// One report from the reports of the steps of a sequential calibration
// (each ran every pass on its own weights, `step_weights[i]`): per pass, each
// weight's row from the step that owned it (or its first row, for a pass
// that ignores the selection and lists other steps' weights), the counters
// that follow from the rows recomputed and the others summed, `before` of
// the first step and `after` of the last, the logs without repeats.
PipelineReport MergeStepReports(const std::vector<PipelineReport>& steps,
                                const std::vector<std::set<std::string>>& step_weights);

// The report as JSON with stable keys (docs/PASSES.md lists them).
std::string PipelineReportToJson(const PipelineReport& report);
// One line per tensor: name, role, requested -> actual, layout, bytes, bits
// per weight, error, reason.
std::string FormatReportTable(const PipelineReport& report);

class PassManager {
 public:
  static Expected<PassManager> Create(const Recipe& recipe, PipelineOptions options);
  // `activations`: calibration statistics gathered on `graph` (may be null).
  Expected<PipelineReport> Run(Graph& graph, const ActivationStats* activations = nullptr) const;
  const Recipe& recipe() const { return recipe_; }
  // Some pass needs ActivationStat::gram (GPTQ): collect it with the
  // statistics; Run refuses to start without it (dry runs excepted).
  bool NeedsHessians() const;
  // Some pass needs calibration statistics (wanda, sparsegpt, gptq).
  bool NeedsActivations() const;
  // Some pass uses Hessians when calibration data is given (collect them).
  bool WantsHessians() const;
  // Some pass's plan depends on calibration data (Pass::PlansWithCalibration).
  bool PlansWithCalibration() const;
  // What is known only once the model is read (PipelineOptions::scorer,
  // kv_bytes_per_context_token, default_context).
  void SetModelFacts(const GraphScorer* scorer, uint64_t kv_bytes_per_context_token, int64_t default_context) {
    options_.scorer = scorer;
    options_.kv_bytes_per_context_token = kv_bytes_per_context_token;
    options_.default_context = default_context;
  }

 private:
  PassManager() = default;
  struct Step {
    const Pass* pass = nullptr;
    PassContext ctx;
  };
  Recipe recipe_;
  PipelineOptions options_;
  bool strict_ = false;
  bool allow_requantize_ = false;
  std::vector<Step> steps_;
};

}  // namespace slim
