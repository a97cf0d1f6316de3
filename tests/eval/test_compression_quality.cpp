// Compression quality on the bundled models, measured the way `verify` does
// (KL(ref || quantized) per predicted token, calibration sequences), and the
// packed round trip: pack -> load -> run gives the same logits bit for bit as
// running the quantized IR in memory.
//
// The held-out figures (KL on sequences 0..63, calibration on 64..127) come
// from bench/quant_quality.sh; the tests score the first 16 sequences to stay
// quick (calibrating on 64..79), with the issue's bounds where they hold
// (int8 near-lossless on kjv-byte; int4 at most 0.8x the KL of plain max-abs
// round-to-nearest: the search alone for symmetric kjv-byte, calibrated
// search + GPTQ everywhere) and the measured figures pinned where they do
// not (the uncalibrated search on stories260k and asymmetric int4).
#include <catch2/catch.hpp>
#include <cstdio>

#include "libcompress/eval/calibration.h"
#include "libcompress/eval/verify.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/pipeline/pass_manager.h"
#include "tests/compile_util.h"

using namespace slim;
using slim_test::CompileInMemory;

namespace {

const std::string kModels = SLIMPACK_SOURCE_DIR "/models/";
constexpr size_t kSequences = 16;

double MeanKl(const std::string& model_dir, const Model& quantized) {
  return slim_test::CompareWithSource(model_dir, quantized, kSequences).kl_mean;
}

std::string Int4Recipe(bool symmetric, bool search, const std::string& classifier, bool gptq = false) {
  return std::string(R"({"passes": [{"pass": "quantize_int4", "options": {"group_size": 32, "symmetric": )") +
         (symmetric ? "true" : "false") + R"(, "search": )" + (search ? "true" : "false") +
         R"(, "gptq": )" + (gptq ? "true" : "false") + R"(, "classifier": ")" + classifier +
         R"(", "embeddings": "int8"}}]})";
}

// Statistics from calibration sequences 64..79, disjoint from the first 16
// that the KL is measured on.
ActivationStats HeldOutStats(const std::string& model_dir) { return slim_test::CalibrationStats(model_dir, 64, 16); }

std::string Int8Recipe(bool search) {
  return std::string(R"({"passes": [{"pass": "quantize_int8", "options": {"search": )") +
         (search ? "true" : "false") + "}}]}";
}

}  // namespace

TEST_CASE("kjv-byte: int8 is near-lossless, the int4 scale search beats round-to-nearest", "[eval][quality]") {
  const std::string dir = kModels + "kjv-byte";
  const ActivationStats stats = HeldOutStats(dir);
  const double kl_int8 = MeanKl(dir, CompileInMemory(dir, Int8Recipe(true)));
  WARN("kjv-byte int8 per channel: mean KL " << kl_int8);
  CHECK(kl_int8 <= 1e-4);
  for (bool symmetric : {true, false}) {
    for (const char* classifier : {"int8", "keep"}) {
      const double rtn = MeanKl(dir, CompileInMemory(dir, Int4Recipe(symmetric, false, classifier)));
      const double search = MeanKl(dir, CompileInMemory(dir, Int4Recipe(symmetric, true, classifier)));
      WARN("kjv-byte int4 g32 " << (symmetric ? "sym" : "asym") << ", classifier " << classifier
                                << ": mean KL search " << search << ", max-abs RTN " << rtn << ", ratio "
                                << search / rtn);
      if (symmetric) {
        CHECK(search <= 0.8 * rtn);
      } else {
        // Asymmetric RTN already uses all 16 codes; the search lowers the
        // weight error (0.92x) but not the KL, which stays within 1%.
        CHECK(search <= 1.01 * rtn);
      }
      // With calibration data (held out from the KL sequences): the search
      // weighted by E[x^2], plus GPTQ, reaches 0.8x for both symmetries.
      const double gptq = MeanKl(dir, CompileInMemory(dir, Int4Recipe(symmetric, true, classifier, true), &stats));
      WARN("  calibrated search + GPTQ: mean KL " << gptq << ", ratio " << gptq / rtn);
      CHECK(gptq <= 0.8 * rtn);
    }
  }
}

// The data-free target of issue #8: without calibration, linear layers at
// 4.5 bits per weight, classifier and embeddings int8, mean KL on the 64
// held-out sequences at most llama.cpp IQ4_NL's 0.0058 (its best data-free
// 4.5-bit result on this model). Uniform symmetric int4 measures 0.0066, nl
// 0.0055 (docs/PASSES.md); the i8-dot kernels give these bits on every host.
TEST_CASE("kjv-byte without calibration: int4 nl beats uniform int4 and IQ4_NL's KL", "[eval][quality][nl]") {
  const std::string dir = kModels + "kjv-byte";
  const auto kl = [&](const char* levels) {
    const std::string recipe = std::string(R"({"passes": [{"pass": "quantize_int4", "options": {"levels": ")") +
                               levels + R"("}}, {"pass": "select_layout"}]})";
    return slim_test::CompareWithSource(dir, CompileInMemory(dir, recipe), 64).kl_mean;
  };
  const double uniform = kl("uniform");
  const double nl = kl("nl");
  WARN("kjv-byte int4 g32 without calibration, 64 sequences: mean KL uniform " << uniform << ", nl " << nl);
  CHECK(nl <= 0.0058);
  CHECK(nl < 0.9 * uniform);
}

// AWQ (issue #8): on kjv-byte, calibrated on sequences 64..127 and scored
// on the held-out 0..63, awq + search has a lower mean KL than the search
// alone and awq + GPTQ at most that of GPTQ alone, symmetric and
// asymmetric int4 g32 (measured 0.00603 vs 0.00623, 0.00550 vs 0.00590;
// with GPTQ 0.00244 vs 0.00261, 0.00238 vs 0.00243: docs/PASSES.md).
TEST_CASE("kjv-byte: awq lowers the held-out KL of the search and of GPTQ", "[eval][quality][awq]") {
  const std::string dir = kModels + "kjv-byte";
  const ActivationStats stats = slim_test::CalibrationStats(dir, 64, 64);
  for (bool symmetric : {true, false}) {
    for (bool gptq : {false, true}) {
      const auto kl = [&](bool awq) {
        const std::string recipe =
            std::string(R"({"passes": [{"pass": "quantize_int4", "options": {"levels": "uniform", "symmetric": )") +
            (symmetric ? "true" : "false") + R"(, "gptq": )" + (gptq ? "true" : "false") + R"(, "awq": )" +
            (awq ? "true" : "false") + R"(}}, {"pass": "select_layout"}]})";
        return slim_test::CompareWithSource(dir, CompileInMemory(dir, recipe, &stats), 64).kl_mean;
      };
      const double plain = kl(false), awq = kl(true);
      WARN("kjv-byte int4 g32 " << (symmetric ? "sym" : "asym") << (gptq ? " gptq" : " search")
                                << ", 64 held-out sequences: mean KL " << plain << ", with awq " << awq);
      if (gptq) {
        CHECK(awq <= plain);
      } else {
        CHECK(awq < plain);
      }
    }
  }
}

TEST_CASE("stories260k: int8 no worse than max-abs, int4 search at most 0.8x RTN", "[eval][quality]") {
  const std::string dir = kModels + "stories260k";
  const ActivationStats stats = HeldOutStats(dir);
  const double int8_search = MeanKl(dir, CompileInMemory(dir, Int8Recipe(true)));
  const double int8_rtn = MeanKl(dir, CompileInMemory(dir, Int8Recipe(false)));
  WARN("stories260k int8: mean KL search " << int8_search << ", max-abs " << int8_rtn);
  CHECK(int8_search <= int8_rtn);
  for (bool symmetric : {true, false}) {
    const double rtn = MeanKl(dir, CompileInMemory(dir, Int4Recipe(symmetric, false, "int8")));
    const double search = MeanKl(dir, CompileInMemory(dir, Int4Recipe(symmetric, true, "int8")));
    WARN("stories260k int4 g32 " << (symmetric ? "sym" : "asym") << ": mean KL search " << search
                                 << ", max-abs RTN " << rtn << ", ratio " << search / rtn);
    // Measured 0.84 (sym) and 0.95 (asym): without calibration data the
    // weight-error search does not reach 0.8 on this fragile model. Pinned
    // so a regression shows.
    CHECK(search <= (symmetric ? 0.86 : 0.97) * rtn);
    // With calibration data (held out): E[x^2]-weighted search + GPTQ.
    const double gptq = MeanKl(dir, CompileInMemory(dir, Int4Recipe(symmetric, true, "int8", true), &stats));
    WARN("  calibrated search + GPTQ: mean KL " << gptq << ", ratio " << gptq / rtn);
    CHECK(gptq <= 0.8 * rtn);
  }
}

TEST_CASE("pack -> load -> run is bit-identical to the quantized IR in memory", "[eval][packed]") {
  const std::string dir = kModels + "kjv-byte";
  for (const char* preset : {"int8", "int4"}) {
    auto recipe = GetPreset(preset);
    REQUIRE(recipe.ok());
    auto manager = PassManager::Create(*recipe, PipelineOptions());
    REQUIRE(manager.ok());
    auto model = LoadModel(dir);
    REQUIRE(model.ok());
    REQUIRE(manager->Run(model->graph).ok());
    const std::string path = std::string("/tmp/slimpack_test_roundtrip_") + preset + ".slim";
    REQUIRE(WritePacked(*model, path).ok());
    auto packed = LoadModel(path);
    REQUIRE(packed.ok());
    CHECK(packed->format == "packed");
    auto a = DecoderSession::Create(*model);
    auto b = DecoderSession::Create(*packed);
    REQUIRE(a.ok());
    REQUIRE(b.ok());
    const std::vector<int64_t> prompt{256, 73, 110, 32, 116, 104, 101};
    auto la = (*a)->Append(prompt);
    auto lb = (*b)->Append(prompt);
    REQUIRE(la.ok());
    REQUIRE(lb.ok());
    CHECK(*la == *lb);
    for (int step = 0; step < 4; ++step) {
      auto sa = (*a)->Append({101});
      auto sb = (*b)->Append({101});
      REQUIRE(sa.ok());
      REQUIRE(sb.ok());
      CHECK(*sa == *sb);
    }
    std::remove(path.c_str());
  }
}
