// Drives a decoder graph (Model::decoder) for full-sequence evaluation and
// token-by-token generation, independent of the format the model came from.
//
// Graphs with past_key_values inputs keep a KV cache: each Append feeds the
// new tokens with the cached keys/values and stores the returned present.*
// tensors as the next past. Graphs without past (a plain full-sequence
// export) recompute the whole context on each Append and return the rows of
// the new tokens, so both kinds answer the same questions.
#pragma once

#include <memory>
#include <vector>

#include "libcompress/io/model.h"
#include "libcompress/runtime/interpreter.h"

namespace slim {

class DecoderSession {
 public:
  // Tensors are shared with `model` (no weight copies). Fails when the model
  // is not a decoder. `options` (threads) changes the speed, never the
  // logits (interpreter.h RuntimeOptions).
  static Expected<std::unique_ptr<DecoderSession>> Create(const Model& model,
                                                          const RuntimeOptions& options = RuntimeOptions());

  // Appends `tokens` (batch 1) to the context; returns their logits,
  // row-major [tokens.size(), vocab_size()] as float32.
  Expected<std::vector<float>> Append(const std::vector<int64_t>& tokens);
  // The graph inputs Append would feed for `tokens` on an empty context
  // (ids, mask, positions, an empty KV cache), and the graph that runs them
  // (the model's after the FP32-compute rewrite): what a caller needs to run
  // parts of the forward pass itself (sequential calibration).
  Expected<std::map<std::string, Tensor>> PrefillFeeds(const std::vector<int64_t>& tokens) const;
  const Graph& graph() const { return graph_; }
  // Watch values of the graph during the following Appends (nullptr: stop).
  // Names are those of the model's graph; `observer` must outlive its use.
  void SetObserver(const ValueObserver* observer) { observer_ = observer; }
  // Forgets the context (and the KV cache).
  void Reset();

  int64_t context_length() const { return static_cast<int64_t>(context_.size()); }
  int64_t vocab_size() const { return vocab_size_; }
  const DecoderSpec& spec() const { return spec_; }
  // Memory traffic of the last Append: weights (scales included) and the KV
  // cache read; token ids and masks are left out (bytes, not kilobytes).
  struct Traffic {
    uint64_t weight_bytes = 0;
    uint64_t kv_bytes = 0;
    uint64_t total() const { return weight_bytes + kv_bytes; }
  };
  const Traffic& last_traffic() const { return last_traffic_; }

 private:
  DecoderSession(const Model& model, Graph graph) : spec_(*model.decoder), graph_(std::move(graph)) {}
  Status Init();
  std::map<std::string, Tensor> Feeds(const std::vector<int64_t>& ids, int64_t first_pos, int64_t total,
                                      const std::vector<Tensor>& past) const;

  DecoderSpec spec_;
  Graph graph_;  // the model's graph after the FP32-compute rewrite
  std::unique_ptr<Interpreter> interp_;
  int64_t vocab_size_ = 0;
  std::vector<int64_t> context_;
  std::vector<Tensor> past_;  // 2 per layer (key, value) when spec_.has_past
  DType past_dtype_ = DType::kFloat32;
  std::vector<int64_t> past_shape_;  // [1, kv_heads, 0, head_dim] for an empty cache
  Traffic last_traffic_;
  const ValueObserver* observer_ = nullptr;
};

}  // namespace slim
