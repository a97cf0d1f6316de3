// Attention head pruning, aware of grouped-query attention (pass
// prune_structured, options kv_groups and head_ratio): the graph analysis,
// scoring and rewrite.
//
// A layer's attention is found from the dataflow around its KV cache, as
// the Hugging Face reader builds it (io/hf_llama.cpp):
//   q/k/v = Linear(h) -> Reshape([.., heads, head_dim]) -> Transpose -> RoPE
//   present.L.key/value = Concat(past_key_values.L.key/value, k/v)
//   q -> Reshape([0, kv, rep, -1, head_dim]) -> MatMul with the keys
//   ctx -> Reshape([0, heads, -1, head_dim]) -> Transpose
//       -> Reshape([-1, heads * head_dim]) -> Linear o
// Query head h reads KV head h / rep (rep = heads / kv, as HF repeat_kv).
//
//   kv_groups  KV heads removed per layer, each with its rep query heads:
//              rows of W_k, W_v (and the KV cache), rows of W_q, columns of W_o
//   head_ratio fraction of query heads removed inside each remaining group,
//              the same count in every group (rep stays uniform)
// Every dependent shape follows: the Reshape shape constants (checked
// against the values they must hold before they are changed), the KV-cache
// inputs and outputs, value shapes (re-derived by shape inference), and the
// Hugging Face metadata (num_attention_heads, num_key_value_heads). The
// shape constants are shared by all layers, so every layer loses the same
// heads count (a layer that is protected or excluded stops head pruning of
// the whole model, logged). Graphs whose attention is not laid out this way
// (ONNX exports) are left alone with the reason logged.
//
// Importance of query head h with calibration: sum over its head_dim
// columns c of W_o of E[a_c^2] ||W_o[:, c]||^2 (its expected squared
// contribution to the output); without: ||W_o[:, cols]||^2 ||W_q[rows, :]||^2.
// A KV group scores the sum of its query heads. With the Hessian of W_o's
// input the output projection is refitted on the kept columns by ridge least
// squares (numerics/prune.h RefitKeptInputs).
#pragma once

#include <string>

#include "libcompress/ir/graph.h"
#include "libcompress/pipeline/pass.h"

namespace slim {

struct HeadPruneOptions {
  int64_t kv_groups = 0;   // KV groups removed per layer
  double head_ratio = 0;   // fraction of query heads removed inside each group
  bool reconstruct = true;
  double damp = 0.01;
  std::string protect;     // regular expression over weight names ("" = none)
};

// Rewrites `g` in place (unless ctx.dry_run) and appends or updates the
// report rows of the weights it changes.
Status PruneAttentionHeads(Graph& g, const PassContext& ctx, const HeadPruneOptions& options, PassReport* report);

}  // namespace slim
