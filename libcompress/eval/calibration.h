// Gathers activation statistics (pipeline/activation_stats.h) by running a
// model in the bundled runtime: a decoder over calibration token sequences,
// any other graph over ONNX test data sets.
//
// Every sequence is one full-sequence forward pass from an empty context;
// an interpreter observer sees the A input of every matmul whose B is a
// weight (weights_only: initializer or Constant, possibly through Cast) and
// the input of every Conv with a constant weight as it is computed, so
// memory holds the statistics, not the activations.
// The result depends only on the model, the data and the options.
#pragma once

#include <functional>
#include <string>
#include <vector>

#include "calib_data/test_data_sets.h"
#include "calib_data/token_dataset.h"
#include "libcompress/io/model.h"
#include "libcompress/pipeline/activation_stats.h"
#include "libcompress/runtime/interpreter.h"

namespace slim {

struct CalibrationOptions {
  size_t first_sequence = 0;     // skip the sequences before this one
  size_t max_sequences = 32;     // 0: every remaining sequence
  size_t max_sample_rows = 256;  // rows kept per value for output-error measurement
  bool gram = false;             // also E[x x^T] per value (GPTQ)
  RuntimeOptions runtime;        // threads of the forward passes (results do not depend on them)
};

using CalibrationProgressFn = std::function<void(size_t done, size_t total)>;

// The values whose statistics weight passes use: the A input of each
// MatMul/Gemm (and slimpack.MatMulQ) that multiplies a weight, in graph order.
std::vector<std::string> WeightInputValues(const Graph& graph);

Expected<ActivationStats> CollectActivationStats(const Model& model, const TokenDataset& data,
                                                 const std::string& data_path,
                                                 const CalibrationOptions& options,
                                                 const CalibrationProgressFn& progress = nullptr);

// The same for a graph that is not a language model, from feeds (ONNX test
// data sets, calib_data/test_data_sets.h): one Run per set; first_sequence
// and max_sequences count sets.
Expected<ActivationStats> CollectActivationStats(const Model& model, const std::vector<Feeds>& feeds,
                                                 const std::string& data_path,
                                                 const CalibrationOptions& options,
                                                 const CalibrationProgressFn& progress = nullptr);

}  // namespace slim
