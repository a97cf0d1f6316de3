// One serialized TensorProto (ONNX test data: input_0.pb).
#include "libcompress/io/onnx.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const std::string& dir = fuzz::FreshWorkDir();
  const std::string path = fuzz::WriteFile(dir, "input_0.pb", {reinterpret_cast<const char*>(data), size});
  std::string name;
  fuzz::ExpectInputError(ReadTensorProtoFile(path, &name).status());
  return 0;
}
