#include "libcompress/eval/graph_scorer.h"

#include <algorithm>

#include "libcompress/metrics/metrics.h"
#include "libcompress/runtime/decoder_session.h"

namespace slim {

TokenKlScorer::TokenKlScorer(const Model& teacher, const TokenDataset& data, size_t first,
                             const RuntimeOptions& runtime)
    : teacher_(teacher), data_(data), first_(first), runtime_(runtime) {}

std::string TokenKlScorer::Describe() const {
  return StrCat("mean KL(teacher || model) per position on calibration sequences from ", first_);
}

Expected<const TokenKlScorer::Subset*> TokenKlScorer::TeacherSubset(size_t sequences, size_t tokens) const {
  std::lock_guard<std::mutex> lock(mu_);
  auto it = subsets_.find({sequences, tokens});
  if (it != subsets_.end()) return &it->second;
  SLIM_ASSIGN_OR_RETURN(auto session, DecoderSession::Create(teacher_, runtime_));
  Subset s;
  for (size_t i = first_; i < data_.sequences.size() && s.windows.size() < sequences; ++i) {
    const auto& seq = data_.sequences[i];
    if (seq.size() < 2) continue;
    s.windows.emplace_back(seq.begin(), seq.begin() + static_cast<std::ptrdiff_t>(std::min(tokens, seq.size())));
    session->Reset();
    auto logits = session->Append(s.windows.back());
    if (!logits.ok()) return logits.status().WithContext(StrCat("scorer: teacher, calibration sequence ", i));
    s.logits.push_back(std::move(*logits));
  }
  SLIM_CHECK_INPUT(!s.windows.empty(), "scorer: no calibration sequence with at least two tokens from ", first_);
  return &subsets_.emplace(std::make_pair(sequences, tokens), std::move(s)).first->second;
}

Expected<double> TokenKlScorer::Divergence(const Graph& candidate, size_t sequences, size_t tokens) const {
  SLIM_ASSIGN_OR_RETURN(const Subset* subset, TeacherSubset(sequences, tokens));
  Model m = teacher_;
  m.graph = candidate;
  // One session for every window (the graph rewrite and plan are made once).
  SLIM_ASSIGN_OR_RETURN(auto session, DecoderSession::Create(m, runtime_));
  double sum = 0;
  size_t count = 0;
  for (size_t w = 0; w < subset->windows.size(); ++w) {
    const auto& win = subset->windows[w];
    session->Reset();
    SLIM_ASSIGN_OR_RETURN(const std::vector<float> q, session->Append(win));
    const size_t v = subset->logits[w].size() / win.size();
    SLIM_CHECK_INPUT(q.size() == subset->logits[w].size(), "scorer: candidate returns ", q.size(),
                     " logits for ", win.size(), " tokens, the teacher ", subset->logits[w].size());
    for (size_t t = 0; t + 1 < win.size(); ++t) {
      sum += metrics::KlDivergence(subset->logits[w].data() + t * v, q.data() + t * v, v);
      ++count;
    }
  }
  return sum / static_cast<double>(count);
}

}  // namespace slim
