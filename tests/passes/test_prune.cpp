// The prune pass on the bundled kjv-byte model (Hugging Face graph: FP16
// Gemm weights stored [N, K]; ONNX export: MatMul weights stored [K, N]):
// masks in the IR, exact zeros, patterns, roles, the report, calibration
// requirements, composition with int4/int8 (GPTQ included: pruned weights
// stay zero) and thread-count determinism.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>

#include "libcompress/eval/calibration.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/numerics/prune.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "tests/compile_util.h"

namespace slim {
namespace {

const std::string kModel = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

const ActivationStats& Stats() {
  static const ActivationStats stats = slim_test::CalibrationStats(kModel, 64, 8);
  return stats;
}

Expected<PipelineReport> RunRecipe(Graph& g, const std::string& json, const ActivationStats* stats,
                                   int threads = 1) {
  auto recipe = ParseRecipe(json, "test");
  if (!recipe.ok()) return recipe.status();
  PipelineOptions opt;
  opt.threads = threads;
  auto pm = PassManager::Create(*recipe, opt);
  if (!pm.ok()) return pm.status();
  return pm->Run(g, stats);
}

std::string Prune(const std::string& options) {
  return R"({"passes": [{"pass": "prune", "options": )" + options + "}]}";
}

// [N, K] float values of a weight (the Gemm weights of the HF graph are
// stored [N, K]).
std::vector<float> Values(const Graph& g, const std::string& name) {
  const Tensor* t = g.FindInitializer(name);
  REQUIRE(t != nullptr);
  return t->ToFloatVector();
}

}  // namespace

TEST_CASE("prune magnitude 50%: masks in the IR, exact zeros, classifier and embeddings kept", "[passes][prune]") {
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  const Graph before = model->graph;
  auto r = RunRecipe(model->graph, Prune(R"({"method": "magnitude", "sparsity": 0.5})"), nullptr);
  INFO(r.status().message());
  REQUIRE(r.ok());
  const Graph& g = model->graph;
  size_t pruned = 0;
  for (const TensorReport& t : r->passes[0].tensors) {
    INFO(t.name);
    if (t.role != "linear") {
      CHECK(t.actual == "keep");
      CHECK(g.weight_masks.count(t.name) == 0);
      CHECK(std::memcmp(g.FindInitializer(t.name)->raw(), before.FindInitializer(t.name)->raw(),
                        before.FindInitializer(t.name)->nbytes()) == 0);
      continue;
    }
    ++pruned;
    REQUIRE(g.weight_masks.count(t.name) == 1);
    const WeightMask& m = g.weight_masks.at(t.name);
    CHECK(m.pattern == "unstructured");
    CHECK(m.keep.shape() == t.shape);
    CHECK(t.sparsity == Approx(0.5).margin(1e-6));
    CHECK(t.sparsity_pattern == "unstructured");
    CHECK(t.method == "magnitude");
    const std::vector<float> w = Values(g, t.name), w0 = Values(before, t.name);
    const uint8_t* keep = m.keep.data<uint8_t>();
    float max_pruned = 0, min_kept = INFINITY;
    for (size_t i = 0; i < w.size(); ++i) {
      if (keep[i]) {
        CHECK(w[i] == w0[i]);  // magnitude pruning does not touch the kept weights
        min_kept = std::min(min_kept, std::fabs(w0[i]));
      } else {
        CHECK(w[i] == 0.0f);
        max_pruned = std::max(max_pruned, std::fabs(w0[i]));
      }
    }
    CHECK(max_pruned <= min_kept);
  }
  CHECK(pruned == 28);  // 4 layers x (q, k, v, o, gate, up, down)
  CHECK(r->passes[0].counters.at("pruned") == 28);
}

TEST_CASE("prune N:M patterns hold in every group, and the ONNX graph's K x N weights are masked as N x K",
          "[passes][prune]") {
  for (const char* path : {"", "/model.onnx"}) {
    for (const char* pattern : {"2:4", "4:8", "1:3"}) {
      INFO(path << " " << pattern);
      auto model = LoadModel(kModel + path);
      REQUIRE(model.ok());
      auto r = RunRecipe(model->graph, Prune(StrCat(R"({"method": "wanda", "pattern": ")", pattern, R"("})")),
                         &Stats());
      INFO(r.status().message());
      REQUIRE(r.ok());
      const SparsityPattern p = *SparsityPattern::Parse(pattern);
      size_t masked = 0;
      for (const auto& [name, m] : model->graph.weight_masks) {
        ++masked;
        const size_t n = static_cast<size_t>(m.keep.dim(0)), k = static_cast<size_t>(m.keep.dim(1));
        CHECK(MaskFollowsPattern(m.keep.data<uint8_t>(), n, k, p));
        CHECK(MaskSparsity(m.keep.data<uint8_t>(), n * k) == Approx(p.Sparsity()).margin(0.02));
        // Zeros where pruned, in the stored orientation.
        const Tensor* t = model->graph.FindInitializer(name);
        REQUIRE(t != nullptr);
        const bool kn = std::string(path) == "/model.onnx";  // MatMul(A, W[K, N])
        const std::vector<float> w = t->ToFloatVector();
        for (size_t r = 0; r < n; ++r) {
          for (size_t c = 0; c < k; ++c) {
            if (m.keep.data<uint8_t>()[r * k + c]) continue;
            CHECK(w[kn ? c * n + r : r * k + c] == 0.0f);
          }
        }
      }
      CHECK(masked >= 28);
    }
  }
}

TEST_CASE("prune then int4/int8 (with and without GPTQ): pruned weights dequantize to exactly 0",
          "[passes][prune]") {
  for (const char* quant : {R"({"pass": "quantize_int4", "options": {"gptq": true}})",
                            R"({"pass": "quantize_int4", "options": {"symmetric": false}})",
                            R"({"pass": "quantize_int8", "options": {"gptq": true}})"}) {
    INFO(quant);
    auto model = LoadModel(kModel);
    REQUIRE(model.ok());
    const std::string recipe =
        StrCat(R"({"passes": [{"pass": "prune", "options": {"method": "sparsegpt", "pattern": "2:4"}}, )", quant,
               "]}");
    auto r = RunRecipe(model->graph, recipe, &Stats());
    INFO(r.status().message());
    REQUIRE(r.ok());
    size_t checked = 0;
    for (const TensorReport& t : r->passes[1].tensors) {
      auto m = model->graph.weight_masks.find(t.name);
      if (m == model->graph.weight_masks.end()) continue;
      ++checked;
      CHECK(t.sparsity == Approx(0.5).margin(1e-6));
      CHECK(t.sparsity_pattern == "2:4");
      auto layout = ParseQuantLayout(t.layout);
      REQUIRE(layout.ok());
      const Tensor* packed = model->graph.FindInitializer(t.name);
      const size_t n = static_cast<size_t>(packed->dim(0)), k = static_cast<size_t>(packed->dim(1));
      std::vector<float> w(n * k);
      REQUIRE(DequantizePacked(packed->data<uint8_t>(), packed->nbytes(), *layout, n, k, w.data()).ok());
      size_t nonzero_kept = 0;
      for (size_t i = 0; i < w.size(); ++i) {
        if (!m->second.keep.data<uint8_t>()[i]) {
          CHECK(w[i] == 0.0f);
        } else {
          nonzero_kept += w[i] != 0.0f;
        }
      }
      CHECK(nonzero_kept > w.size() / 3);  // the kept half is really there
    }
    CHECK(checked == 28);
  }
}

TEST_CASE("prune 2:4 then int4 then select_layout: the x8 family takes q4g32_sym_s24_x8, the row family keeps "
          "q4g32_sym_s24_row, same codes",
          "[passes][prune][sparse]") {
  const std::string head =
      R"({"passes": [{"pass": "prune", "options": {"method": "magnitude", "pattern": "2:4"}}, )"
      R"({"pass": "quantize_int4"}, {"pass": "select_layout", "options": {"int4_layout": ")";
  auto x8 = LoadModel(kModel);
  auto row = LoadModel(kModel);
  REQUIRE(x8.ok());
  REQUIRE(row.ok());
  auto rx = RunRecipe(x8->graph, head + R"(x8"}}]})", nullptr);
  auto rr = RunRecipe(row->graph, head + R"(row"}}]})", nullptr);
  INFO(rx.status().message() << rr.status().message());
  REQUIRE(rx.ok());
  REQUIRE(rr.ok());
  size_t checked = 0;
  for (const TensorReport& t : rx->passes[2].tensors) {
    if (!x8->graph.weight_masks.count(t.name)) continue;
    ++checked;
    INFO(t.name << ": " << t.reason);
    CHECK(t.layout == "q4g32_sym_s24_x8");
    const Tensor* a = x8->graph.FindInitializer(t.name);
    const Tensor* b = row->graph.FindInitializer(t.name);
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(t.bytes_after == a->nbytes());
    const size_t n = static_cast<size_t>(a->dim(0)), k = static_cast<size_t>(a->dim(1));
    auto la = ParseQuantLayout("q4g32_sym_s24_x8");
    auto lb = ParseQuantLayout("q4g32_sym_s24_row");
    auto qa = UnpackQuantized(a->data<uint8_t>(), a->nbytes(), *la, n, k);
    auto qb = UnpackQuantized(b->data<uint8_t>(), b->nbytes(), *lb, n, k);
    REQUIRE(qa.ok());
    REQUIRE(qb.ok());
    CHECK(qa->codes == qb->codes);
    CHECK(qa->scales == qb->scales);
    for (const Node& node : x8->graph.nodes) {
      if (node.op_type == "MatMulQ" && node.Input(1) == t.name) CHECK(node.GetString("layout", "") == t.layout);
    }
  }
  CHECK(checked == 28);
  for (const TensorReport& t : rr->passes[2].tensors) {
    if (row->graph.weight_masks.count(t.name)) CHECK(t.layout == "q4g32_sym_s24_row");
  }
  // The i8-dot path only adds activation rounding to the float path's
  // result on the same codes.
  auto a = DecoderSession::Create(*x8);
  auto b = DecoderSession::Create(*row);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto data = ReadTokenDataset(kModel + "/calib_tokens.json");
  REQUIRE(data.ok());
  auto acc = CompareDecoders(**b, **a, *data, 2);
  REQUIRE(acc.ok());
  CHECK(acc->kl_mean < 1e-3);
  CHECK(acc->top1_agreement > 0.97);
}

TEST_CASE("prune then int8: the smallest of q8_row, q8_s24_row and q8_bm_row per tensor, said in the report, "
          "the sparse layouts compute what q8_row does",
          "[passes][prune][sparse]") {
  struct Case {
    const char* prune;
    const char* layout;  // expected for every pruned linear weight
  };
  for (const Case& c : {Case{R"({"method": "magnitude", "pattern": "unstructured", "sparsity": 0.5})", "q8_bm_row"},
                        Case{R"({"method": "magnitude", "pattern": "2:4"})", "q8_s24_row"},
                        Case{R"({"method": "magnitude", "pattern": "unstructured", "sparsity": 0.1})", "q8_row"}}) {
    INFO(c.prune);
    const std::string recipe =
        StrCat(R"({"passes": [{"pass": "prune", "options": )", c.prune, R"(}, {"pass": "quantize_int8"}]})");
    auto model = LoadModel(kModel);
    REQUIRE(model.ok());
    auto r = RunRecipe(model->graph, recipe, nullptr);
    INFO(r.status().message());
    REQUIRE(r.ok());
    Model dense = *model;  // the same codes, every weight in q8_row
    size_t checked = 0;
    for (const TensorReport& t : r->passes[1].tensors) {
      if (!model->graph.weight_masks.count(t.name)) continue;
      ++checked;
      INFO(t.name << ": " << t.reason);
      CHECK(t.layout == c.layout);
      const Tensor* packed = model->graph.FindInitializer(t.name);
      REQUIRE(packed != nullptr);
      CHECK(t.bytes_after == packed->nbytes());
      const size_t n = static_cast<size_t>(packed->dim(0)), k = static_cast<size_t>(packed->dim(1));
      const QuantLayout q8{QuantLayoutKind::kQ8Row, 0, true};
      if (std::string(c.layout) == "q8_row") {
        CHECK_THAT(t.reason, Catch::StartsWith("stored dense"));
        continue;
      }
      CHECK_THAT(t.reason, Catch::StartsWith(std::string(c.layout) + ": 0."));
      CHECK(packed->nbytes() < q8.PackedBytes(n, k));
      auto layout = ParseQuantLayout(t.layout);
      REQUIRE(layout.ok());
      auto q = UnpackQuantized(packed->data<uint8_t>(), packed->nbytes(), *layout, n, k);
      REQUIRE(q.ok());
      auto blob = PackQuantized(*q, q8);
      REQUIRE(blob.ok());
      dense.graph.AddInitializer(t.name, Tensor::FromBytes(DType::kInt8Packed, packed->shape(), blob->data(), blob->size()));
      for (Node& node : dense.graph.nodes) {
        if (node.op_type == "MatMulQ" && node.Input(1) == t.name) node.attrs["layout"] = Attribute::String("q8_row");
      }
    }
    CHECK(checked == 28);
    auto a = DecoderSession::Create(*model);
    auto b = DecoderSession::Create(dense);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    auto data = ReadTokenDataset(kModel + "/calib_tokens.json");
    REQUIRE(data.ok());
    auto acc = CompareDecoders(**b, **a, *data, 2);
    REQUIRE(acc.ok());
    CHECK(acc->top1_agreement == 1.0);
    CHECK(acc->kl_mean < 1e-9);
  }
}

TEST_CASE("prune: calibration requirements, bad options, global scope", "[passes][prune]") {
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  Graph g = model->graph;
  for (const char* method : {"wanda", "sparsegpt"}) {
    auto r = RunRecipe(g, Prune(StrCat(R"({"method": ")", method, R"("})")), nullptr);
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("calibration data"));
  }
  CHECK(g.weight_masks.empty());
  for (const char* bad : {R"({"pattern": "4:2"})", R"({"pattern": "dense"})", R"({"sparsity": 0.99})"}) {
    INFO(bad);
    auto r = RunRecipe(g, Prune(bad), &Stats());
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("prune"));
  }
  // Global: one threshold, sparsity differs per tensor, total near 50%.
  auto r = RunRecipe(g, Prune(R"({"method": "wanda", "scope": "global", "sparsity": 0.5})"), &Stats());
  INFO(r.status().message());
  REQUIRE(r.ok());
  double zeros = 0, total = 0, lo = 1, hi = 0;
  for (const TensorReport& t : r->passes[0].tensors) {
    if (t.sparsity_pattern.empty()) continue;
    zeros += t.sparsity * static_cast<double>(t.params);
    total += static_cast<double>(t.params);
    lo = std::min(lo, t.sparsity);
    hi = std::max(hi, t.sparsity);
  }
  CHECK(zeros / total == Approx(0.5).margin(0.01));
  CHECK(hi - lo > 0.05);
}

TEST_CASE("prune sparsegpt: byte-identical weights and masks at 1 and 2 threads", "[passes][prune][threads]") {
  std::vector<Graph> graphs;
  for (int threads : {1, 2}) {
    auto model = LoadModel(kModel);
    REQUIRE(model.ok());
    auto r = RunRecipe(model->graph, Prune(R"({"method": "sparsegpt", "sparsity": 0.6})"), &Stats(), threads);
    REQUIRE(r.ok());
    graphs.push_back(model->graph);
  }
  REQUIRE(graphs[0].weight_masks.size() == graphs[1].weight_masks.size());
  for (const auto& [name, m] : graphs[0].weight_masks) {
    INFO(name);
    const Tensor* a = graphs[0].FindInitializer(name);
    const Tensor* b = graphs[1].FindInitializer(name);
    CHECK(std::memcmp(a->raw(), b->raw(), a->nbytes()) == 0);
    CHECK(std::memcmp(m.keep.raw(), graphs[1].weight_masks.at(name).keep.raw(), m.keep.nbytes()) == 0);
  }
}

}  // namespace slim

namespace slim {

TEST_CASE("reconstruct refits kept weights to the teacher, keeps the zeros, lowers every layer's output error",
          "[passes][prune][reconstruct]") {
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  const Graph teacher = model->graph;
  auto r = RunRecipe(model->graph,
                     R"({"passes": [{"pass": "prune", "options": {"method": "magnitude", "pattern": "2:4"}},
                                    {"pass": "reconstruct"}]})",
                     &Stats());
  INFO(r.status().message());
  REQUIRE(r.ok());
  const PassReport& prune = r->passes[0];
  const PassReport& rec = r->passes[1];
  REQUIRE(rec.counters.at("reconstructed") == 28);
  for (size_t i = 0; i < rec.tensors.size(); ++i) {
    const TensorReport& t = rec.tensors[i];
    if (t.actual != "reconstruct") continue;
    INFO(t.name);
    REQUIRE(prune.tensors[i].name == t.name);
    REQUIRE(t.output_error_measured);
    CHECK(t.output_rel_error < prune.tensors[i].output_rel_error);
    const WeightMask& m = model->graph.weight_masks.at(t.name);
    const std::vector<float> w = Values(model->graph, t.name), w0 = Values(teacher, t.name);
    size_t changed = 0;
    for (size_t j = 0; j < w.size(); ++j) {
      if (!m.keep.data<uint8_t>()[j]) {
        CHECK(w[j] == 0.0f);
      } else {
        changed += w[j] != w0[j];
      }
    }
    CHECK(changed > w.size() / 4);  // the kept weights moved
  }
  // Without calibration data: refused before any pass runs.
  auto no_data = LoadModel(kModel);
  REQUIRE(no_data.ok());
  auto refused = RunRecipe(no_data->graph, R"({"passes": [{"pass": "prune", "options": {"method": "magnitude"}},
                                                          {"pass": "reconstruct"}]})",
                           nullptr);
  REQUIRE_FALSE(refused.ok());
  CHECK(no_data->graph.weight_masks.empty());
}

}  // namespace slim
