// Lowers a packed slimpack graph to ONNX that other runtimes execute
// (`slimpack export`, docs/EXPORT.md). A pure graph rewrite: no files.
//
// The packed graph is standard ONNX except for the two ops of domain
// "slimpack" (passes/weight_quant.h); each is replaced by operators that ONNX
// Runtime runs, with the same dequantized weights bit for bit
// (w' = scale * (float)(q - zero), the expression of kernels/quant.h):
//
//   int4 slimpack.MatMulQ(A, Wq[, bias])           (any q4g{32,64,128} layout)
//     Int4Mode::kMatMulNBits (default):
//       com.microsoft.MatMulNBits(A, B, scales[, zero_points]) [-> Add(bias)]
//         B            uint8 [N, n_blocks, G/2] under Wq's name; element 2j of a
//                      block in the low nibble of byte j, codes u = q + 8
//                      (symmetric) or q (asymmetric), padding past K = zero
//         scales       [N * n_blocks] in A's dtype (FP16 scales are exact in
//                      either float type)
//         zero_points  asymmetric only: uint8 [N * ceil(n_blocks / 2)], row n's
//                      block b in byte n * ceil(n_blocks/2) + b/2, low nibble
//                      first; symmetric layouts omit it (the default zero
//                      point 8 is exactly our u = q + 8)
//         attrs        K, N, bits = 4, block_size = G (accuracy_level unset:
//                      A stays float)
//     Int4Mode::kDequantize: a dense float32 W'^T [K, N] initializer and
//       MatMul(A, W'^T) (standard ONNX everywhere, no size win).
//   int8 slimpack.MatMulQ(A, Wq[, bias])           (q8_row)
//       DequantizeLinear(Wq int8 [N, K], scale float32 [N], axis = 0)
//       -> Transpose(perm = [1, 0]) -> MatMul(A, .) [-> Add(bias)]
//   slimpack.GatherQ(Wq, ids)                      (q8_row)
//       DequantizeLinear(Wq, scale, axis = 0) -> Gather(., ids, axis = 0)
// A table read by both GatherQ and MatMulQ (a tied classifier) is stored
// once and dequantized by one DequantizeLinear that both paths read. When A
// is not float32, the dequantized weight is Cast to A's dtype (ONNX opset 13
// DequantizeLinear outputs float32 only). Nodes keep their names and output
// names; new values are named after the weight ("<W>.scales", "<W>.dq", ...),
// suffixed when a name is taken.
//
// Opsets: DequantizeLinear with `axis` needs ai.onnx 13; a graph importing an
// older opset is refused (raising it would change Squeeze, Unsqueeze,
// ReduceSum, Split ... semantics), newer ones are kept. "com.microsoft": 1
// is imported when MatMulNBits is used and the "slimpack" import dropped.
// A graph without slimpack ops is returned unchanged (it is already ONNX).
//
// Errors (InvalidInput, naming the node and tensor): an unknown or malformed
// layout, a packed weight that is not an initializer or whose bytes fail
// UnpackQuantized's validation, a packed weight read by any other op, a
// GatherQ table that is not q8_row. Unsupported: A's dtype unknown or not a
// float type, an opset below 13.
#pragma once

#include <cstdint>
#include <string>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim {

enum class Int4Mode : uint8_t {
  kMatMulNBits,  // com.microsoft.MatMulNBits (ONNX Runtime), 4-bit weights kept
  kDequantize,   // dense float32 weights, standard ONNX only
};

struct ExportOptions {
  Int4Mode int4 = Int4Mode::kMatMulNBits;
};

// "matmulnbits" / "dequantize" and back (InvalidInput listing the choices).
const char* Int4ModeName(Int4Mode mode);
Expected<Int4Mode> ParseInt4Mode(const std::string& name);

// What LowerToOnnx replaced (for the command's summary).
struct ExportStats {
  int64_t matmul_nbits = 0;       // int4 MatMulQ -> MatMulNBits
  int64_t int4_dequantized = 0;   // int4 MatMulQ -> dense MatMul
  int64_t int8_matmuls = 0;       // int8 MatMulQ -> DequantizeLinear + MatMul
  int64_t gathers = 0;            // GatherQ -> DequantizeLinear + Gather
  int64_t slimpack_ops() const { return matmul_nbits + int4_dequantized + int8_matmuls + gathers; }
};

// The ONNX graph; `stats`, when given, receives the counts.
Expected<Graph> LowerToOnnx(const Graph& packed_graph, const ExportOptions& options,
                            ExportStats* stats = nullptr);

}  // namespace slim
