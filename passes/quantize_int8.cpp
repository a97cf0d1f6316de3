// quantize_int8: declares the pass and maps roles to schemes; the engine in
// weight_quant.cpp does the work.
#include "passes/quantize_int8.h"

#include "passes/weight_quant.h"

namespace slim {
namespace {

class QuantizeInt8Pass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo = WithAwqOptions(WithSearchOptions({
        "quantize_int8",
        "int8 weight-only quantization, symmetric, one scale per output channel",
        {
            EnumOption("scheme", "int8", {"int8", "keep"},
                       "linear layers (MatMul/Gemm weights): int8, or keep the source dtype",
                       true),
            EnumOption("classifier", "int8", {"int8", "keep"},
                       "output projection (lm_head, or the tied embedding used as classifier)",
                       true),
            EnumOption("embeddings", "int8", {"int8", "keep"},
                       "embedding tables read by Gather: int8 (slimpack.GatherQ) or keep; a "
                       "tied table follows `classifier`",
                       true),
        }}, "row"));
    return kInfo;
  }

  bool NeedsHessians(const PassContext& ctx) const override { return WeightPassNeedsHessians(ctx); }
  bool NeedsActivations(const PassContext& ctx) const override { return WeightPassNeedsActivations(ctx); }
  bool WantsHessians(const PassContext& ctx) const override { return WeightPassNeedsActivations(ctx); }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    return RunWeightQuantization(graph, ctx, [](const WeightCandidate& c, const Options& o) {
      return RequestForRole(c.role, o, [](const std::string& choice) {
        WeightScheme scheme;
        scheme.kind = choice == "int8" ? WeightScheme::Kind::kInt8 : WeightScheme::Kind::kKeep;
        return scheme;
      });
    });
  }
};

}  // namespace

std::unique_ptr<Pass> MakeQuantizeInt8Pass() { return std::make_unique<QuantizeInt8Pass>(); }

}  // namespace slim
