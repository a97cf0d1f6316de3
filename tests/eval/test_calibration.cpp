// The calibration collector on a bundled model: which values it watches,
// row counts, the evenly spaced sample, E[x^2] and E[x x^T] consistent with
// the rows themselves, determinism, and errors that name the data file.
#include <catch2/catch.hpp>

#include "libcompress/eval/calibration.h"
#include "libcompress/io/model_loader.h"

using namespace slim;

namespace {

const std::string kStories = SLIMPACK_SOURCE_DIR "/models/stories260k";

}  // namespace

TEST_CASE("calibration statistics of stories260k", "[eval][calib]") {
  auto model = LoadModel(kStories);
  REQUIRE(model.ok());
  auto data = ReadTokenDataset(kStories + "/calib_tokens.json");
  REQUIRE(data.ok());
  const std::vector<std::string> values = WeightInputValues(model->graph);
  // Per layer: attention input (q, k, v), o_proj input, MLP input (gate,
  // up), down_proj input; plus the final norm feeding the classifier.
  CHECK(values.size() == 5 * 4 + 1);

  CalibrationOptions opt;
  opt.first_sequence = 2;
  opt.max_sequences = 2;
  opt.max_sample_rows = 600;  // more than the 512 rows: every row is kept
  opt.gram = true;
  size_t calls = 0;
  auto st = CollectActivationStats(*model, *data, "calib.json", opt, [&](size_t done, size_t total) {
    ++calls;
    CHECK(done == calls);
    CHECK(total == 2);
  });
  INFO(st.status().message());
  REQUIRE(st.ok());
  CHECK(calls == 2);
  CHECK(st->sequences == 2);
  CHECK(st->tokens == 512);
  CHECK(st->source == "calib.json sequences 2..3");
  REQUIRE(st->values.size() == values.size());
  for (const auto& [name, a] : st->values) {
    INFO(name);
    CHECK((a.dim == 64 || a.dim == 172));
    CHECK(a.rows == 512);
    REQUIRE(a.sample_rows == 512);
    const size_t k = static_cast<size_t>(a.dim);
    // E[x^2] and E[x x^T] recomputed from the rows the sample kept (all).
    for (size_t i = 0; i < k; i += 7) {
      double sq = 0, cross = 0;
      const size_t j = (i * 5 + 3) % k;
      for (size_t r = 0; r < 512; ++r) {
        sq += static_cast<double>(a.sample[r * k + i]) * a.sample[r * k + i];
        cross += static_cast<double>(a.sample[r * k + i]) * a.sample[r * k + j];
      }
      CHECK(a.mean_sq[i] == Approx(sq / 512).epsilon(1e-9));
      CHECK(a.gram[i * k + i] == Approx(a.mean_sq[i]).epsilon(1e-5));  // FP32 products per sequence
      CHECK(a.gram[i * k + j] == Approx(cross / 512).epsilon(1e-4).margin(1e-9));
    }
  }

  // Fewer sample rows: evenly spaced (every 6th of 512 -> 86 rows), the
  // same statistics otherwise, and the same bytes on a second run.
  opt.max_sample_rows = 100;
  opt.gram = false;
  auto small = CollectActivationStats(*model, *data, "calib.json", opt);
  auto again = CollectActivationStats(*model, *data, "calib.json", opt);
  REQUIRE(small.ok());
  REQUIRE(again.ok());
  for (const auto& [name, a] : small->values) {
    INFO(name);
    const ActivationStat& full = st->values.at(name);
    CHECK(a.gram.empty());
    CHECK(a.sample_rows == 86);
    CHECK(a.mean_sq == full.mean_sq);
    const size_t k = static_cast<size_t>(a.dim);
    CHECK(std::equal(a.sample.begin() + static_cast<std::ptrdiff_t>(k), a.sample.begin() + static_cast<std::ptrdiff_t>(2 * k),
                     full.sample.begin() + static_cast<std::ptrdiff_t>(6 * k)));
    CHECK(a.sample == again->values.at(name).sample);
  }

  opt.first_sequence = 128;
  auto bad = CollectActivationStats(*model, *data, "calib.json", opt);
  REQUIRE_FALSE(bad.ok());
  CHECK_THAT(bad.status().message(), Catch::Contains("calib.json") && Catch::Contains("128"));
}
