// prune_structured: removes whole FFN neurons, attention heads and Conv
// channels, so the model becomes a
// smaller dense one (every later pass, file and kernel sees the new shapes).
//
//   before:  a = act(h W_gate^T) * (h W_up^T)      W_gate, W_up: [I, H]
//            y = a W_down^T                         W_down: [H, I]
//   after:   the same with the channels S kept (|S| = I'):
//            W_gate[S, :], W_up[S, :], their biases[S], per-channel
//            constants of the elementwise ops [S], and W_down[:, S], refitted
//            on calibration data when its Hessian is known:
//              W_down' = W_down H[:, S] (H[S, S] + lambda I)^-1,  H = E[a a^T]
//            (numerics/prune.h RefitKeptInputs), so the removed neurons'
//            contribution is predicted from the kept ones.
// A channel group is found from the graph, not from names: a linear layer
// (the consumer) whose input is computed only by elementwise ops (Mul, Add,
// Sigmoid, Relu, Gelu, ...; constants scalar or per channel) from the outputs
// of linear layers (the producers) that nothing else reads. SwiGLU (Llama,
// Mistral, Qwen2), GELU and ReLU MLPs, HF graphs (Gemm, transB=1) and ONNX
// exports (MatMul) all match; attention (Reshape between projections) does not.
// Importance of channel j: E[a_j^2] * ||W_down[:, j]||^2 (its expected squared
// contribution to the output) with calibration data, else the product of
// the squared norms of the weights that produce and read it (logged).
// Conv output channels (option conv_ratio): passes/conv_channels.h.
// Attention heads and KV groups (kv_groups, head_ratio): passes/attention_heads.h.
#pragma once

#include <memory>

#include "libcompress/pipeline/pass.h"

namespace slim {

std::unique_ptr<Pass> MakePruneStructuredPass();

}  // namespace slim
