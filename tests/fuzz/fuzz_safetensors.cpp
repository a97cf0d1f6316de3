// Hugging Face checkpoint: part 0 is config.json; with two parts, part 1 is
// model.safetensors; with more, part 1 is model.safetensors.index.json and
// parts 2.. are the shards model-0000i-of-0000n.safetensors the seeds' index
// names.
#include <cstdio>

#include "libcompress/io/model_loader.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const auto parts = fuzz::SplitParts(data, size, 5);
  const std::string& dir = fuzz::FreshWorkDir();
  fuzz::WriteFile(dir, "config.json", parts[0]);
  if (parts.size() == 2) {
    fuzz::WriteFile(dir, "model.safetensors", parts[1]);
  } else if (parts.size() > 2) {
    fuzz::WriteFile(dir, "model.safetensors.index.json", parts[1]);
    const size_t shards = parts.size() - 2;
    for (size_t i = 0; i < shards; ++i) {
      char name[64];
      std::snprintf(name, sizeof name, "model-%05zu-of-%05zu.safetensors", i + 1, shards);
      fuzz::WriteFile(dir, name, parts[i + 2]);
    }
  }
  auto model = LoadModel(dir);
  fuzz::ExpectInputError(model.status());
  if (model.ok()) fuzz::ExerciseModel(*model);
  return 0;
}
