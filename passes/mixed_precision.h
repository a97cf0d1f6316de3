// mixed: int4/int8/FP16 chosen per tensor under one budget (bits per
// weight, packed bytes, or bytes read per decoded token).
//
//   1. Trials: every weight the quantization passes take is quantized with
//      every candidate scheme (keep, int8, int4 group 32/64/128 symmetric
//      and asymmetric; the same search, GPTQ with calibration Hessians and
//      pruning masks as quantize_int4/int8; TrialWeightSchemes), and each
//      trial's cost and estimated loss recorded:
//        exact  the model's mean KL(teacher || model) on a few calibration
//               sequences with only that tensor changed (PassContext::scorer,
//               one model run per tensor and scheme);
//        proxy  g_t * e_t(s): e_t(s) the layer's relative output error on the
//               calibration sample (relative weight error without one), g_t
//               the model's KL per unit of e_t, measured once per tensor with
//               its cheapest int4 trial (one model run per tensor); g_t = 1
//               without a scorer (the log says so);
//        both   exact for the allocation, proxy alongside, and their Spearman
//               rank correlation in the report.
//   2. Allocation: a multiple-choice knapsack (numerics/allocate.h) picks the
//      least summed loss whose cost fits; tensors pinned with the per-tensor
//      option `pin` keep their scheme and their cost comes off the budget; a
//      budget below every tensor's cheapest choice is an error naming the
//      smallest reachable figure.
//   3. The chosen schemes are applied by the quantization engine (the report
//      rows are quantize_int4/int8's), and the pass adds the plan, every
//      trial and a Pareto table (estimated loss against budget, from all
//      int4 to all int8) to the report.
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeMixedPrecisionPass();

}  // namespace slim
