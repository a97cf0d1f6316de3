// slimpack eval MODEL --data TOKENS.json: mean NLL per token and perplexity.
#include <cstdio>

#include "calib_data/text_dataset.h"
#include "libcompress/eval/lm_eval.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/runtime/decoder_session.h"
#include "tools/cli.h"

namespace slim::cli {
namespace {

struct EvalOptions {
  std::string model;
  std::string data;
  size_t limit = 0;
  int64_t seq_len = kDefaultTextSeqLen;
  bool quiet = false;
  int threads = DefaultThreads();
  std::string json;
};

int RunEval(const EvalOptions& opt) {
  auto model = LoadModel(opt.model);
  if (!model.ok()) return ReportError(model.status());
  auto tokenizer = ModelTokenizer(*model);
  if (!tokenizer.ok()) return ReportError(tokenizer.status());
  auto data = ReadDataset(opt.data, *tokenizer ? &**tokenizer : nullptr, opt.seq_len);
  if (!data.ok()) return ReportError(data.status());
  std::vector<std::string> inputs = model->files;
  inputs.push_back(opt.data);
  if (Status st = CheckOutputs({opt.json}, inputs); !st.ok()) return ReportError(st);
  if (model->decoder && model->decoder->vocab_size > 0 && data->vocab_size > model->decoder->vocab_size) {
    return ReportError(InvalidInput(opt.data, ": vocab_size ", data->vocab_size, " exceeds the model's ",
                                    model->decoder->vocab_size));
  }
  RuntimeOptions runtime;
  runtime.threads = opt.threads;
  auto session = DecoderSession::Create(*model, runtime);
  if (!session.ok()) return ReportError(session.status());
  Progress progress("eval", opt.limit ? std::min(opt.limit, data->sequences.size()) : data->sequences.size(),
                    opt.quiet);
  auto r = EvaluateNll(**session, *data, opt.limit, [&](size_t done, size_t) { progress.Update(done); });
  progress.Finish();
  if (!r.ok()) return ReportError(r.status().WithContext(opt.data));
  nlohmann::json j{{"tokens_evaluated", r->tokens}, {"nll", r->mean()}, {"perplexity", r->perplexity()},
                   {"sequences", r->per_sequence.size()}, {"data_sha256", data->sha256}};
  if (!data->tokenizer_sha256.empty()) j["data_tokenizer_sha256"] = data->tokenizer_sha256;
  if (HumanOutput(opt.json)) {
    std::printf("tokens evaluated  %llu (%zu sequences)\n", static_cast<unsigned long long>(r->tokens),
                r->per_sequence.size());
    std::printf("mean NLL          %.4f nats/token\n", r->mean());
    std::printf("perplexity        %.4f\n", r->perplexity());
  }
  Status st = WriteJson(opt.json, j);
  return st.ok() ? kExitOk : ReportError(st);
}

}  // namespace

void AddEvalCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<EvalOptions>();
  CLI::App* sub = app.add_subcommand(
      "eval",
      "Mean negative log-likelihood per predicted token (nats) and perplexity of a model on a\n"
      "token dataset ({\"vocab_size\":..,\"bos\":..,\"sequences\":[[..],..]}), full-sequence pass,\n"
      "positions 1..T-1. Example (bundled model, reference 2.9156):\n"
      "  slimpack eval models/stories260k --data models/stories260k/calib_tokens.json");
  sub->add_option("MODEL", opt->model, "Model directory, .safetensors or .onnx file")->required();
  sub->add_option("--data", opt->data,
                  "Token dataset JSON, or text (.txt, .jsonl with a \"text\" field) tokenized with the\n"
                  "model's tokenizer.json")
      ->required();
  sub->add_option("--seq-len", opt->seq_len, "Window length in tokens of text data")
      ->capture_default_str()->check(CLI::Range(int64_t{3}, int64_t{1} << 20));
  sub->add_option("--limit", opt->limit, "Score only the first N sequences (0 = all)")->capture_default_str();
  sub->add_option("--threads", opt->threads, "Threads for large matrix products (default: this host's cores, at most 8); output is\n"
                  "byte-identical for any count")
      ->check(CLI::Range(1, RuntimeOptions::kMaxThreads));
  sub->add_flag("--quiet", opt->quiet, "No progress on stderr");
  sub->add_option("--json", opt->json,
                  "Write tokens_evaluated, nll, perplexity to FILE ('-' = stdout)");
  sub->callback([opt, &exit_code] { exit_code = RunEval(*opt); });
}

}  // namespace slim::cli
