#include "passes/hook_external.h"

#include <sys/stat.h>

#include <cstdlib>
#include <cstring>

#include <unistd.h>

#include "libcompress/common/subprocess.h"
#include "passes/weight_finder.h"

namespace slim {

DistillContents StudentOf(const Graph& g, std::string producer, std::string reimport) {
  DistillContents c;
  c.producer = std::move(producer);
  c.reimport = std::move(reimport);
  for (const std::string& name : g.initializer_names()) {
    const Tensor& t = *g.FindInitializer(name);
    if (IsFloat(t.dtype()) && t.numel() > 0) {
      c.student.push_back({name, t});
    } else {
      c.frozen.push_back(name);
    }
  }
  // Masks are [N, K]; a weight stored [K, N] gets its mask transposed so a
  // fine-tuner multiplies elementwise.
  const GraphIndex index = GraphIndex::Build(g);
  for (const WeightCandidate& w : FindWeights(g, index)) {
    auto m = g.weight_masks.find(w.name);
    if (m == g.weight_masks.end() || w.constant_node >= 0) continue;
    const Tensor& keep = m->second.keep;
    if (!w.kn) {
      c.masks[w.name] = keep;
      continue;
    }
    const size_t n = static_cast<size_t>(keep.dim(0)), k = static_cast<size_t>(keep.dim(1));
    std::vector<uint8_t> t(n * k);
    const uint8_t* src = keep.data<uint8_t>();
    for (size_t r = 0; r < n; ++r) {
      for (size_t e = 0; e < k; ++e) t[e * n + r] = src[r * k + e];
    }
    c.masks[w.name] = Tensor::FromVector(DType::kUInt8, {static_cast<int64_t>(k), static_cast<int64_t>(n)}, t);
  }
  return c;
}

void ApplyStudent(Graph& g, std::vector<std::pair<std::string, Tensor>> student) {
  for (auto& [name, t] : student) *g.MutableInitializer(name) = std::move(t);
}

namespace {

// Removes the files of a directory this pass created, then the directory.
void RemoveDir(const std::string& dir) {
  for (const char* f : {"student.safetensors", "masks.safetensors", "teacher.safetensors", "manifest.json"}) {
    ::unlink((dir + "/" + f).c_str());
  }
  ::rmdir(dir.c_str());
}

class HookExternalPass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo{
        "hook_external",
        "export the student for an external fine-tuner, run its command, re-import the validated result",
        {
            StringListOption("command", "argument vector of the fine-tuner (no shell); required"),
            IntOption("timeout_s", 3600, 1, 7 * 24 * 3600, "seconds before the command is killed (then exit 2)"),
            StringOption("dir", "", "directory to write (new or empty; kept afterwards). \"\": a temporary one, removed"),
        }};
    return kInfo;
  }

  Status ValidateOptions(const Options& o) const override {
    SLIM_CHECK_INPUT(!o.GetStringList("command").empty(),
                     "pass 'hook_external' option command: required, an argument vector such as [\"./finetune\", "
                     "\"--epochs\", \"1\"]");
    return Status::Ok();
  }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    PassReport report;
    report.pass = ctx.pass_name;
    const StringList command = ctx.options.GetStringList("command");
    DistillContents contents =
        StudentOf(graph, StrCat("recipe step ", ctx.pass_index + 1, " of ", ctx.pass_count, " (", ctx.pass_name, ")"),
                  "automatic: the hook_external step re-imports student.safetensors when the command exits 0");
    if (ctx.teacher_signals) contents.teacher = *ctx.teacher_signals;
    report.counters["exported"] = static_cast<int64_t>(contents.student.size());
    report.counters["masked"] = static_cast<int64_t>(contents.masks.size());
    report.counters["frozen"] = static_cast<int64_t>(contents.frozen.size());
    if (ctx.dry_run) {
      ctx.Log(StrCat("dry run: would export ", contents.student.size(), " tensors and run ", command[0]));
      return report;
    }
    std::string dir = ctx.options.GetString("dir");
    const bool temporary = dir.empty();
    if (temporary) {
      const char* tmp = std::getenv("TMPDIR");
      std::string templ = StrCat(tmp && *tmp ? tmp : "/tmp", "/slimpack-distill.XXXXXX");
      if (!::mkdtemp(templ.data())) return InvalidInput(templ, ": cannot create a temporary directory: ", std::strerror(errno));
      dir = templ;
    }
    auto result = [&]() -> Status {
      SLIM_RETURN_IF_ERROR(WriteDistillDir(dir, contents));
      ctx.Log(StrCat("wrote ", dir, " (", contents.student.size(), " tensors, ", contents.masks.size(),
                     " masks); running ", command[0]));
      std::vector<std::pair<std::string, std::string>> env = {
          {"SLIMPACK_DISTILL_DIR", dir},
          {"SLIMPACK_STUDENT", dir + "/student.safetensors"},
          {"SLIMPACK_MASKS", dir + "/masks.safetensors"},
          {"SLIMPACK_MANIFEST", dir + "/manifest.json"}};
      if (!contents.teacher.empty()) env.push_back({"SLIMPACK_TEACHER", dir + "/teacher.safetensors"});
      SLIM_ASSIGN_OR_RETURN(int code, RunCommand(command, env, static_cast<double>(ctx.options.GetInt("timeout_s"))));
      SLIM_CHECK_INPUT(code == 0, "hook command '", command[0], "' exited with status ", code);
      SLIM_ASSIGN_OR_RETURN(auto student, ReadDistillStudent(dir, contents));
      int64_t changed = 0;
      for (size_t i = 0; i < student.size(); ++i) {
        const Tensor& before = contents.student[i].second;
        changed += std::memcmp(before.raw(), student[i].second.raw(), before.nbytes()) != 0;
      }
      report.counters["changed"] = changed;
      ctx.Log(StrCat("re-imported ", student.size(), " tensors, ", changed, " changed"));
      ApplyStudent(graph, std::move(student));
      return Status::Ok();
    }();
    if (temporary) RemoveDir(dir);
    if (!result.ok()) return result.WithContext(ctx.pass_name);
    return report;
  }
};

}  // namespace

std::unique_ptr<Pass> MakeHookExternalPass() { return std::make_unique<HookExternalPass>(); }

}  // namespace slim
