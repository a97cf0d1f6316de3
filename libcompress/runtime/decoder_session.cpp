#include "libcompress/runtime/decoder_session.h"

#include <cstring>

#include "libcompress/runtime/fp16_upcast.h"

namespace slim {

Expected<std::unique_ptr<DecoderSession>> DecoderSession::Create(const Model& model,
                                                                const RuntimeOptions& options) {
  if (!model.decoder) {
    return InvalidInput(model.path, ": not a decoder language model (needs an input 'input_ids' "
                        "and an output 'logits')");
  }
  SLIM_ASSIGN_OR_RETURN(Graph graph, UpcastFp16Compute(model.graph));
  std::unique_ptr<DecoderSession> s(new DecoderSession(model, std::move(graph)));
  SLIM_ASSIGN_OR_RETURN(s->interp_, Interpreter::Create(s->graph_, options));
  SLIM_RETURN_IF_ERROR(s->Init().WithContext(model.path));
  return s;
}

Status DecoderSession::Init() {
  vocab_size_ = spec_.vocab_size;
  if (!spec_.has_past) return Status::Ok();
  const Graph& g = graph_;
  const ValueInfo* past = nullptr;
  for (const auto& in : g.inputs) {
    if (in.name == DecoderSpec::PastKey(0)) past = &in;
  }
  SLIM_CHECK_INPUT(past != nullptr, "decoder graph has no input ", DecoderSpec::PastKey(0));
  past_dtype_ = past->dtype;
  int64_t kv_heads = spec_.num_kv_heads, head_dim = spec_.head_dim;
  if (past->shape && past->shape->size() == 4) {
    if ((*past->shape)[1].is_static()) kv_heads = (*past->shape)[1].value;
    if ((*past->shape)[3].is_static()) head_dim = (*past->shape)[3].value;
  }
  SLIM_CHECK_INPUT(kv_heads > 0 && head_dim > 0, "cannot tell the KV-cache shape of input ",
                   past->name, " (needs static dims 1 and 3 of [batch, kv_heads, past, head_dim])");
  past_shape_ = {1, kv_heads, 0, head_dim};
  Reset();
  return Status::Ok();
}

void DecoderSession::Reset() {
  context_.clear();
  past_.clear();
  if (spec_.has_past) {
    for (int64_t l = 0; l < spec_.num_layers; ++l) {
      past_.emplace_back(past_dtype_, past_shape_);
      past_.emplace_back(past_dtype_, past_shape_);
    }
  }
}

namespace {

Tensor Int64Row(const std::vector<int64_t>& v) {
  return Tensor::FromVector(DType::kInt64, {1, static_cast<int64_t>(v.size())}, v);
}

}  // namespace

std::map<std::string, Tensor> DecoderSession::Feeds(const std::vector<int64_t>& ids, int64_t first_pos, int64_t total,
                                                    const std::vector<Tensor>& past) const {
  std::map<std::string, Tensor> feeds;
  feeds[spec_.input_ids] = Int64Row(ids);
  if (spec_.has_attention_mask) {
    feeds["attention_mask"] = Int64Row(std::vector<int64_t>(static_cast<size_t>(total), 1));
  }
  if (spec_.has_position_ids) {
    std::vector<int64_t> pos(ids.size());
    for (size_t i = 0; i < pos.size(); ++i) pos[i] = first_pos + static_cast<int64_t>(i);
    feeds["position_ids"] = Int64Row(pos);
  }
  if (spec_.has_past) {
    for (int64_t l = 0; l < spec_.num_layers; ++l) {
      feeds[DecoderSpec::PastKey(l)] = past[static_cast<size_t>(2 * l)];
      feeds[DecoderSpec::PastValue(l)] = past[static_cast<size_t>(2 * l + 1)];
    }
  }
  return feeds;
}

Expected<std::map<std::string, Tensor>> DecoderSession::PrefillFeeds(const std::vector<int64_t>& tokens) const {
  SLIM_CHECK_INPUT(!tokens.empty(), "no tokens");
  for (int64_t t : tokens) {
    SLIM_CHECK_INPUT(t >= 0 && (vocab_size_ == 0 || t < vocab_size_), "token id ", t,
                     " is outside the vocabulary [0, ", vocab_size_, ")");
  }
  const auto total = static_cast<int64_t>(tokens.size());
  SLIM_CHECK_INPUT(spec_.max_positions == 0 || total <= spec_.max_positions, "context of ", total,
                   " tokens exceeds the model's maximum of ", spec_.max_positions, " positions");
  std::vector<Tensor> empty;
  if (spec_.has_past) {
    for (int64_t l = 0; l < 2 * spec_.num_layers; ++l) empty.emplace_back(past_dtype_, past_shape_);
  }
  return Feeds(tokens, 0, total, empty);
}

Expected<std::vector<float>> DecoderSession::Append(const std::vector<int64_t>& tokens) {
  SLIM_CHECK_INPUT(!tokens.empty(), "no tokens to append");
  for (int64_t t : tokens) {
    SLIM_CHECK_INPUT(t >= 0 && (vocab_size_ == 0 || t < vocab_size_), "token id ", t,
                     " is outside the vocabulary [0, ", vocab_size_, ")");
  }
  const int64_t past_len = context_length();
  const int64_t total = past_len + static_cast<int64_t>(tokens.size());
  SLIM_CHECK_INPUT(spec_.max_positions == 0 || total <= spec_.max_positions, "context of ", total,
                   " tokens exceeds the model's maximum of ", spec_.max_positions, " positions");

  // Without a KV cache the whole context is recomputed.
  std::vector<int64_t> ids = tokens;
  int64_t first_pos = past_len;
  if (!spec_.has_past) {
    ids = context_;
    ids.insert(ids.end(), tokens.begin(), tokens.end());
    first_pos = 0;
  }
  std::map<std::string, Tensor> feeds = Feeds(ids, first_pos, total, past_);
  std::vector<std::string> wanted{spec_.logits};
  if (spec_.has_past) {
    for (int64_t l = 0; l < spec_.num_layers; ++l) {
      wanted.push_back(DecoderSpec::PresentKey(l));
      wanted.push_back(DecoderSpec::PresentValue(l));
    }
  }
  RunStats stats;
  SLIM_ASSIGN_OR_RETURN(auto out, interp_->Run(feeds, wanted, &stats, observer_));
  last_traffic_ = Traffic{stats.weight_bytes_read, 0};
  for (const auto& [name, bytes] : stats.input_bytes_read) {
    if (name.rfind("past_key_values.", 0) == 0) last_traffic_.kv_bytes += bytes;
  }
  const Tensor& logits = out.at(spec_.logits);
  SLIM_CHECK_INPUT(logits.rank() == 3 && logits.dim(0) == 1 &&
                       logits.dim(1) == static_cast<int64_t>(ids.size()),
                   "output '", spec_.logits, "' has shape ", ShapeToString(logits.shape()),
                   ", expected [1, ", ids.size(), ", vocab]");
  if (vocab_size_ == 0) vocab_size_ = logits.dim(2);
  SLIM_CHECK_INPUT(logits.dim(2) == vocab_size_, "output '", spec_.logits, "' has vocabulary ",
                   logits.dim(2), ", expected ", vocab_size_);
  if (spec_.has_past) {
    for (int64_t l = 0; l < spec_.num_layers; ++l) {
      past_[static_cast<size_t>(2 * l)] = out.at(DecoderSpec::PresentKey(l));
      past_[static_cast<size_t>(2 * l + 1)] = out.at(DecoderSpec::PresentValue(l));
    }
  }
  context_.insert(context_.end(), tokens.begin(), tokens.end());

  // Rows of the appended tokens only.
  const size_t rows = tokens.size();
  const size_t first_row = ids.size() - rows;
  const size_t v = static_cast<size_t>(vocab_size_);
  std::vector<float> result(rows * v);
  if (logits.dtype() == DType::kFloat32) {
    std::memcpy(result.data(), logits.data<float>() + first_row * v, rows * v * sizeof(float));
  } else {
    for (size_t i = 0; i < rows * v; ++i) result[i] = logits.FloatAt(static_cast<int64_t>(first_row * v + i));
  }
  return result;
}

}  // namespace slim
