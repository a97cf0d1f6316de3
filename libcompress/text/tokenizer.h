// Hugging Face tokenizers (`tokenizer.json`, with `tokenizer_config.json`
// beside it when present): BPE models with the byte-level pre-tokenizer
// (GPT-2, Llama 3, Qwen2) and SentencePiece-style BPE with byte fallback and
// the U+2581 space convention (Llama 2, TinyLlama, Mistral), with the
// normalizers, pre-tokenizers, post-processors and decoders those files use.
//
// The behaviour follows the reference implementation the tests compare
// against (`@huggingface/tokenizers`, the JavaScript port used by
// transformers.js; docs/TOKENIZERS.md lists where it and the Rust crate
// differ and which one this follows). A component type or option this code
// does not implement is refused at load with the JSON key that names it:
// a tokenizer either loads and tokenizes as the reference does, or fails.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "libcompress/common/status.h"

namespace slim::text {

class Tokenizer {
 public:
  // `path`: a tokenizer.json file, or a directory holding one. A
  // tokenizer_config.json in the same directory supplies the BOS/EOS tokens,
  // extra special tokens and clean_up_tokenization_spaces.
  static Expected<Tokenizer> Load(const std::string& path);
  // The same from text already in memory (`where` names it in errors;
  // `config_json` may be empty).
  static Expected<Tokenizer> FromJson(std::string_view tokenizer_json, std::string_view config_json,
                                      const std::string& where);

  // Token ids of `text` (any bytes: ill-formed UTF-8 is replaced by U+FFFD
  // first, as a TextDecoder does). `add_special` applies the post-processor
  // (BOS for Llama, nothing for GPT-2 and Qwen2).
  std::vector<int64_t> Encode(std::string_view text, bool add_special = false) const;
  // Text of `ids`; an id outside the vocabulary is an error naming it.
  Expected<std::string> Decode(const std::vector<int64_t>& ids, bool skip_special = false) const;

  int64_t vocab_size() const;  // largest id + 1 (model vocabulary and added tokens)
  int64_t bos_id() const;      // -1 when the files name no BOS token
  int64_t eos_id() const;      // -1 when the files name no EOS token
  bool is_special(int64_t id) const;
  // SHA-256 of tokenizer.json followed by tokenizer_config.json (provenance).
  const std::string& sha256() const;
  // The files' bytes, so a packed model can carry its tokenizer.
  const std::string& tokenizer_json() const;
  const std::string& config_json() const;

  struct Impl;

 private:
  std::shared_ptr<const Impl> impl_;
};

// Finds the tokenizer of a model path: `dir/tokenizer.json` for a directory,
// the file beside an .onnx file; empty when there is none.
std::string FindTokenizerFile(const std::string& model_path);

}  // namespace slim::text
