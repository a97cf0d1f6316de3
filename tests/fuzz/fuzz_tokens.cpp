// Token-sequence dataset JSON (--calib, --data).
#include "calib_data/token_dataset.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const std::string& dir = fuzz::FreshWorkDir();
  const std::string path = fuzz::WriteFile(dir, "tokens.json", {reinterpret_cast<const char*>(data), size});
  fuzz::ExpectInputError(ReadTokenDataset(path).status());
  return 0;
}
