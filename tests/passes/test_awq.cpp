// AWQ on the real Llama graph of kjv-byte (passes/awq.h): where each
// group's 1/s goes (the norms, the up projection's rows, an explicit Mul
// before o_proj), that the rescaled float model computes what the source
// did, and that the quantization pass uses the rescaled inputs' statistics.
// Calibration on sequences 64..79; the comparisons score sequences 0..7.
#include <catch2/catch.hpp>

#include <string>

#include "libcompress/eval/verify.h"
#include "libcompress/io/model_loader.h"
#include "passes/awq.h"
#include "tests/compile_util.h"

using namespace slim;

namespace {

const std::string kModel = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

std::string Int4Recipe(bool awq, bool gptq) {
  return std::string(R"({"passes": [{"pass": "quantize_int4", "options": {"levels": "uniform", "awq": )") +
         (awq ? "true" : "false") + R"(, "gptq": )" + (gptq ? "true" : "false") + "}}]}";
}

}  // namespace

TEST_CASE("AWQ on kjv-byte: folded into norms and up rows, explicit before o_proj, float outputs kept",
          "[passes][awq]") {
  const ActivationStats stats = slim_test::CalibrationStats(kModel, 64, 16);
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  const GraphIndex index = GraphIndex::Build(model->graph);
  const std::vector<WeightCandidate> cands = FindWeights(model->graph, index);
  std::vector<AwqRequest> requests;
  for (size_t i = 0; i < cands.size(); ++i) {
    if (cands[i].role != "linear" && cands[i].role != "classifier") continue;
    AwqRequest r;
    r.cand = i;
    r.gptq = true;
    r.options.scheme.bits = 4;
    r.options.scheme.group_size = 32;
    requests.push_back(r);
  }
  REQUIRE(requests.size() == 29);  // 4 layers x 7 linear layers + lm_head
  auto rw = ApplyAwqScales(model->graph, index, cands, requests, stats, 20, 2);
  INFO(rw.status().message());
  REQUIRE(rw.ok());
  CHECK(rw->changed);
  size_t norm = 0, rows = 0, explicit_mul = 0, none = 0;
  for (const auto& [name, note] : rw->notes) {
    INFO(name << ": " << note);
    if (note.find("not applied") != std::string::npos) {
      ++none;
      CHECK(note.find("no scale beats none") != std::string::npos);
    } else if (note.find("layernorm.weight") != std::string::npos || note.find("norm.weight") != std::string::npos) {
      ++norm;
      CHECK((name.find("_proj") != std::string::npos || name.find("lm_head") != std::string::npos));
      CHECK(name.find("o_proj") == std::string::npos);
      CHECK(name.find("down_proj") == std::string::npos);
    } else if (note.find("output rows of") != std::string::npos) {
      ++rows;
      CHECK(name.find("down_proj") != std::string::npos);
    } else {
      ++explicit_mul;
      CHECK(note.find("explicit Mul") != std::string::npos);
      CHECK(name.find("o_proj") != std::string::npos);
    }
  }
  CHECK(norm + rows + explicit_mul + none == requests.size());
  CHECK(norm >= 10);
  CHECK(rows >= 2);
  // Every rescaled input has derived statistics under its new name, and
  // the old name no longer exists in the graph.
  CHECK(!rw->derived.values.empty());
  for (const auto& [name, st] : rw->derived.values) {
    CHECK(name.find(".awq") != std::string::npos);
    CHECK(model->graph.Producer(name) >= 0);
    CHECK(st.sample_rows > 0);
    CHECK(!st.gram.empty());
  }
  // In float the rescaled model is the source model up to the FP16 rounding
  // of the scaled weights and norms.
  const AccuracyResult acc = slim_test::CompareWithSource(kModel, *model, 8);
  INFO("rescaled float model vs source: mean KL " << acc.kl_mean << ", top-1 " << acc.top1_agreement);
  CHECK(acc.kl_mean < 2e-5);
  CHECK(acc.top1_agreement > 0.995);
}

TEST_CASE("quantize_int4 awq: lower output error on the rescaled inputs, with and without GPTQ", "[passes][awq]") {
  const ActivationStats stats = slim_test::CalibrationStats(kModel, 64, 16);
  for (bool gptq : {false, true}) {
    auto run = [&](bool awq) {
      auto model = LoadModel(kModel);
      REQUIRE(model.ok());
      auto recipe = ParseRecipe(Int4Recipe(awq, gptq), "test recipe");
      REQUIRE(recipe.ok());
      auto manager = PassManager::Create(*recipe, PipelineOptions());
      REQUIRE(manager.ok());
      auto report = manager->Run(model->graph, &stats);
      INFO(report.status().message());
      REQUIRE(report.ok());
      return std::move(report).value();
    };
    const PipelineReport plain = run(false), awq = run(true);
    REQUIRE(awq.passes.size() == 1);
    CHECK(awq.passes[0].counters.at("awq_scaled") > 0);
    double sum_plain = 0, sum_awq = 0;
    for (size_t i = 0; i < awq.passes[0].tensors.size(); ++i) {
      const TensorReport& a = awq.passes[0].tensors[i];
      const TensorReport& p = plain.passes[0].tensors[i];
      REQUIRE(a.name == p.name);
      if (a.role == "embedding" || a.role == "tied-embedding") continue;
      // The output error is measured on the rescaled input's sample, i.e.
      // it is the original layer's output error.
      REQUIRE(a.output_error_measured);
      sum_plain += p.output_rel_error;
      sum_awq += a.output_rel_error;
      CHECK(!a.awq.empty());
      CHECK(p.awq.empty());
      CHECK(a.method == (gptq ? "gptq" : "search"));
    }
    WARN("kjv-byte int4 g32 " << (gptq ? "gptq" : "search") << ": summed output error " << sum_plain
                              << " -> " << sum_awq << " with awq");
    // AWQ minimises the search's output error; GPTQ then compensates on
    // its own objective, so only the search is held to a gain here (the
    // held-out KL of both is tests/eval's).
    if (!gptq) CHECK(sum_awq < sum_plain);
  }
}

TEST_CASE("awq without calibration data is an error naming the option", "[passes][awq]") {
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  auto recipe = ParseRecipe(Int4Recipe(true, false), "test recipe");
  REQUIRE(recipe.ok());
  auto manager = PassManager::Create(*recipe, PipelineOptions());
  REQUIRE(manager.ok());
  auto report = manager->Run(model->graph, nullptr);
  REQUIRE(!report.ok());
  CHECK(report.status().message().find("calibration") != std::string::npos);
}
