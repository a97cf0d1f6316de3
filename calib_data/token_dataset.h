// Token-sequence datasets for calibration and evaluation (DESIGN.md):
// {"vocab_size": 512, "bos": 1, "sequences": [[1, 403, ...], ...]}.
// Extra keys are ignored. The reader checks every id against vocab_size and
// names the sequence and position of the first bad one.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

struct TokenDataset {
  int64_t vocab_size = 0;
  int64_t bos = -1;  // -1 when the file does not say
  std::vector<std::vector<int64_t>> sequences;
  std::string sha256;  // of the file's bytes (provenance)
  std::string kind = "tokens";     // "tokens", "text" or "jsonl" (text_dataset.h)
  std::string tokenizer_sha256;    // text data: the tokenizer that made the ids
  size_t total_tokens() const;
};

Expected<TokenDataset> ReadTokenDataset(const std::string& path);

}  // namespace slim
