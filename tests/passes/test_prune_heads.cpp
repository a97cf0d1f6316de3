// prune_structured kv_groups / head_ratio: attention found around the KV
// cache of the Hugging Face graph, GQA-aware removal (a KV head with its
// query heads, or query heads evenly inside each group), every dependent
// shape (Reshape constants, KV-cache inputs and outputs, metadata, the
// decoder description), parameter counts, and the output projection's
// refit against plain selection on held-out sequences.
#include <catch2/catch.hpp>

#include <cmath>

#include "libcompress/runtime/decoder_session.h"
#include "tests/compile_util.h"

namespace {

const std::string kStories = SLIMPACK_SOURCE_DIR "/models/stories260k";
const std::string kKjv = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

int64_t Params(const slim::Graph& g) {
  int64_t total = 0;
  for (const std::string& n : g.initializer_names()) {
    const slim::Tensor& t = *g.FindInitializer(n);
    if (slim::IsFloat(t.dtype())) total += t.numel();
  }
  return total;
}

std::string HeadRecipe(const std::string& options) {
  return R"({"passes": [{"pass": "prune_structured", "options": {"ffn_ratio": 0, "conv_ratio": 0, )" + options + "}}]}";
}

}  // namespace

TEST_CASE("prune_structured kv_groups 1 on stories260K: a KV group and its query heads leave every layer",
          "[passes][heads]") {
  using namespace slim;
  auto source = LoadModel(kStories);
  REQUIRE(source.ok());
  const Model m = slim_test::CompileInMemory(kStories, HeadRecipe(R"("kv_groups": 1)"));
  const Graph& g = m.graph;
  // 8 query heads in 4 KV groups of 2, head_dim 8, hidden 64 -> 6 in 3.
  for (int l = 0; l < 5; ++l) {
    const std::string p = "model.layers." + std::to_string(l) + ".self_attn.";
    CHECK(g.FindInitializer(p + "q_proj.weight")->shape() == std::vector<int64_t>{48, 64});
    CHECK(g.FindInitializer(p + "k_proj.weight")->shape() == std::vector<int64_t>{24, 64});
    CHECK(g.FindInitializer(p + "v_proj.weight")->shape() == std::vector<int64_t>{24, 64});
    CHECK(g.FindInitializer(p + "o_proj.weight")->shape() == std::vector<int64_t>{64, 48});
  }
  // 16 rows of q, 8 of k and of v, 16 columns of o, x 64, per layer.
  CHECK(Params(source->graph) - Params(g) == 5 * (16 + 8 + 8 + 16) * 64);
  CHECK(g.metadata.at("hf.num_attention_heads") == "6");
  CHECK(g.metadata.at("hf.num_key_value_heads") == "3");
  REQUIRE(m.decoder.has_value());
  CHECK(m.decoder->num_heads == 6);
  CHECK(m.decoder->num_kv_heads == 3);
  for (const ValueInfo& in : g.inputs) {
    if (in.name.rfind("past_key_values.", 0) == 0) CHECK(in.shape->at(1).value == 3);
  }
  // The smaller model decodes token by token with a 3-head KV cache and
  // agrees with a full recomputation of the same prefix.
  auto step = DecoderSession::Create(m);
  INFO(step.status().message());
  REQUIRE(step.ok());
  std::vector<float> last;
  for (int64_t t : {1, 403, 72, 312, 9}) {
    auto logits = (*step)->Append({t});
    REQUIRE(logits.ok());
    last = *logits;
  }
  auto whole = DecoderSession::Create(m);
  REQUIRE(whole.ok());
  auto all = (*whole)->Append({1, 403, 72, 312, 9});
  REQUIRE(all.ok());
  REQUIRE(all->size() == 5 * last.size());  // logits of every position
  const size_t off = all->size() - last.size();
  for (size_t i = 0; i < last.size(); ++i) REQUIRE(std::fabs((*all)[off + i] - last[i]) < 1e-3f);
}

TEST_CASE("prune_structured heads: the output projection's refit beats plain selection on held-out sequences",
          "[passes][heads]") {
  // kjv-byte: 4 query heads in 2 KV groups, head_dim 32. Calibrate on
  // sequences 64..95, score 0..15.
  const slim::ActivationStats stats = slim_test::CalibrationStats(kKjv, 64, 32);
  for (const char* opts : {R"("kv_groups": 1)", R"("head_ratio": 0.5)"}) {
    INFO(opts);
    double nll[2];
    for (bool refit : {false, true}) {
      const slim::Model m = slim_test::CompileInMemory(
          kKjv, HeadRecipe(std::string(opts) + ", \"reconstruct\": " + (refit ? "true" : "false")), &stats);
      CHECK(m.decoder->num_heads == 2);
      const slim::AccuracyResult acc = slim_test::CompareWithSource(kKjv, m, 16);
      nll[refit] = acc.nll - acc.nll_reference;
    }
    WARN(opts << ": NLL increase " << nll[0] << " selected, " << nll[1] << " refitted");
    CHECK(nll[1] < nll[0]);
  }
}

TEST_CASE("prune_structured heads: an ONNX export's attention is left alone, with the reason logged", "[passes][heads]") {
  using namespace slim;
  auto model = LoadModel(kKjv + "/model.onnx");
  REQUIRE(model.ok());
  const int64_t before = Params(model->graph);
  auto recipe = ParseRecipe(HeadRecipe(R"("kv_groups": 1)"), "t");
  REQUIRE(recipe.ok());
  std::string log;
  PipelineOptions popt;
  popt.log = [&](const std::string& l) { log += l + "\n"; };
  auto pm = PassManager::Create(*recipe, popt);
  REQUIRE(pm.ok());
  auto r = pm->Run(model->graph, nullptr);
  REQUIRE(r.ok());
  CHECK(Params(model->graph) == before);
  CHECK_THAT(log, Catch::Contains("attention heads kept"));
}
