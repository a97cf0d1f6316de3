// Static figures of a model: parameters, bytes by dtype, and the bytes one
// decoded token reads (an estimate from tensor sizes; the runtime's RunStats
// gives the measured figure). Used by `inspect`, and later by compile
// --dry-run and verify.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "libcompress/io/model.h"

namespace slim {

struct ModelStats {
  uint64_t nodes = 0;
  std::map<std::string, uint64_t> op_counts;
  uint64_t tensors = 0;      // initializers + Constant-node tensors
  uint64_t parameters = 0;   // elements of float and packed tensors with more than one element
  uint64_t weight_bytes = 0; // bytes of all tensors
  struct DTypeTotal {
    uint64_t tensors = 0, elements = 0, bytes = 0;
  };
  std::map<std::string, DTypeTotal> by_dtype;
  // Estimated bytes read per decoded token: every weight once, except tensors
  // used only as Gather tables (embeddings), of which one row is read.
  uint64_t weight_bytes_per_token = 0;
  // KV-cache bytes per token of context (2 * layers * kv_heads * head_dim *
  // dtype size); 0 when unknown.
  uint64_t kv_bytes_per_context_token = 0;
};

ModelStats ComputeModelStats(const Model& model);

// True when every (transitive, through Cast) reader of `value` is a Gather
// reading it as its table (input 0).
bool OnlyGathered(const Graph& g, const std::string& value);
// Bytes of weight tensor `t` (the value `value` of g) one decoded token
// reads: one row of a table only Gather reads, else all of it.
uint64_t TensorBytesPerToken(const Graph& g, const std::string& value, const Tensor& t);

}  // namespace slim
