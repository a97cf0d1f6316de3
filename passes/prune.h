// prune: weight pruning, unstructured or N:M along the input dimension K.
//
//   before:  Y = Gemm(A, Cast(W_fp16[N,K]), transB=1)
//   after:   the same graph; W has exact zeros where its mask
//            (Graph::weight_masks[W]: uint8 [N, K], 1 = kept) says pruned,
//            and later passes keep them zero (quantize_int4/int8 code them
//            as the zero point; GPTQ never revives them).
//   methods (numerics/prune.h):
//     magnitude  prune the smallest |w| of the matrix (no calibration data)
//     wanda      prune the smallest |w_nk| * ||x_k|| within each output row
//     sparsegpt  OBS mask selection with error compensation through the
//                layer's Hessian H = E[x x^T] (GPTQ's factor, shared by the
//                tensors that read one input)
//   scope global: the per-tensor sparsity comes from one threshold on the
//   scores of all selected tensors (|w| for magnitude, |w| * ||x|| for wanda
//   and sparsegpt), so layers that matter less lose more.
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakePrunePass();

}  // namespace slim
