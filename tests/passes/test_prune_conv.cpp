// prune_structured on CNN graphs (conv_ratio): channel groups traced from a
// Conv through BatchNormalization, activations and pools to the Conv or
// Gemm (after Flatten) that reads them; shapes, parameter counts, the
// least-squares refit of the consumers on calibration statistics gathered
// from feeds (Conv im2col patches), depthwise and grouped consumers, and
// channels that meet in a residual Add left alone.
#include <catch2/catch.hpp>

#include <cmath>
#include <random>

#include "libcompress/eval/calibration.h"
#include "libcompress/ir/shape_inference.h"
#include "tests/passes/cnn_graph.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/runtime/interpreter.h"

namespace slim {
namespace {

using test::Builder;
using test::Images;
using test::MakeCnn;

std::vector<Feeds> MakeFeeds(uint32_t seed, int sets) {
  std::mt19937 rng(seed);
  std::vector<Feeds> feeds;
  for (int s = 0; s < sets; ++s) feeds.push_back({{"x", Images(rng, 16)}});
  return feeds;
}

std::vector<float> Run(const Graph& g, const Feeds& feeds) {
  auto interp = Interpreter::Create(g);
  INFO(interp.status().message());
  REQUIRE(interp.ok());
  auto out = (*interp)->Run(feeds);
  INFO(out.status().message());
  REQUIRE(out.ok());
  return out->at("y").ToFloatVector();
}

double RelError(const std::vector<float>& ref, const std::vector<float>& got) {
  REQUIRE(ref.size() == got.size());
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    num += (ref[i] - got[i]) * (ref[i] - got[i]);
    den += ref[i] * ref[i];
  }
  return num / den;
}

int64_t Params(const Graph& g) {
  int64_t total = 0;
  for (const std::string& n : g.initializer_names()) total += g.FindInitializer(n)->numel();
  return total;
}

Expected<PipelineReport> Prune(Graph& g, const std::string& options, const ActivationStats* stats) {
  auto recipe = ParseRecipe(StrCat(R"({"passes": [{"pass": "prune_structured", "options": )", options, "}]}"), "test");
  if (!recipe.ok()) return recipe.status();
  auto pm = PassManager::Create(*recipe, PipelineOptions());
  if (!pm.ok()) return pm.status();
  return pm->Run(g, stats);
}

ActivationStats Calibrate(const Graph& g, const std::vector<Feeds>& feeds) {
  Model m;
  m.graph = g;
  m.path = "cnn";
  CalibrationOptions opt;
  opt.max_sequences = 0;
  opt.gram = true;
  auto stats = CollectActivationStats(m, feeds, "feeds", opt);
  INFO(stats.status().message());
  REQUIRE(stats.ok());
  return std::move(*stats);
}

}  // namespace

TEST_CASE("prune_structured conv_ratio: Conv-BN-Relu-Conv-Pool-Gemm loses 25% of its channels", "[passes][conv]") {
  const Graph source = MakeCnn();
  const std::vector<Feeds> calib = MakeFeeds(1, 8), held_out = MakeFeeds(2, 2);
  const ActivationStats stats = Calibrate(source, calib);
  // Patch statistics of conv2 (32 channels x 3x3) with its Gram matrix;
  // the Gemm after the pool sees 32 columns.
  REQUIRE(stats.FindConv("conv2.w"));
  CHECK(stats.FindConv("conv2.w")->dim == 32 * 9);
  CHECK(stats.FindConv("conv2.w")->gram.size() == 288u * 288u);
  CHECK(stats.FindConv("conv2.w")->rows == 8 * 16 * 64);
  REQUIRE(stats.Find("flatten.out"));

  double err[2] = {0, 0};
  for (bool refit : {false, true}) {
    Graph g = source;
    REQUIRE(InferShapes(g).ok());  // value_info entries, which the rewrite must keep true
    auto r = Prune(g, StrCat(R"({"conv_ratio": 0.25, "reconstruct": )", refit ? "true" : "false", "}"), &stats);
    INFO(r.status().message());
    REQUIRE(r.ok());
    const PassReport& p = r->passes[0];
    CHECK(p.counters.at("conv_groups") == 2);
    CHECK(p.counters.at("conv_channels_removed") == 16);
    CHECK(p.counters.at("conv_refitted") == (refit ? 2 : 0));
    CHECK(g.FindInitializer("conv1.w")->shape() == std::vector<int64_t>{24, 3, 3, 3});
    CHECK(g.FindInitializer("conv1.b")->shape() == std::vector<int64_t>{24});
    for (const char* bn : {"bn1.scale", "bn1.bias", "bn1.mean", "bn1.var"}) {
      CHECK(g.FindInitializer(bn)->shape() == std::vector<int64_t>{24});
    }
    CHECK(g.FindInitializer("conv2.w")->shape() == std::vector<int64_t>{24, 24, 3, 3});
    CHECK(g.FindInitializer("fc.w")->shape() == std::vector<int64_t>{10, 24});
    // Parameters removed, from the shapes: conv1 8 filters (27 + bias) and
    // 8 x 4 BN parameters; conv2 8 filters of 32 x 9 + bias and 24 x 8 x 9
    // input columns of the rest; fc 10 x 8 columns.
    const int64_t expected = 8 * 28 + 8 * 4 + 8 * (32 * 9 + 1) + 24 * 8 * 9 + 10 * 8;
    CHECK(Params(source) - Params(g) == expected);
    CHECK(p.counters.at("bytes_before") - p.counters.at("bytes_after") == expected * 4);
    double e = 0;
    for (const Feeds& f : held_out) e += RelError(Run(source, f), Run(g, f)) / 2;
    err[refit] = e;
    // The value_info entries follow the new shapes.
    CHECK(g.value_info.at("relu1.out").shape->at(1).value == 24);
    CHECK(g.value_info.at("flatten.out").shape->at(1).value == 24);
  }
  WARN("Conv-BN-Relu-Conv-Pool-Gemm, 25% of channels, held-out feeds: relative output error " << err[0]
       << " selected, " << err[1] << " refitted");
  CHECK(err[1] < err[0]);
  CHECK(err[1] < 0.05);  // stated tolerance (docs/PASSES.md)
}

TEST_CASE("prune_structured conv_ratio: depthwise and grouped consumers, residual channels left alone",
          "[passes][conv]") {
  Builder b;
  b.g.opset_imports[""] = 17;
  b.g.inputs.push_back({"x", DType::kFloat32, Shape{Dim("n"), Dim(3), Dim(8), Dim(8)}});
  // conv1 (16) -> Relu -> depthwise (16) -> Relu -> grouped conv (2 groups, 16 -> 8)
  std::string h = b.Op("Relu", "r1", {b.Conv("conv1", "x", 16, 3, 3)});
  h = b.Op("Relu", "r2", {b.Conv("dw", h, 16, 16, 3, 16)});
  const std::string grouped = b.Conv("gconv", h, 8, 16, 1, 2);
  // A residual block: conv3 (8) -> Relu -> conv4 (8) -> Add(grouped) -> y.
  std::string r = b.Op("Relu", "r3", {b.Conv("conv3", grouped, 8, 8, 3)});
  r = b.Conv("conv4", r, 8, 8, 3);
  b.g.nodes.push_back(Node{"res", "Add", "", {r, grouped}, {"y"}, {}});
  b.g.outputs.push_back({"y", DType::kFloat32, std::nullopt});
  const Graph source = b.g;
  Graph g = source;
  std::vector<std::string> log;
  auto recipe = ParseRecipe(R"({"passes": [{"pass": "prune_structured", "options": {"conv_ratio": 0.5, "multiple": 2}}]})", "t");
  REQUIRE(recipe.ok());
  PipelineOptions popt;
  popt.log = [&](const std::string& l) { log.push_back(l); };
  auto pm = PassManager::Create(*recipe, popt);
  REQUIRE(pm.ok());
  auto rep = pm->Run(g, nullptr);
  INFO(rep.status().message());
  REQUIRE(rep.ok());
  // conv1's 16 channels -> 8, through the depthwise conv, 4 per group of
  // the grouped consumer; conv3's inner channels 8 -> 4. gconv and conv4
  // feed the residual Add: kept.
  CHECK(rep->passes[0].counters.at("conv_groups") == 2);
  CHECK(g.FindInitializer("conv1.w")->shape() == std::vector<int64_t>{8, 3, 3, 3});
  CHECK(g.FindInitializer("dw.w")->shape() == std::vector<int64_t>{8, 1, 3, 3});
  CHECK(g.FindInitializer("dw.b")->shape() == std::vector<int64_t>{8});
  CHECK(g.FindInitializer("gconv.w")->shape() == std::vector<int64_t>{8, 4, 1, 1});
  CHECK(g.FindInitializer("conv3.w")->shape() == std::vector<int64_t>{4, 8, 3, 3});
  CHECK(g.FindInitializer("conv4.w")->shape() == std::vector<int64_t>{8, 4, 3, 3});
  for (const Node& n : g.nodes) {
    if (n.name == "dw") CHECK(n.GetInt("group", 1) == 8);
  }
  bool said = false;
  for (const std::string& l : log) said |= l.find("'conv4.w' kept") != std::string::npos && l.find("Add") != std::string::npos;
  std::string all;
  for (const std::string& l : log) all += l + "\n";
  INFO(all);
  CHECK(said);
  // The smaller graph runs and keeps the output shape.
  std::mt19937 rng(3);
  const Feeds f{{"x", Images(rng, 2)}};
  auto interp = Interpreter::Create(g);
  REQUIRE(interp.ok());
  auto out = (*interp)->Run(f);
  INFO(out.status().message());
  REQUIRE(out.ok());
  CHECK(out->at("y").shape() == std::vector<int64_t>{2, 8, 8, 8});
}

}  // namespace slim

namespace slim {

TEST_CASE("calibration of Conv inputs: patch statistics, the Gram matrix from evenly spaced patches on large maps",
          "[passes][conv]") {
  test::Builder b;
  b.g.opset_imports[""] = 17;
  b.g.inputs.push_back({"x", DType::kFloat32, Shape{Dim("n"), Dim(2), Dim(40), Dim(40)}});
  const std::string w = b.Init("w", b.Random({4, 2, 3, 3}, 0.3f));
  b.g.nodes.push_back(Node{"conv", "Conv", "", {"x", w}, {"y"}, {{"pads", Attribute::Ints({1, 1, 1, 1})}}});
  b.g.outputs.push_back({"y", DType::kFloat32, std::nullopt});
  std::vector<Feeds> feeds;
  for (int s = 0; s < 2; ++s) feeds.push_back({{"x", b.Random({3, 2, 40, 40}, 1.0f, 0.5f)}});
  Model m;
  m.graph = b.g;
  CalibrationOptions opt;
  opt.max_sequences = 0;
  opt.gram = true;
  auto stats = CollectActivationStats(m, feeds, "feeds", opt);
  REQUIRE(stats.ok());
  const ActivationStat* st = stats->FindConv("w");
  REQUIRE(st);
  REQUIRE(st->dim == 18);
  CHECK(st->rows == 2 * 3 * 1600);
  // E[x^2] = 1.25 away from the zero padding; the kernel's centre tap
  // (k = 4) never reads padding.
  CHECK(st->mean_sq[4] == Approx(1.25).epsilon(0.05));
  // 1600 positions, 256 used per image for the Gram: its diagonal still
  // estimates the same second moments.
  for (size_t i = 0; i < 18; ++i) CHECK(st->gram[i * 18 + i] == Approx(st->mean_sq[i]).epsilon(0.15));
}

}  // namespace slim

namespace slim {

TEST_CASE("prune_structured conv_ratio on a ResNet-style graph and a MobileNetV2-style block", "[passes][conv]") {
  test::Builder b;
  b.g.opset_imports[""] = 17;
  b.g.inputs.push_back({"x", DType::kFloat32, Shape{Dim("n"), Dim(3), Dim(32), Dim(32)}});
  // Stem: Conv 3->32 (no bias) - BN - Relu - MaxPool.
  const std::string stem_w = b.Init("stem.w", b.Random({32, 3, 3, 3}, 0.2f));
  std::string h = b.Op("Conv", "stem", {"x", stem_w}, {{"pads", Attribute::Ints({1, 1, 1, 1})}});
  h = b.Op("Relu", "stem.relu", {b.Bn("stem.bn", h, 32)});
  h = b.Op("MaxPool", "pool", {h}, {{"kernel_shape", Attribute::Ints({2, 2})}, {"strides", Attribute::Ints({2, 2})}});
  // Two residual blocks: the inner channels (conv a) are prunable, the
  // block outputs meet the skip connection in an Add.
  for (int k = 0; k < 2; ++k) {
    const std::string p = "block" + std::to_string(k);
    std::string r = b.Op("Relu", p + ".relu_a", {b.Bn(p + ".bn_a", b.Conv(p + ".a", h, 32, 32, 3), 32)});
    r = b.Bn(p + ".bn_b", b.Conv(p + ".b", r, 32, 32, 3), 32);
    h = b.Op("Relu", p + ".out", {b.Op("Add", p + ".add", {r, h})});
  }
  // A MobileNetV2 inverted residual without the skip: 1x1 expand (64),
  // Clip(0, 6), depthwise 3x3, Clip, 1x1 project (32).
  const std::string lo = b.Init("c0", Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{0.0f}));
  const std::string hi = b.Init("c6", Tensor::FromVector(DType::kFloat32, {}, std::vector<float>{6.0f}));
  h = b.Op("Clip", "mb.clip1", {b.Conv("mb.expand", h, 64, 32, 1), lo, hi});
  h = b.Op("Clip", "mb.clip2", {b.Conv("mb.dw", h, 64, 64, 3, 64), lo, hi});
  h = b.Conv("mb.project", h, 32, 64, 1);
  h = b.Op("Flatten", "flatten", {b.Op("GlobalAveragePool", "gap", {h})});
  const std::string fc = b.Init("fc.w", b.Random({10, 32}, 0.3f));
  b.g.nodes.push_back(Node{"fc", "Gemm", "", {h, fc}, {"y"}, {{"transB", Attribute::Int(1)}}});
  b.g.outputs.push_back({"y", DType::kFloat32, Shape{Dim("n"), Dim(10)}});
  const Graph source = b.g;

  std::mt19937 rng(9);
  std::vector<Feeds> calib;
  for (int s = 0; s < 4; ++s) calib.push_back({{"x", b.Random({4, 3, 32, 32}, 1.0f)}});
  Model m;
  m.graph = source;
  CalibrationOptions copt;
  copt.max_sequences = 0;
  copt.gram = true;
  auto stats = CollectActivationStats(m, calib, "feeds", copt);
  REQUIRE(stats.ok());
  Graph g = source;
  auto r = Prune(g, R"({"conv_ratio": 0.25})", &*stats);
  INFO(r.status().message());
  REQUIRE(r.ok());
  // Pruned: each block's inner conv a (32 -> 24, conv b reads 24), the
  // expand conv through the depthwise one (64 -> 48), and the project conv
  // through the pool into the Gemm (32 -> 24). Kept: the stem and each
  // block's conv b, whose channels meet the skip connection.
  CHECK(r->passes[0].counters.at("conv_groups") == 4);
  CHECK(g.FindInitializer("stem.w")->shape() == std::vector<int64_t>{32, 3, 3, 3});
  for (const char* blk : {"block0", "block1"}) {
    CHECK(g.FindInitializer(std::string(blk) + ".a.w")->shape() == std::vector<int64_t>{24, 32, 3, 3});
    CHECK(g.FindInitializer(std::string(blk) + ".b.w")->shape() == std::vector<int64_t>{32, 24, 3, 3});
  }
  CHECK(g.FindInitializer("mb.expand.w")->shape() == std::vector<int64_t>{48, 32, 1, 1});
  CHECK(g.FindInitializer("mb.dw.w")->shape() == std::vector<int64_t>{48, 1, 3, 3});
  CHECK(g.FindInitializer("mb.project.w")->shape() == std::vector<int64_t>{24, 48, 1, 1});
  CHECK(g.FindInitializer("fc.w")->shape() == std::vector<int64_t>{10, 24});
  const Feeds f{{"x", b.Random({2, 3, 32, 32}, 1.0f)}};
  const double err = RelError(Run(source, f), Run(g, f));
  WARN("ResNet/MobileNet-style graph, 25% of prunable channels, refit: relative output error " << err);
  CHECK(err < 0.5);
}

}  // namespace slim

namespace slim {

TEST_CASE("prune_structured conv_ratio on hostile Conv attributes and weights: an error or the group left alone, "
          "never a crash", "[passes][conv]") {
  const Graph source = test::MakeCnn();
  const std::vector<std::function<void(Graph&)>> mutations = {
      [](Graph& g) { g.nodes[3].attrs["group"] = Attribute::Int(0); },   // conv2
      [](Graph& g) { g.nodes[3].attrs["group"] = Attribute::Int(-4); },
      [](Graph& g) { g.nodes[3].attrs["group"] = Attribute::Int(5); },
      [](Graph& g) { g.nodes[0].attrs["group"] = Attribute::Int(0); },   // conv1
      [](Graph& g) { *g.MutableInitializer("conv2.w") = Tensor(DType::kFloat32, {32, 288}); },
      [](Graph& g) { *g.MutableInitializer("conv2.w") = Tensor(DType::kFloat32, {32, 0, 3, 3}); },
      [](Graph& g) { *g.MutableInitializer("conv1.b") = Tensor(DType::kFloat32, {7}); },
      [](Graph& g) { *g.MutableInitializer("bn1.scale") = Tensor(DType::kFloat32, {1, 32}); },
      [](Graph& g) { *g.MutableInitializer("fc.w") = Tensor(DType::kFloat32, {10, 31}); },
  };
  for (size_t i = 0; i < mutations.size(); ++i) {
    INFO("mutation " << i);
    Graph g = source;
    REQUIRE(g.nodes[3].op_type == "Conv");
    mutations[i](g);
    std::vector<Feeds> feeds = {{{"x", test::Images(*std::make_unique<std::mt19937>(1), 2)}}};
    Model m;
    m.graph = g;
    CalibrationOptions opt;
    opt.gram = true;
    auto stats = CollectActivationStats(m, feeds, "feeds", opt);  // may fail: the op refuses
    auto r = Prune(g, R"({"conv_ratio": 0.25})", stats.ok() ? &*stats : nullptr);
    if (!r.ok()) CHECK(r.status().code() != StatusCode::kInternal);
  }
}

}  // namespace slim
