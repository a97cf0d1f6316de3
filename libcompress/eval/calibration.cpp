#include "libcompress/eval/calibration.h"

#include <algorithm>
#include <regex>
#include <set>
#include <unordered_map>

#include <Eigen/Core>

#include "libcompress/runtime/conv_window.h"
#include "libcompress/runtime/decoder_session.h"
#include "libcompress/runtime/fp16_upcast.h"

namespace slim {

namespace {

// A matmul whose B is a weight, in graph order.
struct WeightMatmul {
  size_t node = 0;
  std::string weight;  // the initializer or Constant output behind B
  std::string input;   // A
};

std::vector<WeightMatmul> WeightMatmuls(const Graph& graph) {
  std::unordered_map<std::string, const Node*> producer;
  for (const Node& n : graph.nodes) {
    for (const auto& o : n.outputs) producer[o] = &n;
  }
  // A weight: an initializer or Constant, directly or through one Cast.
  auto weight_behind = [&](const std::string& v) -> std::string {
    if (graph.FindInitializer(v)) return v;
    auto p = producer.find(v);
    if (p == producer.end()) return "";
    if (p->second->op_type == "Cast") {
      const std::string& src = p->second->Input(0);
      if (graph.FindInitializer(src)) return src;
      p = producer.find(src);
      if (p == producer.end()) return "";
      return p->second->op_type == "Constant" ? src : "";
    }
    return p->second->op_type == "Constant" ? v : "";
  };
  std::vector<WeightMatmul> out;
  for (size_t i = 0; i < graph.nodes.size(); ++i) {
    const Node& n = graph.nodes[i];
    const bool onnx = n.domain.empty() || n.domain == "ai.onnx";
    const bool matmul = (onnx && (n.op_type == "MatMul" || n.op_type == "Gemm")) ||
                        (n.domain == "slimpack" && n.op_type == "MatMulQ");
    if (!matmul || n.inputs.size() < 2) continue;
    if (n.op_type == "Gemm" && n.GetInt("transA", 0) != 0) continue;  // A is [K, M]: rows are not tokens
    std::string w = weight_behind(n.Input(1));
    if (!w.empty()) out.push_back({i, std::move(w), n.Input(0)});
  }
  return out;
}

}  // namespace

std::vector<std::string> WeightInputValues(const Graph& graph) {
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const WeightMatmul& m : WeightMatmuls(graph)) {
    if (seen.insert(m.input).second) out.push_back(m.input);
  }
  return out;
}

namespace {

using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;

// Adds x x^T of the rows of `x` ([rows, k], row-major) to the lower triangle
// of the column-major k x k `gram` (a symmetric rank update costs half a
// product); Finish() fills the upper triangle. FP32 like the factorisations
// that read it.
void AddGram(const float* x, size_t rows, size_t k, std::vector<float>* gram) {
  if (gram->empty()) gram->assign(k * k, 0.0f);
  Eigen::Map<const MatF> xm(x, static_cast<Eigen::Index>(rows), static_cast<Eigen::Index>(k));
  Eigen::Map<Eigen::MatrixXf> gm(gram->data(), static_cast<Eigen::Index>(k), static_cast<Eigen::Index>(k));
  gm.selfadjointView<Eigen::Lower>().rankUpdate(xm.transpose());
}

// Accumulates one value's statistics; rows are numbered over the whole run so
// the sample (every `stride`-th row) does not depend on sequence boundaries.
struct Accumulator {
  ActivationStat stat;
  size_t next_row = 0;
  size_t stride = 0;  // 0: no sample

  // Adds `rows` rows of width k (row-major).
  void Add(const float* p, size_t rows, size_t kk, bool gram, size_t max_sample_rows) {
    for (size_t r = 0; r < rows; ++r, ++next_row) {
      const float* row = p + r * kk;
      for (size_t i = 0; i < kk; ++i) stat.mean_sq[i] += static_cast<double>(row[i]) * row[i];
      if (stride > 0 && next_row % stride == 0 && static_cast<size_t>(stat.sample_rows) < max_sample_rows) {
        stat.sample.insert(stat.sample.end(), row, row + kk);
        ++stat.sample_rows;
      }
    }
    stat.rows += static_cast<int64_t>(rows);
    if (gram) AddGram(p, rows, kk, &stat.gram);
  }

  ActivationStat Finish() {
    const double rows = static_cast<double>(std::max<int64_t>(stat.rows, 1));
    for (double& m : stat.mean_sq) m /= rows;
    if (!stat.gram.empty()) {
      // Column-major lower triangle (i >= j) -> both triangles.
      const size_t k = static_cast<size_t>(stat.dim);
      for (size_t j = 0; j < k; ++j) {
        for (size_t i = j; i < k; ++i) {
          const float v = static_cast<float>(stat.gram[j * k + i] / rows);
          stat.gram[j * k + i] = v;
          stat.gram[i * k + j] = v;
        }
      }
    }
    return std::move(stat);
  }
};

// Patches per image that go into a Conv input's Gram matrix (all of them
// for maps up to 16x16 outputs). Not a quality knob tuned to data: a bound
// on cost, dim^2 multiply-adds per patch.
constexpr size_t kGramPatchesPerImage = 256;

// A Conv whose weight is a constant: its input's im2col columns are what
// channel pruning of its input refits against.
struct ConvReader {
  const Node* node = nullptr;
  std::string weight;
  std::vector<int64_t> kernel;
  int64_t group = 1;
};

// Watches the A input of every weight matmul (statistics of the last axis)
// and the input of every constant-weight Conv (statistics of its im2col
// patches), for whatever drives the runs: token sequences or feeds.
class Collector {
 public:
  // `matmul_inputs`: the values to watch (nullptr: every weight matmul's
  // input in `graph`).
  Collector(const Graph& graph, const CalibrationOptions& options, size_t runs,
            const std::vector<std::string>* matmul_inputs = nullptr)
      : options_(options), runs_(runs) {
    for (const std::string& v : matmul_inputs ? *matmul_inputs : WeightInputValues(graph)) {
      matmul_values_.insert(v);
      observer_.values.push_back(v);
    }
    for (const Node& n : graph.nodes) {
      if (!(n.domain.empty() || n.domain == "ai.onnx") || n.op_type != "Conv" || n.inputs.size() < 2) continue;
      const Tensor* w = graph.FindInitializer(n.Input(1));
      if (!w || !IsFloat(w->dtype()) || w->rank() < 3) continue;
      ConvReader c;
      c.node = &n;
      c.weight = n.Input(1);
      c.kernel.assign(w->shape().begin() + 2, w->shape().end());
      c.group = n.GetInt("group", 1);
      // A Conv the operator itself would refuse gets no statistics (the run
      // reports it); nothing here may divide by its group or kernel.
      bool valid = c.group > 0 && w->dim(1) > 0;
      for (int64_t k : c.kernel) valid = valid && k > 0;
      if (!valid) continue;
      std::vector<ConvReader>& list = conv_readers_[n.Input(0)];
      if (list.empty() && !matmul_values_.count(n.Input(0))) observer_.values.push_back(n.Input(0));
      list.push_back(std::move(c));
    }
    observer_.on_value = [this](const std::string& name, const Tensor& v) { return Observe(name, v); };
  }

  bool empty() const { return observer_.values.empty(); }
  const ValueObserver* observer() const { return &observer_; }
  void set_run_rows(size_t rows) { run_rows_ = rows; }

  void Finish(ActivationStats* stats) {
    for (auto& [name, a] : matmul_) stats->values[name] = a.Finish();
    for (auto& [name, a] : conv_) {
      // The Gram matrix was summed over fewer patches than mean_sq: scale
      // it so Finish() divides by the patches it actually saw.
      auto used = gram_rows_.find(name);
      if (used != gram_rows_.end() && used->second > 0) {
        const float f = static_cast<float>(static_cast<double>(a.stat.rows) / static_cast<double>(used->second));
        for (float& v : a.stat.gram) v *= f;
      }
      stats->conv_inputs[name] = a.Finish();
    }
  }

 private:
  Status Observe(const std::string& name, const Tensor& v) {
    const std::vector<float> x = v.dtype() == DType::kFloat32 ? std::vector<float>() : v.ToFloatVector();
    const float* p = v.dtype() == DType::kFloat32 ? v.data<float>() : x.data();
    if (matmul_values_.count(name)) {
      SLIM_CHECK_INPUT(v.rank() >= 1 && v.dim(v.rank() - 1) > 0, "value '", name, "' has shape ",
                       ShapeToString(v.shape()), "; a matmul input needs a last dimension");
      const int64_t k = v.dim(v.rank() - 1);
      Accumulator& a = matmul_[name];
      if (a.stat.dim == 0) {
        a.stat.dim = k;
        a.stat.mean_sq.assign(static_cast<size_t>(k), 0.0);
        // Token runs: rows are known in advance; feeds: estimated from the first run.
        const size_t total = run_rows_ > 0 ? run_rows_ : static_cast<size_t>(v.numel() / k) * runs_;
        a.stride = StrideFor(total);
      }
      SLIM_CHECK_INPUT(a.stat.dim == k, "value '", name, "' has last dimension ", k, ", earlier ", a.stat.dim);
      a.Add(p, static_cast<size_t>(v.numel() / k), static_cast<size_t>(k), options_.gram, options_.max_sample_rows);
    }
    auto readers = conv_readers_.find(name);
    if (readers == conv_readers_.end()) return Status::Ok();
    for (const ConvReader& c : readers->second) SLIM_RETURN_IF_ERROR(ObserveConv(c, v, p));
    return Status::Ok();
  }

  // Patch statistics of one Conv reading `v` [N, C, spatial...]: dim C * K
  // (K kernel offsets), index c * K + k, one row per (image, output
  // position); the Gram matrix only for group == 1, where one patch is the
  // whole input of each output.
  Status ObserveConv(const ConvReader& c, const Tensor& v, const float* p) {
    const Node& n = *c.node;
    SLIM_CHECK_INPUT(static_cast<size_t>(v.rank()) == c.kernel.size() + 2 && v.dim(1) % c.group == 0, n.Describe(),
                     ": input ", ShapeToString(v.shape()), " does not fit its weight '", c.weight, "'");
    const std::vector<int64_t> spatial(v.shape().begin() + 2, v.shape().end());
    SLIM_ASSIGN_OR_RETURN(Window w, ComputeWindow(n, spatial, c.kernel, false));
    const size_t channels = static_cast<size_t>(v.dim(1)), cg = channels / static_cast<size_t>(c.group);
    const size_t kernel = static_cast<size_t>(ShapeNumel(c.kernel));
    const size_t positions = static_cast<size_t>(ShapeNumel(w.out)), in_size = static_cast<size_t>(ShapeNumel(spatial));
    const size_t dim = channels * kernel, gdim = cg * kernel;
    Accumulator& a = conv_[c.weight];
    if (a.stat.dim == 0) {
      a.stat.dim = static_cast<int64_t>(dim);
      a.stat.mean_sq.assign(dim, 0.0);
      a.stride = c.group == 1 ? StrideFor(static_cast<size_t>(v.dim(0)) * positions * runs_) : 0;
    }
    SLIM_CHECK_INPUT(a.stat.dim == static_cast<int64_t>(dim), n.Describe(), ": input has ", channels,
                     " channels, earlier ", a.stat.dim / static_cast<int64_t>(kernel));
    std::vector<float> col(gdim * positions), rows(positions * gdim);
    for (int64_t img = 0; img < v.dim(0); ++img) {
      for (int64_t g = 0; g < c.group; ++g) {
        Im2Col(p + (img * channels + static_cast<size_t>(g) * cg) * in_size,
               static_cast<int64_t>(cg), w, col.data());
        if (c.group == 1) {
          // Rows are patches: [positions, dim].
          for (size_t r = 0; r < gdim; ++r) {
            for (size_t q = 0; q < positions; ++q) rows[q * gdim + r] = col[r * positions + q];
          }
          a.Add(rows.data(), positions, gdim, false, options_.max_sample_rows);
          if (options_.gram) {
            // The Gram matrix from evenly spaced patches: an estimate of
            // E[p p^T] whose cost (dim^2 per patch) stays bounded on large
            // images, where every patch would cost dim^2 * positions.
            const size_t step = (positions + kGramPatchesPerImage - 1) / kGramPatchesPerImage;
            size_t used = 0;
            for (size_t q = 0; q < positions; q += step, ++used) {
              std::copy_n(&rows[q * gdim], gdim, &rows[used * gdim]);
            }
            AddGram(rows.data(), used, gdim, &a.stat.gram);
            gram_rows_[c.weight] += used;
          }
          continue;
        }
        double* m = a.stat.mean_sq.data() + static_cast<size_t>(g) * gdim;
        for (size_t r = 0; r < gdim; ++r) {
          for (size_t q = 0; q < positions; ++q) m[r] += static_cast<double>(col[r * positions + q]) * col[r * positions + q];
        }
      }
      if (c.group != 1) a.stat.rows += static_cast<int64_t>(positions);
    }
    return Status::Ok();
  }

  size_t StrideFor(size_t total_rows) const {
    if (options_.max_sample_rows == 0) return 0;
    return std::max<size_t>(1, (total_rows + options_.max_sample_rows - 1) / options_.max_sample_rows);
  }

  const CalibrationOptions& options_;
  const size_t runs_;
  size_t run_rows_ = 0;
  std::set<std::string> matmul_values_;
  std::map<std::string, std::vector<ConvReader>> conv_readers_;
  ValueObserver observer_;
  std::map<std::string, Accumulator> matmul_, conv_;
  std::map<std::string, size_t> gram_rows_;  // patches summed into each Conv's Gram
};

}  // namespace

Expected<ActivationStats> CollectActivationStats(const Model& model, const TokenDataset& data,
                                                 const std::string& data_path,
                                                 const CalibrationOptions& options,
                                                 const CalibrationProgressFn& progress) {
  SLIM_CHECK_INPUT(model.decoder.has_value(), model.path,
                   ": calibration data are token sequences, which need a decoder language model");
  SLIM_CHECK_INPUT(options.first_sequence < data.sequences.size(), data_path, ": has ",
                   data.sequences.size(), " sequences, calibration starts at sequence ",
                   options.first_sequence);
  const size_t end = options.max_sequences == 0
                         ? data.sequences.size()
                         : std::min(data.sequences.size(), options.first_sequence + options.max_sequences);
  if (model.decoder->vocab_size > 0 && data.vocab_size > 0) {
    SLIM_CHECK_INPUT(data.vocab_size <= model.decoder->vocab_size, data_path, ": vocabulary of ",
                     data.vocab_size, " tokens, the model has ", model.decoder->vocab_size);
  }
  size_t total_rows = 0;
  for (size_t s = options.first_sequence; s < end; ++s) total_rows += data.sequences[s].size();

  ActivationStats stats;
  stats.source = StrCat(data_path, " sequences ", options.first_sequence, "..", end - 1);
  Collector collector(model.graph, options, end - options.first_sequence);
  collector.set_run_rows(total_rows);
  SLIM_CHECK_INPUT(!collector.empty(), model.path, ": no matmul reads a weight; nothing to calibrate");
  SLIM_ASSIGN_OR_RETURN(auto session, DecoderSession::Create(model, options.runtime));
  session->SetObserver(collector.observer());
  for (size_t s = options.first_sequence; s < end; ++s) {
    session->Reset();
    auto logits = session->Append(data.sequences[s]);
    if (!logits.ok()) return logits.status().WithContext(StrCat(data_path, ": sequence ", s));
    stats.tokens += static_cast<int64_t>(data.sequences[s].size());
    ++stats.sequences;
    if (progress) progress(s + 1 - options.first_sequence, end - options.first_sequence);
  }
  collector.Finish(&stats);
  return stats;
}

Expected<ActivationStats> CollectActivationStats(const Model& model, const std::vector<Feeds>& feeds,
                                                 const std::string& data_path,
                                                 const CalibrationOptions& options,
                                                 const CalibrationProgressFn& progress) {
  SLIM_CHECK_INPUT(options.first_sequence < feeds.size(), data_path, ": has ", feeds.size(),
                   " test data sets, calibration starts at set ", options.first_sequence);
  const size_t end = options.max_sequences == 0 ? feeds.size()
                                                : std::min(feeds.size(), options.first_sequence + options.max_sequences);
  ActivationStats stats;
  stats.source = StrCat(data_path, " test data sets ", options.first_sequence, "..", end - 1);
  Collector collector(model.graph, options, end - options.first_sequence);
  SLIM_CHECK_INPUT(!collector.empty(), model.path, ": no matmul or Conv reads a weight; nothing to calibrate");
  SLIM_ASSIGN_OR_RETURN(auto interp, Interpreter::Create(model.graph, options.runtime));
  for (size_t s = options.first_sequence; s < end; ++s) {
    auto out = interp->Run(feeds[s], {}, nullptr, collector.observer());
    if (!out.ok()) return out.status().WithContext(StrCat(data_path, ": test data set ", s));
    ++stats.sequences;
    // A "token" of a non-sequence graph: one row of the first input's batch.
    if (!feeds[s].empty()) stats.tokens += feeds[s].begin()->second.rank() > 0 ? feeds[s].begin()->second.dim(0) : 1;
    if (progress) progress(s + 1 - options.first_sequence, end - options.first_sequence);
  }
  collector.Finish(&stats);
  return stats;
}

// --- Sequential calibration -------------------------------------------------

namespace {

// The decoder layer a weight belongs to by its name, or -1.
int64_t LayerOf(const std::string& weight) {
  static const std::regex kLayer(R"((?:^|[^A-Za-z0-9])(?:layers|layer|h|blocks|block)[._/](\d+)(?:[._/]|$))");
  std::smatch m;
  if (!std::regex_search(weight, m, kLayer) || m[1].length() > 9) return -1;  // no model has 10^9 layers
  return std::stoll(m[1].str());
}

struct GroupPlan {
  SequentialGroup group;
  size_t first_node = 0;            // of its matmuls, in the graph they were found in
  std::vector<std::string> inputs;  // A inputs of its matmuls
};

Expected<std::vector<GroupPlan>> PlanGroups(const Graph& graph) {
  std::vector<GroupPlan> plans;
  std::map<int64_t, size_t> layer_group;  // layer -> its group
  int64_t current = -2, last_layer = -1;
  for (const WeightMatmul& m : WeightMatmuls(graph)) {
    const int64_t layer = LayerOf(m.weight);
    if (layer != current || plans.empty()) {
      if (layer >= 0 && layer_group.count(layer)) {
        return InvalidInput("sequential calibration: the weights of layer ", layer, " are interleaved with others in "
                            "graph order (at '", m.weight, "')");
      }
      GroupPlan p;
      p.first_node = m.node;
      p.group.label = layer >= 0      ? StrCat("layer ", layer)
                      : last_layer < 0 ? std::string("weights before the first layer")
                                       : StrCat("weights after layer ", last_layer);
      if (layer >= 0) layer_group[layer] = plans.size();
      plans.push_back(std::move(p));
      current = layer;
      if (layer >= 0) last_layer = layer;
    }
    GroupPlan& p = plans.back();
    if (std::find(p.group.weights.begin(), p.group.weights.end(), m.weight) == p.group.weights.end()) {
      p.group.weights.push_back(m.weight);
    }
    if (std::find(p.inputs.begin(), p.inputs.end(), m.input) == p.inputs.end()) p.inputs.push_back(m.input);
  }
  SLIM_CHECK_INPUT(!layer_group.empty(), "sequential calibration: no weight name carries a layer number "
                   "(layers.N., h.N., blocks.N.), so the graph has no layers to calibrate one at a time");
  return plans;
}

// Values computed from initializers and constants alone.
std::set<std::string> ConstantValues(const Graph& g) {
  std::set<std::string> c(g.initializer_names().begin(), g.initializer_names().end());
  for (const Node& n : g.nodes) {
    bool all = true;
    for (const auto& in : n.inputs) all &= in.empty() || c.count(in) != 0;
    if (!all) continue;
    for (const auto& o : n.outputs) {
      if (!o.empty()) c.insert(o);
    }
  }
  return c;
}

// Activations computed before node `cut` (graph inputs excluded) that a
// node at or after it reads.
std::vector<std::string> LiveAcross(const Graph& g, const std::set<std::string>& constants, size_t cut) {
  std::set<std::string> produced, live;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    const Node& n = g.nodes[i];
    if (i >= cut) {
      for (const auto& in : n.inputs) {
        if (produced.count(in)) live.insert(in);
      }
    } else {
      for (const auto& o : n.outputs) {
        if (!o.empty() && !constants.count(o)) produced.insert(o);
      }
    }
  }
  return {live.begin(), live.end()};
}

// The part of `g` that computes `targets` from `known` values (and the
// initializers): the producing nodes, in graph order, as a graph whose
// inputs are the known values it reads.
Expected<Graph> Slice(const Graph& g, const std::set<std::string>& known, const std::vector<std::string>& targets) {
  std::unordered_map<std::string, size_t> producer;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    for (const auto& o : g.nodes[i].outputs) {
      if (!o.empty()) producer[o] = i;
    }
  }
  std::vector<bool> need(g.nodes.size(), false);
  std::set<std::string> inputs, seen;
  std::vector<std::string> stack(targets.begin(), targets.end());
  while (!stack.empty()) {
    const std::string v = stack.back();
    stack.pop_back();
    if (v.empty() || !seen.insert(v).second) continue;
    if (known.count(v)) {
      inputs.insert(v);
      continue;
    }
    if (g.FindInitializer(v)) continue;
    auto p = producer.find(v);
    if (p == producer.end()) return Internal("sequential calibration: value '", v, "' is neither computed nor kept");
    if (need[p->second]) continue;
    need[p->second] = true;
    for (const auto& in : g.nodes[p->second].inputs) stack.push_back(in);
  }
  Graph s;
  s.name = g.name;
  s.opset_imports = g.opset_imports;
  s.ir_version = g.ir_version;
  for (size_t i = 0; i < g.nodes.size(); ++i) {
    if (!need[i]) continue;
    for (const auto& in : g.nodes[i].inputs) {
      if (const Tensor* t = in.empty() || s.FindInitializer(in) ? nullptr : g.FindInitializer(in)) {
        s.AddInitializer(in, *t);
      }
    }
    s.nodes.push_back(g.nodes[i]);
  }
  for (const auto& in : inputs) s.inputs.push_back({in, DType::kUndefined, std::nullopt});
  for (const auto& t : targets) s.outputs.push_back({t, DType::kUndefined, std::nullopt});
  return s;
}

}  // namespace

Expected<std::vector<SequentialGroup>> SequentialGroups(const Graph& graph) {
  SLIM_ASSIGN_OR_RETURN(std::vector<GroupPlan> plans, PlanGroups(graph));
  std::vector<SequentialGroup> out;
  for (auto& p : plans) out.push_back(std::move(p.group));
  return out;
}

Status CalibrateSequentially(Model& model, const TokenDataset& data, const std::string& data_path,
                             const CalibrationOptions& options, const SequentialStepFn& step,
                             const CalibrationProgressFn& progress) {
  SLIM_CHECK_INPUT(model.decoder.has_value(), model.path,
                   ": sequential calibration runs token sequences, which need a decoder language model");
  SLIM_CHECK_INPUT(options.first_sequence < data.sequences.size(), data_path, ": has ", data.sequences.size(),
                   " sequences, calibration starts at sequence ", options.first_sequence);
  const size_t end = options.max_sequences == 0
                         ? data.sequences.size()
                         : std::min(data.sequences.size(), options.first_sequence + options.max_sequences);
  // Cuts and groups on the graph the runtime executes (the FP32-compute
  // rewrite keeps value and weight names), and each sequence's graph inputs.
  std::vector<GroupPlan> groups;
  std::vector<std::vector<std::string>> live;  // kept across the cut before group g
  std::vector<std::map<std::string, Tensor>> feeds;
  std::set<std::string> input_names;
  size_t total_rows = 0;
  {
    SLIM_ASSIGN_OR_RETURN(auto session, DecoderSession::Create(model, options.runtime));
    const Graph& source = session->graph();
    SLIM_ASSIGN_OR_RETURN(groups, PlanGroups(source));
    const std::set<std::string> constants = ConstantValues(source);
    live.resize(groups.size());
    for (size_t g = 1; g < groups.size(); ++g) live[g] = LiveAcross(source, constants, groups[g].first_node);
    for (const auto& in : source.inputs) input_names.insert(in.name);
    for (size_t s = options.first_sequence; s < end; ++s) {
      auto f = session->PrefillFeeds(data.sequences[s]);
      if (!f.ok()) return f.status().WithContext(StrCat(data_path, ": sequence ", s));
      feeds.push_back(std::move(*f));
      total_rows += data.sequences[s].size();
    }
  }
  std::vector<std::map<std::string, Tensor>> kept(feeds.size());

  const size_t runs = feeds.size();
  for (size_t g = 0; g < groups.size(); ++g) {
    std::set<std::string> known = input_names;
    known.insert(live[g].begin(), live[g].end());
    // The part of the current graph from the cut to `targets`.
    auto slice_to = [&](const std::vector<std::string>& targets) -> Expected<Graph> {
      SLIM_ASSIGN_OR_RETURN(Graph current, UpcastFp16Compute(model.graph));
      return Slice(current, known, targets);
    };
    auto run_slice = [&](const Graph& slice, const std::vector<std::string>& targets, const ValueObserver* observer,
                         std::vector<std::map<std::string, Tensor>>* outputs) -> Status {
      SLIM_ASSIGN_OR_RETURN(auto interp, Interpreter::Create(slice, options.runtime));
      for (size_t s = 0; s < runs; ++s) {
        std::map<std::string, Tensor> in = feeds[s];
        for (const auto& [name, t] : kept[s]) in[name] = t;
        auto out = interp->Run(in, targets, nullptr, observer);
        if (!out.ok()) {
          return out.status().WithContext(StrCat(data_path, ": sequence ", options.first_sequence + s, ", ",
                                                 groups[g].group.label));
        }
        if (outputs) (*outputs)[s] = std::move(*out);
      }
      return Status::Ok();
    };
    // Statistics of the group's inputs, its weights still as they were.
    SLIM_ASSIGN_OR_RETURN(Graph stats_slice, slice_to(groups[g].inputs));
    Collector collector(stats_slice, options, runs, &groups[g].inputs);
    collector.set_run_rows(total_rows);
    SLIM_RETURN_IF_ERROR(run_slice(stats_slice, groups[g].inputs, collector.observer(), nullptr));
    ActivationStats stats;
    stats.source = StrCat(data_path, " sequences ", options.first_sequence, "..", end - 1, ", ",
                          groups[g].group.label, " after the earlier layers were compressed");
    stats.sequences = static_cast<int64_t>(runs);
    stats.tokens = static_cast<int64_t>(total_rows);
    collector.Finish(&stats);
    SLIM_RETURN_IF_ERROR(step(groups[g].group, g, groups.size(), stats));
    if (g + 1 < groups.size()) {
      // The next group's inputs, through the compressed group.
      std::vector<std::string> targets;
      std::vector<std::map<std::string, Tensor>> next(runs);
      for (const auto& v : live[g + 1]) {
        if (!known.count(v)) targets.push_back(v);
      }
      if (!targets.empty()) {
        SLIM_ASSIGN_OR_RETURN(Graph out_slice, slice_to(targets));
        SLIM_RETURN_IF_ERROR(run_slice(out_slice, targets, nullptr, &next));
      }
      for (size_t s = 0; s < runs; ++s) {
        for (const auto& v : live[g + 1]) {
          if (known.count(v) && kept[s].count(v)) next[s][v] = kept[s][v];
        }
        kept[s] = std::move(next[s]);
      }
    }
    if (progress) progress(g + 1, groups.size());
  }
  return Status::Ok();
}

}  // namespace slim
