// A loaded model: the IR graph plus what the readers learned about it.
//
// Every reader (ONNX, Hugging Face safetensors, later the packed format)
// returns a Model. When the graph is an autoregressive decoder in the
// Optimum layout (input_ids [+ attention_mask, position_ids,
// past_key_values.N.key/value] -> logits [+ present.N.key/value]), `decoder`
// describes it so runtime sessions can drive it without knowing the format.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include "libcompress/ir/graph.h"

namespace slim {

// How token ids map to text. Only byte vocabularies are understood (no
// tokenizer library is a dependency): ids first_id..first_id+255 are the
// raw bytes 0..255. Declared in a `slimpack.json` file beside the model
// ({"vocab": {"kind": "bytes", "first_id": 0}}), see docs/MODELS.md.
struct ByteVocab {
  int64_t first_id = 0;
};

// A Hugging Face tokenizer as the model's files hold it: the bytes of
// tokenizer.json and tokenizer_config.json ("" when absent). IO only
// carries them (beside the model, or inside a packed file);
// libcompress/text parses them.
struct TokenizerFiles {
  std::string json;
  std::string config;
};

struct DecoderSpec {
  int64_t num_layers = 0;
  int64_t num_heads = 0;      // query heads (0 if unknown, e.g. ONNX without config)
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t hidden_size = 0;    // 0 if unknown
  int64_t vocab_size = 0;
  int64_t max_positions = 0;  // 0 if unknown
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;
  DType kv_dtype = DType::kFloat32;
  // Graph interface (names of inputs/outputs). has_past: the graph takes
  // past_key_values.* and returns present.* (token-by-token decoding);
  // otherwise every step recomputes the whole prefix.
  bool has_past = false;
  bool has_attention_mask = false;
  bool has_position_ids = false;
  std::string input_ids = "input_ids";
  std::string logits = "logits";
  static std::string PastKey(int64_t l) { return "past_key_values." + std::to_string(l) + ".key"; }
  static std::string PastValue(int64_t l) { return "past_key_values." + std::to_string(l) + ".value"; }
  static std::string PresentKey(int64_t l) { return "present." + std::to_string(l) + ".key"; }
  static std::string PresentValue(int64_t l) { return "present." + std::to_string(l) + ".value"; }
};

struct Model {
  Graph graph;
  std::string format;  // "onnx", "safetensors", "packed"
  std::string path;    // what the user named
  // Every file the reader opened (model, external data, shards, config and
  // sidecars), so a writer can refuse to overwrite any of them.
  std::vector<std::string> files;
  std::optional<DecoderSpec> decoder;
  std::optional<ByteVocab> byte_vocab;
  std::optional<TokenizerFiles> tokenizer;
};

}  // namespace slim
