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

// Sequential calibration (the GPTQ paper's sequential variant) in bounded
// memory. The weight matmuls are split into groups in graph order, one per
// decoder layer (the layer index in the weight's name: "layers.3.", "h.3.",
// "blocks.3."; matmuls of unnumbered weights, such as lm_head, form groups
// of their own). For each group in turn, the statistics of its inputs are
// gathered on the activations the model computes with the earlier groups
// already compressed; `step` then compresses the group's weights in
// `model.graph`, and the part of the forward pass up to the next group is
// run again with them to produce the next group's inputs. Only one group's
// statistics (E[x x^T] included) exist at a time; between groups, the
// values live across the cut (residual stream, the next norm's output,
// masks, rotary tables: a few [tokens, hidden] tensors) are kept for every
// calibration sequence. Forward cost: about twice one full pass.
struct SequentialGroup {
  std::string label;                 // "layer 3", "weights after layer 3"
  std::vector<std::string> weights;  // weight names, graph order
};
using SequentialStepFn =
    std::function<Status(const SequentialGroup& group, size_t index, size_t count, const ActivationStats& stats)>;

// The groups of `graph` (the model's graph); fails when a layer's weights
// are interleaved with another's in graph order, or no weight is numbered.
Expected<std::vector<SequentialGroup>> SequentialGroups(const Graph& graph);

// `step` may rewrite model.graph's weights (and the nodes reading them) but
// must keep every value name the rest of the graph reads. The statistics it
// gets are those of the group's matmul inputs only.
Status CalibrateSequentially(Model& model, const TokenDataset& data, const std::string& data_path,
                             const CalibrationOptions& options, const SequentialStepFn& step,
                             const CalibrationProgressFn& progress = nullptr);

// The same for a graph that is not a language model, from feeds (ONNX test
// data sets, calib_data/test_data_sets.h): one Run per set; first_sequence
// and max_sequences count sets.
Expected<ActivationStats> CollectActivationStats(const Model& model, const std::vector<Feeds>& feeds,
                                                 const std::string& data_path,
                                                 const CalibrationOptions& options,
                                                 const CalibrationProgressFn& progress = nullptr);

}  // namespace slim
