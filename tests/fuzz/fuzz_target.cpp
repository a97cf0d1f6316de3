// Target-profile JSON (--target FILE).
#include "libcompress/pipeline/target_profile.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const std::string text(reinterpret_cast<const char*>(data), size);
  fuzz::ExpectInputError(ParseTargetJson(text, "fuzz.json").status());
  return 0;
}
