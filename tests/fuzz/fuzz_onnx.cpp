// ONNX reader: part 0 is model.onnx, part 1 (optional) model.onnx.data, the
// external-data file `slimpack export --external-data-mb` names.
#include "libcompress/io/model_loader.h"
#include "libcompress/io/onnx.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const auto parts = fuzz::SplitParts(data, size, 2);
  const std::string& dir = fuzz::FreshWorkDir();
  const std::string path = fuzz::WriteFile(dir, "model.onnx", parts[0]);
  if (parts.size() > 1) fuzz::WriteFile(dir, "model.onnx.data", parts[1]);
  fuzz::ExpectInputError(ReadOnnxOpTypes(path).status());
  auto model = LoadModel(path);
  fuzz::ExpectInputError(model.status());
  if (model.ok()) fuzz::ExerciseModel(*model);
  return 0;
}
