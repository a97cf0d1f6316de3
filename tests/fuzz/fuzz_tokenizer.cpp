// tokenizer.json (+ tokenizer_config.json) as the tokenizer reads it from a
// model directory or a packed file: parsed, then text encoded and the ids
// decoded. Parts: [tokenizer.json] or [tokenizer.json, config] or
// [tokenizer.json, config, text].
#include <cstdlib>

#include "libcompress/text/tokenizer.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace slim;
  const std::vector<std::string_view> parts = fuzz::SplitParts(data, size, 3);
  const std::string_view config = parts.size() > 1 ? parts[1] : std::string_view();
  const std::string_view text =
      parts.size() > 2 ? parts[2] : std::string_view("Hello w\xC3\xB6rld <s>  12345 \xF0\x9F\x98\x80\n\x80 it's");
  auto tok = text::Tokenizer::FromJson(parts[0], config, "fuzz/tokenizer.json");
  fuzz::ExpectInputError(tok.status());
  if (!tok.ok()) return 0;
  for (const bool special : {false, true}) {
    const std::vector<int64_t> ids = tok->Encode(text, special);
    // Ids the tokenizer produced always decode.
    auto decoded = tok->Decode(ids, /*skip_special=*/special);
    if (!decoded.ok()) {
      fuzz::ExpectInputError(decoded.status());
      std::abort();
    }
  }
  // Ids from outside are checked.
  fuzz::ExpectInputError(tok->Decode({-1}).status());
  (void)tok->Decode({tok->vocab_size()});
  return 0;
}
