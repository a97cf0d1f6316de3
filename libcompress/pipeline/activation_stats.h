// Activation statistics from calibration data: what calibration-driven
// passes know about the inputs their weights multiply.
//
// Keyed by the name of the value a weight is applied to (the A input of
// MatMul/Gemm), so statistics gathered once on the source graph stay valid
// while passes rewrite the weights (MatMulQ keeps the A input). Two kinds:
//   mean_sq  E[x_k^2] over every calibration row: the diagonal of the
//            layer's Hessian X^T X / rows, i.e. how much an error in input
//            column k of the weight moves the output. The weight passes use it
//            as the importance of the scale search (numerics/quantize.h).
//   gram     E[x x^T] (K x K, FP32), the layer's Hessian up to a factor:
//            what GPTQ needs. Collected only when a pass asks (K^2 floats
//            per input: a 4096-wide input costs 64 MiB).
//   sample   a deterministic subset of rows (evenly spaced over the data), on
//            which the output error of a quantized weight is measured.
// Conv inputs have their own map, keyed by the Conv's weight name: the
// same three kinds over the Conv's im2col patches (dim C * K for C input
// channels and K kernel offsets, index c * K + k, one row per image and
// output position; gram and sample only for group == 1), which is what a
// refit of the Conv's weight as a [M, C * K] matrix solves against.
// Header-only so passes/ can read it without linking the collector
// (eval/calibration.h), which needs the runtime.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace slim {

struct ActivationStat {
  int64_t dim = 0;              // K, the last dimension of the value
  int64_t rows = 0;             // rows (tokens) accumulated into mean_sq
  std::vector<double> mean_sq;  // K entries
  std::vector<float> gram;      // K * K entries, or empty when not collected
  int64_t sample_rows = 0;
  std::vector<float> sample;    // row-major [sample_rows, K]
};

struct ActivationStats {
  std::string source;  // "calib.json sequences 0..31"
  int64_t sequences = 0;
  int64_t tokens = 0;
  std::map<std::string, ActivationStat> values;
  std::map<std::string, ActivationStat> conv_inputs;  // by Conv weight name
  // Statistics a pass derived (the inputs AWQ rescaled, under their new
  // names) sit in an overlay whose lookups fall through to the originals.
  const ActivationStats* parent = nullptr;

  const ActivationStat* Find(const std::string& value) const {
    auto it = values.find(value);
    if (it != values.end()) return &it->second;
    return parent ? parent->Find(value) : nullptr;
  }
  const ActivationStat* FindConv(const std::string& weight) const {
    auto it = conv_inputs.find(weight);
    if (it != conv_inputs.end()) return &it->second;
    return parent ? parent->FindConv(weight) : nullptr;
  }
};

}  // namespace slim
