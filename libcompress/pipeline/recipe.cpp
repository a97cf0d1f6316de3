// Recipe JSON parsing, built-in presets, merging and serialisation.
#include "libcompress/pipeline/recipe.h"
#include "libcompress/common/file_util.h"
#include "libcompress/common/json_parse.h"

#include <cmath>
#include <cstddef>
#include <regex>
#include <set>

#include <nlohmann/json.hpp>

#include "libcompress/pipeline/options.h"
#include "libcompress/pipeline/registry.h"

namespace slim {
namespace {

using Json = nlohmann::json;

// Built-in recipes. Measured effects are in docs/PASSES.md. Each ends with
// select_layout, which re-packs int4 into the target profile's layout family
// (x8 tiles without a target, row-major for "generic").
struct Preset {
  const char* name;
  const char* json;
};
const Preset kPresets[] = {
    {"int8", R"({"description": "int8 per output channel, symmetric, scale search; embeddings and classifier int8",
      "passes": [{"pass": "quantize_int8"}, {"pass": "select_layout"}]})"},
    // int4: the non-uniform nl levels, which beat uniform symmetric int4
    // at the same bits on both bundled models, with and without GPTQ
    // (docs/PASSES.md); int4-uniform keeps uniform codes (ONNX export as
    // MatMulNBits, a few percent faster kernels).
    {"int4", R"({"description": "int4 group 32, nl levels (non-uniform, IQ4_NL's), FP16 scales, scale search; classifier and embeddings int8",
      "passes": [{"pass": "quantize_int4", "options": {"group_size": 32, "levels": "nl", "search": true,
                  "classifier": "int8", "embeddings": "int8"}},
                 {"pass": "select_layout"}]})"},
    {"int4-uniform", R"({"description": "int4 group 32, uniform symmetric codes, FP16 scales, scale search; classifier and embeddings int8",
      "passes": [{"pass": "quantize_int4", "options": {"group_size": 32, "levels": "uniform", "symmetric": true,
                  "search": true, "classifier": "int8", "embeddings": "int8"}},
                 {"pass": "select_layout"}]})"},
    {"int4-g128", R"({"description": "int4 group 128, nl levels, FP16 scales, scale search; classifier and embeddings int8",
      "passes": [{"pass": "quantize_int4", "options": {"group_size": 128, "levels": "nl", "search": true,
                  "classifier": "int8", "embeddings": "int8"}},
                 {"pass": "select_layout"}]})"},
    {"int4-gptq", R"({"description": "int4 group 32, nl levels, with GPTQ error compensation (needs --calib); classifier and embeddings int8",
      "passes": [{"pass": "quantize_int4", "options": {"group_size": 32, "levels": "nl", "search": true,
                  "gptq": true, "classifier": "int8", "embeddings": "int8"}},
                 {"pass": "select_layout"}]})"},
    {"mixed", R"({"description": "int4/int8/FP16 chosen per tensor by estimated loss under one budget (--bpw, --max-size, --max-bytes-per-token or --tokens-per-s); GPTQ and model-loss estimates with --calib",
      "passes": [{"pass": "mixed"}, {"pass": "select_layout"}]})"},
    {"prune50", R"({"description": "50% unstructured SparseGPT pruning with OBS error compensation of linear layers (needs --calib); FP16 kept",
      "passes": [{"pass": "prune", "options": {"method": "sparsegpt", "sparsity": 0.5, "pattern": "unstructured"}},
                 {"pass": "select_layout"}]})"},
    {"prune50-int8", R"({"description": "50% unstructured SparseGPT pruning, then int8 GPTQ of the kept weights, stored as bitmask + nonzero codes (q8_bm_row, about 5 bits per weight) where smaller (needs --calib); embeddings int8",
      "passes": [{"pass": "prune", "options": {"method": "sparsegpt", "sparsity": 0.5, "pattern": "unstructured"}},
                 {"pass": "quantize_int8", "options": {"gptq": true}},
                 {"pass": "select_layout"}]})"},
    {"prune24", R"({"description": "2:4 SparseGPT pruning with OBS error compensation of linear layers (needs --calib); FP16 kept",
      "passes": [{"pass": "prune", "options": {"method": "sparsegpt", "pattern": "2:4"}},
                 {"pass": "select_layout"}]})"},
    {"prune24-int4", R"({"description": "2:4 SparseGPT pruning, then int4 group 32 GPTQ of the kept weights (needs --calib); classifier and embeddings int8",
      "passes": [{"pass": "prune", "options": {"method": "sparsegpt", "pattern": "2:4"}},
                 {"pass": "quantize_int4", "options": {"group_size": 32, "symmetric": true, "search": true,
                  "gptq": true, "classifier": "int8", "embeddings": "int8"}},
                 {"pass": "select_layout"}]})"},
};

Status CheckPattern(const std::string& pattern, const std::string& where) {
  try {
    std::regex re(pattern, std::regex::ECMAScript);
  } catch (const std::regex_error& e) {
    return InvalidInput(where, ": bad regular expression '", pattern, "': ", e.what());
  }
  return Status::Ok();
}

// A string or an array of strings, each a valid regex.
Status PatternList(const Json& j, const std::string& where, std::vector<std::string>* out) {
  std::vector<std::string> items;
  if (j.is_string()) {
    items.push_back(j.get<std::string>());
  } else if (j.is_array()) {
    for (size_t i = 0; i < j.size(); ++i) {
      SLIM_CHECK_INPUT(j[i].is_string(), where, "[", i, "] must be a string (a regular expression)");
      items.push_back(j[i].get<std::string>());
    }
  } else {
    return InvalidInput(where, " must be a regular expression or a list of them");
  }
  for (size_t i = 0; i < items.size(); ++i) {
    SLIM_RETURN_IF_ERROR(CheckPattern(items[i], j.is_array() ? StrCat(where, "[", i, "]") : where));
    out->push_back(items[i]);
  }
  return Status::Ok();
}

Status CheckKeys(const Json& j, const std::set<std::string>& known, const std::string& where) {
  for (auto it = j.begin(); it != j.end(); ++it) {
    if (known.count(it.key())) continue;
    std::string list;
    for (const auto& k : known) list += (list.empty() ? "" : ", ") + k;
    return InvalidInput(where, ": unknown key '", it.key(), "' (known: ", list, ")");
  }
  return Status::Ok();
}

Expected<OptionValue> OptionFromJson(const std::string& pass, const OptionSpec& spec,
                                     const Json& j, const std::string& where) {
  OptionValue v;
  switch (spec.type) {
    case OptionType::kBool:
      SLIM_CHECK_INPUT(j.is_boolean(), where, ": pass '", pass, "' option '", spec.key,
                       "' must be true or false, got ", j.dump());
      v = j.get<bool>();
      break;
    case OptionType::kInt:
      if (j.is_number_integer()) {
        v = j.get<int64_t>();
      } else if (j.is_number_float() && std::floor(j.get<double>()) == j.get<double>() &&
                 std::fabs(j.get<double>()) < 9e15) {
        v = static_cast<int64_t>(j.get<double>());
      } else {
        return InvalidInput(where, ": pass '", pass, "' option '", spec.key,
                            "' must be an integer, got ", j.dump());
      }
      break;
    case OptionType::kFloat:
      SLIM_CHECK_INPUT(j.is_number(), where, ": pass '", pass, "' option '", spec.key,
                       "' must be a number, got ", j.dump());
      v = j.get<double>();
      break;
    case OptionType::kString:
    case OptionType::kEnum:
      SLIM_CHECK_INPUT(j.is_string(), where, ": pass '", pass, "' option '", spec.key,
                       "' must be a string, got ", j.dump());
      v = j.get<std::string>();
      break;
    case OptionType::kStringList: {
      SLIM_CHECK_INPUT(j.is_array(), where, ": pass '", pass, "' option '", spec.key,
                       "' must be a list of strings, got ", j.dump());
      StringList l;
      for (const auto& e : j) {
        SLIM_CHECK_INPUT(e.is_string(), where, ": pass '", pass, "' option '", spec.key,
                         "' must be a list of strings, got an element ", e.dump());
        l.push_back(e.get<std::string>());
      }
      v = std::move(l);
      break;
    }
  }
  Status s = CheckOptionValue(pass, spec, v);
  if (!s.ok()) return s.WithContext(where);
  return v;
}

Expected<Options> OptionsFromJson(const Pass& pass, const Json& j, const std::string& where,
                                  bool per_tensor_only) {
  SLIM_CHECK_INPUT(j.is_object(), where, " must be an object of option: value");
  Options o;
  const PassInfo& info = pass.info();
  for (auto it = j.begin(); it != j.end(); ++it) {
    const OptionSpec* spec = info.FindOption(it.key());
    if (!spec) {
      std::string known;
      for (const auto& s : info.options) known += (known.empty() ? "" : ", ") + s.key;
      return InvalidInput(where, ": pass '", info.name, "' has no option '", it.key(),
                          "' (options: ", known, ")");
    }
    SLIM_CHECK_INPUT(!per_tensor_only || spec->per_tensor, where, ": pass '", info.name,
                     "' option '", it.key(), "' applies to the whole pass, not per tensor");
    SLIM_ASSIGN_OR_RETURN(OptionValue v, OptionFromJson(info.name, *spec, it.value(), where));
    o.Set(it.key(), std::move(v));
  }
  return o;
}

Json OptionsToJson(const Options& o) {
  Json j = Json::object();
  for (const auto& [k, v] : o.values()) {
    if (const bool* b = std::get_if<bool>(&v)) {
      j[k] = *b;
    } else if (const int64_t* i = std::get_if<int64_t>(&v)) {
      j[k] = *i;
    } else if (const double* d = std::get_if<double>(&v)) {
      j[k] = *d;
    } else if (const StringList* l = std::get_if<StringList>(&v)) {
      j[k] = *l;
    } else {
      j[k] = std::get<std::string>(v);
    }
  }
  return j;
}

}  // namespace

Expected<Recipe> ParseRecipe(const std::string& json_text, const std::string& source) {
  SLIM_ASSIGN_OR_RETURN(const Json j, ParseJsonText(json_text, source));
  SLIM_CHECK_INPUT(j.is_object(), source, ": a recipe must be a JSON object");
  SLIM_RETURN_IF_ERROR(CheckKeys(
      j, {"source", "description", "include", "exclude", "strict", "allow_requantize", "passes"},
      source));
  // "source" is informational (RecipeToJson records where a recipe came
  // from); the recipe's source is where it is read from now.
  SLIM_CHECK_INPUT(!j.contains("source") || j["source"].is_string(), source,
                   ": 'source' must be a string");
  Recipe r;
  r.source = source;
  if (j.contains("description")) {
    SLIM_CHECK_INPUT(j["description"].is_string(), source, ": 'description' must be a string");
    r.description = j["description"].get<std::string>();
  }
  if (j.contains("include")) {
    SLIM_RETURN_IF_ERROR(PatternList(j["include"], source + ": include", &r.include));
  }
  if (j.contains("exclude")) {
    SLIM_RETURN_IF_ERROR(PatternList(j["exclude"], source + ": exclude", &r.exclude));
  }
  for (const char* key : {"strict", "allow_requantize"}) {
    if (!j.contains(key)) continue;
    SLIM_CHECK_INPUT(j[key].is_boolean(), source, ": '", key, "' must be true or false");
    (std::string(key) == "strict" ? r.strict : r.allow_requantize) = j[key].get<bool>();
  }
  SLIM_CHECK_INPUT(j.contains("passes") && j["passes"].is_array(), source,
                   ": 'passes' must be a list of {\"pass\": NAME, ...}");
  const Json& passes = j["passes"];
  for (size_t i = 0; i < passes.size(); ++i) {
    const std::string where = StrCat(source, ": passes[", i, "]");
    const Json& s = passes[i];
    SLIM_CHECK_INPUT(s.is_object(), where, " must be an object");
    SLIM_RETURN_IF_ERROR(CheckKeys(s, {"pass", "options", "include", "exclude", "overrides"}, where));
    SLIM_CHECK_INPUT(s.contains("pass") && s["pass"].is_string(), where,
                     ": 'pass' (the pass name) is required");
    PassStep step;
    step.pass = s["pass"].get<std::string>();
    const Pass* pass = FindPass(step.pass);
    if (!pass) {
      std::string names;
      for (const Pass* p : AllPasses()) names += (names.empty() ? "" : ", ") + p->info().name;
      return InvalidInput(where, ": unknown pass '", step.pass, "' (passes: ", names, ")");
    }
    if (s.contains("options")) {
      SLIM_ASSIGN_OR_RETURN(step.options, OptionsFromJson(*pass, s["options"], where + ".options", false));
    }
    if (s.contains("include")) {
      SLIM_RETURN_IF_ERROR(PatternList(s["include"], where + ".include", &step.include));
    }
    if (s.contains("exclude")) {
      SLIM_RETURN_IF_ERROR(PatternList(s["exclude"], where + ".exclude", &step.exclude));
    }
    if (s.contains("overrides")) {
      const Json& ov = s["overrides"];
      SLIM_CHECK_INPUT(ov.is_array(), where,
                       ".overrides must be a list of {\"pattern\": REGEX, \"options\": {...}}");
      for (size_t k = 0; k < ov.size(); ++k) {
        const std::string w = StrCat(where, ".overrides[", k, "]");
        SLIM_CHECK_INPUT(ov[k].is_object(), w, " must be an object");
        SLIM_RETURN_IF_ERROR(CheckKeys(ov[k], {"pattern", "options"}, w));
        SLIM_CHECK_INPUT(ov[k].contains("pattern") && ov[k]["pattern"].is_string(), w,
                         ": 'pattern' (a regular expression) is required");
        const std::string pattern = ov[k]["pattern"].get<std::string>();
        SLIM_RETURN_IF_ERROR(CheckPattern(pattern, w + ".pattern"));
        SLIM_CHECK_INPUT(ov[k].contains("options"), w, ": 'options' is required");
        SLIM_ASSIGN_OR_RETURN(Options o, OptionsFromJson(*pass, ov[k]["options"], w + ".options", true));
        step.overrides.emplace_back(pattern, std::move(o));
      }
    }
    r.passes.push_back(std::move(step));
  }
  return r;
}

Expected<Recipe> LoadRecipeFile(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(const std::string text, ReadFileBytes(path, "recipe"));
  return ParseRecipe(text, path);
}

std::vector<PresetInfo> ListPresets() {
  std::vector<PresetInfo> out;
  for (const Preset& p : kPresets) {
    auto r = GetPreset(p.name);
    out.push_back({p.name, r.ok() ? r->description : r.status().message()});
  }
  return out;
}

Expected<Recipe> GetPreset(const std::string& name) {
  for (const Preset& p : kPresets) {
    if (name == p.name) return ParseRecipe(p.json, StrCat("preset ", p.name));
  }
  std::string names;
  for (const Preset& p : kPresets) names += (names.empty() ? "" : ", ") + std::string(p.name);
  return InvalidInput("unknown preset '", name, "' (presets: ", names, ")");
}

Recipe MergeRecipes(const Recipe& preset, const Recipe& recipe, std::vector<std::string>* log) {
  auto say = [&](const std::string& what) {
    if (log) log->push_back(StrCat("recipe ", recipe.source, " overrides ", preset.source, ": ", what));
  };
  Recipe out = preset;
  out.source = StrCat(preset.source, " + ", recipe.source);
  if (!recipe.description.empty()) out.description = recipe.description;
  auto lists = [&](const std::vector<std::string>& mine, std::vector<std::string>* theirs,
                   const std::string& what) {
    if (mine.empty()) return;
    if (!theirs->empty() && *theirs != mine) say(what + " patterns replaced");
    *theirs = mine;
  };
  lists(recipe.include, &out.include, "include");
  lists(recipe.exclude, &out.exclude, "exclude");
  auto flag = [&](const std::optional<bool>& mine, std::optional<bool>* theirs, const char* key) {
    if (!mine) return;
    if (*theirs && **theirs != *mine) say(StrCat(key, " = ", *mine ? "true" : "false"));
    *theirs = mine;
  };
  flag(recipe.strict, &out.strict, "strict");
  flag(recipe.allow_requantize, &out.allow_requantize, "allow_requantize");

  // matched[i]: out.passes[i] came from the preset and a recipe step has
  // merged into it. `at` is where the previous recipe step landed, so a
  // pass only in the recipe goes right after it (the recipe's order is kept
  // and a preset's trailing select_layout stays last).
  std::vector<bool> matched(out.passes.size(), false);
  std::vector<bool> from_preset(out.passes.size(), true);
  size_t at = 0;
  bool any = false;
  for (const PassStep& step : recipe.passes) {
    size_t i = 0;
    while (i < out.passes.size() &&
           (!from_preset[i] || matched[i] || out.passes[i].pass != step.pass)) {
      ++i;
    }
    if (i == out.passes.size()) {
      const size_t pos = any ? at + 1 : 0;
      if (log) {
        log->push_back(StrCat("recipe ", recipe.source, " adds pass ", step.pass, " to ",
                              preset.source, any ? " after " + out.passes[at].pass : " first"));
      }
      out.passes.insert(out.passes.begin() + static_cast<std::ptrdiff_t>(pos), step);
      matched.insert(matched.begin() + static_cast<std::ptrdiff_t>(pos), true);
      from_preset.insert(from_preset.begin() + static_cast<std::ptrdiff_t>(pos), false);
      at = pos;
      any = true;
      continue;
    }
    matched[i] = true;
    at = i;
    any = true;
    PassStep& mine = out.passes[i];
    for (const auto& [key, value] : step.options.values()) {
      if (mine.options.Has(key)) {
        const OptionValue& old = mine.options.values().at(key);
        if (old != value) {
          say(StrCat(step.pass, ".", key, " = ", FormatOptionValue(value), " (preset: ",
                     FormatOptionValue(old), ")"));
        }
      }
      mine.options.Set(key, value);
    }
    lists(step.include, &mine.include, step.pass + " include");
    lists(step.exclude, &mine.exclude, step.pass + " exclude");
    for (const auto& ov : step.overrides) mine.overrides.push_back(ov);
  }
  return out;
}

std::string RecipeToJson(const Recipe& r) {
  nlohmann::ordered_json j;
  j["source"] = r.source;
  if (!r.description.empty()) j["description"] = r.description;
  if (!r.include.empty()) j["include"] = r.include;
  if (!r.exclude.empty()) j["exclude"] = r.exclude;
  if (r.strict) j["strict"] = *r.strict;
  if (r.allow_requantize) j["allow_requantize"] = *r.allow_requantize;
  nlohmann::ordered_json passes = nlohmann::ordered_json::array();
  for (const PassStep& s : r.passes) {
    nlohmann::ordered_json p;
    p["pass"] = s.pass;
    p["options"] = OptionsToJson(s.options);
    if (!s.include.empty()) p["include"] = s.include;
    if (!s.exclude.empty()) p["exclude"] = s.exclude;
    if (!s.overrides.empty()) {
      nlohmann::ordered_json ovs = nlohmann::ordered_json::array();
      for (const auto& [pattern, options] : s.overrides) {
        ovs.push_back({{"pattern", pattern}, {"options", OptionsToJson(options)}});
      }
      p["overrides"] = ovs;
    }
    passes.push_back(p);
  }
  j["passes"] = passes;
  return j.dump();
}

}  // namespace slim
