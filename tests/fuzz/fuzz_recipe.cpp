// Recipe JSON (--recipe FILE): parsed, merged over a preset as compile does,
// and built into a pipeline, which checks every pass name and option.
#include "libcompress/pipeline/pass_manager.h"
#include "libcompress/pipeline/recipe.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const std::string text(reinterpret_cast<const char*>(data), size);
  auto recipe = ParseRecipe(text, "fuzz.json");
  fuzz::ExpectInputError(recipe.status());
  if (!recipe.ok()) return 0;
  fuzz::ExpectInputError(PassManager::Create(*recipe, PipelineOptions()).status());
  auto preset = GetPreset("int4");
  if (!preset.ok()) std::abort();
  std::vector<std::string> log;
  fuzz::ExpectInputError(PassManager::Create(MergeRecipes(*preset, *recipe, &log), PipelineOptions()).status());
  return 0;
}
