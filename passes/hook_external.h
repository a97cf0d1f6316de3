// hook_external: hands the student to an external fine-tuner and takes it
// back, at its place in the recipe (docs/DISTILL.md).
//
//   { "pass": "hook_external",
//     "options": { "command": ["python3", "finetune.py"], "timeout_s": 3600 } }
//
// Writes the distillation directory (io/distill_dir.h: every float
// initializer as F32, the masks of pruned weights in the tensors' stored
// orientation, a manifest) into `dir` (default: a new temporary directory,
// removed afterwards), runs `command` (an argument vector, no shell) with
// the paths in the environment (SLIMPACK_DISTILL_DIR, SLIMPACK_STUDENT,
// SLIMPACK_MASKS, SLIMPACK_MANIFEST), waits at most timeout_s, and when it
// exits 0 re-imports the student, validated (same names, shapes, F32,
// finite, pruned weights still 0) before anything is replaced. Any failure
// is exit 2 and the pipeline writes nothing. Tensors that are not float
// (quantized codes, integer constants) are frozen: listed, not exported.
//
// This is the out-of-process hook; an in-process one is a Pass compiled into
// the program, which sees the teacher (PassContext::source) and the
// calibration statistics: `reconstruct` is the first.
#pragma once

#include <memory>
#include <string>

#include "libcompress/io/distill_dir.h"
#include "libcompress/ir/graph.h"
#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakeHookExternalPass();

// The distillation contents of `g`: its float initializers, their masks
// (oriented like the stored tensors), the rest as frozen.
DistillContents StudentOf(const Graph& g, std::string producer, std::string reimport);

// Replaces the initializers of `g` by `student` (names from StudentOf).
void ApplyStudent(Graph& g, std::vector<std::pair<std::string, Tensor>> student);

}  // namespace slim
