#include "libcompress/eval/distill_signals.h"

#include <algorithm>
#include <numeric>

#include "libcompress/runtime/decoder_session.h"

namespace slim {

Expected<std::vector<std::pair<std::string, Tensor>>> TeacherTopK(const Model& teacher, const TokenDataset& data,
                                                                  size_t first, size_t count, size_t k,
                                                                  const RuntimeOptions& runtime) {
  SLIM_CHECK_INPUT(teacher.decoder.has_value(), teacher.path, ": teacher signals need a decoder language model");
  SLIM_CHECK_INPUT(first < data.sequences.size(), "teacher signals: calibration starts at sequence ", first, " of ",
                   data.sequences.size());
  const size_t end = count == 0 ? data.sequences.size() : std::min(data.sequences.size(), first + count);
  SLIM_ASSIGN_OR_RETURN(auto session, DecoderSession::Create(teacher, runtime));
  std::vector<int64_t> tokens, offsets = {0}, ids;
  std::vector<float> values;
  for (size_t s = first; s < end; ++s) {
    const std::vector<int64_t>& seq = data.sequences[s];
    session->Reset();
    auto logits = session->Append(seq);
    if (!logits.ok()) return logits.status().WithContext(StrCat("teacher signals: sequence ", s));
    const size_t vocab = logits->size() / seq.size();
    const size_t kk = std::min(k, vocab);
    SLIM_CHECK_INPUT(kk == k, "teacher signals: top-", k, " of a vocabulary of ", vocab);
    std::vector<int64_t> order(vocab);
    for (size_t t = 0; t < seq.size(); ++t) {
      const float* row = logits->data() + t * vocab;
      std::iota(order.begin(), order.end(), 0);
      std::partial_sort(order.begin(), order.begin() + static_cast<std::ptrdiff_t>(k), order.end(),
                        [&](int64_t a, int64_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
      for (size_t j = 0; j < k; ++j) {
        ids.push_back(order[j]);
        values.push_back(row[order[j]]);
      }
    }
    tokens.insert(tokens.end(), seq.begin(), seq.end());
    offsets.push_back(static_cast<int64_t>(tokens.size()));
  }
  const auto T = static_cast<int64_t>(tokens.size()), K = static_cast<int64_t>(k);
  return std::vector<std::pair<std::string, Tensor>>{
      {"token_ids", Tensor::FromVector(DType::kInt64, {T}, tokens)},
      {"sequence_offsets", Tensor::FromVector(DType::kInt64, {static_cast<int64_t>(offsets.size())}, offsets)},
      {"topk_logits", Tensor::FromVector(DType::kFloat32, {T, K}, values)},
      {"topk_ids", Tensor::FromVector(DType::kInt64, {T, K}, ids)}};
}

}  // namespace slim
