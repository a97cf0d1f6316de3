// Hooks for an external fine-tuner: the hook_external recipe step and
// compile --export-distill / --import-distill, driven by the minimal
// fine-tuner tests/tools/distill_hook.cpp. A command that changes nothing
// gives the same bytes as the recipe without the hook; a perturbation is
// accepted and visible; reviving a pruned weight, changing a shape or
// dropping a tensor is exit 2 with no output file.
#include <catch2/catch.hpp>

#include <filesystem>
#include <map>
#include <fstream>
#include <nlohmann/json.hpp>

#include "libcompress/io/safetensors.h"
#include "tests/tools/cli_test_util.h"

using namespace slim_test;

namespace {

const std::string kKjv = kModels + "kjv-byte";
const std::string kHook = SLIMPACK_DISTILL_HOOK;

// 2:4 magnitude pruning, then the hook (when `command` is not empty), then int8.
std::string WriteRecipe(const TempDir& dir, const std::string& name, const std::string& command) {
  const std::string path = dir / (name + ".json");
  std::ofstream r(path);
  r << R"({"passes": [{"pass": "prune", "options": {"method": "magnitude", "pattern": "2:4"}},)";
  if (!command.empty()) r << R"({"pass": "hook_external", "options": {"command": )" << command << "}},";
  r << R"({"pass": "quantize_int8"}]})";
  return path;
}

std::string Cmd(const std::string& args) { return "[\"" + kHook + "\"" + args + "]"; }

}  // namespace

TEST_CASE("hook_external: a command that changes nothing gives byte-identical output, a perturbation is visible",
          "[cli][distill]") {
  const TempDir dir("distill");
  const std::string plain = dir / "plain.slim", same = dir / "same.slim", scaled = dir / "scaled.slim";
  auto base = SlimpackJson("compile " + kKjv + " -o " + plain + " --recipe " + WriteRecipe(dir, "plain", "") + " --quiet");
  auto j = SlimpackJson("compile " + kKjv + " -o " + same + " --recipe " + WriteRecipe(dir, "none", Cmd(", \"none\"")) +
                        " --quiet");
  CHECK(j["passes"][1]["name"] == "hook_external");
  CHECK(j["passes"][1]["counters"]["changed"] == 0);
  CHECK(j["passes"][1]["counters"]["masked"] == 28);  // 4 layers x 7 linear layers
  // The packed data are byte-identical (the header's provenance records the
  // recipe, which names the hook).
  CHECK(j["output"]["content_sha256"] == base["output"]["content_sha256"]);
  j = SlimpackJson("compile " + kKjv + " -o " + scaled + " --recipe " +
                   WriteRecipe(dir, "scale", Cmd(", \"scale\", \"model.norm.weight\", \"1.5\"")) + " --quiet");
  CHECK(j["passes"][1]["counters"]["changed"] == 1);
  CHECK(j["output"]["content_sha256"] != base["output"]["content_sha256"]);
}

TEST_CASE("hook_external: reviving a pruned weight, changing a shape, dropping a tensor, failing or timing out is exit 2 "
          "and writes nothing", "[cli][distill]") {
  const TempDir dir("distill_bad");
  const std::string w = "\"model.layers.0.mlp.down_proj.weight\"";
  const std::vector<std::pair<std::string, std::string>> cases = {
      {"revive", Cmd(", \"revive\", " + w)},
      {"reshape", Cmd(", \"reshape\", " + w)},
      {"drop", Cmd(", \"drop\", " + w)},
      {"exit 1", Cmd(", \"scale\", \"no.such.tensor\", \"2\"")},
      {"missing program", "[\"/nonexistent/finetune\"]"},
  };
  for (const auto& [what, command] : cases) {
    INFO(what);
    const std::string out = dir / "out.slim";
    const Result r = Slimpack("compile " + kKjv + " -o " + out + " --recipe " + WriteRecipe(dir, "bad", command) + " --quiet");
    INFO(r.out);
    CHECK(r.code == 2);
    CHECK(!std::filesystem::exists(out));
    if (what == "revive") CHECK_THAT(r.out, Catch::Contains("pruned weights stay 0") && Catch::Contains("down_proj"));
    if (what == "reshape") CHECK_THAT(r.out, Catch::Contains("shapes are fixed"));
    if (what == "drop") CHECK_THAT(r.out, Catch::Contains("is missing"));
  }
  // A timeout kills the command.
  {
    std::ofstream r(dir / "slow.json");
    r << R"({"passes": [{"pass": "hook_external", "options": {"command": ["sleep", "30"], "timeout_s": 1}}]})";
  }
  const Result r = Slimpack("compile " + kKjv + " -o " + (dir / "slow.slim") + " --recipe " + (dir / "slow.json") + " --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("timeout"));
  // No command at all: refused before the model is read.
  {
    std::ofstream r2(dir / "nocmd.json");
    r2 << R"({"passes": [{"pass": "hook_external"}]})";
  }
  CHECK(Slimpack("compile " + kKjv + " -o " + (dir / "x.slim") + " --recipe " + (dir / "nocmd.json") + " --quiet").code == 2);
}

TEST_CASE("compile --export-distill writes the directory, --import-distill takes a fine-tuned one back", "[cli][distill]") {
  const TempDir dir("distill_dir");
  const std::string recipe = dir / "p.json";
  {
    std::ofstream r(recipe);
    r << R"({"passes": [{"pass": "prune", "options": {"method": "magnitude", "sparsity": 0.5}}]})";
  }
  const std::string d = dir / "exchange";
  REQUIRE(Slimpack("compile " + kKjv + " -o " + (dir / "a.slim") + " --recipe " + recipe + " --export-distill " + d +
                   " --quiet").code == 0);
  std::ifstream mf(d + "/manifest.json");
  const auto manifest = nlohmann::json::parse(mf);
  CHECK(manifest["format"] == "slimpack-distill");
  CHECK(manifest["files"]["student.safetensors"]["sha256"].get<std::string>().size() == 64);
  CHECK(manifest["files"]["masks.safetensors"]["tensors"] == 28);
  auto masks = slim::ReadSafetensors(d + "/masks.safetensors");
  REQUIRE(masks.ok());
  auto student = slim::ReadSafetensors(d + "/student.safetensors");
  REQUIRE(student.ok());
  for (const auto& [name, t] : *student) CHECK(t.dtype() == slim::DType::kFloat32);
  // Exporting into a non-empty directory is refused.
  CHECK(Slimpack("compile " + kKjv + " -o " + (dir / "b.slim") + " --recipe " + recipe + " --export-distill " + d +
                 " --quiet").code == 2);
  // Unchanged: the same data back. Scaled: accepted and different. Revived:
  // exit 2, nothing written.
  auto a = SlimpackJson("compile " + kKjv + " -o " + (dir / "a2.slim") + " --recipe " + recipe + " --quiet");
  auto same = SlimpackJson("compile " + kKjv + " -o " + (dir / "same.slim") + " --recipe " + recipe +
                           " --import-distill " + d + " --quiet");
  CHECK(same["output"]["content_sha256"] == a["output"]["content_sha256"]);
  CHECK(same["provenance"]["import_distill"]["student_sha256"] ==
        manifest["files"]["student.safetensors"]["sha256"]);
  const std::string env = "SLIMPACK_STUDENT=" + d + "/student.safetensors ";
  REQUIRE(std::system((env + kHook + " scale model.norm.weight 2").c_str()) == 0);
  auto tuned = SlimpackJson("compile " + kKjv + " -o " + (dir / "tuned.slim") + " --recipe " + recipe +
                            " --import-distill " + d + " --quiet");
  CHECK(tuned["output"]["content_sha256"] != a["output"]["content_sha256"]);
  REQUIRE(std::system((env + kHook + " revive model.layers.1.self_attn.q_proj.weight").c_str()) == 0);
  const Result r = Slimpack("compile " + kKjv + " -o " + (dir / "bad.slim") + " --recipe " + recipe + " --import-distill " +
                            d + " --quiet");
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("q_proj"));
  CHECK(!std::filesystem::exists(dir / "bad.slim"));
}

TEST_CASE("the distillation directory carries the teacher's top-k logits on the calibration sequences", "[cli][distill]") {
  const TempDir dir("distill_teacher");
  const std::string recipe = dir / "p.json";
  std::ofstream(recipe) << R"({"passes": [{"pass": "prune", "options": {"method": "magnitude", "sparsity": 0.5}}]})";
  const std::string d = dir / "exchange";
  REQUIRE(Slimpack("compile " + kKjv + " -o " + (dir / "a.slim") + " --recipe " + recipe + " --export-distill " + d +
                   " --calib " + kKjv + "/calib_tokens.json --calib-skip 64 --calib-sequences 4 --distill-topk 8 --quiet")
              .code == 0);
  auto teacher = slim::ReadSafetensors(d + "/teacher.safetensors");
  INFO(teacher.status().message());
  REQUIRE(teacher.ok());
  std::map<std::string, slim::Tensor> t(teacher->begin(), teacher->end());
  REQUIRE(t.count("topk_logits"));
  const int64_t tokens = t.at("token_ids").numel();
  CHECK(t.at("sequence_offsets").numel() == 5);
  CHECK(t.at("sequence_offsets").IntAt(4) == tokens);
  CHECK(t.at("topk_logits").shape() == std::vector<int64_t>{tokens, 8});
  CHECK(t.at("topk_ids").shape() == std::vector<int64_t>{tokens, 8});
  // Descending at every position, ids inside the vocabulary.
  const std::vector<float> v = t.at("topk_logits").ToFloatVector();
  const std::vector<int64_t> ids = t.at("topk_ids").ToInt64Vector();
  bool sorted = true, in_vocab = true;
  for (int64_t i = 0; i < tokens; ++i) {
    for (int64_t j = 1; j < 8; ++j) sorted &= v[static_cast<size_t>(i * 8 + j - 1)] >= v[static_cast<size_t>(i * 8 + j)];
  }
  for (int64_t id : ids) in_vocab &= id >= 0 && id < 264;
  CHECK(sorted);
  CHECK(in_vocab);
  std::ifstream mf(d + "/manifest.json");
  CHECK(nlohmann::json::parse(mf)["files"]["teacher.safetensors"]["tensors"] == 4);
}
