// Quantization passes on tiny graphs: which weights are found (initializer,
// Constant, Cast from FP16, Gather tables, tied classifier), the rewrite to
// slimpack.MatMulQ / GatherQ, weight error after dequantizing the packed
// bytes, the report, fallbacks and strict mode, refusal of quantized input,
// include/exclude and overrides, dry runs and thread-count determinism.
//
// The MatMulQ/GatherQ runtime ops are not part of this layer, so outputs are
// compared through the weights: the packed bytes are dequantized with the
// kernels' reference (DequantizePacked) and compared with the source weight.
#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <random>
#include <set>

#include "libcompress/io/hf_llama.h"
#include "libcompress/io/onnx.h"
#include "libcompress/kernels/quant.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/pipeline/registry.h"
#include "libcompress/pipeline/target_profile.h"

namespace slim {
namespace {

void AddNode(Graph& g, const std::string& op, const std::string& name,
             std::vector<std::string> inputs, std::vector<std::string> outputs,
             std::map<std::string, Attribute> attrs = {}) {
  Node n;
  n.op_type = op;
  n.name = name;
  n.inputs = std::move(inputs);
  n.outputs = std::move(outputs);
  n.attrs = std::move(attrs);
  g.nodes.push_back(std::move(n));
}

Tensor Random(DType dt, std::vector<int64_t> shape, uint32_t seed, float stddev = 0.05f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> dist(0.0f, stddev);
  const int64_t n = ShapeNumel(shape);
  if (dt == DType::kFloat16) {
    std::vector<uint16_t> v(static_cast<size_t>(n));
    for (auto& x : v) x = FloatToHalf(dist(rng));
    return Tensor::FromVector(dt, shape, v);
  }
  std::vector<float> v(static_cast<size_t>(n));
  for (auto& x : v) x = dist(rng);
  return Tensor::FromVector(DType::kFloat32, shape, v);
}

Attribute ToF32() { return Attribute::Int(static_cast<int64_t>(DType::kFloat32)); }

// ids -> Gather(emb fp16 [10, 64]) -> Cast -> x [2, 64]
// a = MatMul(x, w_init [64, 48])                     initializer, [K, N]
// b = MatMul(a, w_const [48, 64])                    Constant node, K = 48 (padded group)
// c = Gemm(b, Cast(w_fp16 [16, 64]), bias, transB=1) FP16 through Cast, [N, K]
// d = MatMul(c, w_tiny [16, 64])                     K = 16 (< smallest int4 group)
// logits = MatMul(d, w_head [64, 10])  or, tied, Gemm(d, Cast(emb), transB=1)
Graph TinyGraph(bool tied) {
  Graph g;
  g.name = "tiny";
  g.opset_imports[""] = 17;
  g.inputs.push_back({"ids", DType::kInt64, Shape{Dim(2)}});
  g.outputs.push_back({"logits", DType::kFloat32, Shape{Dim(2), Dim(10)}});
  g.AddInitializer("emb", Random(DType::kFloat16, {10, 64}, 1));
  g.AddInitializer("w_init", Random(DType::kFloat32, {64, 48}, 2));
  g.AddInitializer("w_fp16", Random(DType::kFloat16, {16, 64}, 3));
  g.AddInitializer("bias", Random(DType::kFloat32, {16}, 4));
  g.AddInitializer("w_tiny", Random(DType::kFloat32, {16, 64}, 5));
  if (!tied) g.AddInitializer("w_head", Random(DType::kFloat32, {64, 10}, 6));
  AddNode(g, "Gather", "embed", {"emb", "ids"}, {"x16"});
  AddNode(g, "Cast", "embed.f32", {"x16"}, {"x"}, {{"to", ToF32()}});
  AddNode(g, "MatMul", "mm_init", {"x", "w_init"}, {"a"});
  AddNode(g, "Constant", "const_w", {}, {"w_const"},
          {{"value", Attribute::FromTensor(Random(DType::kFloat32, {48, 64}, 7))}});
  AddNode(g, "MatMul", "mm_const", {"a", "w_const"}, {"b"});
  AddNode(g, "Cast", "w_fp16.cast", {"w_fp16"}, {"w_fp16_f32"}, {{"to", ToF32()}});
  AddNode(g, "Gemm", "gemm_fp16", {"b", "w_fp16_f32", "bias"}, {"c"},
          {{"transB", Attribute::Int(1)}});
  AddNode(g, "MatMul", "mm_tiny", {"c", "w_tiny"}, {"d"});
  if (tied) {
    AddNode(g, "Cast", "emb.cast", {"emb"}, {"emb_f32"}, {{"to", ToF32()}});
    AddNode(g, "Gemm", "lm_head", {"d", "emb_f32"}, {"logits"}, {{"transB", Attribute::Int(1)}});
  } else {
    AddNode(g, "MatMul", "lm_head", {"d", "w_head"}, {"logits"});
  }
  REQUIRE(g.Validate().ok());
  return g;
}

// The weight as FP32 [N, K] (transposed when the graph stores [K, N]).
std::vector<float> RowsNK(const Tensor& t, bool kn) {
  std::vector<float> v = t.ToFloatVector();
  if (!kn) return v;
  const size_t k = static_cast<size_t>(t.dim(0)), n = static_cast<size_t>(t.dim(1));
  std::vector<float> out(n * k);
  for (size_t r = 0; r < k; ++r) {
    for (size_t c = 0; c < n; ++c) out[c * k + r] = v[r * n + c];
  }
  return out;
}

// Relative MSE of the packed tensor `name` in `g` against `source`.
double PackedRelMse(const Graph& g, const std::string& name, const std::string& layout,
                    const std::vector<float>& source) {
  const Tensor* t = g.FindInitializer(name);
  REQUIRE(t != nullptr);
  auto l = ParseQuantLayout(layout);
  REQUIRE(l.ok());
  const size_t n = static_cast<size_t>(t->dim(0)), k = static_cast<size_t>(t->dim(1));
  std::vector<float> w(n * k);
  REQUIRE(DequantizePacked(t->data<uint8_t>(), t->nbytes(), *l, n, k, w.data()).ok());
  double err = 0, ref = 0;
  for (size_t i = 0; i < w.size(); ++i) {
    err += (w[i] - source[i]) * (w[i] - source[i]);
    ref += source[i] * source[i];
  }
  return err / ref;
}

const Node* FindNode(const Graph& g, const std::string& name) {
  for (const Node& n : g.nodes) {
    if (n.name == name) return &n;
  }
  return nullptr;
}

const TensorReport* Row(const PipelineReport& r, const std::string& name) {
  for (const auto& p : r.passes) {
    for (const auto& t : p.tensors) {
      if (t.name == name) return &t;
    }
  }
  return nullptr;
}

Expected<PipelineReport> RunRecipe(Graph& g, const Recipe& recipe, PipelineOptions opts = {},
                                   const ActivationStats* activations = nullptr) {
  SLIM_ASSIGN_OR_RETURN(PassManager pm, PassManager::Create(recipe, std::move(opts)));
  return pm.Run(g, activations);
}

Expected<PipelineReport> RunPreset(Graph& g, const std::string& preset, PipelineOptions opts = {}) {
  SLIM_ASSIGN_OR_RETURN(Recipe r, GetPreset(preset));
  return RunRecipe(g, r, std::move(opts));
}

Recipe ParseOrDie(const std::string& json) {
  auto r = ParseRecipe(json, "test.json");
  INFO(r.status().message());
  REQUIRE(r.ok());
  return *r;
}

// Everything a graph holds, as bytes, for determinism checks.
std::string Fingerprint(const Graph& g) {
  std::string s;
  for (const Node& n : g.nodes) {
    s += n.name + "|" + n.domain + "." + n.op_type + "(";
    for (const auto& i : n.inputs) s += i + ",";
    s += ")->";
    for (const auto& o : n.outputs) s += o + ",";
    for (const auto& [k, a] : n.attrs) s += k + "=" + std::to_string(a.i) + a.s + ";";
    s += "\n";
  }
  for (const auto& name : g.initializer_names()) {
    const Tensor* t = g.FindInitializer(name);
    s += name + ":" + DTypeName(t->dtype()) + ShapeToString(t->shape()) + ":";
    s.append(static_cast<const char*>(t->raw()), t->nbytes());
  }
  return s;
}

// Calibration statistics for TinyGraph's matmul inputs, as the collector
// (eval/calibration.h) would produce them, from synthetic activations whose
// features are correlated (x_j mixes in its neighbour) so GPTQ has
// something to exploit.
ActivationStats TinyStats(bool gram) {
  ActivationStats st;
  std::mt19937 rng(77);
  std::normal_distribution<float> dist(0.0f, 1.0f);
  const size_t rows = 200;
  for (const auto& [name, k] : std::vector<std::pair<std::string, size_t>>{
           {"x", 64}, {"a", 48}, {"b", 64}, {"c", 16}, {"d", 64}}) {
    ActivationStat a;
    a.dim = static_cast<int64_t>(k);
    a.rows = static_cast<int64_t>(rows);
    a.sample_rows = static_cast<int64_t>(rows);
    a.sample.resize(rows * k);
    for (size_t r = 0; r < rows; ++r) {
      float prev = 0.0f;
      for (size_t j = 0; j < k; ++j) {
        prev = 0.9f * prev + dist(rng) * (j % 8 == 0 ? 4.0f : 1.0f);  // a few loud features
        a.sample[r * k + j] = prev;
      }
    }
    a.mean_sq.assign(k, 0.0);
    if (gram) a.gram.assign(k * k, 0.0f);
    for (size_t r = 0; r < rows; ++r) {
      for (size_t i = 0; i < k; ++i) {
        const double xi = a.sample[r * k + i];
        a.mean_sq[i] += xi * xi / rows;
        for (size_t j = 0; gram && j < k; ++j) {
          a.gram[i * k + j] += static_cast<float>(xi * a.sample[r * k + j] / rows);
        }
      }
    }
    st.values[name] = std::move(a);
  }
  st.sequences = 1;
  st.tokens = static_cast<int64_t>(rows);
  return st;
}

}  // namespace

TEST_CASE("calibration statistics: importance, output error per tensor, GPTQ", "[passes][calib]") {
  const Recipe search = ParseOrDie(R"({"passes": [{"pass": "quantize_int4"}]})");
  const Recipe gptq = ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"gptq": true}}]})");
  const ActivationStats with_gram = TinyStats(true);

  // Without statistics: uniform importance, no output error.
  Graph plain = TinyGraph(false);
  auto r0 = RunRecipe(plain, search);
  REQUIRE(r0.ok());
  CHECK(Row(*r0, "w_init")->importance == "uniform");
  CHECK_FALSE(Row(*r0, "w_init")->output_error_measured);
  CHECK(Row(*r0, "w_init")->method == "search");

  Graph g1 = TinyGraph(false);
  auto r1 = RunRecipe(g1, search, {}, &with_gram);
  REQUIRE(r1.ok());
  Graph g2 = TinyGraph(false);
  auto r2 = RunRecipe(g2, gptq, {}, &with_gram);
  INFO(r2.status().message());
  REQUIRE(r2.ok());
  double out_search = 0, out_gptq = 0;
  for (const char* name : {"w_init", "w_const", "w_fp16", "w_tiny", "w_head"}) {
    INFO(name);
    const TensorReport* a = Row(*r1, name);
    const TensorReport* b = Row(*r2, name);
    REQUIRE(a != nullptr);
    REQUIRE(b != nullptr);
    CHECK(a->importance == "activations");
    CHECK(a->method == "search");
    CHECK(b->method == "gptq");
    REQUIRE(a->output_error_measured);
    REQUIRE(b->output_error_measured);
    CHECK(a->output_rel_error > 0.0);
    CHECK(a->output_rel_error < 0.05);
    out_search += a->output_rel_error;
    out_gptq += b->output_rel_error;
  }
  WARN("sum of output errors: search " << out_search << ", GPTQ " << out_gptq);
  CHECK(out_gptq < 0.8 * out_search);
  // The Gather-only table has no matmul input: no importance, no output error.
  CHECK(Row(*r1, "emb")->importance == "uniform");
  CHECK_FALSE(Row(*r1, "emb")->output_error_measured);
  CHECK(Row(*r2, "emb")->method == "search");
  // The importance changes the chosen codes.
  CHECK(Fingerprint(g1) != Fingerprint(plain));

  // GPTQ without Hessians is refused before any pass runs.
  Graph g3 = TinyGraph(false);
  const std::string before = Fingerprint(g3);
  const ActivationStats no_gram = TinyStats(false);
  for (const ActivationStats* st : {static_cast<const ActivationStats*>(nullptr), &no_gram}) {
    auto r3 = RunRecipe(g3, gptq, {}, st);
    REQUIRE_FALSE(r3.ok());
    CHECK_THAT(r3.status().message(), Catch::Contains("GPTQ needs calibration data"));
    CHECK(Fingerprint(g3) == before);
  }
  // ...unless it is a dry run, which plans without quantizing.
  PipelineOptions dry;
  dry.dry_run = true;
  CHECK(RunRecipe(g3, gptq, dry).ok());

  // GPTQ output does not depend on the thread count.
  Graph g4 = TinyGraph(false);
  PipelineOptions three;
  three.threads = 3;
  REQUIRE(RunRecipe(g4, gptq, three, &with_gram).ok());
  CHECK(Fingerprint(g4) == Fingerprint(g2));
}

TEST_CASE("quantize_int8 rewrites every weight kind to packed int8", "[passes][int8]") {
  Graph g = TinyGraph(false);
  const Graph original = g;
  auto r = RunPreset(g, "int8");
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(g.Validate().ok());

  // Structure: no float matmul, Gather, weight Cast or Constant remains.
  int matmulq = 0, gatherq = 0;
  for (const Node& n : g.nodes) {
    CHECK(n.op_type != "MatMul");
    CHECK(n.op_type != "Gemm");
    CHECK(n.op_type != "Constant");
    if (n.op_type == "MatMulQ") {
      CHECK(n.domain == "slimpack");
      CHECK(n.GetInt("bits", 0) == 8);
      CHECK(n.GetString("layout", "") == "q8_row");
      ++matmulq;
    }
    if (n.op_type == "GatherQ") ++gatherq;
  }
  CHECK(matmulq == 5);
  CHECK(gatherq == 1);
  CHECK(FindNode(g, "w_fp16.cast") == nullptr);
  CHECK(FindNode(g, "embed.f32") != nullptr);  // activation cast stays
  CHECK(g.opset_imports.at("slimpack") == 1);

  // MatMul weights [K, N] are stored transposed as [N, K].
  const Tensor* w_init = g.FindInitializer("w_init");
  REQUIRE(w_init != nullptr);
  CHECK(w_init->dtype() == DType::kInt8Packed);
  CHECK(w_init->shape() == std::vector<int64_t>{48, 64});
  const Node* mm = FindNode(g, "mm_init");
  REQUIRE(mm != nullptr);
  CHECK(mm->op_type == "MatMulQ");
  CHECK(mm->inputs == std::vector<std::string>{"x", "w_init"});
  CHECK(mm->GetInt("K", 0) == 64);
  CHECK(mm->GetInt("N", 0) == 48);
  CHECK(mm->GetInt("group_size", 0) == 64);
  // Gemm bias is kept at input 4; scales live inside the packed layout.
  const Node* gemm = FindNode(g, "gemm_fp16");
  REQUIRE(gemm != nullptr);
  CHECK(gemm->inputs == std::vector<std::string>{"b", "w_fp16", "bias"});
  // The Constant became an initializer under its output name.
  CHECK(g.FindInitializer("w_const") != nullptr);
  const Node* gq = FindNode(g, "embed");
  REQUIRE(gq != nullptr);
  CHECK(gq->op_type == "GatherQ");
  CHECK(gq->inputs == std::vector<std::string>{"emb", "ids"});
  // Biases stay as they were.
  CHECK(g.FindInitializer("bias")->dtype() == DType::kFloat32);

  // Weight error from the packed bytes, and the report agrees.
  struct Want {
    const char* name;
    bool kn;
    const char* role;
  };
  const Tensor w_const_src = FindNode(original, "const_w")->attrs.at("value").t;
  for (const Want& w : {Want{"w_init", true, "linear"}, Want{"w_fp16", false, "linear"},
                        Want{"w_tiny", true, "linear"}, Want{"w_head", true, "classifier"},
                        Want{"emb", false, "embedding"}, Want{"w_const", true, "linear"}}) {
    INFO(w.name);
    const Tensor& src = std::string(w.name) == "w_const" ? w_const_src : *original.FindInitializer(w.name);
    const double rel = PackedRelMse(g, w.name, "q8_row", RowsNK(src, w.kn));
    const TensorReport* row = Row(*r, w.name);
    REQUIRE(row != nullptr);
    CHECK(row->role == w.role);
    CHECK(row->actual == "int8");
    CHECK_FALSE(row->fallback);
    CHECK(row->error_measured);
    CHECK(rel < 1e-4);  // int8 per row on Gaussian weights: ~3e-5
    CHECK(rel > 0);
    CHECK(row->rel_mse == Approx(rel).epsilon(1e-6));
    CHECK(row->bytes_after == g.FindInitializer(w.name)->nbytes());
    CHECK(row->bytes_before == src.nbytes());
  }
  CHECK(r->fallbacks == 0);
  CHECK(r->after.bytes < r->before.bytes);
  CHECK(r->after.params == r->before.params);
}

TEST_CASE("quantize_int4: groups along K, fallbacks, classifier int8", "[passes][int4]") {
  Graph g = TinyGraph(false);
  const Graph original = g;
  auto r = RunPreset(g, "int4-uniform");
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(g.Validate().ok());

  const TensorReport* init = Row(*r, "w_init");
  REQUIRE(init != nullptr);
  CHECK(init->actual == "int4-g32-sym");
  CHECK(init->layout == "q4g32_sym_row");
  CHECK(init->bits == 4);
  CHECK(g.FindInitializer("w_init")->dtype() == DType::kInt4Packed);
  // The preset's select_layout re-packed it into x8 tiles (no target).
  CHECK(FindNode(g, "mm_init")->GetString("layout", "") == "q4g32_sym_x8");
  const double rel = PackedRelMse(g, "w_init", "q4g32_sym_x8",
                                  RowsNK(*original.FindInitializer("w_init"), true));
  CHECK(rel == Approx(init->rel_mse).epsilon(1e-6));
  CHECK(rel > 1e-3);  // int4 on Gaussian weights: ~1e-2
  CHECK(rel < 2.5e-2);

  // K = 48: two groups, the second padded; still int4 g32.
  CHECK(Row(*r, "w_const")->actual == "int4-g32-sym");
  CHECK(Row(*r, "w_const")->group_size == 32);

  // K = 16 < 32: falls back to int8 with the reason and the bit cost.
  const TensorReport* tiny = Row(*r, "w_tiny");
  REQUIRE(tiny != nullptr);
  CHECK(tiny->fallback);
  CHECK(tiny->requested == "int4-g32-sym");
  CHECK(tiny->actual == "int8");
  CHECK(tiny->reason.find("K=16") != std::string::npos);
  CHECK(tiny->BitsPerWeight() > tiny->requested_bits_per_weight);
  CHECK(r->fallbacks == 1);
  bool logged = false;
  for (const auto& line : r->log) logged |= line.find("'w_tiny' fell back") != std::string::npos;
  CHECK(logged);

  // Output projection and embedding default to int8.
  CHECK(Row(*r, "w_head")->role == "classifier");
  CHECK(Row(*r, "w_head")->actual == "int8");
  CHECK(Row(*r, "emb")->actual == "int8");
  CHECK(FindNode(g, "embed")->op_type == "GatherQ");

  // Report JSON and table carry every row.
  const std::string json = PipelineReportToJson(*r);
  CHECK(json.find("\"w_tiny\"") != std::string::npos);
  CHECK(json.find("\"bits_per_weight_after\"") != std::string::npos);
  CHECK(FormatReportTable(*r).find("FALLBACK to int8") != std::string::npos);
}

TEST_CASE("quantize_int4 levels nl: layout q4g32_nl_x8, lower error, select_layout keeps it", "[passes][int4][nl]") {
  const std::string nl = R"({"passes": [{"pass": "quantize_int4", "options": {"levels": "nl", "symmetric": false}},
                                        {"pass": "select_layout", "options": {"int4_layout": "row"}}]})";
  const std::string uniform = R"({"passes": [{"pass": "quantize_int4"}]})";
  Graph g = TinyGraph(false);
  Graph gu = TinyGraph(false);
  const Graph original = g;
  auto r = RunRecipe(g, ParseOrDie(nl));
  auto ru = RunRecipe(gu, ParseOrDie(uniform));
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(ru.ok());
  REQUIRE(g.Validate().ok());
  const TensorReport* init = &r->passes[0].tensors[0];
  for (const TensorReport& t : r->passes[0].tensors) {
    if (t.name == "w_init") init = &t;
  }
  REQUIRE(init->name == "w_init");
  // nl is symmetric: `symmetric: false` does not apply to it.
  CHECK(init->actual == "int4-g32-nl");
  CHECK(init->symmetric);
  CHECK(init->layout == "q4g32_nl_x8");
  CHECK(FindNode(g, "mm_init")->GetString("layout", "") == "q4g32_nl_x8");
  const double rel = PackedRelMse(g, "w_init", "q4g32_nl_x8", RowsNK(*original.FindInitializer("w_init"), true));
  CHECK(rel == Approx(init->rel_mse).epsilon(1e-6));
  CHECK(rel < Row(*ru, "w_init")->rel_mse);  // Gaussian weights: the levels fit better
  // The row family was asked for; nl has only x8 and stays, with the reason.
  const TensorReport* kept = Row(*r, "w_init");
  for (const TensorReport& t : r->passes[1].tensors) {
    if (t.name == "w_init") kept = &t;
  }
  CHECK(kept->layout == "q4g32_nl_x8");
  CHECK(kept->reason == "int4 nl has only the x8 layout (i8-dot kernels)");
  // The classifier and embeddings are int8 as for uniform int4.
  CHECK(Row(*r, "w_head")->actual == "int8");
}

TEST_CASE("quantize_int4 levels nl after 2:4 pruning: masked weights stay uniform and say why",
          "[passes][int4][nl][prune]") {
  Graph g = TinyGraph(false);
  auto r = RunRecipe(g, ParseOrDie(R"({"passes": [{"pass": "prune", "options": {"method": "magnitude", "pattern": "2:4"}},
                                                  {"pass": "quantize_int4", "options": {"levels": "nl"}}]})"));
  INFO(r.status().message());
  REQUIRE(r.ok());
  const TensorReport* t = nullptr;
  for (const TensorReport& x : r->passes[1].tensors) {
    if (x.name == "w_init") t = &x;
  }
  REQUIRE(t != nullptr);
  CHECK(t->requested == "int4-g32-nl");
  CHECK(t->actual == "int4-g32-sym");
  CHECK(t->fallback);
  CHECK(t->layout == "q4g32_sym_s24_row");
  CHECK_THAT(t->reason, Catch::Contains("nl has no level 0"));
}

TEST_CASE("int4 scale search beats plain round-to-nearest on every tensor", "[passes][int4]") {
  for (bool symmetric : {true, false}) {
    const std::string sym = symmetric ? "true" : "false";
    Graph a = TinyGraph(false), b = TinyGraph(false);
    auto ra = RunRecipe(a, ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"symmetric": )" + sym + R"(, "search": true}}]})"));
    auto rb = RunRecipe(b, ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"symmetric": )" + sym + R"(, "search": false}}]})"));
    REQUIRE(ra.ok());
    REQUIRE(rb.ok());
    double sum_a = 0, sum_b = 0;
    for (const auto& t : ra->passes[0].tensors) {
      const TensorReport* tb = Row(*rb, t.name);
      REQUIRE(tb != nullptr);
      INFO(t.name << " symmetric=" << symmetric);
      CHECK(t.rel_mse <= tb->rel_mse);
      sum_a += t.rel_mse;
      sum_b += tb->rel_mse;
    }
    CHECK(sum_a < 0.95 * sum_b);
    if (!symmetric) CHECK(Row(*ra, "w_init")->layout == "q4g32_asym_row");
  }
}

TEST_CASE("strict mode turns a fallback into an error and leaves the graph alone",
          "[passes][strict]") {
  Graph g = TinyGraph(false);
  const std::string before = Fingerprint(g);
  PipelineOptions opts;
  opts.strict = true;
  auto r = RunPreset(g, "int4", opts);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().message().find("strict") != std::string::npos);
  CHECK(r.status().message().find("w_tiny") != std::string::npos);
  CHECK(Fingerprint(g) == before);

  // The recipe's own "strict" does the same.
  auto r2 = RunRecipe(g, ParseOrDie(R"({"strict": true, "passes": [{"pass": "quantize_int4"}]})"));
  CHECK_FALSE(r2.ok());
  // int8 has no fallback here, so strict passes.
  auto r3 = RunPreset(g, "int8", opts);
  CHECK(r3.ok());
}

TEST_CASE("tied embedding: one int8 tensor read by GatherQ and MatMulQ", "[passes][tied]") {
  Graph g = TinyGraph(true);
  auto r = RunPreset(g, "int4");
  REQUIRE(r.ok());
  const TensorReport* emb = Row(*r, "emb");
  REQUIRE(emb != nullptr);
  CHECK(emb->role == "tied-embedding");
  CHECK(emb->actual == "int8");
  CHECK_FALSE(emb->fallback);
  CHECK(FindNode(g, "embed")->op_type == "GatherQ");
  const Node* head = FindNode(g, "lm_head");
  CHECK(head->op_type == "MatMulQ");
  CHECK(head->inputs[1] == "emb");
  CHECK(FindNode(g, "emb.cast") == nullptr);
  CHECK(g.FindInitializer("emb")->shape() == std::vector<int64_t>{10, 64});

  // Asking for an int4 classifier on a tied table falls back to int8.
  Graph g2 = TinyGraph(true);
  auto r2 = RunRecipe(g2, ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"classifier": "int4"}}]})"));
  REQUIRE(r2.ok());
  CHECK(Row(*r2, "emb")->fallback);
  CHECK(Row(*r2, "emb")->actual == "int8");
  CHECK(Row(*r2, "emb")->reason.find("Gather") != std::string::npos);

  // Keeping the classifier keeps the tied table (both readers) as FP16.
  Graph g3 = TinyGraph(true);
  auto r3 = RunRecipe(g3, ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"classifier": "keep"}}]})"));
  REQUIRE(r3.ok());
  CHECK(Row(*r3, "emb")->actual == "keep");
  CHECK(g3.FindInitializer("emb")->dtype() == DType::kFloat16);
  CHECK(FindNode(g3, "lm_head")->op_type == "Gemm");
}

TEST_CASE("embeddings option: int8 or keep, bytes reported", "[passes][embeddings]") {
  Graph g = TinyGraph(false);
  auto r = RunRecipe(g, ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"embeddings": "keep"}}]})"));
  REQUIRE(r.ok());
  const TensorReport* emb = Row(*r, "emb");
  CHECK(emb->actual == "keep");
  CHECK_FALSE(emb->fallback);
  CHECK(emb->bytes_after == emb->bytes_before);
  CHECK(FindNode(g, "embed")->op_type == "Gather");
  CHECK(g.FindInitializer("emb")->dtype() == DType::kFloat16);

  Graph g2 = TinyGraph(false);
  auto r2 = RunPreset(g2, "int4");
  REQUIRE(r2.ok());
  CHECK(Row(*r2, "emb")->bytes_after < Row(*r2, "emb")->bytes_before);
}

TEST_CASE("unusual readers and Gemm attributes fall back to keep with a reason",
          "[passes][fallback]") {
  Graph g = TinyGraph(false);
  // w_init is also read by an Add: it cannot be replaced by packed bytes.
  AddNode(g, "ReduceSum", "sum_w", {"w_init"}, {"w_sum"});
  g.outputs.push_back({"w_sum", DType::kFloat32, std::nullopt});
  // gemm_fp16 scales its product: MatMulQ has no alpha.
  for (Node& n : g.nodes) {
    if (n.name == "gemm_fp16") n.attrs["alpha"] = Attribute::Float(0.5f);
  }
  auto r = RunPreset(g, "int8");
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(g.Validate().ok());
  const TensorReport* init = Row(*r, "w_init");
  CHECK(init->fallback);
  CHECK(init->actual == "keep");
  CHECK(init->reason.find("sum_w") != std::string::npos);
  CHECK(FindNode(g, "mm_init")->op_type == "MatMul");
  CHECK(g.FindInitializer("w_init")->dtype() == DType::kFloat32);
  const TensorReport* fp16 = Row(*r, "w_fp16");
  CHECK(fp16->fallback);
  CHECK(fp16->reason.find("alpha") != std::string::npos);
  CHECK(FindNode(g, "w_fp16.cast") != nullptr);  // kept with its Cast
  CHECK(r->fallbacks == 2);
}

TEST_CASE("GatherQ of an FP16 table feeding FP16 compute gets a Cast back", "[passes][embeddings]") {
  Graph g = TinyGraph(false);
  g.outputs.push_back({"x16", DType::kFloat16, std::nullopt});  // FP16 rows are read as such
  auto r = RunPreset(g, "int8");
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(g.Validate().ok());
  CHECK_FALSE(Row(*r, "emb")->fallback);
  const Node* gq = FindNode(g, "embed");
  REQUIRE(gq->op_type == "GatherQ");
  CHECK(gq->outputs[0] == "x16.f32");
  const Node* back = FindNode(g, "embed.cast_back");
  REQUIRE(back != nullptr);
  CHECK(back->inputs == std::vector<std::string>{"x16.f32"});
  CHECK(back->outputs == std::vector<std::string>{"x16"});
  CHECK(back->GetInt("to", 0) == static_cast<int64_t>(DType::kFloat16));
  // Without such readers no Cast is added (TinyGraph casts to float32).
  Graph plain = TinyGraph(false);
  REQUIRE(RunPreset(plain, "int8").ok());
  CHECK(FindNode(plain, "embed.cast_back") == nullptr);
  CHECK(FindNode(plain, "embed")->outputs[0] == "x16");
}

TEST_CASE("already-quantized input is refused unless allowed", "[passes][requantize]") {
  Graph g = TinyGraph(false);
  REQUIRE(RunPreset(g, "int8").ok());
  const std::string before = Fingerprint(g);
  auto again = RunPreset(g, "int4");
  REQUIRE_FALSE(again.ok());
  CHECK(again.status().message().find("already quantized") != std::string::npos);
  CHECK(again.status().message().find("allow-requantize") != std::string::npos);
  CHECK(Fingerprint(g) == before);

  PipelineOptions opts;
  opts.allow_requantize = true;
  auto allowed = RunPreset(g, "int4", opts);
  REQUIRE(allowed.ok());
  CHECK(allowed->passes[0].counters.at("quantized") == 0);  // packed weights are left alone
  CHECK(Fingerprint(g) == before);

  // ONNX QDQ graphs count as quantized too.
  Graph q = TinyGraph(false);
  AddNode(q, "DequantizeLinear", "dq", {"w_init"}, {"dq_out"});
  auto refused = RunPreset(q, "int8");
  REQUIRE_FALSE(refused.ok());
  CHECK(refused.status().message().find("'dq'") != std::string::npos);
}

TEST_CASE("include/exclude patterns and per-tensor overrides", "[passes][recipe]") {
  Graph g = TinyGraph(false);
  auto r = RunRecipe(g, ParseOrDie(R"({
    "exclude": ["^w_const$"],
    "passes": [{"pass": "quantize_int4",
                "overrides": [{"pattern": "init", "options": {"group_size": 64, "symmetric": false}},
                              {"pattern": "fp16", "options": {"scheme": "int8"}}]}]})"));
  INFO(r.status().message());
  REQUIRE(r.ok());
  const TensorReport* c = Row(*r, "w_const");
  CHECK(c->actual == "keep");
  CHECK_FALSE(c->fallback);
  CHECK(c->reason.find("excluded by pattern '^w_const$'") != std::string::npos);
  CHECK(FindNode(g, "mm_const")->op_type == "MatMul");
  CHECK(FindNode(g, "const_w") != nullptr);
  CHECK(Row(*r, "w_init")->layout == "q4g64_asym_row");
  CHECK(Row(*r, "w_fp16")->actual == "int8");
  CHECK(Row(*r, "w_tiny")->actual == "int8");  // K=16 fallback still applies
  REQUIRE(g.Validate().ok());

  // include: only the named tensors are touched.
  Graph g2 = TinyGraph(false);
  auto r2 = RunRecipe(g2, ParseOrDie(R"j({"passes": [{"pass": "quantize_int8", "include": "w_(init|head)"}]})j"));
  REQUIRE(r2.ok());
  CHECK(r2->passes[0].counters.at("quantized") == 2);
  CHECK(Row(*r2, "emb")->reason == "matches no include pattern");
}

TEST_CASE("K smaller than the group uses a smaller group and says so", "[passes][int4]") {
  Graph g = TinyGraph(false);
  auto r = RunPreset(g, "int4-g128");
  REQUIRE(r.ok());
  const TensorReport* init = Row(*r, "w_init");  // K = 64
  CHECK(init->fallback);
  CHECK(init->actual == "int4-g64-nl");
  CHECK(init->reason.find("K=64 < group 128") != std::string::npos);
  CHECK(Row(*r, "w_const")->actual == "int4-g32-nl");  // K = 48
}

TEST_CASE("dry run plans without changing the graph", "[passes][dryrun]") {
  Graph g = TinyGraph(false);
  const std::string before = Fingerprint(g);
  PipelineOptions opts;
  opts.dry_run = true;
  auto r = RunPreset(g, "int4", opts);
  REQUIRE(r.ok());
  CHECK(Fingerprint(g) == before);
  CHECK(r->dry_run);
  const TensorReport* init = Row(*r, "w_init");
  CHECK_FALSE(init->error_measured);
  CHECK(init->bytes_after == ParseQuantLayout("q4g32_sym_row")->PackedBytes(48, 64));
  CHECK(r->after.bytes < r->before.bytes);

  Graph real = TinyGraph(false);
  auto rr = RunPreset(real, "int4");
  REQUIRE(rr.ok());
  CHECK(rr->after.bytes == r->after.bytes);
}

TEST_CASE("same input and options give a byte-identical graph at any thread count",
          "[passes][determinism]") {
  std::string first;
  for (int threads : {1, 3, 8}) {
    Graph g = TinyGraph(true);
    PipelineOptions opts;
    opts.threads = threads;
    std::vector<size_t> seen;
    opts.progress = [&](const ProgressEvent& e) {
      CHECK((e.pass == "quantize_int4" || e.pass == "select_layout"));
      if (e.pass == "quantize_int4") seen.push_back(e.tensor_index);
    };
    auto r = RunPreset(g, "int4", opts);
    REQUIRE(r.ok());
    CHECK(seen.size() == 5);  // every tensor quantized reports progress once
    CHECK(seen.back() == 5);
    const std::string fp = Fingerprint(g);
    if (first.empty()) {
      first = fp;
    } else {
      CHECK(fp == first);
    }
  }
}

TEST_CASE("awq: explicit Muls where no producer takes the scales, same bytes at any thread count",
          "[passes][awq][determinism]") {
  // TinyGraph's inputs come from a Cast, a MatMul and a Gemm: none can
  // absorb a per-channel scale, so every scaled group gets a Mul.
  const ActivationStats stats = TinyStats(true);
  const Recipe recipe = ParseOrDie(R"({"passes": [{"pass": "quantize_int4", "options": {"awq": true, "gptq": true}}]})");
  std::string first;
  for (int threads : {1, 2, 3}) {
    Graph g = TinyGraph(false);
    PipelineOptions opts;
    opts.threads = threads;
    auto r = RunRecipe(g, recipe, opts, &stats);
    INFO(r.status().message());
    REQUIRE(r.ok());
    size_t muls = 0;
    for (const Node& n : g.nodes) {
      if (n.op_type != "Mul") continue;
      ++muls;
      CHECK(n.outputs[0].find(".awq") != std::string::npos);
      CHECK(g.FindInitializer(n.inputs[1]) != nullptr);
    }
    // One weight per input here, so one Mul per scaled weight.
    CHECK(muls > 0);
    CHECK(muls == static_cast<size_t>(r->passes[0].counters.at("awq_scaled")));
    const TensorReport* row = Row(*r, "w_init");
    REQUIRE(row != nullptr);
    CHECK(!row->awq.empty());
    const std::string fp = Fingerprint(g);
    if (first.empty()) {
      first = fp;
    } else {
      CHECK(fp == first);
    }
  }
}

TEST_CASE("select_layout re-packs int4 for the target profile, weights unchanged",
          "[passes][layout]") {
  Graph row = TinyGraph(false);
  PipelineOptions row_profile;
  row_profile.target = *FindTarget("generic");
  row_profile.target->int4_layout = "row";
  // Uniform codes: nl ones have only the x8 layout (test "quantize_int4 levels nl").
  REQUIRE(RunPreset(row, "int4-uniform", row_profile).ok());  // a profile that asks for row layouts keeps them
  CHECK(FindNode(row, "mm_init")->GetString("layout", "") == "q4g32_sym_row");

  // No target (and the generic one) packs x8 tiles, as the x86-avx2 profile does.
  Graph untargeted = TinyGraph(false);
  REQUIRE(RunPreset(untargeted, "int4-uniform").ok());
  CHECK(FindNode(untargeted, "mm_init")->GetString("layout", "") == "q4g32_sym_x8");

  Graph x8 = TinyGraph(false);
  PipelineOptions opts;
  auto target = FindTarget("x86-avx2");
  REQUIRE(target.ok());
  opts.target = *target;
  auto r = RunPreset(x8, "int4-uniform", opts);
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(r->passes.size() == 2);
  CHECK(r->passes[1].pass == "select_layout");
  CHECK(r->passes[1].counters.at("repacked") == 3);  // w_init, w_const, w_fp16
  for (const char* name : {"mm_init", "mm_const", "gemm_fp16"}) {
    INFO(name);
    const Node* n = FindNode(x8, name);
    const std::string layout = n->GetString("layout", "");
    const Tensor* t = x8.FindInitializer(n->Input(1));
    if (t->dtype() != DType::kInt4Packed) continue;
    CHECK(layout == "q4g32_sym_x8");
    // Same dequantized weights as the row layout.
    const Tensor* tr = row.FindInitializer(n->Input(1));
    const size_t nn = static_cast<size_t>(t->dim(0)), kk = static_cast<size_t>(t->dim(1));
    std::vector<float> a(nn * kk), b(nn * kk);
    REQUIRE(DequantizePacked(t->data<uint8_t>(), t->nbytes(), *ParseQuantLayout(layout), nn, kk, a.data()).ok());
    REQUIRE(DequantizePacked(tr->data<uint8_t>(), tr->nbytes(), *ParseQuantLayout("q4g32_sym_row"), nn, kk, b.data()).ok());
    CHECK(std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0);
  }
  CHECK(FindNode(x8, "lm_head")->GetString("layout", "") == "q8_row");
  REQUIRE(x8.Validate().ok());
  CHECK(Fingerprint(untargeted) == Fingerprint(x8));
}

TEST_CASE("stories260k (Hugging Face): every linear weight is quantized", "[passes][model]") {
  auto model = ReadHuggingFace(std::string(SLIMPACK_SOURCE_DIR) + "/models/stories260k");
  INFO(model.status().message());
  REQUIRE(model.ok());
  Graph& g = model->graph;
  int gemms = 0;
  for (const Node& n : g.nodes) gemms += n.op_type == "Gemm";
  PipelineOptions opts;
  opts.threads = 2;
  auto r = RunPreset(g, "int4", opts);
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(g.Validate().ok());
  int matmulq = 0, gatherq = 0;
  for (const Node& n : g.nodes) {
    CHECK(n.op_type != "Gemm");
    matmulq += n.op_type == "MatMulQ";
    gatherq += n.op_type == "GatherQ";
  }
  CHECK(matmulq == gemms);
  CHECK(matmulq == 5 * 7 + 1);  // q k v o gate up down per layer + tied classifier
  CHECK(gatherq == 1);
  CHECK(r->fallbacks == 0);
  for (const auto& t : r->passes[0].tensors) {
    INFO(t.name);
    CHECK(t.actual != "keep");
    if (t.role == "linear") CHECK(t.actual == "int4-g32-nl");
  }
  CHECK(Row(*r, "model.embed_tokens.weight")->role == "tied-embedding");
  // FFN down has K = 172: six groups of 32, the last padded.
  const TensorReport* down = Row(*r, "model.layers.0.mlp.down_proj.weight");
  REQUIRE(down != nullptr);
  CHECK(down->shape == std::vector<int64_t>{64, 172});
  CHECK(down->bytes_after == ParseQuantLayout("q4g32_nl_x8")->PackedBytes(64, 172));
  // Norms stay FP16.
  CHECK(g.FindInitializer("model.norm.weight")->dtype() == DType::kFloat16);
  CHECK(r->after.BitsPerWeight() < 0.4 * r->before.BitsPerWeight());
}

TEST_CASE("stories260k (ONNX export): MatMul weights found and quantized", "[passes][model]") {
  auto model = ReadOnnx(std::string(SLIMPACK_SOURCE_DIR) + "/models/stories260k/model.onnx");
  INFO(model.status().message());
  REQUIRE(model.ok());
  Graph& g = model->graph;
  auto r = RunPreset(g, "int8");
  INFO(r.status().message());
  REQUIRE(r.ok());
  REQUIRE(g.Validate().ok());
  for (const Node& n : g.nodes) {
    if (n.op_type != "MatMul") continue;
    // Any MatMul left must multiply two activations (attention), not a weight.
    CHECK(g.FindInitializer(n.Input(1)) == nullptr);
  }
  INFO(FormatReportTable(*r));
  CHECK(r->passes[0].counters.at("quantized") >= 5 * 7);
  CHECK(r->fallbacks == 0);
}

}  // namespace slim
