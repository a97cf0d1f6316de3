// prune_structured: FFN channel groups found from the graph (kjv-byte's HF
// graph with Gemm, its ONNX export with MatMul, a synthetic ReLU MLP with a
// bias and a per-channel scale), the shapes and parameter counts after
// removing neurons, the consumer's least-squares refit against plain
// selection, protection and exclusion, and a run of the smaller model.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "libcompress/eval/calibration.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/runtime/decoder_session.h"
#include "libcompress/runtime/interpreter.h"

namespace slim {
namespace {

const std::string kModel = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

Expected<PipelineReport> RunRecipe(Graph& g, const std::string& json, const ActivationStats* stats) {
  auto recipe = ParseRecipe(json, "test");
  if (!recipe.ok()) return recipe.status();
  auto pm = PassManager::Create(*recipe, PipelineOptions());
  if (!pm.ok()) return pm.status();
  return pm->Run(g, stats);
}

int64_t WeightParams(const Graph& g) {
  int64_t total = 0;
  for (const std::string& n : g.initializer_names()) total += g.FindInitializer(n)->numel();
  return total;
}

// x [m, 16] -> MatMul(W1 [16, 32]) -> Add(b1 [32]) -> Relu -> Mul(scale [32])
// -> MatMul(W2 [32, 8]) -> y, with inputs on a 12-dimensional subspace (so
// the hidden channels are correlated and a refit has something to predict).
struct Mlp {
  Graph g;
  std::vector<float> x;  // [m, 16]
  size_t m = 256;
};

Mlp MakeMlp() {
  Mlp mlp;
  Graph& g = mlp.g;
  g.name = "mlp";
  g.opset_imports[""] = 17;
  std::mt19937 rng(5);
  std::normal_distribution<float> d(0.0f, 1.0f);
  auto random = [&](std::vector<int64_t> shape, float scale) {
    std::vector<float> v(static_cast<size_t>(ShapeNumel(shape)));
    for (float& e : v) e = scale * d(rng);
    return Tensor::FromVector(DType::kFloat32, shape, v);
  };
  g.inputs.push_back({"x", DType::kFloat32, Shape{Dim("batch"), Dim(16)}});
  g.outputs.push_back({"y", DType::kFloat32, Shape{Dim("batch"), Dim(8)}});
  g.AddInitializer("w1", random({16, 32}, 0.3f));
  g.AddInitializer("b1", random({32}, 0.1f));
  g.AddInitializer("scale", random({32}, 1.0f));
  g.AddInitializer("w2", random({32, 8}, 0.3f));
  auto node = [&](const std::string& op, const std::string& name, std::vector<std::string> in, std::string out) {
    Node n;
    n.op_type = op;
    n.name = name;
    n.inputs = std::move(in);
    n.outputs = {std::move(out)};
    g.nodes.push_back(std::move(n));
  };
  node("MatMul", "fc1", {"x", "w1"}, "h");
  node("Add", "fc1.bias", {"h", "b1"}, "hb");
  node("Relu", "act", {"hb"}, "a0");
  node("Mul", "act.scale", {"a0", "scale"}, "a");
  node("MatMul", "fc2", {"a", "w2"}, "y");
  // Inputs on a 12-dimensional subspace.
  const std::vector<float> basis = random({12, 16}, 1.0f).ToFloatVector();
  mlp.x.assign(mlp.m * 16, 0.0f);
  for (size_t i = 0; i < mlp.m; ++i) {
    for (size_t b = 0; b < 12; ++b) {
      const float z = d(rng);
      for (size_t e = 0; e < 16; ++e) mlp.x[i * 16 + e] += z * basis[b * 16 + e];
    }
  }
  return mlp;
}

std::map<std::string, Tensor> RunGraph(const Graph& g, const std::vector<float>& x, size_t m) {
  auto interp = Interpreter::Create(g);
  INFO(interp.status().message());
  REQUIRE(interp.ok());
  std::map<std::string, Tensor> feeds{{"x", Tensor::FromVector(DType::kFloat32, {static_cast<int64_t>(m), 16}, x)}};
  auto out = (*interp)->Run(feeds);
  REQUIRE(out.ok());
  return *out;
}

// Statistics of fc2's input `a`, computed by running the graph.
ActivationStats MlpStats(const Mlp& mlp) {
  Graph probe = mlp.g;
  probe.outputs.push_back({"a", DType::kFloat32, std::nullopt});
  const std::vector<float> a = RunGraph(probe, mlp.x, mlp.m).at("a").ToFloatVector();
  ActivationStat st;
  st.dim = 32;
  st.rows = static_cast<int64_t>(mlp.m);
  st.mean_sq.assign(32, 0.0);
  st.gram.assign(32 * 32, 0.0f);
  for (size_t i = 0; i < mlp.m; ++i) {
    for (size_t p = 0; p < 32; ++p) {
      st.mean_sq[p] += a[i * 32 + p] * a[i * 32 + p] / static_cast<double>(mlp.m);
      for (size_t q = 0; q < 32; ++q) st.gram[p * 32 + q] += a[i * 32 + p] * a[i * 32 + q] / static_cast<float>(mlp.m);
    }
  }
  st.sample_rows = static_cast<int64_t>(mlp.m);
  st.sample = a;
  ActivationStats stats;
  stats.values["a"] = std::move(st);
  return stats;
}

double RelError(const std::vector<float>& ref, const std::vector<float>& got) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (ref[i] - got[i]) * (ref[i] - got[i]);
    den += ref[i] * ref[i];
  }
  return num / den;
}

}  // namespace

TEST_CASE("prune_structured on kjv-byte: 25% of FFN neurons, shapes and parameter count follow", "[passes][structured]") {
  for (const char* file : {"", "/model.onnx"}) {
    INFO(file);
    auto model = LoadModel(kModel + file);
    REQUIRE(model.ok());
    const int64_t params = WeightParams(model->graph);
    auto r = RunRecipe(model->graph, R"({"passes": [{"pass": "prune_structured", "options": {"ffn_ratio": 0.25}}]})",
                       nullptr);
    INFO(r.status().message());
    REQUIRE(r.ok());
    const PassReport& p = r->passes[0];
    CHECK(p.counters.at("ffn_groups") == 4);
    CHECK(p.counters.at("neurons_removed") == 4 * 96);
    // 96 neurons x (gate row + up row + down column) x hidden 128, per layer.
    CHECK(params - WeightParams(model->graph) == 4 * 96 * 3 * 128);
    size_t touched = 0;
    for (const TensorReport& t : p.tensors) {
      if (t.requested == "keep") {
        CHECK(t.bytes_after == t.bytes_before);
        continue;
      }
      ++touched;
      CHECK(t.bytes_after * 384 == t.bytes_before * 288);
      CHECK_THAT(t.name, !Catch::Contains("attn") && !Catch::Contains("q_proj") && !Catch::Contains("o_proj"));
    }
    CHECK(touched == 12);
    if (std::string(file).empty()) CHECK(model->graph.metadata.at("hf.intermediate_size") == "288");
    // The smaller model runs and predicts.
    auto session = DecoderSession::Create(*model);
    INFO(session.status().message());
    REQUIRE(session.ok());
    auto logits = (*session)->Append({256, 73, 110, 32});
    REQUIRE(logits.ok());
    for (float v : *logits) REQUIRE(std::isfinite(v));
  }
}

TEST_CASE("prune_structured: the least-squares refit beats plain selection, constants follow the channels",
          "[passes][structured]") {
  const Mlp mlp = MakeMlp();
  const ActivationStats stats = MlpStats(mlp);
  const std::vector<float> ref = RunGraph(mlp.g, mlp.x, mlp.m).at("y").ToFloatVector();
  double err[2];
  for (bool refit : {false, true}) {
    Graph g = mlp.g;
    auto r = RunRecipe(g,
                       StrCat(R"({"passes": [{"pass": "prune_structured", "options": {"ffn_ratio": 0.25, "reconstruct": )",
                              refit ? "true" : "false", "}}]}"),
                       &stats);
    INFO(r.status().message());
    REQUIRE(r.ok());
    CHECK(g.FindInitializer("w1")->shape() == std::vector<int64_t>{16, 24});
    CHECK(g.FindInitializer("b1")->shape() == std::vector<int64_t>{24});
    CHECK(g.FindInitializer("scale")->shape() == std::vector<int64_t>{24});
    CHECK(g.FindInitializer("w2")->shape() == std::vector<int64_t>{24, 8});
    err[refit] = RelError(ref, RunGraph(g, mlp.x, mlp.m).at("y").ToFloatVector());
    const TensorReport& down = r->passes[0].tensors.back();
    CHECK(down.name == "w2");
    CHECK(down.method == (refit ? "least-squares" : "select"));
    REQUIRE(down.output_error_measured);
    CHECK(down.output_rel_error == Approx(err[refit]).epsilon(1e-3));
  }
  WARN("synthetic MLP, 25% of 32 channels removed: relative output error " << err[0] << " selected, " << err[1]
                                                                         << " refitted");
  // The refit is the least-squares optimum on these very activations (tiny
  // ridge), so it can only be better than keeping the selected columns.
  CHECK(err[1] < err[0]);
  // Protected or excluded: nothing changes.
  for (const char* recipe :
       {R"({"passes": [{"pass": "prune_structured", "options": {"protect": "w2"}}]})",
        R"({"passes": [{"pass": "prune_structured", "exclude": "w1"}]})"}) {
    Graph g = mlp.g;
    REQUIRE(RunRecipe(g, recipe, &stats).ok());
    CHECK(g.FindInitializer("w1")->shape() == std::vector<int64_t>{16, 32});
  }
}

}  // namespace slim
