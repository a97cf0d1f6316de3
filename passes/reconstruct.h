// reconstruct: refits the surviving weights of pruned layers so that each
// layer's output matches the teacher's (the graph before the pipeline's
// first pass: the FP16 original) on calibration data; masks are kept.
//
//   before:  W' = W_teacher with the pruned entries of its mask set to 0
//            (magnitude or Wanda: no compensation)
//   after:   W'' = OBS reconstruction of W_teacher under the same mask:
//            columns in order, each pruned weight's error spread over the
//            later kept ones through U, the upper Cholesky factor of H^-1,
//            H = E[x x^T] + damp (numerics/prune.h SparseGptPrune with a
//            fixed mask; GPTQ's factorisation), so that
//            sum_x ||(W_teacher - W'') x||^2 falls; pruned entries stay 0.
// The statistics are those of the source model's inputs (compile --calib),
// not of the already pruned layers before it (see docs/PASSES.md).
// Quantized tensors are left alone: reconstruct runs before quantization.
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeReconstructPass();

}  // namespace slim
