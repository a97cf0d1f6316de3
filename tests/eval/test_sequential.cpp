// Sequential calibration (eval/calibration.h CalibrateSequentially) on
// kjv-byte, sequences 64..71: the groups it finds, statistics identical to
// the one-pass collector when the steps change nothing (the slices compute
// what the whole graph does), and statistics of later layers that move once
// earlier layers are quantized, one group's inputs at a time.
#include <catch2/catch.hpp>

#include <set>

#include "libcompress/eval/calibration.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"

using namespace slim;

namespace {

const std::string kModel = SLIMPACK_SOURCE_DIR "/models/kjv-byte";

CalibrationOptions HeldOut() {
  CalibrationOptions o;
  o.first_sequence = 64;
  o.max_sequences = 8;
  o.gram = true;
  return o;
}

// kjv-byte, its calibration data and the one-pass statistics of HeldOut().
struct Fixture {
  Model model;
  TokenDataset data;
  ActivationStats one_pass;
  Fixture() {
    auto m = LoadModel(kModel);
    REQUIRE(m.ok());
    model = std::move(*m);
    auto d = ReadTokenDataset(kModel + "/calib_tokens.json");
    REQUIRE(d.ok());
    data = std::move(*d);
    auto st = CollectActivationStats(model, data, "calib_tokens.json", HeldOut());
    REQUIRE(st.ok());
    one_pass = std::move(*st);
  }
};

}  // namespace

TEST_CASE("sequential calibration: one group per layer, then the classifier", "[eval][sequential]") {
  auto model = LoadModel(kModel);
  REQUIRE(model.ok());
  auto groups = SequentialGroups(model->graph);
  INFO(groups.status().message());
  REQUIRE(groups.ok());
  REQUIRE(groups->size() == 5);
  for (size_t l = 0; l < 4; ++l) {
    CHECK((*groups)[l].label == "layer " + std::to_string(l));
    CHECK((*groups)[l].weights.size() == 7);
    for (const auto& w : (*groups)[l].weights) CHECK(w.find("layers." + std::to_string(l) + ".") != std::string::npos);
  }
  CHECK((*groups)[4].label == "weights after layer 3");
  CHECK((*groups)[4].weights == std::vector<std::string>{"lm_head.weight"});
}

TEST_CASE("sequential calibration with steps that change nothing gives the one-pass statistics", "[eval][sequential]") {
  Fixture f;
  Model* model = &f.model;
  const TokenDataset* data = &f.data;
  const ActivationStats* one_pass = &f.one_pass;
  std::set<std::string> seen;
  size_t steps = 0;
  Status st = CalibrateSequentially(
      *model, *data, "calib_tokens.json", HeldOut(),
      [&](const SequentialGroup& group, size_t index, size_t count, const ActivationStats& stats) -> Status {
        CHECK(count == 5);
        CHECK(index == steps++);
        INFO(group.label);
        CHECK(!stats.values.empty());
        for (const auto& [name, s] : stats.values) {
          INFO(name);
          CHECK(seen.insert(name).second);  // each input in exactly one step
          const ActivationStat* ref = one_pass->Find(name);
          REQUIRE(ref != nullptr);
          CHECK(s.rows == ref->rows);
          CHECK(s.mean_sq == ref->mean_sq);
          CHECK(s.gram == ref->gram);
          CHECK(s.sample == ref->sample);
        }
        return Status::Ok();
      });
  INFO(st.message());
  REQUIRE(st.ok());
  CHECK(steps == 5);
  CHECK(seen.size() == one_pass->values.size());
}

TEST_CASE("sequential calibration: later layers see the quantized earlier ones", "[eval][sequential]") {
  Fixture f;
  Model* model = &f.model;
  const TokenDataset* data = &f.data;
  const ActivationStats* one_pass = &f.one_pass;
  auto recipe = ParseRecipe(R"({"passes": [{"pass": "quantize_int4", "options": {"gptq": true}}]})", "test");
  REQUIRE(recipe.ok());
  std::vector<bool> same;
  Status st = CalibrateSequentially(
      *model, *data, "calib_tokens.json", HeldOut(),
      [&](const SequentialGroup& group, size_t index, size_t, const ActivationStats& stats) -> Status {
        bool all_same = true;
        for (const auto& [name, s] : stats.values) all_same &= s.mean_sq == one_pass->Find(name)->mean_sq;
        same.push_back(all_same);
        PipelineOptions po;
        po.allow_requantize = index > 0;
        po.step_weights = std::make_shared<const std::set<std::string>>(group.weights.begin(), group.weights.end());
        SLIM_ASSIGN_OR_RETURN(PassManager pm, PassManager::Create(*recipe, po));
        SLIM_ASSIGN_OR_RETURN(PipelineReport r, pm.Run(model->graph, &stats));
        for (const TensorReport& t : r.passes[0].tensors) {
          const bool mine = std::find(group.weights.begin(), group.weights.end(), t.name) != group.weights.end();
          if (!mine) continue;
          CHECK(t.method == "gptq");
          CHECK(t.actual != "keep");
        }
        return Status::Ok();
      });
  INFO(st.message());
  REQUIRE(st.ok());
  REQUIRE(same.size() == 5);
  // Layer 0 reads the float embeddings: its statistics are the one-pass ones.
  CHECK(same[0]);
  for (size_t g = 1; g < same.size(); ++g) CHECK_FALSE(same[g]);
}
