#include "libcompress/eval/verify.h"

#include <chrono>
#include <algorithm>
#include <cmath>

#include "libcompress/metrics/metrics.h"

namespace slim {

Expected<AccuracyResult> CompareDecoders(DecoderSession& reference, DecoderSession& test,
                                         const TokenDataset& data, size_t max_sequences,
                                         const EvalProgressFn& progress) {
  SLIM_CHECK_INPUT(reference.vocab_size() == 0 || test.vocab_size() == 0 ||
                       reference.vocab_size() == test.vocab_size(),
                   "reference vocabulary ", reference.vocab_size(), " differs from the model's ",
                   test.vocab_size());
  const size_t n = max_sequences == 0 ? data.sequences.size() : std::min(max_sequences, data.sequences.size());
  std::vector<double> kls;
  double nll_ref = 0, nll_test = 0;
  uint64_t agree = 0;
  AccuracyResult r;
  std::vector<double> bucket_kl;
  std::vector<uint64_t> bucket_agree, bucket_tokens;
  for (size_t s = 0; s < n; ++s) {
    const auto& seq = data.sequences[s];
    if (seq.size() < 2) continue;
    reference.Reset();
    test.Reset();
    auto lr = reference.Append(seq);
    if (!lr.ok()) return lr.status().WithContext(StrCat("reference, sequence ", s));
    auto lt = test.Append(seq);
    if (!lt.ok()) return lt.status().WithContext(StrCat("sequence ", s));
    const size_t v = static_cast<size_t>(reference.vocab_size());
    AccuracyResult::Sequence ss;
    ss.index = s;
    for (size_t t = 0; t + 1 < seq.size(); ++t) {
      const float* pr = lr->data() + t * v;
      const float* q = lt->data() + t * v;
      const double kl = metrics::KlDivergence(pr, q, v);
      const bool same = metrics::ArgMax(pr, v) == metrics::ArgMax(q, v);
      kls.push_back(kl);
      agree += same;
      nll_ref += metrics::TokenNll(pr, v, seq[t + 1]);
      nll_test += metrics::TokenNll(q, v, seq[t + 1]);
      // Bucket b holds positions [2^(b-1), 2^b - 1]; bucket 0 position 0.
      size_t b = 0;
      while ((size_t{1} << b) <= t) ++b;
      if (b >= bucket_kl.size()) {
        bucket_kl.resize(b + 1, 0);
        bucket_agree.resize(b + 1, 0);
        bucket_tokens.resize(b + 1, 0);
      }
      bucket_kl[b] += kl;
      bucket_agree[b] += same;
      ++bucket_tokens[b];
      ss.kl_mean += kl;
      ss.top1_agreement += same;
      ++ss.tokens;
    }
    ss.kl_mean /= static_cast<double>(ss.tokens);
    ss.top1_agreement /= static_cast<double>(ss.tokens);
    r.per_sequence.push_back(ss);
    if (progress) progress(s + 1, n);
  }
  SLIM_CHECK_INPUT(!kls.empty(), "the dataset has no sequence with at least two tokens");
  for (size_t b = 0; b < bucket_kl.size(); ++b) {
    if (bucket_tokens[b] == 0) continue;
    AccuracyResult::Bucket k;
    k.first = b == 0 ? 0 : int64_t{1} << (b - 1);
    k.last = b == 0 ? 0 : (int64_t{1} << b) - 1;
    k.tokens = bucket_tokens[b];
    k.kl_mean = bucket_kl[b] / static_cast<double>(k.tokens);
    k.top1_agreement = static_cast<double>(bucket_agree[b]) / static_cast<double>(k.tokens);
    r.by_position.push_back(k);
  }
  r.tokens_evaluated = kls.size();
  const double count = static_cast<double>(kls.size());
  double kl_sum = 0;
  for (double k : kls) kl_sum += k;
  r.kl_mean = kl_sum / count;
  r.kl_p99 = metrics::Percentile(kls, 0.99);
  r.top1_agreement = static_cast<double>(agree) / count;
  r.nll_reference = nll_ref / count;
  r.nll = nll_test / count;
  r.ppl_ratio = std::exp(r.nll - r.nll_reference);
  return r;
}

Expected<GraphComparison> CompareGraphs(const Graph& reference, const Graph& test,
                                        const std::vector<std::map<std::string, Tensor>>& feeds,
                                        const RuntimeOptions& runtime) {
  SLIM_ASSIGN_OR_RETURN(auto ref, Interpreter::Create(reference, runtime));
  SLIM_ASSIGN_OR_RETURN(auto run, Interpreter::Create(test, runtime));
  GraphComparison r;
  std::vector<uint64_t> rows(reference.outputs.size(), 0), agree(reference.outputs.size(), 0);
  for (const auto& o : reference.outputs) r.outputs.push_back({o.name});
  for (size_t f = 0; f < feeds.size(); ++f) {
    SLIM_ASSIGN_OR_RETURN(auto expected, ref->Run(feeds[f]));
    RunStats stats;
    SLIM_ASSIGN_OR_RETURN(auto got, run->Run(feeds[f], {}, &stats));
    r.weight_bytes_per_run = stats.weight_bytes_read;
    for (size_t i = 0; i < r.outputs.size(); ++i) {
      const std::string& name = r.outputs[i].name;
      auto it = got.find(name);
      SLIM_CHECK_INPUT(it != got.end(), "the compressed model has no output '", name, "'");
      const Tensor& a = expected.at(name);
      const Tensor& b = it->second;
      SLIM_CHECK_INPUT(a.shape() == b.shape(), "output '", name, "': shape ", ShapeToString(b.shape()),
                       " differs from the reference's ", ShapeToString(a.shape()));
      const std::vector<float> x = a.ToFloatVector(), y = b.ToFloatVector();
      OutputAgreement& o = r.outputs[i];
      o.cosine_min = std::min(o.cosine_min, metrics::Cosine(x.data(), y.data(), x.size()));
      o.rel_l2_max = std::max(o.rel_l2_max, metrics::RelativeL2(x.data(), y.data(), x.size()));
      const size_t width = a.rank() ? static_cast<size_t>(a.dim(a.rank() - 1)) : 1;
      for (size_t row = 0; width > 0 && row + width <= x.size(); row += width) {
        agree[i] += metrics::ArgMax(x.data() + row, width) == metrics::ArgMax(y.data() + row, width);
        ++rows[i];
      }
    }
  }
  for (size_t i = 0; i < r.outputs.size(); ++i) {
    r.outputs[i].argmax_agreement = rows[i] ? static_cast<double>(agree[i]) / static_cast<double>(rows[i]) : 1;
  }
  return r;
}

Expected<DecodeTraffic> MeasureDecodeTraffic(DecoderSession& session, const std::vector<int64_t>& prompt,
                                             int steps) {
  SLIM_CHECK_INPUT(!prompt.empty() && steps >= 1, "traffic measurement needs a prompt and at least one step");
  session.Reset();
  auto logits = session.Append(prompt);
  if (!logits.ok()) return logits.status();
  const size_t v = static_cast<size_t>(session.vocab_size());
  int64_t next = static_cast<int64_t>(metrics::ArgMax(logits->data() + (prompt.size() - 1) * v, v));
  DecodeTraffic t;
  const auto t0 = std::chrono::steady_clock::now();
  for (int i = 0; i < steps; ++i) {
    t.context = session.context_length();
    auto step = session.Append({next});
    if (!step.ok()) return step.status();
    next = static_cast<int64_t>(metrics::ArgMax(step->data(), v));
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  t.weight_bytes = session.last_traffic().weight_bytes;
  t.kv_bytes = session.last_traffic().kv_bytes;
  t.bytes_per_token = t.weight_bytes + t.kv_bytes;
  t.host_tokens_per_s = secs > 0 ? steps / secs : 0;
  t.host_gbps = static_cast<double>(t.bytes_per_token) * t.host_tokens_per_s / 1e9;
  return t;
}

BandwidthResult EvaluateBandwidth(uint64_t params, const DecodeTraffic& traffic, const BandwidthBudget& budget) {
  BandwidthResult r;
  r.params = params;
  r.traffic = traffic;
  r.budget_gbps = budget.budget_gbps;
  r.budget_source = budget.budget_source;
  const double bpt = static_cast<double>(traffic.bytes_per_token);
  r.max_tokens_per_s_under_budget = bpt > 0 ? budget.budget_gbps * 1e9 / bpt : 0;
  if (budget.target_tokens_per_s) {
    r.checked = true;
    r.target_tokens_per_s = *budget.target_tokens_per_s;
    r.required_gbps = bpt * r.target_tokens_per_s / 1e9;
    r.pass = r.max_tokens_per_s_under_budget >= r.target_tokens_per_s;
  }
  return r;
}

}  // namespace slim
