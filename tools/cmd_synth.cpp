// slimpack synth: deterministic random Llama-family checkpoints of any shape,
// the test and benchmark models for shapes no bundled model has.
#include <chrono>
#include <cstdio>
#include <optional>

#include "libcompress/io/atomic_file.h"
#include "libcompress/io/synth.h"
#include "libcompress/text/tokenizer.h"
#include "tools/cli.h"

namespace slim::cli {
namespace {

struct SynthOptions {
  std::string preset = "tiny";
  std::string out;
  std::optional<int64_t> hidden, intermediate, layers, heads, kv_heads, vocab, max_positions;
  std::optional<uint64_t> seed;
  std::string architecture;
  bool tie = false;
  std::string tokenizer;
  std::string json;
};

int RunSynth(const SynthOptions& opt) {
  auto spec = SynthPreset(opt.preset);
  if (!spec.ok()) return ReportError(spec.status());
  if (opt.hidden) spec->hidden = *opt.hidden;
  if (opt.intermediate) spec->intermediate = *opt.intermediate;
  if (opt.layers) spec->layers = *opt.layers;
  if (opt.heads) spec->heads = *opt.heads;
  if (opt.kv_heads) spec->kv_heads = *opt.kv_heads;
  if (opt.vocab) spec->vocab = *opt.vocab;
  if (opt.max_positions) spec->max_positions = *opt.max_positions;
  if (opt.seed) spec->seed = *opt.seed;
  if (!opt.architecture.empty()) spec->architecture = opt.architecture;
  if (opt.tie) spec->tie_embeddings = true;
  // --tokenizer: the vocabulary and BOS/EOS come from it, and its files go
  // beside the weights, so text works end to end (prompts, text data).
  std::optional<text::Tokenizer> tok;
  if (!opt.tokenizer.empty()) {
    auto t = text::Tokenizer::Load(opt.tokenizer);
    if (!t.ok()) return ReportError(t.status());
    tok = std::move(*t);
    if (opt.vocab && *opt.vocab < tok->vocab_size()) {
      return ReportError(InvalidInput("--vocab ", *opt.vocab, " is smaller than the tokenizer's ", tok->vocab_size(), " ids"));
    }
    if (!opt.vocab) spec->vocab = tok->vocab_size();
    spec->bos_token_id = tok->bos_id();
    spec->eos_token_id = tok->eos_id();
  }
  const auto t0 = std::chrono::steady_clock::now();
  Status st = WriteSyntheticLlama(*spec, opt.out);
  if (!st.ok()) return ReportError(st);
  if (tok) {
    st = WriteFileAtomic(opt.out + "/tokenizer.json", tok->tokenizer_json());
    if (st.ok() && !tok->config_json().empty()) st = WriteFileAtomic(opt.out + "/tokenizer_config.json", tok->config_json());
    if (!st.ok()) return ReportError(st);
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  const int64_t params = SynthParameterCount(*spec);
  if (HumanOutput(opt.json)) {
    std::printf("wrote %s: %s %s parameters (hidden %lld, %lld layers, FFN %lld, %lld heads, %lld kv heads, "
                "vocab %lld), %.1f s\n",
                opt.out.c_str(), spec->architecture.c_str(), WithCommas(static_cast<uint64_t>(params)).c_str(),
                static_cast<long long>(spec->hidden), static_cast<long long>(spec->layers),
                static_cast<long long>(spec->intermediate), static_cast<long long>(spec->heads),
                static_cast<long long>(spec->kv_heads), static_cast<long long>(spec->vocab), secs);
  }
  nlohmann::json j{{"path", opt.out}, {"parameters", params}, {"architecture", spec->architecture},
                   {"seconds", secs}};
  st = WriteJson(opt.json, j);
  return st.ok() ? kExitOk : ReportError(st);
}

}  // namespace

void AddSynthCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<SynthOptions>();
  std::string presets;
  for (const auto& p : SynthPresetNames()) presets += (presets.empty() ? "" : ", ") + p;
  CLI::App* sub = app.add_subcommand(
      "synth",
      "Write a deterministic random Llama-family checkpoint (config.json + FP16\n"
      "model.safetensors): same seed and shape, byte-identical files. Weights are streamed, so\n"
      "memory stays bounded for any size. Presets: " + presets + ".\n"
      "Example: slimpack synth --preset tinyllama-1.1b -o /tmp/tinyllama   (2.2 GB)");
  sub->add_option("-o,--output", opt->out, "Output directory (created if missing)")->required();
  sub->add_option("--preset", opt->preset, "Shape preset")->capture_default_str();
  sub->add_option("--hidden", opt->hidden, "Override hidden size");
  sub->add_option("--intermediate", opt->intermediate, "Override FFN size");
  sub->add_option("--layers", opt->layers, "Override layer count");
  sub->add_option("--heads", opt->heads, "Override attention heads");
  sub->add_option("--kv-heads", opt->kv_heads, "Override key/value heads");
  sub->add_option("--vocab", opt->vocab, "Override vocabulary size");
  sub->add_option("--max-positions", opt->max_positions, "Override maximum positions");
  sub->add_option("--seed", opt->seed, "Random seed");
  sub->add_option("--architecture", opt->architecture,
                  "LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM (q/k/v biases)");
  sub->add_flag("--tie-embeddings", opt->tie, "Use the embedding as the classifier");
  sub->add_option("--tokenizer", opt->tokenizer,
                  "A Hugging Face tokenizer.json (or its directory): copied beside the weights with its\n"
                  "tokenizer_config.json; the vocabulary size and BOS/EOS ids follow it");
  sub->add_option("--json", opt->json, "Write path and parameters to FILE ('-' = stdout)");
  sub->callback([opt, &exit_code] { exit_code = RunSynth(*opt); });
}

}  // namespace slim::cli
