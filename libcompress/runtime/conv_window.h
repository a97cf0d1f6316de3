// Sliding-window geometry of Conv and the pools (ONNX rules for pads,
// strides, dilations, auto_pad, ceil_mode) and Conv's im2col lowering.
// Shared by the Conv/pool operators and by calibration, which gathers the
// statistics of a Conv's im2col columns (what a channel-pruning refit of the
// Conv solves against), so both see exactly the same patches.
#pragma once

#include <cstdint>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim {

// Output positions, pads and strides of a sliding window over the spatial
// dims (Conv and the pools share the ONNX rules).
struct Window {
  std::vector<int64_t> in, kernel, strides, dilations, pad_begin, pad_end, out;
};

// The window of `node` (its strides, dilations, pads, auto_pad attributes)
// over spatial dims `in_spatial` with kernel `kernel`.
Expected<Window> ComputeWindow(const Node& node, const std::vector<int64_t>& in_spatial,
                               const std::vector<int64_t>& kernel, bool ceil_mode);

// Advances a row-major multi-index; false after the last one.
bool NextIndex(std::vector<int64_t>& idx, const std::vector<int64_t>& shape);

// col[(c * K + k) * P + p] = x[c, window(p) + offset(k)] or 0 in padding, for
// one image and one group: K kernel offsets, P output positions.
void Im2Col(const float* x, int64_t channels, const Window& w, float* col);

}  // namespace slim
