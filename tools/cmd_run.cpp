// slimpack run MODEL: generate tokens with the bundled runtime (KV cache when
// the graph has one) and report the speed and the bytes each token reads.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "calib_data/text_dataset.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/metrics/metrics.h"
#include "libcompress/runtime/decoder_session.h"
#include "tools/cli.h"

namespace slim::cli {
namespace {

struct RunOptions {
  std::string model;
  std::string tokens;
  std::string prompt;
  int64_t n = 32;
  float temperature = 0;
  uint64_t seed = 0;
  bool ignore_eos = false;
  int threads = DefaultThreads();
  std::string json;
};

Expected<std::vector<int64_t>> ParseTokenList(const std::string& text) {
  std::vector<int64_t> ids;
  std::istringstream in(text);
  std::string tok;
  while (in >> tok) {
    try {
      size_t used = 0;
      const long long v = std::stoll(tok, &used);
      if (used != tok.size()) throw std::invalid_argument(tok);
      ids.push_back(v);
    } catch (const std::exception&) {
      return InvalidInput("--tokens: '", tok, "' is not a token id (expected integers separated by spaces)");
    }
  }
  return ids;
}

// Deterministic sampling: splitmix64 stream from --seed, so the same seed
// gives the same tokens on every machine.
class Sampler {
 public:
  explicit Sampler(uint64_t seed) : state_(seed) {}
  int64_t Sample(const float* logits, size_t n, float temperature) {
    if (temperature <= 0) return static_cast<int64_t>(metrics::ArgMax(logits, n));
    std::vector<double> p(n);
    double mx = -INFINITY;
    for (size_t i = 0; i < n; ++i) mx = std::max(mx, static_cast<double>(logits[i]) / temperature);
    double sum = 0;
    for (size_t i = 0; i < n; ++i) sum += p[i] = std::exp(static_cast<double>(logits[i]) / temperature - mx);
    double u = Uniform() * sum;
    for (size_t i = 0; i < n; ++i) {
      if ((u -= p[i]) <= 0) return static_cast<int64_t>(i);
    }
    return static_cast<int64_t>(n - 1);
  }

 private:
  double Uniform() {
    uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    return static_cast<double>(z >> 11) * 0x1.0p-53;
  }
  uint64_t state_;
};

std::string BytesToText(const ByteVocab& v, const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) {
    if (id >= v.first_id && id < v.first_id + 256) s += static_cast<char>(id - v.first_id);
  }
  return s;
}

int RunRun(const RunOptions& opt) {
  using Clock = std::chrono::steady_clock;
  auto model = LoadModel(opt.model);
  if (!model.ok()) return ReportError(model.status());
  if (Status st = CheckOutputs({opt.json}, model->files); !st.ok()) return ReportError(st);
  if (opt.n < 1) return ReportError(InvalidInput("-n must be at least 1, got ", opt.n));
  // Text in and out: the model's Hugging Face tokenizer when it has one,
  // else its byte vocabulary.
  auto tokenizer = ModelTokenizer(*model);
  if (!tokenizer.ok()) return ReportError(tokenizer.status());
  const text::Tokenizer* tok = *tokenizer ? &**tokenizer : nullptr;
  auto to_text = [&](const std::vector<int64_t>& ids) -> std::optional<std::string> {
    if (tok) {
      auto t = tok->Decode(ids, /*skip_special=*/true);
      if (t.ok()) return *t;
      return std::nullopt;  // an id outside the tokenizer's vocabulary: no text
    }
    if (model->byte_vocab) return BytesToText(*model->byte_vocab, ids);
    return std::nullopt;
  };
  std::vector<int64_t> prompt;
  if (!opt.prompt.empty()) {
    if (tok) {
      prompt = tok->Encode(opt.prompt, /*add_special=*/true);
    } else if (model->byte_vocab) {
      if (model->decoder && model->decoder->bos_token_id >= 0) prompt.push_back(model->decoder->bos_token_id);
      for (unsigned char c : opt.prompt) prompt.push_back(model->byte_vocab->first_id + c);
    } else {
      return ReportError(InvalidInput(opt.model, ": --prompt needs a tokenizer.json beside the model or a byte "
                                      "vocabulary (slimpack.json, docs/MODELS.md); use --tokens with ids"));
    }
    if (prompt.empty()) return ReportError(InvalidInput("--prompt: the text gives no tokens"));
  }
  if (!opt.tokens.empty()) {
    auto ids = ParseTokenList(opt.tokens);
    if (!ids.ok()) return ReportError(ids.status());
    prompt.insert(prompt.end(), ids->begin(), ids->end());
  }
  if (prompt.empty()) {
    if (!model->decoder || model->decoder->bos_token_id < 0) {
      return ReportError(InvalidInput(opt.model, ": no prompt given and the model declares no BOS token"));
    }
    prompt.push_back(model->decoder->bos_token_id);
  }
  RuntimeOptions runtime;
  runtime.threads = opt.threads;
  auto session = DecoderSession::Create(*model, runtime);
  if (!session.ok()) return ReportError(session.status());
  DecoderSession& s = **session;

  const auto t0 = Clock::now();
  auto logits = s.Append(prompt);
  if (!logits.ok()) return ReportError(logits.status());
  const double prefill_s = std::chrono::duration<double>(Clock::now() - t0).count();

  Sampler sampler(opt.seed);
  const size_t v = static_cast<size_t>(s.vocab_size());
  std::vector<int64_t> generated;
  uint64_t decode_bytes = 0;
  int64_t decode_steps = 0;
  const auto t1 = Clock::now();
  int64_t next = sampler.Sample(logits->data() + (prompt.size() - 1) * v, v, opt.temperature);
  while (true) {
    generated.push_back(next);
    if (static_cast<int64_t>(generated.size()) >= opt.n) break;
    if (!opt.ignore_eos && next == s.spec().eos_token_id) break;
    if (s.spec().max_positions > 0 && s.context_length() >= s.spec().max_positions) break;
    auto step = s.Append({next});
    if (!step.ok()) return ReportError(step.status());
    decode_bytes += s.last_traffic().total();
    ++decode_steps;
    next = sampler.Sample(step->data(), v, opt.temperature);
  }
  const double decode_s = std::chrono::duration<double>(Clock::now() - t1).count();
  // Every generated token but the first needed one decode step.
  const double tokens_per_s = decode_steps > 0 ? static_cast<double>(decode_steps) / decode_s : 0;
  const double prefill_tps = static_cast<double>(prompt.size()) / prefill_s;
  const uint64_t bytes_per_token = decode_steps > 0 ? decode_bytes / static_cast<uint64_t>(decode_steps) : 0;

  nlohmann::json j{{"prompt_tokens", prompt}, {"tokens", generated}, {"tokens_per_s", tokens_per_s},
                   {"prefill_tokens_per_s", prefill_tps}, {"bytes_per_token", bytes_per_token},
                   {"decode_steps", decode_steps}, {"threads", opt.threads},
                   {"kernels", KernelPaths(model->graph)}};
  if (auto t = to_text(generated)) j["text"] = *t;
  if (HumanOutput(opt.json)) {
    std::printf("tokens  ");
    for (int64_t t : generated) std::printf(" %lld", static_cast<long long>(t));
    std::printf("\n");
    std::vector<int64_t> all = prompt;
    all.insert(all.end(), generated.begin(), generated.end());
    if (auto t = to_text(all)) std::printf("text     %s\n", t->c_str());
    std::printf("prefill  %zu tokens, %.1f tokens/s\n", prompt.size(), prefill_tps);
    std::printf("decode   %lld steps, %.2f tokens/s on %d thread%s, %s read per token (weights + KV cache, "
                "counted)\n",
                static_cast<long long>(decode_steps), tokens_per_s, opt.threads, opt.threads == 1 ? "" : "s",
                HumanBytes(static_cast<double>(bytes_per_token)).c_str());
  }
  Status st = WriteJson(opt.json, j);
  return st.ok() ? kExitOk : ReportError(st);
}

}  // namespace

void AddRunCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<RunOptions>();
  CLI::App* sub = app.add_subcommand(
      "run",
      "Generate tokens with the bundled runtime and report tokens/s and the bytes each decoded\n"
      "token reads. Greedy by default; --temperature samples with a deterministic --seed.\n"
      "Examples:\n"
      "  slimpack run models/kjv-byte --prompt 'In the beginning' -n 64\n"
      "  slimpack run models/stories260k/model_kv.onnx --tokens '1 403' -n 16 --json -");
  sub->add_option("MODEL", opt->model, "Model directory, .safetensors or .onnx file")->required();
  sub->add_option("--tokens", opt->tokens, "Prompt token ids, space separated (after --prompt's)");
  sub->add_option("--prompt", opt->prompt,
                  "Prompt text (models with a byte vocabulary; BOS is prepended)");
  sub->add_option("-n", opt->n, "Number of tokens to generate")->capture_default_str();
  sub->add_option("--temperature", opt->temperature, "0 = greedy")->capture_default_str()->check(CLI::Range(0.0, 100.0));
  sub->add_option("--seed", opt->seed, "Sampling seed")->capture_default_str();
  sub->add_flag("--ignore-eos", opt->ignore_eos, "Keep generating after the end-of-sequence token");
  sub->add_option("--threads", opt->threads, "Threads for large matrix products (default: this host's cores, at most 8); output is\n"
                  "byte-identical for any count")
      ->check(CLI::Range(1, RuntimeOptions::kMaxThreads));
  sub->add_option("--json", opt->json,
                  "Write tokens, tokens_per_s, prefill_tokens_per_s, bytes_per_token, threads, kernels to FILE ('-' = stdout)");
  sub->callback([opt, &exit_code] { exit_code = RunRun(*opt); });
}

}  // namespace slim::cli
