#include "libcompress/runtime/conv_window.h"

#include <algorithm>

#include "libcompress/runtime/ops_util.h"

namespace slim {

Expected<Window> ComputeWindow(const Node& node, const std::vector<int64_t>& in_spatial,
                               const std::vector<int64_t>& kernel, bool ceil_mode) {
  const size_t rank = in_spatial.size();
  Window w;
  w.in = in_spatial;
  w.kernel = kernel;
  w.strides = node.GetInts("strides", std::vector<int64_t>(rank, 1));
  w.dilations = node.GetInts("dilations", std::vector<int64_t>(rank, 1));
  std::vector<int64_t> pads = node.GetInts("pads", std::vector<int64_t>(2 * rank, 0));
  if (kernel.size() != rank || w.strides.size() != rank || w.dilations.size() != rank ||
      pads.size() != 2 * rank) {
    return InvalidInput(node.Describe(), ": kernel_shape/strides/dilations/pads have ",
                        kernel.size(), "/", w.strides.size(), "/", w.dilations.size(), "/",
                        pads.size(), " values for ", rank, " spatial dims (pads needs 2 per dim)");
  }
  const std::string auto_pad = node.GetString("auto_pad", "NOTSET");
  if (auto_pad != "NOTSET" && auto_pad != "SAME_UPPER" && auto_pad != "SAME_LOWER" &&
      auto_pad != "VALID") {
    return InvalidInput(node.Describe(), ": auto_pad '", auto_pad, "' is not one of NOTSET, ",
                        "SAME_UPPER, SAME_LOWER, VALID");
  }
  w.pad_begin.assign(rank, 0);
  w.pad_end.assign(rank, 0);
  w.out.assign(rank, 0);
  for (size_t d = 0; d < rank; ++d) {
    const int64_t k = kernel[d], s = w.strides[d], dil = w.dilations[d];
    if (k <= 0 || s <= 0 || dil <= 0 || pads[d] < 0 || pads[d + rank] < 0) {
      return InvalidInput(node.Describe(), ": spatial dim ", d, " has kernel ", k, ", stride ", s,
                          ", dilation ", dil, ", pads ", pads[d], "/", pads[d + rank],
                          " (kernel, stride, dilation must be > 0, pads >= 0)");
    }
    const int64_t span = (k - 1) * dil + 1;  // input extent of one window
    const int64_t n = in_spatial[d];
    if (auto_pad == "SAME_UPPER" || auto_pad == "SAME_LOWER") {
      w.out[d] = (n + s - 1) / s;
      const int64_t total = std::max<int64_t>(0, (w.out[d] - 1) * s + span - n);
      // SAME_UPPER puts the odd pad at the end, SAME_LOWER at the beginning.
      w.pad_begin[d] = auto_pad == "SAME_UPPER" ? total / 2 : total - total / 2;
      w.pad_end[d] = total - w.pad_begin[d];
    } else {
      int64_t pb = pads[d], pe = pads[d + rank];
      if (auto_pad == "VALID") pb = pe = 0;
      const int64_t room = n + pb + pe - span;
      if (room < 0) {
        return InvalidInput(node.Describe(), ": window extent ", span, " exceeds padded input ",
                            n + pb + pe, " in spatial dim ", d);
      }
      w.out[d] = (ceil_mode ? (room + s - 1) / s : room / s) + 1;
      // ceil_mode must not start a window in the end padding (PyTorch and
      // ONNX opset 19 rule; no effect on windows that start inside).
      if (ceil_mode && (w.out[d] - 1) * s >= n + pb) --w.out[d];
      w.pad_begin[d] = pb;
      w.pad_end[d] = pe;
    }
  }
  return w;
}

bool NextIndex(std::vector<int64_t>& idx, const std::vector<int64_t>& shape) {
  for (size_t d = idx.size(); d-- > 0;) {
    if (++idx[d] < shape[d]) return true;
    idx[d] = 0;
  }
  return false;
}

void Im2Col(const float* x, int64_t channels, const Window& w, float* col) {
  const size_t rank = w.in.size();
  const int64_t kernel_size = ShapeNumel(w.kernel);
  const int64_t positions = ShapeNumel(w.out);
  const int64_t in_size = ShapeNumel(w.in);
  const auto in_strides = ops::Strides(w.in);
  const int64_t last_out = w.out[rank - 1];
  const int64_t last_in = w.in[rank - 1];
  const int64_t last_s = w.strides[rank - 1];
  std::vector<int64_t> kk(rank, 0), op(rank, 0);
  for (int64_t c = 0; c < channels; ++c) {
    std::fill(kk.begin(), kk.end(), 0);
    for (int64_t k = 0; k < kernel_size; ++k, NextIndex(kk, w.kernel)) {
      float* dst = col + (c * kernel_size + k) * positions;
      const int64_t last_start = kk[rank - 1] * w.dilations[rank - 1] - w.pad_begin[rank - 1];
      std::fill(op.begin(), op.end(), 0);
      for (int64_t p = 0; p < positions; p += last_out) {
        // Offset of the leading dims; the last dim is the contiguous loop.
        bool inside = true;
        int64_t off = c * in_size;
        for (size_t d = 0; d + 1 < rank; ++d) {
          const int64_t i = op[d] * w.strides[d] - w.pad_begin[d] + kk[d] * w.dilations[d];
          inside = inside && i >= 0 && i < w.in[d];
          off += i * in_strides[d];
        }
        for (int64_t o = 0; o < last_out; ++o) {
          const int64_t i = o * last_s + last_start;
          dst[p + o] = inside && i >= 0 && i < last_in ? x[off + i] : 0.0f;
        }
        // Step the leading dims (the last dim was consumed whole).
        for (size_t d = rank - 1; d-- > 0;) {
          if (++op[d] < w.out[d]) break;
          op[d] = 0;
        }
      }
    }
  }
}

}  // namespace slim
