// The distillation exchange directory: what slimpack hands an external
// fine-tuner and takes back (docs/DISTILL.md).
//
//   student.safetensors  every trainable tensor as F32, in its stored shape
//   masks.safetensors    U8 keep masks (1 kept, 0 pruned), each the shape of
//                        its student tensor, for the pruned weights
//   teacher.safetensors  the teacher's signals on the calibration data, when
//                        given (top-k logits and their token ids)
//   manifest.json        format and version, the producer (which recipe step),
//                        every student tensor (name, shape, original dtype,
//                        masked), the frozen tensors (not exported: quantized
//                        or integer), SHA-256 of each file, the command that
//                        re-imports
//
// Re-import validates before anything is used: the student file has exactly
// the exported names, each with its shape and dtype F32, every value finite,
// every pruned position exactly 0. A violation is kInvalidInput (exit 2)
// naming the tensor, the rule and, for values, the element index.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/tensor.h"

namespace slim {

struct DistillContents {
  // Trainable tensors in any float dtype, as stored (exported as F32, and
  // re-imported in this dtype).
  std::vector<std::pair<std::string, Tensor>> student;
  // uint8, the shape of the student tensor of the same name.
  std::map<std::string, Tensor> masks;
  std::vector<std::pair<std::string, Tensor>> teacher;
  std::vector<std::string> frozen;
  std::string producer;  // "recipe step 2 (hook_external)"
  std::string reimport;  // how the updated directory comes back
};

// Writes the directory: `dir` must not exist or be empty (it is created);
// every file is written atomically.
Status WriteDistillDir(const std::string& dir, const DistillContents& contents);

// The student tensors read back from `dir`, checked against `expected` (the
// contents that were exported: names, shapes, masks), each converted to the
// dtype it had.
Expected<std::vector<std::pair<std::string, Tensor>>> ReadDistillStudent(const std::string& dir,
                                                                         const DistillContents& expected);

}  // namespace slim
