// The bundled models against their published reference figures
// (models/*/README.md): the ONNX graphs (FP16 compute) reproduce
// calib_ref_logits.bin as closely as ONNX Runtime does, the KV-cache graph
// decoding token by token agrees with the full-sequence graph, and eval
// gives calib_reference.json's mean NLL on both paths.
#include <catch2/catch.hpp>
#include <cmath>
#include <fstream>

#include "libcompress/eval/lm_eval.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/metrics/metrics.h"

using namespace slim;

namespace {

const std::string kModels = SLIMPACK_SOURCE_DIR "/models/";

std::vector<float> ReadRefLogits(const std::string& model_dir, size_t expected_floats) {
  std::ifstream in(model_dir + "/calib_ref_logits.bin", std::ios::binary);
  std::vector<float> v(expected_floats);
  in.read(reinterpret_cast<char*>(v.data()), static_cast<std::streamsize>(expected_floats * 4));
  REQUIRE(in.gcount() == static_cast<std::streamsize>(expected_floats * 4));
  return v;
}

struct Agreement {
  double max_abs = 0;
  size_t rows = 0, top1_same = 0;
  void Add(const float* ref, const float* got, size_t vocab) {
    for (size_t i = 0; i < vocab; ++i) max_abs = std::max(max_abs, static_cast<double>(std::fabs(ref[i] - got[i])));
    top1_same += metrics::ArgMax(ref, vocab) == metrics::ArgMax(got, vocab);
    ++rows;
  }
  double top1() const { return static_cast<double>(top1_same) / static_cast<double>(rows); }
};

struct Case {
  const char* model;
  int64_t vocab;
  double nll;  // calib_reference.json, FP16 weights
};
const Case kCases[] = {{"stories260k", 512, 2.915611821991886}, {"kjv-byte", 264, 1.4142}};

}  // namespace

TEST_CASE("ONNX FP16 graphs reproduce the reference logits like ONNX Runtime", "[eval][reference]") {
  for (const Case& c : kCases) {
    const std::string dir = kModels + c.model;
    auto data = ReadTokenDataset(dir + "/calib_tokens.json");
    REQUIRE(data.ok());
    const size_t v = static_cast<size_t>(c.vocab);
    const auto ref = ReadRefLogits(dir, 4 * 256 * v);

    auto full_model = LoadModel(dir + "/model.onnx");
    REQUIRE(full_model.ok());
    auto kv_model = LoadModel(dir + "/model_kv.onnx");
    REQUIRE(kv_model.ok());
    REQUIRE(kv_model->decoder->has_past);
    auto full = DecoderSession::Create(*full_model);
    auto kv = DecoderSession::Create(*kv_model);
    REQUIRE(full.ok());
    REQUIRE(kv.ok());

    Agreement full_vs_ref, kv_vs_ref, kv_vs_full;
    for (size_t s = 0; s < 4; ++s) {
      const auto& seq = data->sequences[s];
      (*full)->Reset();
      auto lf = (*full)->Append(seq);
      REQUIRE(lf.ok());
      // KV graph: prefill 200 tokens, then 56 single-token steps.
      (*kv)->Reset();
      auto prefill = (*kv)->Append(std::vector<int64_t>(seq.begin(), seq.begin() + 200));
      REQUIRE(prefill.ok());
      std::vector<float> lkv = *prefill;
      for (size_t t = 200; t < seq.size(); ++t) {
        auto step = (*kv)->Append({seq[t]});
        REQUIRE(step.ok());
        lkv.insert(lkv.end(), step->begin(), step->end());
      }
      REQUIRE(lkv.size() == lf->size());
      for (size_t t = 0; t < seq.size(); ++t) {
        const float* r = ref.data() + (s * 256 + t) * v;
        full_vs_ref.Add(r, lf->data() + t * v, v);
        kv_vs_ref.Add(r, lkv.data() + t * v, v);
        kv_vs_full.Add(lf->data() + t * v, lkv.data() + t * v, v);
      }
    }
    INFO(c.model << ": full vs ref max " << full_vs_ref.max_abs << " top1 " << full_vs_ref.top1()
                 << "; kv vs ref max " << kv_vs_ref.max_abs << " top1 " << kv_vs_ref.top1()
                 << "; kv vs full max " << kv_vs_full.max_abs << " top1 " << kv_vs_full.top1());
    // Bounds from the issue: what ONNX Runtime shows on these graphs (README: 0.136 / 99.55%).
    CHECK(full_vs_ref.max_abs <= 0.15);
    CHECK(full_vs_ref.top1() >= 0.995);
    CHECK(kv_vs_ref.max_abs <= 0.15);
    CHECK(kv_vs_ref.top1() >= 0.995);
    CHECK(kv_vs_full.max_abs <= 0.15);
    CHECK(kv_vs_full.top1() >= 0.995);
    WARN(c.model << " ONNX: full vs ref max abs " << full_vs_ref.max_abs << ", top-1 " << full_vs_ref.top1()
                 << "; kv vs ref " << kv_vs_ref.max_abs << ", " << kv_vs_ref.top1() << "; kv vs full "
                 << kv_vs_full.max_abs << ", " << kv_vs_full.top1());
  }
}

TEST_CASE("eval reproduces the reference mean NLL on both paths", "[eval][reference]") {
  for (const Case& c : kCases) {
    const std::string dir = kModels + c.model;
    auto data = ReadTokenDataset(dir + "/calib_tokens.json");
    REQUIRE(data.ok());
    for (const std::string& path : {dir, dir + "/model.onnx"}) {
      auto model = LoadModel(path);
      REQUIRE(model.ok());
      auto session = DecoderSession::Create(*model);
      REQUIRE(session.ok());
      auto r = EvaluateNll(**session, *data);
      REQUIRE(r.ok());
      CHECK(r->tokens == 128 * 255);
      INFO(path << ": nll " << r->mean());
      CHECK(std::fabs(r->mean() - c.nll) <= 0.005 * c.nll);
      WARN(path << ": mean NLL " << r->mean() << " (reference " << c.nll << ")");
    }
  }
}
