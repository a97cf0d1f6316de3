// verify: accuracy of a compressed decoder against its reference on token
// data, and the memory-bandwidth budget check (DESIGN.md "Verify report").
//
// Accuracy compares full-sequence logits position by position:
// KL(P_ref || P_test) per predicted token (mean and p99), top-1 agreement,
// the NLL of both models and their perplexity ratio. Bandwidth uses the
// bytes the runtime counted for one decoded token at the evaluated context
// (weights actually read, scales, KV cache), never the file size.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "libcompress/eval/lm_eval.h"

namespace slim {

struct AccuracyResult {
  uint64_t tokens_evaluated = 0;
  double kl_mean = 0, kl_p99 = 0, top1_agreement = 0;
  double nll_reference = 0, nll = 0, ppl_ratio = 0;
  // Predicted positions [first, last] of each power-of-two bucket (0, 1, 2-3,
  // 4-7, ...): where in a sequence the compressed model drifts.
  struct Bucket {
    int64_t first = 0, last = 0;
    uint64_t tokens = 0;
    double kl_mean = 0, top1_agreement = 0;
  };
  std::vector<Bucket> by_position;
  // Per evaluated sequence (its index in the dataset), for the worst ones.
  struct Sequence {
    size_t index = 0;
    uint64_t tokens = 0;
    double kl_mean = 0, top1_agreement = 0;
  };
  std::vector<Sequence> per_sequence;
};

Expected<AccuracyResult> CompareDecoders(DecoderSession& reference, DecoderSession& test,
                                         const TokenDataset& data, size_t max_sequences = 0,
                                         const EvalProgressFn& progress = nullptr);

// Graphs that are not language models: per graph output, over every feed
// set, the smallest cosine similarity, the largest relative L2 error and the
// share of rows (along the last axis) whose argmax agrees.
struct OutputAgreement {
  std::string name;
  double cosine_min = 1, rel_l2_max = 0, argmax_agreement = 1;
};
struct GraphComparison {
  std::vector<OutputAgreement> outputs;
  uint64_t weight_bytes_per_run = 0;  // weights the compared model read per run
};
Expected<GraphComparison> CompareGraphs(const Graph& reference, const Graph& test,
                                        const std::vector<std::map<std::string, Tensor>>& feeds,
                                        const RuntimeOptions& runtime = RuntimeOptions());

struct DecodeTraffic {
  int64_t context = 0;           // tokens in the cache when the measured steps ran
  uint64_t bytes_per_token = 0;  // weights + KV cache read by one decode step
  uint64_t weight_bytes = 0;
  uint64_t kv_bytes = 0;
  double host_tokens_per_s = 0;  // measured decode speed on this host
  double host_gbps = 0;          // bytes_per_token * host_tokens_per_s
};

// Prefills `prompt`, then decodes `steps` greedy tokens, timing them; the
// byte counts are those of the last step (at context prompt.size()+steps-1).
Expected<DecodeTraffic> MeasureDecodeTraffic(DecoderSession& session, const std::vector<int64_t>& prompt,
                                             int steps);

struct BandwidthBudget {
  double budget_gbps = 0;
  std::string budget_source;                 // "1.5 GB/s per 1B parameters", "--budget-gbps", "target ..."
  std::optional<double> target_tokens_per_s;  // none: figures reported, not checked
};

struct BandwidthResult {
  uint64_t params = 0;
  DecodeTraffic traffic;
  double budget_gbps = 0;
  std::string budget_source;
  double target_tokens_per_s = 0;  // 0 when none
  double required_gbps = 0;        // bytes_per_token * target (0 without target)
  double max_tokens_per_s_under_budget = 0;
  bool checked = false;            // a target rate existed
  bool pass = true;
};

BandwidthResult EvaluateBandwidth(uint64_t params, const DecodeTraffic& traffic, const BandwidthBudget& budget);

}  // namespace slim
