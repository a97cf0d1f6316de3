// Recipes: which passes run, in which order, with which options, on which
// tensors. A recipe is a JSON file; presets are built-in recipes written in
// the same JSON and parsed by the same code.
//
//   {
//     "description": "int4 g64, keep the first layer's MLP in int8",
//     "include": ["^model\\."],            // regexes over tensor names (search, ECMAScript)
//     "exclude": ["lm_head"],
//     "strict": false,                       // any fallback is an error
//     "allow_requantize": false,             // accept an already-quantized input
//     "passes": [
//       { "pass": "quantize_int4",
//         "options": { "group_size": 64, "symmetric": false },
//         "include": [], "exclude": [],      // added to the top-level lists
//         "overrides": [ { "pattern": "layers\\.0\\.mlp", "options": { "scheme": "int8" } } ] }
//     ]
//   }
//
// Parsing checks everything a run would: unknown keys, unknown passes,
// unknown options and bad values (naming pass and option), and regular
// expressions that do not compile (naming the pattern and where it is).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "libcompress/pipeline/pass.h"

namespace slim {

struct PassStep {
  std::string pass;
  Options options;  // as written (defaults are filled when the pipeline is built)
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::vector<std::pair<std::string, Options>> overrides;  // pattern -> options, in order
};

struct Recipe {
  std::string source;  // "preset int4" or the file path
  std::string description;
  std::vector<std::string> include;
  std::vector<std::string> exclude;
  std::optional<bool> strict;
  std::optional<bool> allow_requantize;
  std::vector<PassStep> passes;
};

Expected<Recipe> ParseRecipe(const std::string& json_text, const std::string& source);
Expected<Recipe> LoadRecipeFile(const std::string& path);

struct PresetInfo {
  std::string name;
  std::string description;
};
std::vector<PresetInfo> ListPresets();
Expected<Recipe> GetPreset(const std::string& name);

// `recipe` layered over `preset`: where both set something the recipe wins,
// and each such overlap adds a line to *log. Per pass (matched by name, in
// order): options merge key by key; include/exclude lists of the recipe
// replace the preset's when non-empty; overrides are appended after the
// preset's (later overrides win). A pass only in the recipe is inserted
// right after the pass the previous recipe step matched or added (first when
// it is the recipe's first step), so the recipe's order is kept.
Recipe MergeRecipes(const Recipe& preset, const Recipe& recipe, std::vector<std::string>* log);

// The recipe as JSON (what ParseRecipe reads), for reports and provenance.
std::string RecipeToJson(const Recipe& recipe);

}  // namespace slim
