// Language-model evaluation over token datasets: mean negative
// log-likelihood and perplexity, the way calib_reference.json defines them
// (full-sequence forward pass, positions 1..T-1, natural log). verify builds
// on this to compare a compressed model with its reference.
#pragma once

#include <functional>
#include <vector>

#include "calib_data/token_dataset.h"
#include "libcompress/runtime/decoder_session.h"

namespace slim {

struct NllResult {
  uint64_t tokens = 0;  // predicted tokens scored
  double nll_sum = 0;   // nats
  std::vector<double> per_sequence;  // mean NLL of each sequence
  double mean() const { return tokens ? nll_sum / static_cast<double>(tokens) : 0; }
  double perplexity() const;
};

using EvalProgressFn = std::function<void(size_t done, size_t total)>;

// Scores the first `max_sequences` sequences (0 = all).
Expected<NllResult> EvaluateNll(DecoderSession& session, const TokenDataset& data,
                                size_t max_sequences = 0, const EvalProgressFn& progress = nullptr);

}  // namespace slim
