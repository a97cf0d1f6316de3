// select_layout: re-packs quantized weights into the layout family the
// target profile prefers (docs/LAYOUTS.md), after the quantization passes.
//
//   before:  Y = slimpack.MatMulQ(A, Wq)  layout "q4g32_sym_row"  (rows back to back)
//   after:   Y = slimpack.MatMulQ(A, Wq)  layout "q4g32_sym_x8"   (8-row interleaved tiles)
//   formula: none -- codes, scales and zero points are unchanged (unpacked and
//            packed again), so dequantized weights are bit-identical; only the
//            byte order (and padding of N to a multiple of 8) changes.
// The family comes from the option `int4_layout`, or with "target" from the
// target profile (generic, or no target: "x8"). int8 has one layout
// (q8_row) and GatherQ tables stay row-major.
//
// The option `int8_path` records the compute path q8_row matmuls run
// (attribute compute_path on each MatMulQ): f32-dequant-fma (the default,
// no attribute) or i8-dot, activations rounded to int8 per 32 elements: more
// speed where the float path is compute-bound, more error (docs/LAYOUTS.md).
//
//   before:  Y = slimpack.MatMulQ(A, Wq)  layout "q8_row"
//   after:   Y = slimpack.MatMulQ(A, Wq)  layout "q8_row", compute_path "i8-dot"
//   formula: y = s * sum_blocks xs_b * sum_{e in b} c_e * xq_e   (gemm_q.h)
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeSelectLayoutPass();

}  // namespace slim
