#include "libcompress/eval/lm_eval.h"

#include <cmath>

#include "libcompress/metrics/metrics.h"

namespace slim {

double NllResult::perplexity() const { return std::exp(mean()); }

Expected<NllResult> EvaluateNll(DecoderSession& session, const TokenDataset& data,
                                size_t max_sequences, const EvalProgressFn& progress) {
  const size_t n = max_sequences == 0 ? data.sequences.size()
                                      : std::min(max_sequences, data.sequences.size());
  NllResult r;
  for (size_t s = 0; s < n; ++s) {
    const auto& seq = data.sequences[s];
    if (seq.size() < 2) continue;  // nothing to predict
    session.Reset();
    auto logits = session.Append(seq);
    if (!logits.ok()) return logits.status().WithContext(StrCat("sequence ", s));
    const size_t v = static_cast<size_t>(session.vocab_size());
    double seq_sum = 0;
    for (size_t t = 1; t < seq.size(); ++t) {
      seq_sum += metrics::TokenNll(logits->data() + (t - 1) * v, v, seq[t]);
    }
    r.nll_sum += seq_sum;
    r.tokens += seq.size() - 1;
    r.per_sequence.push_back(seq_sum / static_cast<double>(seq.size() - 1));
    if (progress) progress(s + 1, n);
  }
  return r;
}

}  // namespace slim
