// Resize (opsets 10..17) and Upsample (opsets 7..9) with the sampling rules
// of the ONNX reference implementation (onnx/backend/test/case/node/resize.py,
// ONNX 1.12), which the node tests are generated from.
//
// Per axis, output index x maps to an input coordinate x_original by the
// coordinate_transformation_mode, computed in double with
//   scale = sizes / input_dim (sizes given) or the scales input, and
//   length_resized = scale * input_dim (a real number, not the integer
//   output size: align_corners with scales depends on it).
// The value is a weighted sum over n neighbours (nearest 2, linear 2, cubic
// 4) starting at ceil(x_original) - n/2, with ratio = x_original -
// floor(x_original), or 1 when x_original is an integer. Neighbours come
// from the input edge-padded by n/2, so indices are clamped to the input and
// the window slides inward when it would leave the padded input;
// exclude_outside zeroes weights of indices outside the input and
// renormalises. tf_crop_and_resize yields extrapolation_value where
// x_original leaves [0, input_dim - 1]. Axes are resampled one at a time
// (the reference's separable recursion), innermost first.
//
// Resize-10 and Upsample use asymmetric coordinates, and their nearest
// neighbour is floor(x_original) when upsampling and ceil(x_original) when
// downsampling an axis, clamped to the input (ONNX Runtime's rule for these
// opsets; the spec leaves rounding open).
#include <algorithm>
#include <cmath>

#include "libcompress/runtime/op_registry.h"
#include "libcompress/runtime/ops_util.h"

namespace slim {

void RegisterResizeOps(OpTable& table);

namespace {

enum class Mode { kNearest, kLinear, kCubic };
enum class Coord {
  kHalfPixel,
  kPytorchHalfPixel,
  kAlignCorners,
  kAsymmetric,
  kTfHalfPixelForNn,
  kTfCropAndResize
};
enum class Nearest { kRoundPreferFloor, kRoundPreferCeil, kFloor, kCeil, kLegacy };

struct ResizeParams {
  Mode mode = Mode::kNearest;
  Coord coord = Coord::kHalfPixel;
  Nearest nearest = Nearest::kRoundPreferFloor;
  double cubic_a = -0.75;
  bool exclude_outside = false;
  double extrapolation = 0.0;
};

// Sampling of one axis: for output index o, taps weights at input indices
// (already clamped), or the extrapolation value.
struct AxisPlan {
  int64_t out = 0;
  int taps = 1;
  std::vector<int64_t> index;     // out * taps
  std::vector<double> weight;     // out * taps
  std::vector<bool> extrapolate;  // per output index
};

Expected<Mode> ParseMode(const Node& node, const std::string& s, bool allow_cubic) {
  if (s == "nearest") return Mode::kNearest;
  if (s == "linear") return Mode::kLinear;
  if (s == "cubic" && allow_cubic) return Mode::kCubic;
  return InvalidInput(node.Describe(), ": mode '", s, "' is not one of nearest, linear",
                      allow_cubic ? ", cubic" : " (cubic needs opset 11)");
}

Expected<ResizeParams> ReadParams(const Node& node, bool legacy) {
  ResizeParams p;
  SLIM_ASSIGN_OR_RETURN(p.mode, ParseMode(node, node.GetString("mode", "nearest"), !legacy));
  if (legacy) {
    p.coord = Coord::kAsymmetric;
    p.nearest = Nearest::kLegacy;
    return p;
  }
  static const std::pair<const char*, Coord> kCoords[] = {
      {"half_pixel", Coord::kHalfPixel},
      {"pytorch_half_pixel", Coord::kPytorchHalfPixel},
      {"align_corners", Coord::kAlignCorners},
      {"asymmetric", Coord::kAsymmetric},
      {"tf_half_pixel_for_nn", Coord::kTfHalfPixelForNn},
      {"tf_crop_and_resize", Coord::kTfCropAndResize}};
  static const std::pair<const char*, Nearest> kNearest[] = {
      {"round_prefer_floor", Nearest::kRoundPreferFloor},
      {"round_prefer_ceil", Nearest::kRoundPreferCeil},
      {"floor", Nearest::kFloor},
      {"ceil", Nearest::kCeil}};
  const std::string coord = node.GetString("coordinate_transformation_mode", "half_pixel");
  const std::string nearest = node.GetString("nearest_mode", "round_prefer_floor");
  bool found = false;
  for (const auto& [name, value] : kCoords) {
    if (coord == name) p.coord = value, found = true;
  }
  SLIM_CHECK_INPUT(found, node.Describe(), ": coordinate_transformation_mode '", coord,
                   "' is not a known mode");
  found = false;
  for (const auto& [name, value] : kNearest) {
    if (nearest == name) p.nearest = value, found = true;
  }
  SLIM_CHECK_INPUT(found, node.Describe(), ": nearest_mode '", nearest,
                   "' is not one of round_prefer_floor, round_prefer_ceil, floor, ceil");
  p.cubic_a = node.GetFloat("cubic_coeff_a", -0.75f);
  p.exclude_outside = node.GetInt("exclude_outside", 0) != 0;
  p.extrapolation = node.GetFloat("extrapolation_value", 0.0f);
  // Opset 18 additions change the sampling; refuse rather than ignore them.
  if (node.GetInt("antialias", 0) != 0 || node.HasAttr("axes") ||
      node.GetString("keep_aspect_ratio_policy", "stretch") != "stretch") {
    return Unsupported(node.Describe(), ": antialias, axes and keep_aspect_ratio_policy ",
                       "(opset 18) are not supported");
  }
  return p;
}

// Weights of the n neighbours for the fractional position `ratio` in (0, 1].
std::vector<double> Coefficients(const ResizeParams& p, double ratio) {
  switch (p.mode) {
    case Mode::kLinear:
      return {1 - ratio, ratio};
    case Mode::kCubic: {
      const double a = p.cubic_a, r = ratio, s = 1 - ratio;
      return {((a * (r + 1) - 5 * a) * (r + 1) + 8 * a) * (r + 1) - 4 * a,
              ((a + 2) * r - (a + 3)) * r * r + 1, ((a + 2) * s - (a + 3)) * s * s + 1,
              ((a * (s + 1) - 5 * a) * (s + 1) + 8 * a) * (s + 1) - 4 * a};
    }
    case Mode::kNearest:
      break;
  }
  if (ratio == 1.0) return {0, 1};  // x_original is an integer: exact pick
  switch (p.nearest) {
    case Nearest::kRoundPreferFloor:
      return {ratio <= 0.5 ? 1.0 : 0.0, ratio > 0.5 ? 1.0 : 0.0};
    case Nearest::kRoundPreferCeil:
      return {ratio < 0.5 ? 1.0 : 0.0, ratio >= 0.5 ? 1.0 : 0.0};
    case Nearest::kFloor:
      return {1, 0};
    default:
      return {0, 1};  // kCeil (kLegacy never gets here)
  }
}

AxisPlan PlanAxis(const ResizeParams& p, int64_t in, int64_t out, double scale, double roi_start,
                  double roi_end) {
  AxisPlan plan;
  plan.out = out;
  const bool legacy_nearest = p.mode == Mode::kNearest && p.nearest == Nearest::kLegacy;
  plan.taps = legacy_nearest ? 1 : p.mode == Mode::kCubic ? 4 : 2;
  const int n = plan.taps;
  plan.index.resize(static_cast<size_t>(out * n));
  plan.weight.resize(static_cast<size_t>(out * n));
  plan.extrapolate.assign(static_cast<size_t>(out), false);
  const double in_d = static_cast<double>(in);
  const double length = scale * in_d;
  for (int64_t o = 0; o < out; ++o) {
    const double x = static_cast<double>(o);
    double xo = 0;
    switch (p.coord) {
      case Coord::kHalfPixel:
        xo = (x + 0.5) / scale - 0.5;
        break;
      case Coord::kPytorchHalfPixel:
        xo = length == 1 ? -0.5 : (x + 0.5) / scale - 0.5;
        break;
      case Coord::kAlignCorners:
        xo = length == 1 ? 0 : x * (in_d - 1) / (length - 1);
        break;
      case Coord::kAsymmetric:
        xo = x / scale;
        break;
      case Coord::kTfHalfPixelForNn:
        xo = (x + 0.5) / scale;
        break;
      case Coord::kTfCropAndResize:
        xo = length == 1 ? (roi_end - roi_start) * (in_d - 1) / 2
                         : x * (roi_end - roi_start) * (in_d - 1) / (length - 1);
        xo += roi_start * (in_d - 1);
        break;
    }
    const size_t base = static_cast<size_t>(o * n);
    if (p.coord == Coord::kTfCropAndResize && (xo < 0 || xo > in_d - 1)) {
      plan.extrapolate[static_cast<size_t>(o)] = true;
      continue;
    }
    // Bounded before the integer cast (tiny scales give huge coordinates);
    // windows are clamped into the input anyway.
    const double bounded = std::clamp(xo, -in_d - 4, in_d + 4);
    if (legacy_nearest) {
      const double r = scale < 1 ? std::ceil(bounded) : std::floor(bounded);
      plan.index[base] = std::clamp<int64_t>(static_cast<int64_t>(r), 0, in - 1);
      plan.weight[base] = 1;
      continue;
    }
    const double fl = std::floor(xo);
    std::vector<double> w = Coefficients(p, xo == fl ? 1.0 : xo - fl);
    // Window in the input edge-padded by n/2, slid inward to stay inside it.
    const int64_t pad = n / 2;
    const int64_t first = static_cast<int64_t>(std::ceil(bounded)) - n / 2;
    const int64_t start = std::clamp<int64_t>(first + pad, 0, in + 2 * pad - n) - pad;
    if (p.exclude_outside) {
      double sum = 0;
      for (int j = 0; j < n; ++j) {
        const int64_t i = start + j;
        if (i < 0 || i >= in) w[static_cast<size_t>(j)] = 0;
        sum += w[static_cast<size_t>(j)];
      }
      for (double& v : w) v /= sum;
    }
    for (int j = 0; j < n; ++j) {
      plan.index[base + static_cast<size_t>(j)] = std::clamp<int64_t>(start + j, 0, in - 1);
      plan.weight[base + static_cast<size_t>(j)] = w[static_cast<size_t>(j)];
    }
  }
  return plan;
}

// True when the plan reproduces the axis unchanged (skip it: exact, cheap).
bool IsIdentity(const AxisPlan& plan, int64_t in) {
  if (plan.out != in) return false;
  for (int64_t o = 0; o < plan.out; ++o) {
    if (plan.extrapolate[static_cast<size_t>(o)]) return false;
    double self = 0;  // total weight on index o; every other tap must be 0
    for (int j = 0; j < plan.taps; ++j) {
      const size_t k = static_cast<size_t>(o * plan.taps + j);
      if (plan.index[k] == o) {
        self += plan.weight[k];
      } else if (plan.weight[k] != 0.0) {
        return false;
      }
    }
    if (self != 1.0) return false;
  }
  return true;
}

// Resamples `axis` of `v` (shape `shape`) by `plan`; updates shape.
std::vector<double> ApplyAxis(const std::vector<double>& v, std::vector<int64_t>& shape,
                              size_t axis, const AxisPlan& plan, double extrapolation) {
  int64_t outer = 1, inner = 1;
  for (size_t d = 0; d < axis; ++d) outer *= shape[d];
  for (size_t d = axis + 1; d < shape.size(); ++d) inner *= shape[d];
  const int64_t in = shape[axis];
  std::vector<double> out(static_cast<size_t>(outer * plan.out * inner), 0.0);
  for (int64_t a = 0; a < outer; ++a) {
    for (int64_t o = 0; o < plan.out; ++o) {
      double* dst = out.data() + (a * plan.out + o) * inner;
      if (plan.extrapolate[static_cast<size_t>(o)]) {
        std::fill(dst, dst + inner, extrapolation);
        continue;
      }
      for (int j = 0; j < plan.taps; ++j) {
        const size_t k = static_cast<size_t>(o * plan.taps + j);
        const double w = plan.weight[k];
        const double* src = v.data() + (a * in + plan.index[k]) * inner;
        for (int64_t i = 0; i < inner; ++i) dst[i] += w * src[i];
      }
    }
  }
  shape[axis] = plan.out;
  return out;
}

// Shared by Resize (all opsets) and Upsample. `legacy` selects the Resize-10
// / Upsample rules; scales then come from `scales_attr` when non-null
// (Upsample-7) or input 1.
Status ResizeImpl(const OpCall& call, std::vector<Tensor>& outputs, bool legacy,
                  const std::vector<float>* scales_attr) {
  const Node& node = call.node;
  const Tensor* x = call.in(0);
  SLIM_CHECK_INPUT(x, node.Describe(), ": needs input X");
  SLIM_ASSIGN_OR_RETURN(ResizeParams params, ReadParams(node, legacy));
  const size_t rank = x->rank();
  const Tensor* scales_t = legacy ? call.in(1) : call.in(2);
  const Tensor* sizes_t = legacy ? nullptr : call.in(3);
  const Tensor* roi_t = legacy ? nullptr : call.in(1);
  std::vector<double> scales(rank, 1.0);
  std::vector<int64_t> out_shape(rank);
  const bool have_sizes = sizes_t && sizes_t->numel() > 0;
  const bool have_scales = scales_attr || (scales_t && scales_t->numel() > 0);
  SLIM_CHECK_INPUT(have_sizes != have_scales, node.Describe(),
                   ": exactly one of scales and sizes must be given (non-empty)");
  if (have_sizes) {
    const std::vector<int64_t> sizes = sizes_t->ToInt64Vector();
    SLIM_CHECK_INPUT(sizes.size() == rank, node.Describe(), ": sizes has ", sizes.size(),
                     " values for X ", ShapeToString(x->shape()));
    for (size_t d = 0; d < rank; ++d) {
      SLIM_CHECK_INPUT(sizes[d] >= 0, node.Describe(), ": sizes[", d, "] = ", sizes[d],
                       " is negative");
      out_shape[d] = sizes[d];
      scales[d] = static_cast<double>(sizes[d]) / static_cast<double>(x->dim(d));
    }
  } else {
    const std::vector<float> s = scales_attr ? *scales_attr : scales_t->ToFloatVector();
    SLIM_CHECK_INPUT(s.size() == rank, node.Describe(), ": scales has ", s.size(), " values for X ",
                     ShapeToString(x->shape()));
    for (size_t d = 0; d < rank; ++d) {
      SLIM_CHECK_INPUT(s[d] > 0, node.Describe(), ": scales[", d, "] = ", s[d],
                       " must be positive");
      scales[d] = s[d];
      // Checked before the cast: an infinite or huge scale is bad input, not UB.
      const double size = std::floor(scales[d] * static_cast<double>(x->dim(d)));
      SLIM_CHECK_INPUT(std::isfinite(size) && size <= static_cast<double>(ops::kMaxComputedElements), node.Describe(),
                       ": scales[", d, "] = ", s[d], " gives an axis of ", size, " elements, above the runtime's limit of ",
                       ops::kMaxComputedElements);
      out_shape[d] = static_cast<int64_t>(size);
    }
  }
  SLIM_RETURN_IF_ERROR(ops::CheckOutputShape(node, out_shape));
  std::vector<double> roi(2 * rank, 0.0);
  if (params.coord == Coord::kTfCropAndResize) {
    SLIM_CHECK_INPUT(roi_t && static_cast<size_t>(roi_t->numel()) == 2 * rank, node.Describe(),
                     ": tf_crop_and_resize needs roi with ", 2 * rank, " values");
    const std::vector<float> r = roi_t->ToFloatVector();
    std::copy(r.begin(), r.end(), roi.begin());
  }
  if (x->numel() == 0 || ShapeNumel(out_shape) == 0) {
    SLIM_CHECK_INPUT(ShapeNumel(out_shape) == 0, node.Describe(), ": cannot resize empty X ",
                     ShapeToString(x->shape()), " to ", ShapeToString(out_shape));
    outputs[0] = Tensor(x->dtype(), out_shape);
    return Status::Ok();
  }
  const std::vector<float> xf = ops::LoadFloat(*x);
  std::vector<double> v(xf.begin(), xf.end());
  std::vector<int64_t> shape = x->shape();
  for (size_t d = rank; d-- > 0;) {
    const AxisPlan plan =
        PlanAxis(params, x->dim(d), out_shape[d], scales[d], roi[d], roi[d + rank]);
    if (IsIdentity(plan, x->dim(d))) continue;
    v = ApplyAxis(v, shape, d, plan, params.extrapolation);
  }
  outputs[0] = ops::StoreFloat(x->dtype(), out_shape, std::vector<float>(v.begin(), v.end()));
  return Status::Ok();
}

}  // namespace

void RegisterResizeOps(OpTable& table) {
  table.Add("Resize", [](const OpCall& call, std::vector<Tensor>& outputs) {
    return ResizeImpl(call, outputs, call.opset < 11, nullptr);
  });
  table.Add("Upsample", [](const OpCall& call, std::vector<Tensor>& outputs) {
    if (call.opset < 9) {
      const std::vector<float> scales = call.node.GetFloats("scales");
      return ResizeImpl(call, outputs, true, &scales);
    }
    return ResizeImpl(call, outputs, true, nullptr);
  });
}

}  // namespace slim
