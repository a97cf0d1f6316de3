// Recipes, presets, option validation and pipeline construction: every bad
// input fails before any pass runs, naming what is wrong.
#include <catch2/catch.hpp>

#include "libcompress/pipeline/options.h"
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/pipeline/registry.h"

namespace slim {
namespace {

std::string ParseError(const std::string& json) {
  auto r = ParseRecipe(json, "r.json");
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInvalidInput);
  CHECK(r.status().message().find("r.json") != std::string::npos);
  return r.status().message();
}

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

}  // namespace

TEST_CASE("registry lists the quantization passes with declared options", "[pipeline]") {
  REQUIRE(FindPass("quantize_int8") != nullptr);
  REQUIRE(FindPass("quantize_int4") != nullptr);
  CHECK(FindPass("nope") == nullptr);
  for (const Pass* p : AllPasses()) {
    CHECK_FALSE(p->info().summary.empty());
    for (const auto& o : p->info().options) {
      INFO(p->info().name << "." << o.key);
      CHECK_FALSE(o.help.empty());
      CHECK(CheckOptionValue(p->info().name, o, o.default_value).ok());
    }
  }
  const std::string d = DescribePass(FindPass("quantize_int4")->info());
  CHECK(Contains(d, "group_size (int {32, 64, 128}, default 32, per tensor)"));
  CHECK(Contains(d, "classifier (enum {int8, int4, keep}, default int8"));
}

TEST_CASE("option values are checked against type, range and choices", "[pipeline][options]") {
  const Pass& p = *FindPass("quantize_int4");
  Options given;
  given.Set("group_size", int64_t{64});
  auto ok = ResolveOptions(p, given);
  REQUIRE(ok.ok());
  CHECK(ok->GetInt("group_size") == 64);
  CHECK(ok->GetBool("search") == true);          // default filled
  CHECK(ok->GetString("classifier") == "int8");  // default filled

  Options bad_group;
  bad_group.Set("group_size", int64_t{48});
  auto e1 = ResolveOptions(p, bad_group);
  REQUIRE_FALSE(e1.ok());
  CHECK(Contains(e1.status().message(), "pass 'quantize_int4' option 'group_size'"));
  CHECK(Contains(e1.status().message(), "48 is not one of {32, 64, 128}"));

  Options unknown;
  unknown.Set("bitz", int64_t{4});
  auto e2 = ResolveOptions(p, unknown);
  REQUIRE_FALSE(e2.ok());
  CHECK(Contains(e2.status().message(), "has no option 'bitz'"));

  Options wrong_type;
  wrong_type.Set("search", std::string("yes"));
  CHECK_FALSE(ResolveOptions(p, wrong_type).ok());

  Options range;
  range.Set("clip_steps", int64_t{-1});
  auto e3 = ResolveOptions(p, range);
  REQUIRE_FALSE(e3.ok());
  CHECK(Contains(e3.status().message(), "clip_steps"));

  const OptionSpec* gs = p.info().FindOption("group_size");
  CHECK(ParseOptionText("quantize_int4", *gs, "128").ok());
  CHECK_FALSE(ParseOptionText("quantize_int4", *gs, "12x").ok());
  CHECK_FALSE(ParseOptionText("quantize_int4", *gs, "16").ok());
  const OptionSpec* sym = p.info().FindOption("symmetric");
  CHECK(std::get<bool>(*ParseOptionText("quantize_int4", *sym, "false")) == false);
  CHECK_FALSE(ParseOptionText("quantize_int4", *sym, "maybe").ok());
}

TEST_CASE("recipe parsing reports what and where", "[pipeline][recipe]") {
  auto r = ParseRecipe(R"({"description": "d", "exclude": "lm_head",
      "passes": [{"pass": "quantize_int4", "options": {"group_size": 64},
                  "overrides": [{"pattern": "down_proj", "options": {"scheme": "int8"}}]}]})",
                       "r.json");
  INFO(r.status().message());
  REQUIRE(r.ok());
  CHECK(r->exclude == std::vector<std::string>{"lm_head"});
  REQUIRE(r->passes.size() == 1);
  CHECK(r->passes[0].options.GetInt("group_size") == 64);
  REQUIRE(r->passes[0].overrides.size() == 1);
  CHECK(r->passes[0].overrides[0].first == "down_proj");

  CHECK(Contains(ParseError("{"), "not valid JSON"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int5"}]})"),
                 "passes[0]: unknown pass 'quantize_int5'"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int4", "options": {"groupsize": 32}}]})"),
                 "pass 'quantize_int4' has no option 'groupsize'"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int4", "options": {"group_size": "32"}}]})"),
                 "option 'group_size' must be an integer"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int8", "options": {"classifier": "int4"}}]})"),
                 "'int4' is not one of {int8, keep}"));
  const std::string bad_regex =
      ParseError(R"({"passes": [{"pass": "quantize_int4", "exclude": ["ok", "layers\\.(0"]}]})");
  CHECK(Contains(bad_regex, "passes[0].exclude[1]"));
  CHECK(Contains(bad_regex, "bad regular expression 'layers\\.(0'"));
  CHECK(Contains(ParseError(R"({"include": "[", "passes": [{"pass": "quantize_int4"}]})"),
                 "include: bad regular expression '['"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int4",
      "overrides": [{"pattern": "(", "options": {}}]}]})"), "overrides[0].pattern"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int4",
      "overrides": [{"pattern": "x", "options": {"clip_steps": 8}}]}]})"),
                 "option 'clip_steps' applies to the whole pass, not per tensor"));
  CHECK(Contains(ParseError(R"({"passes": [], "stict": true})"), "unknown key 'stict'"));
  CHECK(Contains(ParseError(R"({"passes": [{"pass": "quantize_int4", "optons": {}}]})"),
                 "unknown key 'optons'"));
  CHECK(Contains(ParseError(R"({"description": "no passes"})"), "'passes' must be a list"));
}

TEST_CASE("presets are built-in recipes", "[pipeline][presets]") {
  std::vector<std::string> names;
  for (const auto& p : ListPresets()) names.push_back(p.name);
  CHECK(names == std::vector<std::string>{"int8", "int4", "int4-uniform", "int4-g128", "int4-gptq", "mixed", "prune50",
                                          "prune50-int8", "prune24", "prune24-int4"});
  for (const auto& name : names) {
    auto r = GetPreset(name);
    INFO(name << ": " << r.status().message());
    REQUIRE(r.ok());
    auto pm = PassManager::Create(*r, {});
    CHECK(pm.ok());
  }
  auto int4 = GetPreset("int4");
  CHECK(int4->passes[0].pass == "quantize_int4");
  CHECK(int4->passes[0].options.GetInt("group_size") == 32);
  CHECK(int4->passes[0].options.GetString("levels") == "nl");
  CHECK(int4->passes[0].options.GetBool("search"));
  CHECK(GetPreset("int4-uniform")->passes[0].options.GetString("levels") == "uniform");
  CHECK(GetPreset("int4-uniform")->passes[0].options.GetBool("symmetric"));
  CHECK(int4->passes[0].options.GetString("classifier") == "int8");
  CHECK(GetPreset("int4-g128")->passes[0].options.GetInt("group_size") == 128);
  CHECK_FALSE(int4->passes[0].options.GetBool("gptq"));
  auto gptq = GetPreset("int4-gptq");
  CHECK(gptq->passes[0].options.GetBool("gptq"));
  CHECK(PassManager::Create(*gptq, {})->NeedsHessians());
  CHECK_FALSE(PassManager::Create(*int4, {})->NeedsHessians());
  CHECK(GetPreset("int8")->passes[0].pass == "quantize_int8");
  auto unknown = GetPreset("int3");
  REQUIRE_FALSE(unknown.ok());
  CHECK(Contains(unknown.status().message(), "presets: int8, int4, int4-uniform, int4-g128, int4-gptq"));
}

TEST_CASE("preset + recipe: the recipe wins where they overlap, and says so", "[pipeline][presets]") {
  auto preset = GetPreset("int4");
  REQUIRE(preset.ok());
  auto recipe = ParseRecipe(R"({"strict": true, "exclude": ["lm_head"],
      "passes": [{"pass": "quantize_int4", "options": {"group_size": 128, "search": true},
                  "overrides": [{"pattern": "down", "options": {"scheme": "int8"}}]},
                 {"pass": "quantize_int8", "include": "lm_head"}]})",
                            "mine.json");
  REQUIRE(recipe.ok());
  std::vector<std::string> log;
  Recipe merged = MergeRecipes(*preset, *recipe, &log);
  REQUIRE(merged.passes.size() == 3);
  CHECK(merged.passes[0].pass == "quantize_int4");
  CHECK(merged.passes[0].options.GetInt("group_size") == 128);
  CHECK(merged.passes[0].options.GetString("classifier") == "int8");  // preset value kept
  CHECK(merged.passes[0].overrides.size() == 1);
  CHECK(merged.passes[1].pass == "quantize_int8");  // after the step it follows in the recipe
  CHECK(merged.passes[2].pass == "select_layout");  // the preset's last pass stays last
  CHECK(merged.strict == true);
  CHECK(merged.exclude == std::vector<std::string>{"lm_head"});
  bool group_line = false, added_line = false, search_line = false;
  for (const auto& l : log) {
    group_line |= Contains(l, "recipe mine.json overrides preset int4: quantize_int4.group_size = 128 (preset: 32)");
    added_line |= Contains(l, "adds pass quantize_int8 to preset int4 after quantize_int4");
    search_line |= Contains(l, "search");  // same value: no line
  }
  CHECK(group_line);
  CHECK(added_line);
  CHECK_FALSE(search_line);

  // The merged recipe survives a JSON round trip.
  auto again = ParseRecipe(RecipeToJson(merged), "roundtrip");
  INFO(again.status().message());
  REQUIRE(again.ok());
  CHECK(again->passes.size() == 3);
  CHECK(again->passes[0].options.GetInt("group_size") == 128);
  CHECK(again->passes[0].overrides[0].first == "down");
  CHECK(again->strict == true);
}

TEST_CASE("pipeline construction validates before anything runs", "[pipeline][manager]") {
  Recipe r;
  r.source = "prog";
  PassStep s;
  s.pass = "quantize_int4";
  s.options.Set("group_size", int64_t{33});
  r.passes.push_back(s);
  auto pm = PassManager::Create(r, {});
  REQUIRE_FALSE(pm.ok());
  CHECK(Contains(pm.status().message(), "prog: passes[0]: pass 'quantize_int4' option 'group_size'"));

  r.passes[0].options = Options();
  r.passes[0].exclude = {"("};
  auto pm2 = PassManager::Create(r, {});
  REQUIRE_FALSE(pm2.ok());
  CHECK(Contains(pm2.status().message(), "passes[0].exclude[0]: bad regular expression '('"));

  r.passes[0].exclude.clear();
  Options ov;
  ov.Set("refine_iters", int64_t{2});
  r.passes[0].overrides.push_back({"x", ov});
  auto pm3 = PassManager::Create(r, {});
  REQUIRE_FALSE(pm3.ok());
  CHECK(Contains(pm3.status().message(), "overrides[0]"));

  r.passes[0].overrides.clear();
  r.passes[0].pass = "unknown_pass";
  CHECK_FALSE(PassManager::Create(r, {}).ok());

  r.passes[0].pass = "quantize_int4";
  PipelineOptions zero;
  zero.threads = 0;
  CHECK_FALSE(PassManager::Create(r, zero).ok());
  CHECK(PassManager::Create(r, {}).ok());

  r.passes.clear();
  CHECK(Contains(PassManager::Create(r, {}).status().message(), "runs no passes"));
}

}  // namespace slim
