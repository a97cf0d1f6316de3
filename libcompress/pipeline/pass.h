// The pass interface: what every pass in passes/ declares and returns.
//
// A pass declares, in one place (its PassInfo), its name, a one-line summary
// and its options (key, type, default, range or choices, help, whether a
// recipe may override it per tensor). The pipeline validates every option of
// every pass before the first pass runs, fills in defaults, and hands the
// pass a PassContext; the pass checks all its preconditions, then mutates
// the graph (never leaving it half-rewritten), and returns a PassReport with
// one row per tensor it considered plus counters.
//
// This header is self-contained (no .cpp) so passes/ can implement passes
// without linking the pipeline library that lists them: the dependency stays
// pipeline -> passes -> ir.
#pragma once

#include <cstdint>
#include <functional>
#include <limits>
#include <map>
#include <memory>
#include <regex>
#include <set>
#include <string>
#include <utility>
#include <variant>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/pipeline/activation_stats.h"
#include "libcompress/ir/graph.h"
#include "libcompress/pipeline/target_profile.h"

namespace slim {

// ---------------------------------------------------------------------------
// Options

enum class OptionType { kInt, kFloat, kBool, kString, kEnum, kStringList };

inline const char* OptionTypeName(OptionType t) {
  switch (t) {
    case OptionType::kInt: return "int";
    case OptionType::kFloat: return "float";
    case OptionType::kBool: return "bool";
    case OptionType::kString: return "string";
    case OptionType::kEnum: return "enum";
    case OptionType::kStringList: return "string list";
  }
  return "?";
}

// kBool -> bool, kInt -> int64_t, kFloat -> double, kString/kEnum -> string,
// kStringList -> vector of strings (an argument vector).
using StringList = std::vector<std::string>;
using OptionValue = std::variant<bool, int64_t, double, std::string, StringList>;

struct OptionSpec {
  std::string key;
  OptionType type = OptionType::kInt;
  OptionValue default_value;
  // kInt / kFloat: inclusive range.
  double min = -std::numeric_limits<double>::infinity();
  double max = std::numeric_limits<double>::infinity();
  // kEnum: the accepted strings. kInt: when non-empty, the accepted values
  // (decimal), e.g. group sizes {"32", "64", "128"}.
  std::vector<std::string> choices;
  std::string help;
  // A recipe may set it for tensors matching a pattern ("overrides").
  bool per_tensor = false;
};

inline OptionSpec FloatOption(std::string key, double def, double min, double max, std::string help,
                              bool per_tensor = false) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::kFloat;
  s.default_value = def;
  s.min = min;
  s.max = max;
  s.help = std::move(help);
  s.per_tensor = per_tensor;
  return s;
}
inline OptionSpec IntOption(std::string key, int64_t def, double min, double max,
                            std::string help, bool per_tensor = false) {
  OptionSpec s = FloatOption(std::move(key), 0.0, min, max, std::move(help), per_tensor);
  s.type = OptionType::kInt;
  s.default_value = def;
  return s;
}
inline OptionSpec IntChoiceOption(std::string key, int64_t def, std::vector<std::string> choices,
                                  std::string help, bool per_tensor = false) {
  OptionSpec s = IntOption(std::move(key), def, -std::numeric_limits<double>::infinity(),
                           std::numeric_limits<double>::infinity(), std::move(help), per_tensor);
  s.choices = std::move(choices);
  return s;
}
inline OptionSpec BoolOption(std::string key, bool def, std::string help, bool per_tensor = false) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::kBool;
  s.default_value = def;
  s.help = std::move(help);
  s.per_tensor = per_tensor;
  return s;
}
inline OptionSpec StringOption(std::string key, std::string def, std::string help, bool per_tensor = false) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::kString;
  s.default_value = std::move(def);
  s.help = std::move(help);
  s.per_tensor = per_tensor;
  return s;
}
inline OptionSpec StringListOption(std::string key, std::string help) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::kStringList;
  s.default_value = StringList();
  s.help = std::move(help);
  return s;
}
inline OptionSpec EnumOption(std::string key, std::string def, std::vector<std::string> choices,
                             std::string help, bool per_tensor = false) {
  OptionSpec s;
  s.key = std::move(key);
  s.type = OptionType::kEnum;
  s.default_value = std::move(def);
  s.choices = std::move(choices);
  s.help = std::move(help);
  s.per_tensor = per_tensor;
  return s;
}

// Option values by key. After the pipeline resolved them every declared key
// is present with the declared type, so the getters never miss; a getter on
// an undeclared key or the wrong type returns the type's zero value.
class Options {
 public:
  void Set(const std::string& key, OptionValue v) { values_[key] = std::move(v); }
  bool Has(const std::string& key) const { return values_.count(key) != 0; }
  const std::map<std::string, OptionValue>& values() const { return values_; }

  bool GetBool(const std::string& key) const { return Get<bool>(key, false); }
  int64_t GetInt(const std::string& key) const { return Get<int64_t>(key, 0); }
  double GetFloat(const std::string& key) const { return Get<double>(key, 0.0); }
  std::string GetString(const std::string& key) const { return Get<std::string>(key, ""); }
  StringList GetStringList(const std::string& key) const { return Get<StringList>(key, {}); }

 private:
  template <typename T>
  T Get(const std::string& key, T zero) const {
    auto it = values_.find(key);
    if (it == values_.end()) return zero;
    const T* v = std::get_if<T>(&it->second);
    return v ? *v : zero;
  }
  std::map<std::string, OptionValue> values_;
};

// ---------------------------------------------------------------------------
// Tensor selection (recipe include/exclude patterns and per-tensor overrides)

// A regular expression (ECMAScript, matched anywhere in the tensor name, as
// std::regex_search does) with its source text for messages.
struct NamePattern {
  std::string source;
  std::regex re;
  bool Matches(const std::string& name) const { return std::regex_search(name, re); }
};

// WhyExcluded's reason for a weight of another sequential-calibration step
// (MergeStepReports drops those rows).
inline constexpr const char* kOutsideStep = "outside this sequential-calibration step";

struct TensorSelection {
  std::vector<NamePattern> include;  // empty: every tensor
  std::vector<NamePattern> exclude;
  // Sequential calibration: the weights of the current step (a decoder
  // layer); nullptr: no such restriction.
  std::shared_ptr<const std::set<std::string>> step_weights;

  // "" when `name` is selected, otherwise why not (for the report).
  std::string WhyExcluded(const std::string& name) const {
    if (step_weights && !step_weights->count(name)) return std::string(kOutsideStep);
    for (const auto& p : exclude) {
      if (p.Matches(name)) return "excluded by pattern '" + p.source + "'";
    }
    if (include.empty()) return "";
    for (const auto& p : include) {
      if (p.Matches(name)) return "";
    }
    return "matches no include pattern";
  }
};

struct TensorOverride {
  NamePattern pattern;
  Options options;  // per-tensor options only, validated
};

// ---------------------------------------------------------------------------
// Progress, logging, context

struct ProgressEvent {
  std::string pass;
  size_t pass_index = 0;  // 0-based position in the pipeline
  size_t pass_count = 0;
  size_t tensor_index = 0;  // tensors finished so far in this pass (1..tensor_count)
  size_t tensor_count = 0;
  std::string tensor;
};
using ProgressFn = std::function<void(const ProgressEvent&)>;
using LogFn = std::function<void(const std::string&)>;

// Scores a candidate graph against the teacher (the source model) on a
// few calibration sequences: the mean KL(teacher || candidate) per token.
// For passes that choose by measured model loss (mixed precision). compile
// provides one when it has token calibration data (eval/graph_scorer.h);
// the candidate must keep the source's inputs, outputs and decoder layout.
class GraphScorer {
 public:
  virtual ~GraphScorer() = default;
  // Over the first `sequences` calibration sequences, `tokens` tokens of
  // each (the teacher's side is computed once per such subset).
  virtual Expected<double> Divergence(const Graph& candidate, size_t sequences, size_t tokens) const = 0;
  // "mean KL(teacher || model) per token on calibration sequences", for reports.
  virtual std::string Describe() const = 0;
};

struct PassContext {
  std::string pass_name;
  size_t pass_index = 0;
  size_t pass_count = 1;
  Options options;  // every declared option, validated, defaults filled
  TensorSelection selection;
  std::vector<TensorOverride> overrides;  // applied in order, later wins
  bool strict = false;   // any fallback is an error
  bool dry_run = false;  // plan and report, do not quantize or rewrite
  int threads = 1;
  const TargetProfile* target = nullptr;  // nullptr: generic
  // Statistics of calibration data gathered on the source graph (compile
  // --calib); nullptr without calibration data.
  const ActivationStats* activations = nullptr;
  // The graph as it was before the first pass of the pipeline: the teacher
  // whose outputs reconstruction matches. nullptr when a pass runs alone.
  const Graph* source = nullptr;
  // The teacher's signals on the calibration data (top-k logits), for a
  // hook that hands them to an external fine-tuner; nullptr when not given.
  const std::vector<std::pair<std::string, Tensor>>* teacher_signals = nullptr;
  // Model loss of a candidate graph; nullptr without token calibration data.
  const GraphScorer* scorer = nullptr;
  // KV cache bytes one token of context costs per decoded token (0: not a
  // decoder), and the context length a bytes-per-token budget assumes when
  // the pass is not told (the calibration length, else the model's).
  uint64_t kv_bytes_per_context_token = 0;
  int64_t default_context = 0;
  ProgressFn progress;  // may be empty; called from one thread at a time
  LogFn log;            // may be empty

  // The options for one tensor: the pass options with every matching
  // override applied in recipe order.
  Options OptionsFor(const std::string& tensor) const {
    Options o = options;
    for (const auto& ov : overrides) {
      if (!ov.pattern.Matches(tensor)) continue;
      for (const auto& [k, v] : ov.options.values()) o.Set(k, v);
    }
    return o;
  }
  void Progress(size_t done, size_t total, const std::string& tensor) const {
    if (progress) progress({pass_name, pass_index, pass_count, done, total, tensor});
  }
  void Log(const std::string& line) const {
    if (log) log(line);
  }
};

// ---------------------------------------------------------------------------
// Reports

// One tensor a pass considered (quantized, kept, excluded or fallen back).
struct TensorReport {
  std::string name;
  std::vector<int64_t> shape;  // as stored in the source model
  std::string source_dtype;    // "float16"
  std::string role;            // "linear", "classifier", "embedding", "tied-embedding"
  std::string requested;       // scheme asked for: "int4-g32-sym", "int8", "keep"
  std::string actual;          // scheme applied (differs on fallback)
  int bits = 0;                // bits per code as stored (16 for an FP16 tensor kept)
  int64_t group_size = 0;      // elements per scale (int8: K); 0 when kept
  bool symmetric = true;
  std::string layout;          // "q4g32_sym_row", or the dtype name when kept
  int64_t params = 0;          // logical elements
  uint64_t bytes_before = 0;
  uint64_t bytes_after = 0;
  double requested_bits_per_weight = 0;  // what the requested scheme would cost
  bool error_measured = false;           // false when kept or in a dry run
  double rel_mse = 0;                    // sum (w - w')^2 / sum w^2
  double max_abs_error = 0;
  // What the quantizer's squared error was weighted by: "activations"
  // (E[x_k^2] of the weight's input on calibration data) or "uniform".
  std::string importance;
  // sum ||(W - W')x||^2 / sum ||W x||^2 over the calibration sample of the
  // weight's input: the error the layer's output sees. False without
  // calibration data, for Gather-only tables and in a dry run.
  bool output_error_measured = false;
  double output_rel_error = 0;
  // How codes were chosen: "rtn" (max-abs round to nearest), "search" (scale
  // search), "gptq" (search + GPTQ error compensation); "" when kept.
  std::string method;
  // Activation-aware scaling (option awq): the chosen alpha, where the
  // input's 1/s went (folded into a norm or a linear layer, or an explicit
  // Mul) and the output error before and after, or why it was not applied;
  // "" when not asked.
  std::string awq;
  // Fraction of weights pruned (0 for a dense tensor) and the mask's
  // pattern ("unstructured", "2:4"; "" when dense).
  double sparsity = 0;
  std::string sparsity_pattern;
  bool fallback = false;   // actual != requested for a reason in `reason`
  std::string reason;      // why it fell back, was kept or excluded ("" if quantized as asked)
  double seconds = 0;

  double BitsPerWeight() const {
    return params > 0 ? 8.0 * static_cast<double>(bytes_after) / static_cast<double>(params) : 0.0;
  }
};

struct PassReport {
  std::string pass;
  std::vector<TensorReport> tensors;
  std::map<std::string, int64_t> counters;  // "quantized", "fallbacks", "kept", ...
  double seconds = 0;
  // A pass's own section of the JSON report (an object, "" for none), e.g.
  // the mixed pass's plan and Pareto table, and lines the human table
  // prints after the pass's rows.
  std::string details_json;
  std::vector<std::string> summary_lines;
};

// ---------------------------------------------------------------------------
// The pass

struct PassInfo {
  std::string name;
  std::string summary;
  std::vector<OptionSpec> options;

  const OptionSpec* FindOption(const std::string& key) const {
    for (const auto& o : options) {
      if (o.key == key) return &o;
    }
    return nullptr;
  }
};

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const PassInfo& info() const = 0;
  // Checks between options that types and ranges cannot express; called on
  // the resolved options before any pass runs. Messages name the option.
  virtual Status ValidateOptions(const Options& /*options*/) const { return Status::Ok(); }
  // Checks every precondition, then rewrites `graph`. On error the graph is
  // unchanged.
  virtual Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const = 0;
  // True when the pass, with these options and overrides, needs the
  // activations' E[x x^T] (ActivationStat::gram) from calibration data.
  virtual bool NeedsHessians(const PassContext& /*ctx*/) const { return false; }
  // True when the pass needs calibration statistics at all (E[x^2] at
  // least); implied by NeedsHessians.
  virtual bool NeedsActivations(const PassContext& ctx) const { return NeedsHessians(ctx); }
  // True when the pass uses E[x x^T] if calibration data is given but works
  // without it (structured pruning's refit).
  virtual bool WantsHessians(const PassContext& /*ctx*/) const { return false; }
  // True when even a dry run's plan depends on calibration data (the mixed
  // pass measures candidates to choose them), so compile --dry-run
  // calibrates.
  virtual bool PlansWithCalibration(const PassContext& /*ctx*/) const { return false; }
};

}  // namespace slim
