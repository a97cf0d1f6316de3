// The weight-quantization engine shared by quantize_int8 and quantize_int4.
//
// Weights and their roles come from weight_finder.h (linear, classifier,
// embedding, tied-embedding).
// The pass maps (role, per-tensor options) to a requested scheme; the engine
// checks the weight can take it (2-D, supported consumers, K large enough),
// falls back with a reason otherwise, quantizes (numerics/quantize.h) in
// parallel, and only then rewrites the graph (on a copy that replaces the
// original once it validates):
//   MatMul(A, W[K,N])                -> slimpack.MatMulQ(A, Wq[N,K])       (W transposed)
//   Gemm(A, W[N,K], C, transB=1)     -> slimpack.MatMulQ(A, Wq, C)
//   Gather(W[V,D], ids)              -> slimpack.GatherQ(Wq, ids)       (int8 only;
//                                       float32 out, plus Cast back to W's dtype
//                                       unless every reader casts to float32)
// Wq is one initializer under the weight's name, dtype int4-packed or
// int8-packed, logical shape [N, K], bytes in the row-major layout named by
// the node's `layout` attribute (codes, scales and zero points together, as
// docs/LAYOUTS.md specifies); Cast and Constant nodes that fed only the
// rewritten nodes are removed.
#pragma once

#include <functional>
#include <string>

#include "libcompress/pipeline/pass.h"
#include "passes/weight_finder.h"

namespace slim {

struct WeightScheme {
  enum class Kind { kKeep, kInt8, kInt4 };
  Kind kind = Kind::kKeep;
  int64_t group_size = 0;  // int4 only
  bool symmetric = true;
  bool nl = false;  // int4 only: the non-uniform levels (symmetric, layout q4g{G}_nl_x8)
  // "keep", "int8", "int4-g32-sym", "int4-g128-asym", "int4-g32-nl"
  std::string Name() const;
};

// What a pass asks for one tensor.
struct WeightRequest {
  WeightScheme scheme;
  bool search = true;  // scale search (false: plain max-abs round to nearest)
  int clip_steps = 32;
  int refine_iters = 4;
  // Weight the search's squared error by E[x_k^2] of the weight's input when
  // calibration statistics exist (PassContext::activations).
  bool activation_importance = true;
  bool gptq = false;        // GPTQ error compensation (needs calibration Hessians)
  double gptq_damp = 0.01;  // relative damping of the Hessian's diagonal
  // Activation-aware input scales (passes/awq.h) before the codes are
  // chosen (needs calibration statistics); RunWeightQuantization only.
  bool awq = false;
};

// The weight (its name, role "linear", "classifier", "embedding" or
// "tied-embedding", shape) and its options (pass options with overrides
// applied).
using WeightRequestFn = std::function<WeightRequest(const WeightCandidate& weight, const Options& options)>;

// `scheme` with the search options of `o` (search, clip_steps, refine_iters,
// importance, gptq, gptq_damp, awq; WithSearchOptions declares them).
WeightRequest SearchRequest(const WeightScheme& scheme, const Options& o);

// The request both quantization passes build: the scheme named by the
// option for the tensor's role ("scheme" for linear layers, "embeddings" for
// Gather tables, "classifier" otherwise; `to_scheme` maps that choice) plus
// the search options.
template <typename ToScheme>
WeightRequest RequestForRole(const std::string& role, const Options& o, ToScheme to_scheme) {
  const std::string choice = role == "linear"      ? o.GetString("scheme")
                             : role == "embedding" ? o.GetString("embeddings")
                                                   : o.GetString("classifier");
  return SearchRequest(to_scheme(choice), o);
}

// `info` with the options RequestForRole reads besides the role schemes
// (search, clip_steps, refine_iters, importance) appended: declared once for
// both passes; `unit` is "group" or "row" (what one scale covers).
PassInfo WithSearchOptions(PassInfo info, const std::string& unit);
// `info` with the AWQ options (awq, per tensor; awq_grid) appended: the
// quantization passes take them, the mixed pass's trials do not.
PassInfo WithAwqOptions(PassInfo info);

// Pass::NeedsHessians for the weight passes: `gptq` set in the options or
// in any override.
bool WeightPassNeedsHessians(const PassContext& ctx);
// Pass::NeedsActivations for the weight passes: the above, or `awq` set in
// the options or in any override.
bool WeightPassNeedsActivations(const PassContext& ctx);

Expected<PassReport> RunWeightQuantization(Graph& graph, const PassContext& ctx,
                                           const WeightRequestFn& request);

// Bytes of an [n, k] weight in the scheme's dense row layout (the source
// dtype's for keep): what quantize_int4/int8 write without a sparse layout.
uint64_t DenseSchemeBytes(const WeightScheme& s, DType source, size_t n, size_t k);

// One scheme tried on one weight (TrialWeightSchemes).
struct SchemeTrial {
  WeightScheme scheme;     // as it would be applied (fallbacks resolved)
  std::string layout;      // packed layout, or the source dtype when kept
  uint64_t bytes = 0;      // bytes the tensor would occupy
  bool quantized = false;  // false when kept (as asked, or on a fallback)
  std::string reason;      // why kept or fallen back ("" otherwise)
  double rel_mse = 0;      // sum (w - w')^2 / sum w^2 (quantized only)
  bool output_error_measured = false;
  double output_rel_error = 0;  // as TensorReport::output_rel_error
};

// The quantization passes' engine without the rewrite, for the mixed
// precision allocator: every weight the passes would consider is quantized
// once with each request `requests` lists for it (the same fallbacks,
// search, importance, GPTQ and mask handling as RunWeightQuantization),
// measured, and handed to visit(weight, request index, trial, w') where w'
// is the dequantized [N, K] matrix (nullptr when kept). visit runs under a
// lock, one call at a time; the order of calls depends on the thread count,
// their arguments do not. An error from visit stops the run.
using TrialRequestsFn = std::function<std::vector<WeightRequest>(const WeightCandidate& weight, const Options& options)>;
using TrialVisitor = std::function<Status(const WeightCandidate& weight, size_t request, const SchemeTrial& trial,
                                          const std::vector<float>* dequantized)>;
Status TrialWeightSchemes(const Graph& graph, const PassContext& ctx, const TrialRequestsFn& requests,
                          const TrialVisitor& visit);

}  // namespace slim
