// The public API (libcompress/include/slimpack/slimpack.h) over the layers.
// The compile path here is the core of `slimpack compile` without its
// command-line extras (progress bars, distillation directories, budgets
// given as flags, dry runs): preset or recipe, optional calibration, passes.
#include "slimpack/slimpack.h"
#include "libcompress/common/file_util.h"

#include <optional>

#include "calib_data/test_data_sets.h"
#include "calib_data/text_dataset.h"
#include "libcompress/eval/calibration.h"
#include "libcompress/eval/graph_scorer.h"
#include "libcompress/eval/verify.h"
#include "libcompress/io/atomic_file.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/metrics/model_stats.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/pipeline/target_profile.h"
#include "libcompress/runtime/decoder_session.h"

#include "slimpack_git.h"  // SLIMPACK_GIT_COMMIT, generated at build time (tools/git_commit.cmake)

namespace slimpack {

struct Model::Impl {
  slim::Model model;
};

struct Session::Impl {
  std::unique_ptr<slim::DecoderSession> session;
};

namespace {

[[noreturn]] void Throw(const slim::Status& st) {
  throw Error(st.code() == slim::StatusCode::kInternal ? 3 : 2, st.message());
}

template <typename T>
T Take(slim::Expected<T> e) {
  if (!e.ok()) Throw(e.status());
  return std::move(e).value();
}

void Check(const slim::Status& st) {
  if (!st.ok()) Throw(st);
}


slim::Recipe RecipeOf(const std::string& recipe) {
  const size_t first = recipe.find_first_not_of(" \t\r\n");
  if (first != std::string::npos && recipe[first] == '{') return Take(slim::ParseRecipe(recipe, "recipe"));
  return Take(slim::GetPreset(recipe));
}

}  // namespace

std::string Version() { return std::string(SLIMPACK_VERSION) + " (git " + SLIMPACK_GIT_COMMIT + ")"; }

Model Model::Load(const std::string& path) {
  Model m;
  m.impl_ = std::make_shared<Impl>();
  m.impl_->model = Take(slim::LoadModel(path));
  return m;
}

const std::string& Model::path() const { return impl_->model.path; }
std::string Model::format() const { return impl_->model.format; }
uint64_t Model::parameters() const { return slim::ComputeModelStats(impl_->model).parameters; }
bool Model::is_decoder() const { return impl_->model.decoder.has_value(); }

std::string Model::Compress(const std::string& recipe_text, const CompressOptions& options) {
  slim::Model& model = impl_->model;
  slim::PipelineOptions popt;
  popt.threads = options.threads;
  popt.target = Take(slim::FindTarget(options.target));
  auto manager = Take(slim::PassManager::Create(RecipeOf(recipe_text), popt));

  std::optional<slim::ActivationStats> activations;
  std::optional<slim::TokenDataset> tokens;
  if (!options.calib.empty()) {
    slim::CalibrationOptions copt;
    copt.first_sequence = options.calib_skip;
    copt.max_sequences = options.calib_sequences;
    copt.gram = manager.WantsHessians();
    copt.runtime.threads = options.threads;
    if (slim::IsDirectory(options.calib)) {
      const auto feeds = Take(slim::ReadTestDataSets(options.calib, model.graph));
      activations = Take(slim::CollectActivationStats(model, feeds, options.calib, copt));
    } else {
      const auto tokenizer = Take(slim::ModelTokenizer(model));
      tokens = Take(slim::ReadDataset(options.calib, tokenizer ? &*tokenizer : nullptr));
      if (options.calib_skip >= tokens->sequences.size())
        throw Error(2, options.calib + ": calib_skip leaves no calibration sequence");
      activations = Take(slim::CollectActivationStats(model, *tokens, options.calib, copt));
    }
  }
  std::optional<slim::TokenKlScorer> scorer;
  if (tokens && model.decoder && manager.PlansWithCalibration()) {
    slim::RuntimeOptions ropt;
    ropt.threads = options.threads;
    scorer.emplace(model, *tokens, options.calib_skip, ropt);
  }
  const slim::ModelStats stats = slim::ComputeModelStats(model);
  int64_t context = model.decoder ? model.decoder->max_positions : 0;
  if (tokens) context = static_cast<int64_t>(tokens->sequences[options.calib_skip].size());
  manager.SetModelFacts(scorer ? &*scorer : nullptr, stats.kv_bytes_per_context_token, context);
  const slim::PipelineReport report = Take(manager.Run(model.graph, activations ? &*activations : nullptr));
  slim::RefreshDecoderSpec(&model);
  return slim::PipelineReportToJson(report);
}

void Model::WritePacked(const std::string& path) const {
  Check(slim::CheckOutputPath(path, impl_->model.files));
  Check(slim::WritePacked(impl_->model, path));
}

Session::Session(const Model& model, int threads) {
  slim::RuntimeOptions r;
  r.threads = threads;
  impl_ = std::make_shared<Impl>();
  impl_->session = Take(slim::DecoderSession::Create(model.impl_->model, r));
}

std::vector<float> Session::Append(const std::vector<int64_t>& tokens) { return Take(impl_->session->Append(tokens)); }
int64_t Session::vocab_size() const { return impl_->session->vocab_size(); }
int64_t Session::context_length() const { return impl_->session->context_length(); }
uint64_t Session::last_bytes_read() const { return impl_->session->last_traffic().total(); }

VerifyResult Verify(const Model& compressed, const Model& reference, const std::string& data, size_t limit,
                    int threads) {
  auto tokenizer = Take(slim::ModelTokenizer(compressed.impl_->model));
  if (!tokenizer) tokenizer = Take(slim::ModelTokenizer(reference.impl_->model));
  const slim::TokenDataset ds = Take(slim::ReadDataset(data, tokenizer ? &*tokenizer : nullptr));
  slim::RuntimeOptions r;
  r.threads = threads;
  auto test = Take(slim::DecoderSession::Create(compressed.impl_->model, r));
  auto ref = Take(slim::DecoderSession::Create(reference.impl_->model, r));
  const slim::AccuracyResult acc = Take(slim::CompareDecoders(*ref, *test, ds, limit));
  // One decode step after the first sequence but its last token, as verify
  // measures traffic (its --decode-steps 1).
  const auto& seq = ds.sequences[0];
  const auto traffic = Take(slim::MeasureDecodeTraffic(
      *test, std::vector<int64_t>(seq.begin(), seq.end() - (seq.size() > 2 ? 1 : 0)), 1));
  VerifyResult v;
  v.tokens_evaluated = acc.tokens_evaluated;
  v.kl_mean = acc.kl_mean;
  v.kl_p99 = acc.kl_p99;
  v.top1_agreement = acc.top1_agreement;
  v.nll = acc.nll;
  v.nll_reference = acc.nll_reference;
  v.ppl_ratio = acc.ppl_ratio;
  v.bytes_per_token = traffic.bytes_per_token;
  return v;
}

}  // namespace slimpack
