#include "libcompress/eval/calibration.h"

#include <algorithm>
#include <set>
#include <unordered_map>

#include <Eigen/Core>

#include "libcompress/runtime/decoder_session.h"

namespace slim {

std::vector<std::string> WeightInputValues(const Graph& graph) {
  std::unordered_map<std::string, const Node*> producer;
  for (const Node& n : graph.nodes) {
    for (const auto& o : n.outputs) producer[o] = &n;
  }
  // A weight: an initializer or Constant, directly or through one Cast.
  auto is_weight = [&](const std::string& v) {
    if (graph.FindInitializer(v)) return true;
    auto p = producer.find(v);
    if (p == producer.end()) return false;
    if (p->second->op_type == "Cast") {
      const std::string& src = p->second->Input(0);
      if (graph.FindInitializer(src)) return true;
      p = producer.find(src);
      if (p == producer.end()) return false;
    }
    return p->second->op_type == "Constant";
  };
  std::vector<std::string> out;
  std::set<std::string> seen;
  for (const Node& n : graph.nodes) {
    const bool onnx = n.domain.empty() || n.domain == "ai.onnx";
    const bool matmul = (onnx && (n.op_type == "MatMul" || n.op_type == "Gemm")) ||
                        (n.domain == "slimpack" && n.op_type == "MatMulQ");
    if (!matmul || n.inputs.size() < 2 || !is_weight(n.Input(1))) continue;
    if (n.op_type == "Gemm" && n.GetInt("transA", 0) != 0) continue;  // A is [K, M]: rows are not tokens
    if (seen.insert(n.Input(0)).second) out.push_back(n.Input(0));
  }
  return out;
}

namespace {

// Accumulates one value's statistics; rows are numbered over the whole run so
// the sample (every `stride`-th row) does not depend on sequence boundaries.
struct Accumulator {
  ActivationStat stat;
  size_t next_row = 0;
};

}  // namespace

Expected<ActivationStats> CollectActivationStats(const Model& model, const TokenDataset& data,
                                                 const std::string& data_path,
                                                 const CalibrationOptions& options,
                                                 const CalibrationProgressFn& progress) {
  SLIM_CHECK_INPUT(model.decoder.has_value(), model.path,
                   ": calibration data are token sequences, which need a decoder language model");
  SLIM_CHECK_INPUT(options.first_sequence < data.sequences.size(), data_path, ": has ",
                   data.sequences.size(), " sequences, calibration starts at sequence ",
                   options.first_sequence);
  const size_t end = options.max_sequences == 0
                         ? data.sequences.size()
                         : std::min(data.sequences.size(), options.first_sequence + options.max_sequences);
  if (model.decoder->vocab_size > 0 && data.vocab_size > 0) {
    SLIM_CHECK_INPUT(data.vocab_size <= model.decoder->vocab_size, data_path, ": vocabulary of ",
                     data.vocab_size, " tokens, the model has ", model.decoder->vocab_size);
  }
  size_t total_rows = 0;
  for (size_t s = options.first_sequence; s < end; ++s) total_rows += data.sequences[s].size();
  const size_t stride =
      options.max_sample_rows == 0 ? 0 : std::max<size_t>(1, (total_rows + options.max_sample_rows - 1) / options.max_sample_rows);

  ActivationStats stats;
  stats.source = StrCat(data_path, " sequences ", options.first_sequence, "..", end - 1);
  std::map<std::string, Accumulator> acc;
  ValueObserver observer;
  observer.values = WeightInputValues(model.graph);
  SLIM_CHECK_INPUT(!observer.values.empty(), model.path, ": no matmul reads a weight; nothing to calibrate");
  observer.on_value = [&](const std::string& name, const Tensor& v) -> Status {
    SLIM_CHECK_INPUT(v.rank() >= 1 && v.dim(v.rank() - 1) > 0, "value '", name, "' has shape ",
                     ShapeToString(v.shape()), "; a matmul input needs a last dimension");
    const int64_t k = v.dim(v.rank() - 1);
    Accumulator& a = acc[name];
    if (a.stat.dim == 0) {
      a.stat.dim = k;
      a.stat.mean_sq.assign(static_cast<size_t>(k), 0.0);
    }
    SLIM_CHECK_INPUT(a.stat.dim == k, "value '", name, "' has last dimension ", k, ", earlier ", a.stat.dim);
    const std::vector<float> x = v.dtype() == DType::kFloat32 ? std::vector<float>() : v.ToFloatVector();
    const float* p = v.dtype() == DType::kFloat32 ? v.data<float>() : x.data();
    const size_t rows = static_cast<size_t>(v.numel() / k), kk = static_cast<size_t>(k);
    for (size_t r = 0; r < rows; ++r, ++a.next_row) {
      const float* row = p + r * kk;
      for (size_t i = 0; i < kk; ++i) a.stat.mean_sq[i] += static_cast<double>(row[i]) * row[i];
      if (stride > 0 && a.next_row % stride == 0 &&
          static_cast<size_t>(a.stat.sample_rows) < options.max_sample_rows) {
        a.stat.sample.insert(a.stat.sample.end(), row, row + kk);
        ++a.stat.sample_rows;
      }
    }
    a.stat.rows += static_cast<int64_t>(rows);
    if (options.gram) {
      using MatF = Eigen::Matrix<float, Eigen::Dynamic, Eigen::Dynamic, Eigen::RowMajor>;
      if (a.stat.gram.empty()) a.stat.gram.assign(kk * kk, 0.0f);
      Eigen::Map<const MatF> xm(p, static_cast<Eigen::Index>(rows), k);
      // The lower triangle of X^T X, summed over sequences in place (a
      // symmetric rank update costs half a product); the upper triangle is
      // filled in at the end. FP32 like the factorisation that reads it.
      Eigen::Map<Eigen::MatrixXf> gm(a.stat.gram.data(), k, k);
      gm.selfadjointView<Eigen::Lower>().rankUpdate(xm.transpose());
    }
    return Status::Ok();
  };

  SLIM_ASSIGN_OR_RETURN(auto session, DecoderSession::Create(model, options.runtime));
  session->SetObserver(&observer);
  for (size_t s = options.first_sequence; s < end; ++s) {
    session->Reset();
    auto logits = session->Append(data.sequences[s]);
    if (!logits.ok()) return logits.status().WithContext(StrCat(data_path, ": sequence ", s));
    stats.tokens += static_cast<int64_t>(data.sequences[s].size());
    ++stats.sequences;
    if (progress) progress(s + 1 - options.first_sequence, end - options.first_sequence);
  }
  for (auto& [name, a] : acc) {
    const double rows = static_cast<double>(std::max<int64_t>(a.stat.rows, 1));
    for (double& m : a.stat.mean_sq) m /= rows;
    if (!a.stat.gram.empty()) {
      // Column-major lower triangle (i >= j) -> both triangles.
      const size_t k = static_cast<size_t>(a.stat.dim);
      for (size_t j = 0; j < k; ++j) {
        for (size_t i = j; i < k; ++i) {
          const float v = static_cast<float>(a.stat.gram[j * k + i] / rows);
          a.stat.gram[j * k + i] = v;
          a.stat.gram[i * k + j] = v;
        }
      }
    }
    stats.values[name] = std::move(a.stat);
  }
  return stats;
}

}  // namespace slim
