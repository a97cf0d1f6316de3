// Opens any model slimpack understands, by looking at the path:
//   DIR with config.json (+ model.safetensors or an index) -> Hugging Face
//   FILE.safetensors (config.json beside it)              -> Hugging Face
//   FILE.onnx                                             -> ONNX
//   any file starting with the packed magic "SLIMPACK"    -> packed
// A directory holding both (the bundled models do) opens the safetensors
// checkpoint; name the .onnx file to use the ONNX graph. After reading, the
// sidecars beside the model are applied: config.json fills the decoder's
// token ids and head counts for ONNX graphs, and slimpack.json declares a
// byte vocabulary (docs/MODELS.md).
#pragma once

#include <string>

#include "libcompress/common/status.h"
#include "libcompress/io/model.h"

namespace slim {

Expected<Model> LoadModel(const std::string& path);

// Reads `dir/slimpack.json` if present into model->byte_vocab.
Status ApplySlimpackSidecar(const std::string& dir, Model* model);

// After passes rewrote the graph (structured pruning of attention heads):
// the decoder description follows it. KV heads and head_dim from the
// KV-cache input's static shape [batch, kv_heads, past, head_dim], query
// heads from the graph's "hf.num_attention_heads" metadata when present.
void RefreshDecoderSpec(Model* model);

}  // namespace slim
