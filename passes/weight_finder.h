// Which tensors of a graph are weights a packed kernel (or a pruning mask)
// can apply to, who reads them, and in which orientation: shared by the
// quantization passes (weight_quant) and the pruning passes.
//
// A weight is the B input of MatMul/Gemm or the table of Gather, stored as
// an initializer or a Constant node, read directly or through Cast(to=float)
// (the Hugging Face reader builds Gemm(A, Cast(W_fp16 [out, in]), transB=1);
// ONNX exports use MatMul(A, W [in, out])). Roles:
//   linear          read only by MatMul/Gemm, output not a graph output
//   classifier      a MatMul/Gemm whose output reaches a graph output through
//                   shape-only or elementwise ops (lm_head)
//   embedding       read only by Gather
//   tied-embedding  read by Gather and by MatMul/Gemm (a tied classifier)
// Every pass works on the logical [N, K] matrix (N outputs, K inputs: a
// PyTorch Linear's layout); `kn` says the tensor is stored transposed.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include "libcompress/ir/graph.h"
#include "libcompress/pipeline/activation_stats.h"
#include "libcompress/pipeline/pass.h"

namespace slim {

enum class UseKind { kMatMulB, kGemmB, kGather, kOther };

struct WeightUse {
  int node = -1;
  UseKind kind = UseKind::kOther;
  // Gather of a 16-bit table whose output feeds more than Cast(to=float):
  // GatherQ returns float32, so a Cast back to the table's dtype follows it.
  bool recast = false;
};

// One weight tensor and everything that reads it.
struct WeightCandidate {
  std::string name;         // initializer name or Constant output name
  int constant_node = -1;   // index of the Constant node producing it, else -1
  Tensor tensor;
  std::vector<WeightUse> uses;
  std::vector<int> cast_nodes;  // Cast(to=float) nodes between the weight and its uses
  // Why no packed [N, K] kernel can replace the readers ("" when one can):
  // another consumer, a graph output, rank != 2, an unsupported Gemm, mixed
  // orientations. Only computed for float tensors.
  std::string problem;
  std::string role;
  bool kn = false;  // stored [K, N] (MatMul, Gemm transB=0) rather than [N, K]
  size_t n = 0, k = 0;  // logical [N, K] (rank-2 tensors only)
  std::vector<std::string> activations;  // A inputs of the MatMul/Gemm readers
  bool IsFloatMatrix() const { return IsFloat(tensor.dtype()) && tensor.rank() == 2; }
};

// Cast(to=float32 or float16): what readers look through to find a weight.
bool IsCastToFloat(const Node& n);

// Producer and consumers of every value (node indices).
struct GraphIndex {
  std::unordered_map<std::string, int> producers;
  std::unordered_map<std::string, std::vector<int>> consumers;
  static GraphIndex Build(const Graph& g);
};

// Every weight, in the order of its first reader.
std::vector<WeightCandidate> FindWeights(const Graph& g, const GraphIndex& index);

// FP32 [N, K] copy of the weight (transposed from [K, N] when needed).
std::vector<float> WeightRowsNK(const WeightCandidate& c);

// The weight with `w_nk` ([N, K], FP32) stored back in its own dtype and
// orientation, as a new owned tensor.
Tensor WeightFromRowsNK(const WeightCandidate& c, const std::vector<float>& w_nk);
// The same for a matrix of a new logical shape [n, k] (structured pruning):
// stored [k, n] when `kn`, else [n, k], in `dtype` (a float type).
Tensor WeightFromRowsNK(DType dtype, bool kn, size_t n, size_t k, const std::vector<float>& w_nk);

// Calibration statistics of the input the weight multiplies (the first of
// its MatMul/Gemm A inputs whose width is K), or nullptr.
const ActivationStat* InputStats(const WeightCandidate& c, const ActivationStats* stats);

// The report row of a weight left as it is (name, shape, dtype, role,
// params, bytes, bits of its dtype, actual "keep"); passes fill in the rest.
TensorReport KeptRow(const WeightCandidate& c);

// Plain linear layers by output value: candidates that are single-use float
// [N, K] matrices read as a MatMul/Gemm B input (no problem), keyed by the
// output of the node that reads them (structured pruning's dataflow walks).
std::unordered_map<std::string, size_t> LinearOutputs(const Graph& g, const std::vector<WeightCandidate>& cands);

// `t` with only the indices `keep` along `axis` (bytes copied: any dtype).
Tensor SelectAlongAxis(const Tensor& t, size_t axis, const std::vector<size_t>& keep);

// Keeps rows (keep_rows) or columns `keep` of a weight's [N, K] mask, if it
// has one.
void ShrinkMask(Graph& g, const std::string& name, const std::vector<size_t>& keep, bool keep_rows);

// After a rewrite changed shapes (structured pruning): re-derives, by shape
// inference, the shapes of the value_info entries `g` already has, and adds
// none (a file stores every entry). Fails when the graph no longer infers.
Status RefreshValueInfo(Graph& g);

// Replaces the weight's tensor (initializer or Constant value) in `g`.
void SetWeight(Graph& g, const WeightCandidate& c, Tensor t);

// Error figures of a rewritten weight against the weight it replaces.
struct WeightChangeError {
  double rel_mse = 0;        // sum (w - w')^2 / sum w^2
  double max_abs_error = 0;  // max |w - w'|
  bool output_measured = false;
  double output_rel_error = 0;  // on the calibration sample of its input
};

// Stores w_nk ([N, K]) as c would be stored and measures what the stored
// tensor holds (after rounding to its dtype) against `reference` ([N, K]):
// the weight error, and the output error on `stat`'s sample when given.
Tensor StoreAndMeasure(const WeightCandidate& c, const std::vector<float>& reference,
                       const std::vector<float>& w_nk, const ActivationStat* stat, WeightChangeError* error);

}  // namespace slim
