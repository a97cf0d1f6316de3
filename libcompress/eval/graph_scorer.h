// The model-loss scorer compile hands to passes (PassContext::scorer): a
// candidate graph's mean KL(teacher || candidate) per position, over the
// first sequences of the calibration data (from --calib-skip on), as
// verify measures it (every position but each sequence's last).
#pragma once

#include <map>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "calib_data/token_dataset.h"
#include "libcompress/io/model.h"
#include "libcompress/pipeline/pass.h"
#include "libcompress/runtime/interpreter.h"

namespace slim {

class TokenKlScorer final : public GraphScorer {
 public:
  // `teacher` (a decoder) is copied (tensors are shared handles); `data`
  // must outlive the scorer. Sequences first, first + 1, ... are scored.
  TokenKlScorer(const Model& teacher, const TokenDataset& data, size_t first, const RuntimeOptions& runtime);

  // Runs the candidate with the teacher's decoder layout; the teacher's
  // logits for a (sequences, tokens) subset are computed on first use.
  Expected<double> Divergence(const Graph& candidate, size_t sequences, size_t tokens) const override;
  std::string Describe() const override;

 private:
  // The scored token windows and the teacher's logits over them.
  struct Subset {
    std::vector<std::vector<int64_t>> windows;
    std::vector<std::vector<float>> logits;
  };
  Expected<const Subset*> TeacherSubset(size_t sequences, size_t tokens) const;

  Model teacher_;
  const TokenDataset& data_;
  size_t first_;
  RuntimeOptions runtime_;
  mutable std::mutex mu_;
  mutable std::map<std::pair<size_t, size_t>, Subset> subsets_;
};

}  // namespace slim
