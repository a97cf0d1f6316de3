// Pruning quality on kjv-byte, measured as `verify` does: calibration on
// sequences 64..95, NLL increase (nats per predicted byte) and KL on the
// held-out sequences 0..15. The issue's bounds: at 50% unstructured,
// SparseGPT (OBS selection with compensation) at most 0.4x the NLL increase
// of magnitude pruning; at 2:4, at most 0.5x. Wanda is reported. The figures
// on all 64 held-out sequences come from bench/prune_quality.sh.
#include <catch2/catch.hpp>

#include "libcompress/eval/calibration.h"
#include "libcompress/eval/verify.h"
#include "libcompress/io/model_loader.h"
#include "tests/compile_util.h"

using namespace slim;

namespace {

const std::string kModel = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

const ActivationStats& HeldOutStats() {
  static const ActivationStats stats = slim_test::CalibrationStats(kModel, 64, 32);
  return stats;
}

AccuracyResult Compare(const Model& pruned) { return slim_test::CompareWithSource(kModel, pruned, 16); }

double NllIncrease(const std::string& prune_options) {
  const std::string recipe = R"({"passes": [{"pass": "prune", "options": )" + prune_options + "}]}";
  const AccuracyResult a = Compare(slim_test::CompileInMemory(kModel, recipe, &HeldOutStats()));
  WARN("kjv-byte prune " << prune_options << ": NLL +" << a.nll - a.nll_reference << ", KL " << a.kl_mean
                         << ", top-1 " << a.top1_agreement);
  return a.nll - a.nll_reference;
}

}  // namespace

TEST_CASE("kjv-byte 50% unstructured: SparseGPT at most 0.4x the NLL increase of magnitude", "[eval][prune]") {
  const double magnitude = NllIncrease(R"({"method": "magnitude", "sparsity": 0.5})");
  const double wanda = NllIncrease(R"({"method": "wanda", "sparsity": 0.5})");
  const double sparsegpt = NllIncrease(R"({"method": "sparsegpt", "sparsity": 0.5})");
  CHECK(magnitude > 0);
  CHECK(wanda < magnitude);
  CHECK(sparsegpt <= 0.4 * magnitude);
}

TEST_CASE("kjv-byte 2:4: SparseGPT, and magnitude + reconstruct, at most 0.5x the NLL increase of magnitude",
          "[eval][prune]") {
  const double magnitude = NllIncrease(R"({"method": "magnitude", "pattern": "2:4"})");
  const double wanda = NllIncrease(R"({"method": "wanda", "pattern": "2:4"})");
  const double sparsegpt = NllIncrease(R"({"method": "sparsegpt", "pattern": "2:4"})");
  const double reconstructed = NllIncrease(R"({"method": "magnitude", "pattern": "2:4"}}, {"pass": "reconstruct")");
  CHECK(wanda < magnitude);
  CHECK(sparsegpt <= 0.5 * magnitude);
  CHECK(reconstructed <= 0.5 * magnitude);
}

TEST_CASE("kjv-byte prune24-int4: 2:4 then int4 GPTQ stays close to 2:4 alone", "[eval][prune]") {
  auto recipe = GetPreset("prune24-int4");
  REQUIRE(recipe.ok());
  const double pruned = NllIncrease(R"({"method": "sparsegpt", "pattern": "2:4"})");
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  auto pm = PassManager::Create(*recipe, PipelineOptions());
  REQUIRE(pm.ok());
  REQUIRE(pm->Run(model->graph, &HeldOutStats()).ok());
  const AccuracyResult a = Compare(*model);
  const double both = a.nll - a.nll_reference;
  WARN("kjv-byte prune24-int4: NLL +" << both << ", KL " << a.kl_mean << " (2:4 alone +" << pruned << ")");
  // GPTQ int4 alone adds about 0.003 nats here; the pruning dominates.
  CHECK(both <= 1.25 * pruned);
}

TEST_CASE("kjv-byte 25% of FFN neurons removed: the least-squares refit cuts the NLL increase by >= 30%",
          "[eval][prune][structured]") {
  auto run = [](bool reconstruct) {
    const std::string recipe = StrCat(R"({"passes": [{"pass": "prune_structured", "options": {"ffn_ratio": 0.25, )",
                                      R"("reconstruct": )", reconstruct ? "true" : "false", "}}]}");
    const AccuracyResult a = Compare(slim_test::CompileInMemory(kModel, recipe, &HeldOutStats()));
    WARN("kjv-byte FFN 25% removed, reconstruct " << reconstruct << ": NLL +" << a.nll - a.nll_reference << ", KL "
                                                  << a.kl_mean);
    return a.nll - a.nll_reference;
  };
  const double plain = run(false);
  const double refit = run(true);
  CHECK(refit <= 0.7 * plain);
}
