// The teacher's signals for an external fine-tuner (docs/DISTILL.md): the
// source model run over the calibration sequences, its top-k logits at
// every position. Written into the distillation directory's
// teacher.safetensors by hook_external and compile --export-distill.
#pragma once

#include <string>
#include <utility>
#include <vector>

#include "calib_data/token_dataset.h"
#include "libcompress/io/model.h"
#include "libcompress/runtime/interpreter.h"

namespace slim {

// Tensors, over the T tokens of sequences first..first+count-1 (count 0:
// all that remain), concatenated:
//   token_ids         I64 [T]      the input tokens
//   sequence_offsets  I64 [S + 1]  sequence s is tokens offsets[s]..offsets[s+1]-1
//   topk_logits       F32 [T, k]   the k largest logits at each position, descending
//   topk_ids          I64 [T, k]   their token ids (ties: lower id first)
// Position t's logits predict token t + 1 of its sequence.
Expected<std::vector<std::pair<std::string, Tensor>>> TeacherTopK(const Model& teacher, const TokenDataset& data,
                                                                  size_t first, size_t count, size_t k,
                                                                  const RuntimeOptions& runtime);

}  // namespace slim
