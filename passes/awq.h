// Activation-aware scaling (AWQ) as the quantization passes apply it
// (option `awq`): the graph side of numerics/awq.h.
//
// Weights are grouped by the value they multiply (q/k/v share the attention
// norm's output, gate/up the FFN norm's, down reads silu(gate) * up). For
// each group the scales s are searched on that value's calibration
// statistics, every member's input column k is multiplied by s_k, and the
// input is divided by s:
//   folded   into the producer when the value feeds nothing but the group's
//            matmuls and its producer is
//              - Mul(x, c) with a constant c of K elements (an RMSNorm's
//                weight, read only there): c / s;
//              - LayerNormalization / SimplifiedLayerNormalization /
//                RMSNormalization with constant scale (and bias): both / s;
//              - Mul(a, b) with b the bias-free output of a float linear layer
//                read only there (the FFN's up projection): that layer's
//                output rows / s;
//            so decoding runs no extra operator;
//   explicit otherwise: Mul(value, 1/s) before the group's matmuls (K
//            multiplies per token, a constant of K floats).
// The scaled value gets a new name (`<value>.awq`), so statistics of the
// unscaled value can never be applied to it; its own statistics (E[x^2] /
// s^2, E[x x^T] conjugated by 1/s, the sample divided by s) are derived
// exactly and returned for the quantization that follows (E[x x^T] only
// where GPTQ follows: it costs K^2 floats per rescaled input).
// In float the rewritten graph computes what the original did, up to the
// rounding of the scaled weights to their own dtype.
#pragma once

#include <map>
#include <set>
#include <string>
#include <vector>

#include "libcompress/numerics/quantize.h"
#include "passes/weight_finder.h"

namespace slim {

// One weight to scale: its index in `cands` and the quantizer its codes
// will be chosen with (scheme, search, mask; importance for s = 1).
struct AwqRequest {
  size_t cand = 0;
  QuantOptions options;
  bool gptq = false;  // GPTQ follows: the rescaled input's E[x x^T] is derived too
};

struct AwqRewrite {
  ActivationStats derived;                   // statistics of the scaled inputs, by their new names
  std::map<std::string, std::string> notes;  // by weight name: what AWQ did, or why not
  std::set<std::string> scaled;              // weights whose input columns were scaled
  bool changed = false;
};

// Searches (numerics/awq.h, `grid` candidates, groups on up to `threads`
// threads; the result does not depend on the thread count) and applies the
// scales to `g`, whose weights `cands` are (FindWeights on `g`). A group
// whose best scale is s = 1, or whose input has no statistics, is left as
// it is with a note. Fails only on internal inconsistencies and quantizer
// refusals; the graph is then unchanged.
Expected<AwqRewrite> ApplyAwqScales(Graph& g, const GraphIndex& index, const std::vector<WeightCandidate>& cands,
                                    const std::vector<AwqRequest>& requests, const ActivationStats& stats, int grid,
                                    int threads);

}  // namespace slim
