// Synthetic Llama-family checkpoints: config.json + model.safetensors with
// random weights, for tests and for benchmarks at real model sizes (a
// TinyLlama-1.1B-shaped checkpoint without downloading one).
//
// Weights are normal(0, 0.02) like a freshly initialised HF model, RMSNorm
// weights are 1.0, Qwen2 q/k/v biases are normal(0, 0.02). Values come from
// a counter-based generator (splitmix64 seeded by the spec seed and the
// tensor name, Box-Muller with std::log/sqrt/cos/sin in double), never
// from std::normal_distribution, whose output differs between standard
// libraries: the same spec gives byte-identical files. Tensors are
// generated and written chunk by chunk, so memory stays bounded (a few MB)
// whatever the model size; model.safetensors and config.json are written
// atomically.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/dtype.h"

namespace slim {

struct SynthSpec {
  int64_t hidden = 64;
  int64_t intermediate = 160;
  int64_t layers = 2;
  int64_t heads = 4;
  int64_t kv_heads = 2;
  int64_t vocab = 256;
  int64_t max_positions = 128;
  bool tie_embeddings = false;
  uint64_t seed = 1;
  // LlamaForCausalLM, MistralForCausalLM or Qwen2ForCausalLM (q/k/v biases).
  std::string architecture = "LlamaForCausalLM";
  DType dtype = DType::kFloat16;  // float16, bfloat16 or float32
  int64_t bos_token_id = 1, eos_token_id = 2;  // -1: none (config.json null)
};

// Built-in shapes: "tiny" (tests: hidden 64, 2 layers, 4 heads / 2 KV heads,
// vocab 256), "125m" (hidden 768, 12 layers, FFN 2048, 12 heads, vocab
// 32000; 134 M parameters), "tinyllama-1.1b" (TinyLlama-1.1B's shapes:
// hidden 2048, 22 layers, FFN 5632, 32 heads / 4 KV heads, vocab 32000).
Expected<SynthSpec> SynthPreset(const std::string& name);
std::vector<std::string> SynthPresetNames();

// Number of parameters the spec's checkpoint holds.
int64_t SynthParameterCount(const SynthSpec& spec);

// Writes dir/config.json and dir/model.safetensors (dir is created if
// missing).
Status WriteSyntheticLlama(const SynthSpec& spec, const std::string& dir);

}  // namespace slim
