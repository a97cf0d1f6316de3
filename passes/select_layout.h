// select_layout: re-packs quantized weights into the layout family the
// target profile prefers (docs/LAYOUTS.md), after the quantization passes.
//
//   before:  Y = slimpack.MatMulQ(A, Wq)  layout "q4g32_sym_row"  (rows back to back)
//   after:   Y = slimpack.MatMulQ(A, Wq)  layout "q4g32_sym_x8"   (8-row interleaved tiles)
//   formula: none -- codes, scales and zero points are unchanged (unpacked and
//            packed again), so dequantized weights are bit-identical; only the
//            byte order (and padding of N to a multiple of 8) changes.
// The family comes from the option `int4_layout`, or with "target" from the
// target profile (generic, or no target: "row"). int8 has one layout
// (q8_row) and GatherQ tables stay row-major.
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeSelectLayoutPass();

}  // namespace slim
