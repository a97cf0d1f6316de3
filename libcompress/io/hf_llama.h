// Hugging Face Llama-family reader: config.json + safetensors -> IR graph.
//
// Accepted paths: a directory holding config.json and model.safetensors, or
// config.json and model.safetensors.index.json with its shards; or a
// .safetensors file with config.json beside it. Architectures:
// LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (RMSNorm, RoPE
// rotate-half, SwiGLU, grouped-query attention; Qwen2's q/k/v biases;
// Llama's optional attention_bias / mlp_bias; Mistral's sliding window).
//
// The graph is what an Optimum "decoder with past" ONNX export looks like at
// its interface (the same as models/stories260k/model_kv.onnx, except that
// the KV cache is float32):
//   inputs  input_ids int64 [batch_size, sequence_length]
//           attention_mask int64 [batch_size, total_sequence_length]
//           position_ids int64 [batch_size, sequence_length]
//           past_key_values.{l}.key/value float32
//               [batch_size, kv_heads, past_sequence_length, head_dim]
//   outputs logits float32 [batch_size, sequence_length, vocab]
//           present.{l}.key/value float32
//               [batch_size, kv_heads, total_sequence_length, head_dim]
// Compute is float32. Weights stay in their file dtype (FP16/BF16/FP32) as
// initializers named exactly like the HF tensors (memory-mapped views, never
// copied); each linear layer is Gemm(x2d, Cast(W), transB=1) on 2-D
// activations [batch*seq, features], so the interpreter's Cast elision reads
// the 16-bit [out, in] weight directly, with no transposed or FP32 copy. A
// tied classifier is a Gemm against model.embed_tokens.weight itself.
// Only standard ONNX ops (opset 17) are used, so WriteOnnx can export it.
#pragma once

#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/io/model.h"

namespace slim {

Expected<Model> ReadHuggingFace(const std::string& path);

// Writes a float model that came from this reader (its hf.* metadata, after
// any structured pruning updated it) back as DIR/config.json +
// DIR/model.safetensors, tensors in their own dtype, so any framework can
// fine-tune it. Every tensor the config implies must be a float initializer
// of the implied shape: a quantized tensor, or FFN widths or head counts
// that differ between layers (which config.json cannot express), is
// kInvalidInput naming the tensor. DIR is created if missing; files are
// written atomically and never over `inputs`.
Status WriteHuggingFace(const Model& model, const std::string& dir, const std::vector<std::string>& inputs);

}  // namespace slim
