// slimpack inspect MODEL: what a model is and what it costs to run.
#include <cstdio>
#include <map>

#include "libcompress/io/model_loader.h"
#include "libcompress/ir/shape_inference.h"
#include "libcompress/metrics/model_stats.h"
#include "libcompress/kernels/quant.h"
#include "tools/cli.h"

namespace slim::cli {
namespace {

struct InspectOptions {
  std::string model;
  std::string json;
  int64_t context = 0;
};

nlohmann::json ValueInfoJson(const ValueInfo& v) {
  nlohmann::json j{{"name", v.name}, {"dtype", DTypeName(v.dtype)}};
  j["shape"] = v.shape ? ShapeToString(*v.shape) : "unknown";
  return j;
}

// Zeros among the matrix weights (2-D float tensors and packed MatMulQ /
// GatherQ weights, dequantized): what pruning left, whether or not a mask
// was kept. Reads every weight once.
struct SparsitySummary {
  uint64_t weights = 0, zeros = 0;
  uint64_t tensors = 0, sparse_tensors = 0;  // sparse: at least 10% zeros
  std::map<std::string, uint64_t> sparse_layouts;  // tensors per sparse packed layout
  uint64_t SparseLayoutTensors() const {
    uint64_t n = 0;
    for (const auto& [name, count] : sparse_layouts) n += count;
    return n;
  }
};

SparsitySummary ComputeSparsity(const Graph& g) {
  std::map<std::string, std::string> layout_of;
  for (const Node& n : g.nodes) {
    if (n.domain == "slimpack" && (n.op_type == "MatMulQ" || n.op_type == "GatherQ")) {
      const std::string& w = n.op_type == "MatMulQ" ? n.Input(1) : n.Input(0);
      layout_of[w] = n.GetString("layout", "");
    }
  }
  SparsitySummary s;
  for (const std::string& name : g.initializer_names()) {
    const Tensor& t = *g.FindInitializer(name);
    if (t.rank() != 2 || t.numel() < 2) continue;
    std::vector<float> values;
    if (IsFloat(t.dtype())) {
      values = t.ToFloatVector();
    } else if (layout_of.count(name)) {
      auto layout = ParseQuantLayout(layout_of[name]);
      if (!layout.ok()) continue;
      if (layout->IsSparse()) ++s.sparse_layouts[layout->Name()];
      values.resize(static_cast<size_t>(t.numel()));
      if (!DequantizePacked(t.data<uint8_t>(), t.nbytes(), *layout, static_cast<size_t>(t.dim(0)),
                            static_cast<size_t>(t.dim(1)), values.data())
               .ok()) {
        continue;
      }
    } else {
      continue;
    }
    uint64_t zeros = 0;
    for (float v : values) zeros += v == 0.0f;
    ++s.tensors;
    s.weights += values.size();
    s.zeros += zeros;
    if (zeros * 10 >= values.size()) ++s.sparse_tensors;
  }
  return s;
}

int RunInspect(const InspectOptions& opt) {
  auto model = LoadModel(opt.model);
  if (!model.ok()) return ReportError(model.status());
  if (Status st = CheckOutputs({opt.json}, model->files); !st.ok()) return ReportError(st);
  const ModelStats s = ComputeModelStats(*model);
  auto shapes = InferShapes(model->graph);
  if (!shapes.ok()) return ReportError(shapes.status().WithContext(opt.model));
  const Graph& g = model->graph;
  const auto& dec = model->decoder;
  const int64_t context = opt.context > 0 ? opt.context : (dec && dec->max_positions > 0 ? dec->max_positions : 0);
  const uint64_t kv_at_context = s.kv_bytes_per_context_token * static_cast<uint64_t>(context);

  nlohmann::json j;
  j["path"] = model->path;
  j["format"] = model->format;
  j["opset"] = g.onnx_opset();
  j["nodes"] = s.nodes;
  j["op_counts"] = s.op_counts;
  j["tensors"] = s.tensors;
  j["parameters"] = s.parameters;
  j["shape_inference"] = {{"inferred", shapes->inferred}, {"partial", shapes->partial}, {"unknown", shapes->unknown}};
  j["weight_bytes"] = s.weight_bytes;
  for (const auto& [name, d] : s.by_dtype) {
    j["dtypes"][name] = {{"tensors", d.tensors}, {"elements", d.elements}, {"bytes", d.bytes}};
  }
  for (const auto& in : g.inputs) j["inputs"].push_back(ValueInfoJson(in));
  for (const auto& out : g.outputs) j["outputs"].push_back(ValueInfoJson(out));
  j["bytes_per_token"] = {{"weights", s.weight_bytes_per_token},
                          {"kv_cache_per_context_token", s.kv_bytes_per_context_token},
                          {"context", context},
                          {"total_at_context", s.weight_bytes_per_token + kv_at_context},
                          {"method", "estimate from tensor sizes (verify measures it)"}};
  if (dec) {
    j["decoder"] = {{"layers", dec->num_layers}, {"heads", dec->num_heads},
                    {"kv_heads", dec->num_kv_heads}, {"head_dim", dec->head_dim},
                    {"hidden_size", dec->hidden_size}, {"vocab_size", dec->vocab_size},
                    {"max_positions", dec->max_positions}, {"bos_token_id", dec->bos_token_id},
                    {"eos_token_id", dec->eos_token_id}, {"kv_cache", dec->has_past},
                    {"kv_dtype", DTypeName(dec->kv_dtype)}};
  }
  if (model->byte_vocab) j["vocab"] = {{"kind", "bytes"}, {"first_id", model->byte_vocab->first_id}};
  const SparsitySummary sp = ComputeSparsity(g);
  const double zero_fraction = sp.weights ? static_cast<double>(sp.zeros) / static_cast<double>(sp.weights) : 0.0;
  j["sparsity"] = {{"matrix_tensors", sp.tensors}, {"matrix_weights", sp.weights}, {"zeros", sp.zeros},
                   {"zero_fraction", zero_fraction}, {"tensors_at_least_10pct_zero", sp.sparse_tensors},
                   {"sparse_layout_tensors", sp.SparseLayoutTensors()},
                   {"sparse_layouts", sp.sparse_layouts}};

  if (HumanOutput(opt.json)) {
    std::printf("model        %s (%s, opset %lld)\n", model->path.c_str(), model->format.c_str(),
                static_cast<long long>(g.onnx_opset()));
    std::printf("graph        %s nodes, %s tensors\n", WithCommas(s.nodes).c_str(), WithCommas(s.tensors).c_str());
    std::string ops;
    for (const auto& [op, n] : s.op_counts) ops += op + " " + std::to_string(n) + ", ";
    if (!ops.empty()) ops.resize(ops.size() - 2);
    std::printf("ops          %s\n", ops.c_str());
    for (const auto& in : g.inputs) {
      std::printf("input        %s %s %s\n", in.name.c_str(), DTypeName(in.dtype),
                  in.shape ? ShapeToString(*in.shape).c_str() : "?");
    }
    for (const auto& out : g.outputs) {
      std::printf("output       %s %s %s\n", out.name.c_str(), DTypeName(out.dtype),
                  out.shape ? ShapeToString(*out.shape).c_str() : "?");
    }
    std::printf("shapes       %lld node outputs with known rank (%lld with an unnamed dim), %lld unknown\n",
                static_cast<long long>(shapes->inferred), static_cast<long long>(shapes->partial),
                static_cast<long long>(shapes->unknown));
    std::printf("parameters   %s\n", WithCommas(s.parameters).c_str());
    for (const auto& [name, d] : s.by_dtype) {
      std::printf("dtype        %-9s %5llu tensors %14s elements %12s\n", name.c_str(),
                  static_cast<unsigned long long>(d.tensors), WithCommas(d.elements).c_str(),
                  HumanBytes(static_cast<double>(d.bytes)).c_str());
    }
    std::printf("weights      %s\n", HumanBytes(static_cast<double>(s.weight_bytes)).c_str());
    std::string per_layout;
    for (const auto& [name, count] : sp.sparse_layouts) per_layout += StrCat(per_layout.empty() ? " (" : ", ", name, " ", count);
    if (!per_layout.empty()) per_layout += ")";
    std::printf("sparsity     %.1f%% of %s matrix weights are zero; %llu of %llu matrices at least 10%% zero, %llu in "
                "a sparse layout%s\n",
                100.0 * zero_fraction, WithCommas(sp.weights).c_str(), static_cast<unsigned long long>(sp.sparse_tensors),
                static_cast<unsigned long long>(sp.tensors), static_cast<unsigned long long>(sp.SparseLayoutTensors()),
                per_layout.c_str());
    if (dec) {
      std::printf("decoder      %lld layers, %lld heads, %lld kv heads, head_dim %lld, vocab %lld, KV cache %s\n",
                  static_cast<long long>(dec->num_layers), static_cast<long long>(dec->num_heads),
                  static_cast<long long>(dec->num_kv_heads), static_cast<long long>(dec->head_dim),
                  static_cast<long long>(dec->vocab_size), dec->has_past ? "yes" : "no (recomputes)");
    }
    std::printf("bytes/token  %s of weights", HumanBytes(static_cast<double>(s.weight_bytes_per_token)).c_str());
    if (s.kv_bytes_per_context_token) {
      std::printf(" + %s of KV cache per context token (%s at %lld tokens)",
                  HumanBytes(static_cast<double>(s.kv_bytes_per_context_token)).c_str(),
                  HumanBytes(static_cast<double>(kv_at_context)).c_str(), static_cast<long long>(context));
    }
    std::printf(" (estimate)\n");
    if (model->byte_vocab) {
      std::printf("vocab        bytes (ids %lld..%lld)\n", static_cast<long long>(model->byte_vocab->first_id),
                  static_cast<long long>(model->byte_vocab->first_id + 255));
    }
  }
  Status st = WriteJson(opt.json, j);
  return st.ok() ? kExitOk : ReportError(st);
}

}  // namespace

void AddInspectCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<InspectOptions>();
  CLI::App* sub = app.add_subcommand(
      "inspect",
      "Show a model's format, graph, parameters, dtypes, size and the bytes one decoded token\n"
      "reads. Opening memory-maps the weights, so inspecting a multi-GB model is cheap.\n"
      "Example: slimpack inspect models/stories260k");
  sub->add_option("MODEL", opt->model,
                  "Directory with config.json + safetensors, a .safetensors file, or an .onnx file")
      ->required();
  sub->add_option("--context", opt->context,
                  "Context length for the KV-cache figure (default: the model's maximum)");
  sub->add_option("--json", opt->json, "Write the report as JSON to FILE ('-' = stdout)");
  sub->callback([opt, &exit_code] { exit_code = RunInspect(*opt); });
}

}  // namespace slim::cli
