// The mixed pass without a scorer (data-free estimates), in memory on
// kjv-byte: every random bits-per-weight budget is met (bits per weight as
// compile reports them, all weights and scales), the plan spends it (within
// one upgrade of the budget), a pinned tensor keeps its scheme, and an
// unreachable budget is an error naming the smallest reachable figure.
#include <catch2/catch.hpp>

#include <random>

#include "libcompress/io/model_loader.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"

namespace slim {
namespace {

const std::string kModel = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

Expected<PipelineReport> RunMixed(Graph& g, const std::string& options, const std::string& overrides = "") {
  const std::string json = StrCat(R"({"passes": [{"pass": "mixed", "options": )", options,
                                  overrides.empty() ? "" : StrCat(R"(, "overrides": )", overrides), "}]}");
  auto recipe = ParseRecipe(json, "test");
  if (!recipe.ok()) return recipe.status();
  auto pm = PassManager::Create(*recipe, PipelineOptions());
  if (!pm.ok()) return pm.status();
  return pm->Run(g, nullptr);
}

}  // namespace

TEST_CASE("mixed: random bits-per-weight budgets are met and spent", "[passes][mixed]") {
  std::mt19937 rng(3);
  for (int i = 0; i < 8; ++i) {
    const double bpw = 4.3 + 4.0 * static_cast<double>(rng() % 1000) / 1000.0;
    INFO("bpw " << bpw);
    auto model = LoadModel(kModel);
    REQUIRE(model.ok());
    auto r = RunMixed(model->graph, StrCat(R"({"bpw": )", bpw, "}"));
    INFO(r.status().message());
    REQUIRE(r.ok());
    const double got = ComputeWeightStats(model->graph).BitsPerWeight();
    CHECK(got <= bpw);
    // The largest single upgrade (an FFN matrix int4 -> FP16) is 98,304
    // weights * 12 bits: unspent room beyond that would be a missed choice.
    CHECK(got >= bpw - 98304.0 * 12 / 855184);
    CHECK(r->passes[0].summary_lines.size() >= 10);  // plan line, Pareto header and points
    CHECK_THAT(r->passes[0].details_json, Catch::Contains("\"pareto\""));
  }
}

TEST_CASE("mixed: pins, one budget, unreachable budgets", "[passes][mixed]") {
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  {
    Graph g = model->graph;
    auto r = RunMixed(g, R"({"bpw": 5.0})", R"([{"pattern": "lm_head", "options": {"pin": "keep"}}])");
    INFO(r.status().message());
    REQUIRE(r.ok());
    CHECK(ComputeWeightStats(g).BitsPerWeight() <= 5.0);
    bool found = false;
    for (const TensorReport& t : r->passes[0].tensors) {
      if (t.name != "lm_head.weight") continue;
      found = true;
      CHECK(t.actual == "keep");
    }
    CHECK(found);
  }
  {
    Graph g = model->graph;
    auto r = RunMixed(g, R"({"bpw": 2.0})");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("smallest reachable is 4."));
    CHECK(g.nodes.size() == model->graph.nodes.size());  // unchanged
  }
  {
    Graph g = model->graph;
    auto r = RunMixed(g, R"({"bpw": 5.0, "max_size": 500000})");
    REQUIRE_FALSE(r.ok());
    CHECK_THAT(r.status().message(), Catch::Contains("exactly one budget"));
    auto none = RunMixed(g, "{}");
    REQUIRE_FALSE(none.ok());
    CHECK_THAT(none.status().message(), Catch::Contains("exactly one budget"));
  }
  {
    // A size budget in bytes: all weights, as written.
    Graph g = model->graph;
    auto r = RunMixed(g, R"({"max_size": 600000})");
    REQUIRE(r.ok());
    CHECK(ComputeWeightStats(g).bytes <= 600000);
  }
}

}  // namespace slim
