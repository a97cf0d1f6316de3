// Calibration and evaluation data for language models in three forms, chosen
// by the file name: token ids (JSON, token_dataset.h), plain text (`.txt`)
// and JSON Lines with a "text" field (`.jsonl`), the last two tokenized with
// the model's Hugging Face tokenizer.
//
// Windows: a `.txt` file is one text, a `.jsonl` record one text each. A
// text's ids (without special tokens) are cut into consecutive windows of
// `seq_len` tokens, each window starting with what the tokenizer's
// post-processor puts before a sequence (BOS for Llama, nothing for GPT-2 or
// Qwen2) and counted in its length; the last window of a text keeps its
// remainder when it has at least 2 tokens. Same file, tokenizer and
// seq_len: same windows.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "calib_data/token_dataset.h"
#include "libcompress/common/status.h"
#include "libcompress/io/model.h"
#include "libcompress/text/tokenizer.h"

namespace slim {

// Default window length of text data (--seq-len).
inline constexpr int64_t kDefaultTextSeqLen = 256;

bool IsTextDataPath(const std::string& path);  // .txt or .jsonl

// `tokenizer` may be null for token JSON; text data without one is an error
// that says where a tokenizer is looked for.
Expected<TokenDataset> ReadDataset(const std::string& path, const text::Tokenizer* tokenizer,
                                   int64_t seq_len = kDefaultTextSeqLen);

// The tokenizer a loaded model carries (tokenizer.json beside it, or inside
// a packed file); nullopt when it has none.
Expected<std::optional<text::Tokenizer>> ModelTokenizer(const Model& model);

}  // namespace slim
