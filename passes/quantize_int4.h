// quantize_int4: int4 weight-only quantization, group-wise along the input
// dimension K (group 32, 64 or 128), symmetric or asymmetric, FP16 scales.
//
//   before:  Y = MatMul(A, W[K,N])          Y = Gemm(A, Cast(W_fp16[N,K]), C, transB=1)
//   after:   Y = slimpack.MatMulQ(A, Wq)    Y = slimpack.MatMulQ(A, Wq, C)
//            Wq: int4-packed, logical [N, K], layout "q4g{G}_{sym,asym}_row"
//   formula: for row n and group g (elements gG .. gG+G-1 of K; a last group
//            shorter than G is quantized from its real elements and padded),
//            symmetric:  q in [-8, 7],  W' = s * q,
//            asymmetric: q in [0, 15],  W' = s * (q - z), z in [0, 15],
//            s an FP16 value chosen by a search over clip ratios of the
//            max-abs range plus least-squares refinement (`search`), or the
//            plain max-abs scale (search=false, the round-to-nearest baseline).
// The output projection (lm_head or a tied embedding used as classifier)
// gets `classifier` (default int8: int4 there makes models repeat
// themselves); embeddings get `embeddings` (default int8, GatherQ).
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeQuantizeInt4Pass();

}  // namespace slim
