// slimpack verify PACKED --reference MODEL --data TOKENS.json: is the
// compressed model accurate enough, and does it fit the bandwidth budget?
// Exit 0 when every check holds, 1 when one fails (CI gates on this).
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <optional>

#include "calib_data/test_data_sets.h"
#include "calib_data/text_dataset.h"
#include "libcompress/eval/verify.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/metrics/model_stats.h"
#include "libcompress/pipeline/target_profile.h"
#include "libcompress/runtime/decoder_session.h"
#include "libcompress/io/atomic_file.h"
#include "tools/cli.h"
#include "tools/html_report.h"

namespace slim::cli {
namespace {

struct VerifyOptions {
  std::string packed, reference, data, target, json, report_html;
  double budget_per_b = 1.5;
  std::optional<double> budget_gbps, tokens_per_s, max_kl, min_top1, max_ppl_ratio;
  std::optional<double> min_cosine, max_rel_l2, min_argmax;
  size_t limit = 0;
  int64_t seq_len = kDefaultTextSeqLen;
  int decode_steps = 8;
  int threads = DefaultThreads();
  bool quiet = false;
};

struct Check {
  std::string name;
  double limit, value;
  bool pass;
};

// Non-language graphs: outputs compared on ONNX test-data directories.
int RunVerifyOutputs(const VerifyOptions& opt, const Model& packed, const Model& reference) {
  auto feeds = ReadTestDataSets(opt.data, reference.graph);
  if (!feeds.ok()) return ReportError(feeds.status());
  RuntimeOptions runtime;
  runtime.threads = opt.threads;
  auto cmp = CompareGraphs(reference.graph, packed.graph, *feeds, runtime);
  if (!cmp.ok()) return ReportError(cmp.status().WithContext(opt.packed));
  std::vector<Check> checks;
  for (const auto& o : cmp->outputs) {
    if (opt.min_cosine) checks.push_back({o.name + ".cosine_min", *opt.min_cosine, o.cosine_min, o.cosine_min >= *opt.min_cosine});
    if (opt.max_rel_l2) checks.push_back({o.name + ".rel_l2_max", *opt.max_rel_l2, o.rel_l2_max, o.rel_l2_max <= *opt.max_rel_l2});
    if (opt.min_argmax) {
      checks.push_back({o.name + ".argmax_agreement", *opt.min_argmax, o.argmax_agreement, o.argmax_agreement >= *opt.min_argmax});
    }
  }
  bool pass = true;
  for (const auto& c : checks) pass = pass && c.pass;
  nlohmann::json j;
  j["pass"] = pass;
  j["outputs"] = nlohmann::json::array();
  for (const auto& o : cmp->outputs) {
    j["outputs"].push_back({{"name", o.name}, {"cosine_min", o.cosine_min}, {"rel_l2_max", o.rel_l2_max},
                            {"argmax_agreement", o.argmax_agreement}});
  }
  j["bandwidth"] = {{"params", ComputeModelStats(reference).parameters}, {"bytes_per_run", cmp->weight_bytes_per_run}};
  j["checks"] = nlohmann::json::array();
  for (const auto& c : checks) {
    j["checks"].push_back({{"name", c.name}, {"limit", c.limit}, {"value", c.value}, {"pass", c.pass}});
  }
  j["runtime"] = {{"kernels", KernelPaths(packed.graph)}};
  if (HumanOutput(opt.json)) {
    std::printf("outputs on %zu test data sets (%s)\n", feeds->size(), opt.data.c_str());
    for (const auto& o : cmp->outputs) {
      std::printf("  %-20s cosine min %.6f  rel L2 max %.6f  argmax agreement %.2f %%\n", o.name.c_str(),
                  o.cosine_min, o.rel_l2_max, 100 * o.argmax_agreement);
    }
    std::printf("weights read per run  %s\n", HumanBytes(static_cast<double>(cmp->weight_bytes_per_run)).c_str());
    for (const auto& c : checks) {
      std::printf("%-32s %12.6g %12.6g  %s\n", c.name.c_str(), c.limit, c.value, c.pass ? "pass" : "FAIL");
    }
    std::printf("verify: %s\n", pass ? "PASS" : "FAIL");
  }
  Status st = WriteJson(opt.json, j);
  if (st.ok() && !opt.report_html.empty())
    st = WriteFileAtomic(opt.report_html, VerifyReportHtml(j, opt.packed, opt.reference));
  if (!st.ok()) return ReportError(st);
  return pass ? kExitOk : kExitCheckFailed;
}

int RunVerify(const VerifyOptions& opt) {
  auto packed_model = LoadModel(opt.packed);
  if (!packed_model.ok()) return ReportError(packed_model.status());
  auto reference_model = LoadModel(opt.reference);
  if (!reference_model.ok()) return ReportError(reference_model.status());
  {
    std::vector<std::string> inputs = packed_model->files;
    inputs.insert(inputs.end(), reference_model->files.begin(), reference_model->files.end());
    if (!opt.data.empty()) inputs.push_back(opt.data);
    if (!opt.target.empty()) inputs.push_back(opt.target);
    if (Status st = CheckOutputs({opt.json, opt.report_html}, inputs); !st.ok()) return ReportError(st);
  }
  if (!reference_model->decoder) return RunVerifyOutputs(opt, *packed_model, *reference_model);
  // Text data: the packed file's tokenizer, else the reference's.
  auto tokenizer = ModelTokenizer(*packed_model);
  if (tokenizer.ok() && !*tokenizer) tokenizer = ModelTokenizer(*reference_model);
  if (!tokenizer.ok()) return ReportError(tokenizer.status());
  auto data = ReadDataset(opt.data, *tokenizer ? &**tokenizer : nullptr, opt.seq_len);
  if (!data.ok()) return ReportError(data.status());
  std::optional<TargetProfile> target;
  if (!opt.target.empty()) {
    auto t = FindTarget(opt.target);
    if (!t.ok()) return ReportError(t.status());
    target = *t;
  }
  auto& packed = packed_model;
  auto& reference = reference_model;
  RuntimeOptions runtime;
  runtime.threads = opt.threads;
  auto test_session = DecoderSession::Create(*packed, runtime);
  if (!test_session.ok()) return ReportError(test_session.status());
  auto ref_session = DecoderSession::Create(*reference, runtime);
  if (!ref_session.ok()) return ReportError(ref_session.status());

  const size_t n_seq = opt.limit ? std::min(opt.limit, data->sequences.size()) : data->sequences.size();
  Progress progress("verify", n_seq, opt.quiet);
  auto acc = CompareDecoders(**ref_session, **test_session, *data, opt.limit,
                             [&](size_t done, size_t) { progress.Update(done); });
  progress.Finish();
  if (!acc.ok()) return ReportError(acc.status().WithContext(opt.data));

  // Decode traffic at the evaluated context: prefill all but the last
  // decode_steps tokens of the first sequence, then decode.
  const auto& seq = data->sequences[0];
  const size_t prompt_len = seq.size() > static_cast<size_t>(opt.decode_steps) + 1
                                ? seq.size() - static_cast<size_t>(opt.decode_steps) : 1;
  auto traffic = MeasureDecodeTraffic(**test_session, std::vector<int64_t>(seq.begin(), seq.begin() + static_cast<long>(prompt_len)),
                                      opt.decode_steps);
  if (!traffic.ok()) return ReportError(traffic.status());
  const uint64_t params = ComputeModelStats(*reference).parameters;
  BandwidthBudget budget;
  if (opt.budget_gbps) {
    budget.budget_gbps = *opt.budget_gbps;
    budget.budget_source = "--budget-gbps";
  } else if (target) {
    budget.budget_gbps = target->budget_gbps();
    budget.budget_source = StrCat("target ", target->name, ": ", target->dram_gbps, " GB/s x ",
                                  target->usable_fraction, " usable");
  } else {
    budget.budget_gbps = opt.budget_per_b * static_cast<double>(params) / 1e9;
    budget.budget_source = StrCat(opt.budget_per_b, " GB/s per 1B parameters");
  }
  if (opt.tokens_per_s) {
    budget.target_tokens_per_s = *opt.tokens_per_s;
  } else if (target && target->target_tokens_per_s) {
    budget.target_tokens_per_s = *target->target_tokens_per_s;
  }
  const BandwidthResult bw = EvaluateBandwidth(params, *traffic, budget);

  std::vector<Check> checks;
  if (opt.max_kl) checks.push_back({"kl_mean", *opt.max_kl, acc->kl_mean, acc->kl_mean <= *opt.max_kl});
  if (opt.min_top1) {
    checks.push_back({"top1_agreement", *opt.min_top1, acc->top1_agreement, acc->top1_agreement >= *opt.min_top1});
  }
  if (opt.max_ppl_ratio) {
    checks.push_back({"ppl_ratio", *opt.max_ppl_ratio, acc->ppl_ratio, acc->ppl_ratio <= *opt.max_ppl_ratio});
  }
  if (bw.checked) {
    checks.push_back({"bandwidth", bw.target_tokens_per_s, bw.max_tokens_per_s_under_budget, bw.pass});
  }
  bool pass = true;
  for (const auto& c : checks) pass = pass && c.pass;

  nlohmann::json j;
  j["pass"] = pass;
  j["accuracy"] = {{"tokens_evaluated", acc->tokens_evaluated}, {"kl_mean", acc->kl_mean},
                   {"kl_p99", acc->kl_p99}, {"top1_agreement", acc->top1_agreement},
                   {"nll_reference", acc->nll_reference}, {"nll", acc->nll}, {"ppl_ratio", acc->ppl_ratio}};
  j["accuracy"]["by_position"] = nlohmann::json::array();
  for (const auto& b : acc->by_position) {
    j["accuracy"]["by_position"].push_back({{"first", b.first}, {"last", b.last}, {"tokens", b.tokens},
                                            {"kl_mean", b.kl_mean}, {"top1_agreement", b.top1_agreement}});
  }
  // The sequences with the largest mean KL (ties: the earlier sequence).
  std::vector<AccuracyResult::Sequence> worst = acc->per_sequence;
  std::stable_sort(worst.begin(), worst.end(), [](const auto& a, const auto& b) { return a.kl_mean > b.kl_mean; });
  worst.resize(std::min<size_t>(worst.size(), 5));
  j["accuracy"]["worst_sequences"] = nlohmann::json::array();
  for (const auto& w : worst) {
    j["accuracy"]["worst_sequences"].push_back({{"sequence", w.index}, {"tokens", w.tokens}, {"kl_mean", w.kl_mean},
                                                {"top1_agreement", w.top1_agreement}});
  }
  j["bandwidth"] = {{"params", bw.params},
                    {"bytes_per_token", bw.traffic.bytes_per_token},
                    {"bytes_per_token_weights", bw.traffic.weight_bytes},
                    {"bytes_per_token_kv_cache", bw.traffic.kv_bytes},
                    {"context", bw.traffic.context},
                    {"budget_gbps", bw.budget_gbps},
                    {"budget_source", bw.budget_source},
                    {"target_tokens_per_s", bw.target_tokens_per_s},
                    {"required_gbps", bw.required_gbps},
                    {"max_tokens_per_s_under_budget", bw.max_tokens_per_s_under_budget},
                    {"host_tokens_per_s", bw.traffic.host_tokens_per_s},
                    {"host_gbps", bw.traffic.host_gbps},
                    {"target", target ? target->name : ""}};
  j["checks"] = nlohmann::json::array();
  for (const auto& c : checks) {
    j["checks"].push_back({{"name", c.name}, {"limit", c.limit}, {"value", c.value}, {"pass", c.pass}});
  }
  j["runtime"] = {{"kernels", KernelPaths(packed->graph)}, {"threads", opt.threads}};
  j["data"] = {{"path", opt.data}, {"kind", data->kind}, {"sha256", data->sha256}, {"sequences", data->sequences.size()}};
  if (!data->tokenizer_sha256.empty()) j["data"]["tokenizer_sha256"] = data->tokenizer_sha256;

  if (HumanOutput(opt.json)) {
    std::printf("accuracy on %llu tokens (%s)\n", static_cast<unsigned long long>(acc->tokens_evaluated),
                opt.data.c_str());
    std::printf("  KL(ref || model)  mean %.6f  p99 %.6f nats/token\n", acc->kl_mean, acc->kl_p99);
    std::printf("  top-1 agreement   %.2f %%\n", 100 * acc->top1_agreement);
    std::printf("  NLL               %.4f (reference %.4f), perplexity ratio %.4f\n", acc->nll,
                acc->nll_reference, acc->ppl_ratio);
    std::printf("bandwidth (%s parameters)\n", WithCommas(bw.params).c_str());
    std::printf("  bytes/token       %s = %s weights + %s KV cache at context %lld (counted by the runtime)\n",
                HumanBytes(static_cast<double>(bw.traffic.bytes_per_token)).c_str(),
                HumanBytes(static_cast<double>(bw.traffic.weight_bytes)).c_str(),
                HumanBytes(static_cast<double>(bw.traffic.kv_bytes)).c_str(),
                static_cast<long long>(bw.traffic.context));
    std::printf("  budget            %.4g GB/s (%s): at most %.1f tokens/s\n", bw.budget_gbps,
                bw.budget_source.c_str(), bw.max_tokens_per_s_under_budget);
    if (bw.checked) {
      std::printf("  target            %.1f tokens/s needs %.4g GB/s\n", bw.target_tokens_per_s, bw.required_gbps);
    } else {
      std::printf("  target            none (figures reported, not checked; --tokens-per-s or --target sets one)\n");
    }
    std::printf("  this host         %.1f tokens/s, %.3f GB/s\n", bw.traffic.host_tokens_per_s, bw.traffic.host_gbps);
    if (!checks.empty()) {
      std::printf("%-16s %12s %12s  %s\n", "check", "limit", "value", "result");
      for (const auto& c : checks) {
        std::printf("%-16s %12.6g %12.6g  %s\n", c.name.c_str(), c.limit, c.value, c.pass ? "pass" : "FAIL");
      }
    }
    std::printf("verify: %s\n", pass ? "PASS" : "FAIL");
  }
  Status st = WriteJson(opt.json, j);
  if (st.ok() && !opt.report_html.empty())
    st = WriteFileAtomic(opt.report_html, VerifyReportHtml(j, opt.packed, opt.reference));
  if (!st.ok()) return ReportError(st);
  return pass ? kExitOk : kExitCheckFailed;
}

}  // namespace

void AddVerifyCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<VerifyOptions>();
  CLI::App* sub = app.add_subcommand(
      "verify",
      "Compare a packed model with its reference on token data (KL divergence, top-1 agreement,\n"
      "perplexity ratio) and check the memory-bandwidth budget. Thresholds become checks; exit 1\n"
      "when any fails, 0 when all hold. The default budget is 1.5 GB/s per billion parameters: at\n"
      "that rate an int4 model (~0.55 bytes/parameter) decodes at most ~2.7 tokens/s, FP16 ~0.75.\n"
      "Example:\n"
      "  slimpack verify kjv.int4.slim --reference models/kjv-byte \\\n"
      "      --data models/kjv-byte/calib_tokens.json --max-kl 0.05 --min-top1 0.9 --json report.json");
  sub->add_option("PACKED", opt->packed, "Compressed model (packed file, or any model)")->required();
  sub->add_option("--reference", opt->reference, "The original model")->required();
  sub->add_option("--data", opt->data,
                  "Language models: token dataset JSON, or text (.txt, .jsonl with a \"text\" field)\n"
                  "tokenized with the model's tokenizer.json; other graphs: an ONNX test-data directory")
      ->required();
  sub->add_option("--seq-len", opt->seq_len, "Window length in tokens of text data")
      ->capture_default_str()->check(CLI::Range(int64_t{3}, int64_t{1} << 20));
  sub->add_option("--limit", opt->limit, "Use only the first N sequences (0 = all)")->capture_default_str();
  sub->add_option("--target", opt->target, "Hardware profile (budget = its usable bandwidth)");
  sub->add_option("--budget-per-b", opt->budget_per_b, "Budget in GB/s per billion parameters")
      ->capture_default_str()->check(CLI::PositiveNumber);
  sub->add_option("--budget-gbps", opt->budget_gbps, "Absolute budget in GB/s")->check(CLI::PositiveNumber);
  sub->add_option("--tokens-per-s", opt->tokens_per_s, "Target decode rate; enables the bandwidth check")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-kl", opt->max_kl, "Check: mean KL(ref || model) per token at most X nats");
  sub->add_option("--min-top1", opt->min_top1, "Check: top-1 agreement at least X (0..1)")->check(CLI::Range(0.0, 1.0));
  sub->add_option("--max-ppl-ratio", opt->max_ppl_ratio, "Check: perplexity ratio at most X");
  sub->add_option("--min-cosine", opt->min_cosine, "Check (other graphs): every output's cosine at least X");
  sub->add_option("--max-rel-l2", opt->max_rel_l2, "Check (other graphs): every output's relative L2 at most X");
  sub->add_option("--min-argmax", opt->min_argmax, "Check (other graphs): argmax agreement at least X (0..1)")
      ->check(CLI::Range(0.0, 1.0));
  sub->add_option("--decode-steps", opt->decode_steps, "Decode steps timed for the traffic figures")
      ->capture_default_str()->check(CLI::Range(1, 4096));
  sub->add_option("--threads", opt->threads,
                  "Threads for large matrix products of language models (default: this host's cores,\n"
                  "at most 8); every figure but the host's tokens/s is identical for any count")
      ->check(CLI::Range(1, RuntimeOptions::kMaxThreads));
  sub->add_flag("--quiet", opt->quiet, "No progress on stderr");
  sub->add_option("--json", opt->json, "Write the report (DESIGN.md keys) to FILE ('-' = stdout)");
  sub->add_option("--report-html", opt->report_html,
                  "Write the report as one self-contained HTML page: checks, KL and top-1 by position, the\n"
                  "worst sequences, bytes per token against the budget, provenance");
  sub->callback([opt, &exit_code] { exit_code = RunVerify(*opt); });
}

}  // namespace slim::cli
