// slimpack compile MODEL -o OUT: run the pass pipeline (a preset and/or a
// recipe) and write the packed file, with a per-tensor report.
#include <sys/resource.h>
#include <algorithm>
#include <cctype>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <dirent.h>

#include <optional>

#include "calib_data/token_dataset.h"
#include "libcompress/common/file_util.h"
#include "libcompress/eval/calibration.h"
#include "libcompress/eval/distill_signals.h"
#include "libcompress/eval/graph_scorer.h"
#include "calib_data/text_dataset.h"
#include "libcompress/common/sha256.h"
#include "libcompress/io/model_loader.h"
#include "libcompress/io/packed_format.h"
#include "libcompress/metrics/model_stats.h"
#include "libcompress/pipeline/pass_manager.h"
#include "passes/hook_external.h"
#include "libcompress/io/atomic_file.h"
#include "tools/cli.h"
#include "tools/html_report.h"

namespace slim::cli {
namespace {

struct CompileOptions {
  std::string model, out, preset, recipe, calib, target = "generic", report, report_html, json, export_distill,
      import_distill;
  int threads = DefaultThreads();
  size_t calib_skip = 0, calib_sequences = 32, calib_sample_rows = 256, distill_topk = 16;
  int64_t seq_len = kDefaultTextSeqLen;
  // The mixed pass's budget (0 / "" = not given).
  double bpw = 0, tokens_per_s = 0, budget_per_b = 0;
  std::string max_size, max_bytes_per_token;
  int64_t context = 0;
  std::string calib_mode = "one-pass";
  bool quiet = false, verbose = false, strict = false, allow_requantize = false, dry_run = false, page_align = false;
};


// SHA-256 over the bytes the model was read from: the file itself, or for a
// checkpoint directory its *.json and *.safetensors files in name order.
Expected<std::string> SourceHash(const std::string& path) {
  if (!IsDirectory(path)) return Sha256File(path);
  std::vector<std::string> files;
  if (DIR* d = ::opendir(path.c_str())) {
    while (dirent* e = ::readdir(d)) {
      const std::string name = e->d_name;
      auto ends = [&](const std::string& s) {
        return name.size() >= s.size() && name.compare(name.size() - s.size(), s.size(), s) == 0;
      };
      if (ends(".safetensors") || ends(".json")) files.push_back(name);
    }
    ::closedir(d);
  }
  std::sort(files.begin(), files.end());
  Sha256 h;
  for (const auto& f : files) {
    SLIM_ASSIGN_OR_RETURN(auto mapped, MappedFile::Open(path + "/" + f));
    h.Update(f.data(), f.size());
    h.Update(mapped->data(), mapped->size());
  }
  return h.HexDigest();
}

bool NonEmptyDirectory(const std::string& p) {
  DIR* d = ::opendir(p.c_str());
  if (!d) return false;
  bool empty = true;
  while (const dirent* e = ::readdir(d)) {
    if (std::strcmp(e->d_name, ".") != 0 && std::strcmp(e->d_name, "..") != 0) empty = false;
  }
  ::closedir(d);
  return !empty;
}

// Hash of calibration feeds: every set's tensors (name, dtype, shape,
// bytes) in order, so the report records exactly what was run.
std::string FeedsSha256(const std::vector<Feeds>& feeds) {
  Sha256 h;
  for (const Feeds& f : feeds) {
    for (const auto& [name, t] : f) {
      const std::string head = StrCat(name, ":", DTypeName(t.dtype()), ShapeToString(t.shape()), ";");
      h.Update(head.data(), head.size());
      h.Update(t.raw(), t.nbytes());
    }
  }
  return h.HexDigest();
}

// "1.5G", "640M", "123456", "300k": bytes (K/M/G are powers of 1000, KiB/MiB/
// GiB of 1024).
Expected<double> ParseByteSize(const std::string& text, const std::string& flag) {
  size_t used = 0;
  double v = 0;
  try {
    v = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  std::string unit = text.substr(used);
  std::transform(unit.begin(), unit.end(), unit.begin(), [](unsigned char c) { return std::toupper(c); });
  const std::vector<std::pair<std::string, double>> units = {
      {"", 1}, {"B", 1}, {"K", 1e3}, {"KB", 1e3}, {"M", 1e6}, {"MB", 1e6}, {"G", 1e9}, {"GB", 1e9},
      {"KIB", 1024.0}, {"MIB", 1024.0 * 1024}, {"GIB", 1024.0 * 1024 * 1024}};
  for (const auto& [u, f] : units) {
    if (used > 0 && unit == u && v > 0 && std::isfinite(v)) return v * f;
  }
  return InvalidInput(flag, " ", text, ": expected a positive size in bytes, optionally with K, M or G (1000s) "
                      "or KiB, MiB, GiB");
}

// Budget flags go to the recipe's mixed step(s); without one they are an
// error. With --target and no budget, the profile's own decode rate is the
// budget when the mixed step names none.
Status ApplyBudgetFlags(const CompileOptions& opt, const TargetProfile& target, Recipe* recipe) {
  std::vector<PassStep*> mixed;
  for (PassStep& p : recipe->passes) {
    if (p.pass == "mixed") mixed.push_back(&p);
  }
  Options set;
  if (opt.bpw > 0) set.Set("bpw", opt.bpw);
  if (!opt.max_size.empty()) {
    SLIM_ASSIGN_OR_RETURN(const double b, ParseByteSize(opt.max_size, "--max-size"));
    set.Set("max_size", b);
  }
  if (!opt.max_bytes_per_token.empty()) {
    SLIM_ASSIGN_OR_RETURN(const double b, ParseByteSize(opt.max_bytes_per_token, "--max-bytes-per-token"));
    set.Set("max_bytes_per_token", b);
  }
  if (opt.tokens_per_s > 0) set.Set("tokens_per_s", opt.tokens_per_s);
  if (opt.budget_per_b > 0) set.Set("budget_per_b", opt.budget_per_b);
  if (opt.context > 0) set.Set("context", opt.context);
  if (mixed.empty()) {
    SLIM_CHECK_INPUT(set.values().empty(), "--bpw, --max-size, --max-bytes-per-token, --tokens-per-s, "
                     "--budget-per-b and --context set the budget of a mixed pass, and the recipe has none "
                     "(use --preset mixed)");
    return Status::Ok();
  }
  SLIM_CHECK_INPUT(opt.budget_per_b <= 0 || opt.tokens_per_s > 0, "--budget-per-b needs --tokens-per-s");
  const bool flag_budget = opt.bpw > 0 || !opt.max_size.empty() || !opt.max_bytes_per_token.empty() ||
                           opt.tokens_per_s > 0;
  for (PassStep* p : mixed) {
    if (flag_budget) {
      // One budget: a flag replaces whatever budget the recipe named.
      for (const char* k : {"bpw", "max_size", "max_bytes_per_token", "tokens_per_s"}) p->options.Set(k, 0.0);
    } else {
      bool named = false;
      for (const char* k : {"bpw", "max_size", "max_bytes_per_token", "tokens_per_s"}) {
        named |= p->options.Has(k) && p->options.GetFloat(k) > 0;
      }
      if (!named && opt.target != "generic" && target.target_tokens_per_s) {
        p->options.Set("tokens_per_s", *target.target_tokens_per_s);
      }
    }
    for (const auto& [k, v] : set.values()) p->options.Set(k, v);
  }
  return Status::Ok();
}

double PeakRssMiB() {
  rusage u{};
  ::getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_maxrss) / 1024.0;
}

int RunCompile(const CompileOptions& opt) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  auto log = [&](const std::string& line) {
    if (!opt.quiet) std::fprintf(stderr, "%s\n", line.c_str());
  };
  // Everything that can be wrong with the options is checked before the
  // model is read: recipe, preset, target, calibration data.
  Recipe recipe;
  const std::string preset = opt.preset.empty() && opt.recipe.empty() ? "int4" : opt.preset;
  if (!preset.empty()) {
    auto p = GetPreset(preset);
    if (!p.ok()) return ReportError(p.status());
    recipe = *p;
    if (opt.preset.empty()) log("compile: no --preset or --recipe given, using preset int4");
  }
  if (!opt.recipe.empty()) {
    auto r = LoadRecipeFile(opt.recipe);
    if (!r.ok()) return ReportError(r.status());
    if (preset.empty()) {
      recipe = *r;
    } else {
      std::vector<std::string> merge_log;
      recipe = MergeRecipes(recipe, *r, &merge_log);
      for (const auto& l : merge_log) log("compile: " + l);
    }
  }
  auto target = FindTarget(opt.target);
  if (!target.ok()) return ReportError(target.status());
  if (Status st = ApplyBudgetFlags(opt, *target, &recipe); !st.ok()) return ReportError(st);
  // --calib: token sequences (JSON) for a language model, or a directory of
  // ONNX test data sets for any other graph (read once the graph is known).
  std::optional<TokenDataset> calib;
  const bool calib_sets = !opt.calib.empty() && IsDirectory(opt.calib);
  if (!opt.calib.empty() && !calib_sets) {
    // Text data is tokenized with the tokenizer.json beside the source model.
    std::optional<text::Tokenizer> tokenizer;
    if (IsTextDataPath(opt.calib)) {
      const std::string file = text::FindTokenizerFile(opt.model);
      if (file.empty()) {
        return ReportError(InvalidInput(opt.calib, ": text calibration data needs a tokenizer.json beside ",
                                        opt.model, " (or give token-id JSON)"));
      }
      auto t = text::Tokenizer::Load(file);
      if (!t.ok()) return ReportError(t.status());
      tokenizer = std::move(*t);
    }
    auto data = ReadDataset(opt.calib, tokenizer ? &*tokenizer : nullptr, opt.seq_len);
    if (!data.ok()) return ReportError(data.status());
    if (opt.calib_skip >= data->sequences.size()) {
      return ReportError(InvalidInput(opt.calib, ": has ", data->sequences.size(),
                                      " sequences; --calib-skip ", opt.calib_skip, " leaves none"));
    }
    calib = std::move(*data);
  }
  // Teacher signals for an external fine-tuner: computed when the recipe
  // hands the student out (hook_external) or --export-distill asks, from
  // token calibration data.
  const bool wants_teacher =
      !opt.export_distill.empty() || std::any_of(recipe.passes.begin(), recipe.passes.end(),
                                                 [](const PassStep& p) { return p.pass == "hook_external"; });
  std::vector<std::pair<std::string, Tensor>> teacher;
  PipelineOptions popt;
  popt.teacher_signals = &teacher;
  popt.strict = opt.strict;
  popt.allow_requantize = opt.allow_requantize;
  popt.dry_run = opt.dry_run;
  popt.threads = opt.threads;
  popt.target = *target;
  popt.log = log;
  // One progress bar per pass (plain lines when stderr is not a terminal).
  std::string last_pass;
  std::unique_ptr<Progress> bar;
  popt.progress = [&](const ProgressEvent& e) {
    if (e.pass != last_pass) {
      if (bar) bar->Finish();
      last_pass = e.pass;
      bar = std::make_unique<Progress>(StrCat("compile: pass ", e.pass_index + 1, "/", e.pass_count, " ", e.pass),
                                       e.tensor_count, opt.quiet);
    }
    bar->Update(e.tensor_index);
  };
  auto manager = PassManager::Create(recipe, popt);
  if (!manager.ok()) return ReportError(manager.status());
  const bool have_calib = calib || calib_sets;
  // A dry run plans as one-pass, but refuses what the real run would.
  const bool sequential = opt.calib_mode == "sequential" && !opt.dry_run;
  if (opt.calib_mode == "sequential") {
    if (!calib) {
      return ReportError(InvalidInput("--calib-mode sequential runs a decoder layer by layer on token sequences: ",
                                      have_calib ? "--calib is a directory of ONNX test data sets"
                                                 : "add --calib DATA (tokens or text)"));
    }
    for (const PassStep& s : recipe.passes) {
      static const std::set<std::string> kSequential = {"prune", "quantize_int4", "quantize_int8", "select_layout"};
      if (!kSequential.count(s.pass)) {
        return ReportError(InvalidInput("--calib-mode sequential: pass '", s.pass, "' works on the whole model at once; "
                                        "sequential recipes use prune, quantize_int4, quantize_int8 and select_layout"));
      }
      // One threshold over every tensor cannot be drawn one layer at a time.
      if (s.pass == "prune" && s.options.Has("scope") && s.options.GetString("scope") == "global") {
        return ReportError(InvalidInput("--calib-mode sequential: prune scope 'global' ranks all layers together; "
                                        "use scope 'layer' or --calib-mode one-pass"));
      }
    }
  }
  if (manager->NeedsHessians() && !have_calib && !opt.dry_run) {
    return ReportError(InvalidInput(
        "the recipe asks for GPTQ or SparseGPT, and each needs calibration data: add --calib DATA "
        "(or use prune method magnitude / quantization without gptq)"));
  }
  if (manager->NeedsActivations() && !have_calib && !opt.dry_run) {
    return ReportError(InvalidInput("the recipe asks for Wanda pruning or AWQ, which need calibration data: add --calib "
                                    "DATA (or use prune method magnitude / quantization without awq)"));
  }

  // Presets that would gain from calibration data say so, with the gain
  // measured in docs/PASSES.md (kjv-byte, held-out sequences 0..63).
  if (!have_calib && !preset.empty()) {
    const std::string& p = preset;
    if (p == "int4" || p == "int4-uniform" || p == "int4-g128") {
      log(StrCat("compile: no --calib: --preset int4-gptq with calibration data measured 0.37x the mean KL of "
                 "--preset int4 on kjv-byte (0.00206 vs 0.00551; docs/PASSES.md)"));
    } else if (p == "mixed") {
      log("compile: no --calib: the mixed allocator's loss estimates need calibration activations; at --bpw 5.0 "
          "on kjv-byte it measured 0.30x the mean KL with --calib (0.00171 vs 0.00573; docs/PASSES.md)");
    }
  }

  if (!opt.export_distill.empty() && NonEmptyDirectory(opt.export_distill)) {
    return ReportError(
        InvalidInput(opt.export_distill, ": is not empty (--export-distill writes a new or empty directory)"));
  }
  auto model = LoadModel(opt.model);
  if (!model.ok()) return ReportError(model.status());
  {
    std::vector<std::string> inputs = model->files;
    for (const std::string* p : {&opt.calib, &opt.recipe, &opt.target}) {
      if (!p->empty()) inputs.push_back(*p);
    }
    Status st = CheckOutputs({opt.dry_run ? std::string() : opt.out, opt.report, opt.report_html, opt.json}, inputs);
    if (!st.ok()) return ReportError(st);
  }
  auto source_hash = SourceHash(opt.model);
  if (!source_hash.ok()) return ReportError(source_hash.status());

  // Calibration statistics come from the source model, before any pass. A
  // dry run skips them unless a pass plans with them (mixed).
  std::optional<ActivationStats> activations;
  double calib_seconds = 0;
  std::string calib_sha256 = calib ? calib->sha256 : "";
  const bool calibrate = !opt.dry_run || manager->PlansWithCalibration();
  if (have_calib && !calibrate) log("compile: dry run: calibration skipped (the plan does not depend on it)");
  CalibrationOptions copt;
  copt.first_sequence = opt.calib_skip;
  copt.max_sequences = opt.calib_sequences;
  copt.max_sample_rows = opt.calib_sample_rows;
  copt.gram = manager->WantsHessians();
  copt.runtime.threads = opt.threads;
  if (calib_sets && calibrate) {
    const auto tc = Clock::now();
    auto feeds = ReadTestDataSets(opt.calib, model->graph);
    if (!feeds.ok()) return ReportError(feeds.status());
    if (opt.calib_skip >= feeds->size()) {
      return ReportError(InvalidInput(opt.calib, ": has ", feeds->size(), " test data sets; --calib-skip ",
                                      opt.calib_skip, " leaves none"));
    }
    calib_sha256 = FeedsSha256(*feeds);
    auto stats = CollectActivationStats(*model, *feeds, opt.calib, copt);
    if (!stats.ok()) return ReportError(stats.status());
    activations = std::move(*stats);
    calib_seconds = std::chrono::duration<double>(Clock::now() - tc).count();
    log(StrCat("compile: calibration on ", activations->source, ": ", activations->values.size(), " matmul inputs, ",
               activations->conv_inputs.size(), " Conv inputs"));
  }
  if (calib && calibrate && !sequential) {
    const auto tc = Clock::now();
    const size_t available = calib->sequences.size() - opt.calib_skip;
    Progress calib_bar("compile: calibration",
                       opt.calib_sequences == 0 ? available : std::min(available, opt.calib_sequences),
                       opt.quiet);
    auto stats = CollectActivationStats(*model, *calib, opt.calib, copt,
                                        [&](size_t done, size_t) { calib_bar.Update(done); });
    calib_bar.Finish();
    if (!stats.ok()) return ReportError(stats.status());
    activations = std::move(*stats);
    calib_seconds = std::chrono::duration<double>(Clock::now() - tc).count();
    char secs[32];
    std::snprintf(secs, sizeof secs, "%.1f s", calib_seconds);
    log(StrCat("compile: calibration on ", activations->source, ": ", activations->tokens, " tokens, ",
               activations->values.size(), " matmul inputs, ", secs));
  }

  if (wants_teacher && calib && !opt.dry_run) {
    RuntimeOptions ropt;
    ropt.threads = opt.threads;
    auto t = TeacherTopK(*model, *calib, opt.calib_skip, opt.calib_sequences, opt.distill_topk, ropt);
    if (!t.ok()) return ReportError(t.status());
    teacher = std::move(*t);
    log(StrCat("compile: teacher signals: top-", opt.distill_topk, " logits at ", teacher[0].second.numel(),
               " calibration positions"));
  } else if (wants_teacher && !opt.dry_run) {
    log("compile: no token calibration data (--calib): the distillation directory has no teacher signals");
  }
  // Model facts for the passes: the scorer (mixed's model-loss estimates)
  // needs token calibration data and a decoder; the KV cache's cost per
  // context token, and the context a bytes-per-token budget assumes.
  std::optional<TokenKlScorer> scorer;
  if (calib && model->decoder && manager->PlansWithCalibration()) {
    RuntimeOptions ropt;
    ropt.threads = opt.threads;
    scorer.emplace(*model, *calib, opt.calib_skip, ropt);
  }
  const ModelStats source_stats = ComputeModelStats(*model);
  int64_t default_context = model->decoder ? model->decoder->max_positions : 0;
  if (calib) default_context = static_cast<int64_t>(calib->sequences[opt.calib_skip].size());
  manager->SetModelFacts(scorer ? &*scorer : nullptr, source_stats.kv_bytes_per_context_token, default_context);
  Expected<PipelineReport> report = PipelineReport{};
  int64_t sequential_groups = 0;
  if (sequential) {
    // Each decoder layer is compressed on the outputs of the layers before
    // it; the first step also takes the weights of no layer (embeddings).
    auto groups = SequentialGroups(model->graph);
    if (!groups.ok()) return ReportError(groups.status().WithContext(opt.model));
    std::set<std::string> grouped;
    for (const SequentialGroup& g : *groups) grouped.insert(g.weights.begin(), g.weights.end());
    std::vector<PipelineReport> steps;
    std::vector<std::set<std::string>> step_sets;
    const auto tc = Clock::now();
    Status st = CalibrateSequentially(
        *model, *calib, opt.calib, copt,
        [&](const SequentialGroup& group, size_t index, size_t count, const ActivationStats& stats) -> Status {
          std::set<std::string> mine(group.weights.begin(), group.weights.end());
          // Weights of no group (embedding tables) go first: every layer
          // then sees its input through them, as decoding will.
          if (index == 0) {
            for (const std::string& name : model->graph.initializer_names()) {
              if (!grouped.count(name)) mine.insert(name);
            }
            for (const Node& n : model->graph.nodes) {
              if (n.op_type == "Constant" && !n.outputs.empty() && !grouped.count(n.outputs[0])) mine.insert(n.outputs[0]);
            }
          }
          PipelineOptions so = popt;
          last_pass.clear();  // a fresh progress bar per step
          so.step_weights = std::make_shared<const std::set<std::string>>(mine);
          so.allow_requantize = popt.allow_requantize || index > 0;
          SLIM_ASSIGN_OR_RETURN(PassManager m, PassManager::Create(manager->recipe(), so));
          m.SetModelFacts(nullptr, source_stats.kv_bytes_per_context_token, default_context);
          SLIM_ASSIGN_OR_RETURN(PipelineReport r, m.Run(model->graph, &stats));
          log(StrCat("compile: sequential calibration ", index + 1, "/", count, ": ", group.label, ", ",
                     stats.values.size(), " matmul inputs on ", stats.tokens, " tokens"));
          steps.push_back(std::move(r));
          step_sets.push_back(std::move(mine));
          return Status::Ok();
        });
    if (!st.ok()) return ReportError(st.WithContext(opt.model));
    calib_seconds = std::chrono::duration<double>(Clock::now() - tc).count();
    sequential_groups = static_cast<int64_t>(steps.size());
    report = MergeStepReports(steps, step_sets);
  } else {
    report = manager->Run(model->graph, activations ? &*activations : nullptr);
  }
  if (bar) bar->Finish();
  if (!report.ok()) return ReportError(report.status().WithContext(opt.model));
  RefreshDecoderSpec(&*model);

  // The distillation directory of the recipe's result (--export-distill), or
  // a fine-tuned one in its place (--import-distill), validated against
  // what this very compile would export: same names, shapes, masks.
  if (!opt.import_distill.empty() && !opt.dry_run) {
    const DistillContents expected = StudentOf(model->graph, "", "");
    auto student = ReadDistillStudent(opt.import_distill, expected);
    if (!student.ok()) return ReportError(student.status());
    ApplyStudent(model->graph, std::move(*student));
    log(StrCat("compile: imported ", expected.student.size(), " tensors from ", opt.import_distill));
  }
  if (!opt.export_distill.empty() && !opt.dry_run) {
    DistillContents contents = StudentOf(
        model->graph, "slimpack compile --export-distill (after the last recipe step)",
        StrCat("slimpack compile ", opt.model, " --import-distill ", opt.export_distill,
               " -o OUT with the same recipe, calibration and target options"));
    contents.teacher = teacher;
    Status st = WriteDistillDir(opt.export_distill, contents);
    if (!st.ok()) return ReportError(st);
    log(StrCat("compile: wrote ", opt.export_distill, " (", contents.student.size(), " tensors, ",
               contents.masks.size(), " masks)"));
  }

  const ModelStats stats = ComputeModelStats(*model);
  nlohmann::json provenance{{"tool", "slimpack"}, {"tool_version", SLIMPACK_VERSION},
                            {"source_model", opt.model}, {"source_sha256", *source_hash},
                            {"recipe", nlohmann::json::parse(RecipeToJson(manager->recipe()))},
                            {"target", target->name}};
  if (!opt.import_distill.empty() && !opt.dry_run) {
    auto h = Sha256File(opt.import_distill + "/student.safetensors");
    if (!h.ok()) return ReportError(h.status());
    provenance["import_distill"] = {{"dir", opt.import_distill}, {"student_sha256", *h}};
  }
  if (have_calib) {
    provenance["calib_sha256"] = calib_sha256;
    if (calib && !calib->tokenizer_sha256.empty()) provenance["calib_tokenizer_sha256"] = calib->tokenizer_sha256;
    if (activations) provenance["calib_sequences"] = {{"first", opt.calib_skip}, {"count", activations->sequences}};
    if (sequential) {
      const size_t count = opt.calib_sequences == 0 ? calib->sequences.size() - opt.calib_skip
                                                    : std::min(opt.calib_sequences, calib->sequences.size() - opt.calib_skip);
      provenance["calib_sequences"] = {{"first", opt.calib_skip}, {"count", count}};
    }
    provenance["calib_mode"] = sequential ? "sequential" : "one-pass";
  }

  nlohmann::json j = nlohmann::json::parse(PipelineReportToJson(*report));
  j["provenance"] = provenance;
  if (activations) {
    j["calibration"] = {{"data", opt.calib}, {"mode", "one-pass"}, {"sequences", activations->sequences},
                        {"tokens", activations->tokens}, {"values", activations->values.size()},
                        {"sample_rows", opt.calib_sample_rows}, {"seconds", calib_seconds}};
  } else if (sequential) {
    // The steps interleave calibration and passes: seconds covers both.
    j["calibration"] = {{"data", opt.calib}, {"mode", "sequential"}, {"steps", sequential_groups},
                        {"sequences", provenance["calib_sequences"]["count"]}, {"sample_rows", opt.calib_sample_rows},
                        {"seconds_with_passes", calib_seconds}};
  }
  const double budget = target->budget_gbps();
  j["plan"] = {{"weight_bytes", stats.weight_bytes},
               {"bytes_per_token_estimate", stats.weight_bytes_per_token},
               {"target", target->name},
               {"target_usable_gbps", budget},
               {"tokens_per_s_on_target", stats.weight_bytes_per_token
                                              ? budget * 1e9 / static_cast<double>(stats.weight_bytes_per_token)
                                              : 0.0}};
  if (!opt.dry_run) {
    PackedWriteOptions wopt;
    wopt.page_align = opt.page_align;
    wopt.provenance_json = provenance.dump();
    Status st = WritePacked(*model, opt.out, wopt);
    if (!st.ok()) return ReportError(st);
    auto info = ReadPackedInfo(opt.out);
    if (!info.ok()) return ReportError(info.status());
    j["output"] = {{"path", opt.out}, {"bytes", info->file_size}, {"content_sha256", info->content_sha256}};
  }
  j["seconds"] = std::chrono::duration<double>(Clock::now() - t0).count();
  j["peak_rss_mib"] = PeakRssMiB();

  if (HumanOutput(opt.json)) {
    // --quiet keeps stdout to the summary lines; --verbose brings the
    // per-tensor tables back.
    if (opt.quiet && !opt.verbose) {
      std::printf("%s\n", report->Summary().c_str());
    } else {
      std::printf("%s", FormatReportTable(*report).c_str());
    }
    std::printf("bytes/token  %s of weights (estimate); on target %s (%.1f GB/s usable): at most %.2f tokens/s\n",
                HumanBytes(static_cast<double>(stats.weight_bytes_per_token)).c_str(), target->name.c_str(), budget,
                j["plan"]["tokens_per_s_on_target"].get<double>());
    if (opt.dry_run) {
      std::printf("dry run: nothing written\n");
    } else {
      std::printf("wrote %s (%s), sha256 of data %s\n", opt.out.c_str(),
                  HumanBytes(static_cast<double>(j["output"]["bytes"].get<uint64_t>())).c_str(),
                  j["output"]["content_sha256"].get<std::string>().c_str());
    }
    std::printf("time %.1f s, peak RSS %.0f MiB\n", j["seconds"].get<double>(), PeakRssMiB());
  }
  if (!opt.report.empty()) {
    Status st = WriteJson(opt.report, j);
    if (!st.ok()) return ReportError(st);
  }
  if (!opt.report_html.empty()) {
    Status st = WriteFileAtomic(opt.report_html, CompileReportHtml(j, opt.model));
    if (!st.ok()) return ReportError(st);
  }
  Status st = WriteJson(opt.json, j);
  return st.ok() ? kExitOk : ReportError(st);
}

}  // namespace

void AddCompileCommand(CLI::App& app, int& exit_code) {
  auto opt = std::make_shared<CompileOptions>();
  std::string presets;
  for (const auto& p : ListPresets()) presets += "\n  " + p.name + ": " + p.description;
  CLI::App* sub = app.add_subcommand(
      "compile",
      "Compress a model with a preset or recipe and write the packed file (written to a temporary\n"
      "file and renamed, so a failure leaves nothing half-written). Presets:" + presets +
      "\nExamples:\n"
      "  slimpack compile models/kjv-byte -o kjv.int4.slim --preset int4 --report report.json\n"
      "  slimpack compile models/kjv-byte -o kjv.slim --recipe my.json --dry-run");
  sub->add_option("MODEL", opt->model, "Source model: directory, .safetensors or .onnx")->required();
  sub->add_option("-o,--output", opt->out, "Packed output file");
  sub->add_option("--preset", opt->preset, "Built-in recipe (default int4 when no --recipe)");
  sub->add_option("--recipe", opt->recipe, "Recipe JSON (wins over --preset where they overlap)");
  sub->add_option("--calib", opt->calib,
                  "Calibration data: for a language model a token dataset (JSON), plain text (.txt) or\n"
                  "JSON Lines with a \"text\" field (.jsonl), text tokenized with the tokenizer.json beside\n"
                  "the model into windows of --seq-len tokens; for any other graph a directory of ONNX\n"
                  "test data sets (test_data_set_N/input_M.pb). Activation statistics\n"
                  "weight the scale search, drive pruning and refits, and give each tensor's output error\n"
                  "in the report (the data's hash is recorded)");
  sub->add_option("--seq-len", opt->seq_len, "Window length in tokens of text calibration data (.txt, .jsonl)")
      ->capture_default_str()->check(CLI::Range(int64_t{3}, int64_t{1} << 20));
  sub->add_option("--calib-skip", opt->calib_skip, "Skip the first N calibration sequences (hold them out)")
      ->capture_default_str();
  sub->add_option("--calib-sequences", opt->calib_sequences, "Use at most N calibration sequences (0 = all)")
      ->capture_default_str();
  sub->add_option("--calib-sample-rows", opt->calib_sample_rows,
                  "Activation rows kept per matmul input for the output-error figures")
      ->capture_default_str();
  sub->add_option("--calib-mode", opt->calib_mode,
                  "one-pass: statistics of every layer from one run of the source model; sequential: one\n"
                  "decoder layer at a time, each on the outputs of the layers already compressed (GPTQ's\n"
                  "sequential variant), holding one layer's E[xx^T] at a time; about twice the forward\n"
                  "cost. Token or text data; recipes of prune, quantize_int4, quantize_int8, select_layout")
      ->capture_default_str()
      ->check(CLI::IsMember({"one-pass", "sequential"}));
  sub->add_option("--export-distill", opt->export_distill,
                  "Also write the result's float weights, masks and a manifest into DIR (new or empty) for an\n"
                  "external fine-tuner (docs/DISTILL.md); a hook_external recipe step does it mid-recipe");
  sub->add_option("--distill-topk", opt->distill_topk,
                  "Teacher logits kept per calibration position in the distillation directory")
      ->capture_default_str()
      ->check(CLI::Range(1, 1 << 20));
  sub->add_option("--import-distill", opt->import_distill,
                  "Replace the result's float weights by DIR's (a fine-tuned --export-distill directory of the\n"
                  "same compile), validated: same names and shapes, finite, pruned weights still 0");
  sub->add_option("--bpw", opt->bpw, "mixed budget: bits per weight over all weights, scales included")
      ->check(CLI::PositiveNumber);
  sub->add_option("--max-size", opt->max_size, "mixed budget: packed weight bytes (K/M/G suffixes: 640M, 1.2G)");
  sub->add_option("--max-bytes-per-token", opt->max_bytes_per_token,
                  "mixed budget: bytes read per decoded token, weights plus KV cache at --context");
  sub->add_option("--tokens-per-s", opt->tokens_per_s,
                  "mixed budget: decode rate on --target (bytes per token = its usable bandwidth / rate); "
                  "without it, --target's own rate")
      ->check(CLI::PositiveNumber);
  sub->add_option("--budget-per-b", opt->budget_per_b,
                  "with --tokens-per-s: usable bandwidth in GB/s per 1e9 parameters instead of --target's "
                  "(DESIGN.md's rule: 1.5)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--context", opt->context,
                  "mixed, bytes-per-token budgets: context length whose KV cache counts (default: the "
                  "calibration length, else the model's)")
      ->check(CLI::PositiveNumber);
  sub->add_option("--target", opt->target, "Hardware profile name or JSON file (slimpack targets)")
      ->capture_default_str();
  sub->add_option("--report", opt->report, "Write the per-tensor compile report (JSON)");
  sub->add_option("--report-html", opt->report_html,
                  "Write the report as one self-contained HTML page (inline SVG and CSS, opens from disk):\n"
                  "scheme, bits and sparsity per tensor in layer order, bytes before and after, output errors");
  sub->add_option("--threads", opt->threads,
                  "Threads for calibration and quantization (default: this host's cores, at most 8); output\n"
                  "is identical for any count")
      ->check(CLI::Range(1, 256));
  sub->add_flag("--strict", opt->strict, "Any tensor that cannot take the requested scheme is an error");
  sub->add_flag("--allow-requantize", opt->allow_requantize, "Accept an input that is already quantized");
  sub->add_flag("--dry-run", opt->dry_run, "Print the per-tensor plan and sizes; write nothing");
  sub->add_flag("--page-align", opt->page_align, "Align tensors to 4096 bytes (for mmap)");
  sub->add_flag("--quiet", opt->quiet,
                "No progress or log lines on stderr, and only the summary on stdout (no per-tensor tables)");
  sub->add_flag("--verbose", opt->verbose, "Print the per-tensor tables even with --quiet");
  sub->add_option("--json", opt->json, "Write the report to FILE ('-' = stdout)");
  sub->callback([opt, &exit_code] {
    if (!opt->dry_run && opt->out.empty()) {
      exit_code = ReportError(InvalidInput("compile: -o/--output is required unless --dry-run"));
      return;
    }
    exit_code = RunCompile(*opt);
  });
}

}  // namespace slim::cli
