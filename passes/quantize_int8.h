// quantize_int8: int8 weight-only quantization, symmetric, per output channel.
//
//   before:  Y = MatMul(A, W[K,N])          Y = Gemm(A, Cast(W_fp16[N,K]), C, transB=1)
//   after:   Y = slimpack.MatMulQ(A, Wq)    Y = slimpack.MatMulQ(A, Wq, C)
//            Wq: int8-packed, logical [N, K], layout "q8_row"
//   formula: per output row n, s_n = r * max_k |W[n,k]| / 127 (r = 1 for plain
//            round-to-nearest; with `search`, the clip ratio r in [0.5, 1] and a
//            least-squares refinement minimise the row's squared error),
//            q = clamp(round(W / s_n), -127, 127), W' = s_n * q (FP32 scales).
// Embedding tables become slimpack.GatherQ over the same int8 codes. The
// weight-finding rules, roles and fallbacks are in weight_quant.h.
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeQuantizeInt8Pass();

}  // namespace slim
