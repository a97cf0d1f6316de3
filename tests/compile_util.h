// Compiles a bundled model in memory (load, run a recipe's passes) for tests
// that need a quantized model without a packed file: quality, export,
// threads. Shared so every such test builds its model the same way.
#pragma once

#include <catch2/catch.hpp>
#include <string>

#include "libcompress/eval/calibration.h"
#include "libcompress/eval/verify.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/pipeline/pass_manager.h"

namespace slim_test {

// The model at `model_dir` after the passes of `recipe_json` (a recipe as
// compile --recipe takes it); `activations`: calibration statistics, if any.
inline slim::Model CompileInMemory(const std::string& model_dir, const std::string& recipe_json,
                                   const slim::ActivationStats* activations = nullptr) {
  auto model = slim::LoadModel(model_dir);
  INFO(model.status().message());
  REQUIRE(model.ok());
  auto recipe = slim::ParseRecipe(recipe_json, "test recipe");
  INFO(recipe.status().message());
  REQUIRE(recipe.ok());
  auto manager = slim::PassManager::Create(*recipe, slim::PipelineOptions());
  REQUIRE(manager.ok());
  auto report = manager->Run(model->graph, activations);
  INFO(report.status().message());
  REQUIRE(report.ok());
  CHECK(report->fallbacks == 0);
  slim::RefreshDecoderSpec(&*model);  // as compile does after the passes
  return std::move(model).value();
}

// `model` against the source at `model_dir` as verify compares them, on the
// first `sequences` of its calib_tokens.json.
inline slim::AccuracyResult CompareWithSource(const std::string& model_dir, const slim::Model& model,
                                              size_t sequences) {
  auto reference = slim::LoadModel(model_dir);
  REQUIRE(reference.ok());
  auto data = slim::ReadTokenDataset(model_dir + "/calib_tokens.json");
  REQUIRE(data.ok());
  auto ref = slim::DecoderSession::Create(*reference);
  auto test = slim::DecoderSession::Create(model);
  REQUIRE(ref.ok());
  INFO(test.status().message());
  REQUIRE(test.ok());
  auto acc = slim::CompareDecoders(**ref, **test, *data, sequences);
  REQUIRE(acc.ok());
  return *acc;
}

// Calibration statistics (E[x^2], row sample and E[xx^T]) of `model_dir`
// over `count` sequences of its calib_tokens.json from `first` on: tests
// calibrate on sequences they do not score.
inline slim::ActivationStats CalibrationStats(const std::string& model_dir, size_t first, size_t count) {
  auto model = slim::LoadModel(model_dir);
  REQUIRE(model.ok());
  auto data = slim::ReadTokenDataset(model_dir + "/calib_tokens.json");
  REQUIRE(data.ok());
  slim::CalibrationOptions opt;
  opt.first_sequence = first;
  opt.max_sequences = count;
  opt.gram = true;
  auto st = slim::CollectActivationStats(*model, *data, "calib_tokens.json", opt);
  INFO(st.status().message());
  REQUIRE(st.ok());
  return std::move(st).value();
}

}  // namespace slim_test
