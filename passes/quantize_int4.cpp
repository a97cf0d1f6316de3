// quantize_int4: declares the pass and maps roles to schemes; the engine in
// weight_quant.cpp does the work.
#include "passes/quantize_int4.h"

#include "passes/weight_quant.h"

namespace slim {
namespace {

WeightScheme SchemeFor(const std::string& choice, const Options& o) {
  WeightScheme s;
  if (choice == "int4") {
    s.kind = WeightScheme::Kind::kInt4;
    s.group_size = o.GetInt("group_size");
    s.nl = o.GetString("levels") == "nl";
    s.symmetric = s.nl || o.GetBool("symmetric");  // nl levels have no zero point
  } else if (choice == "int8") {
    s.kind = WeightScheme::Kind::kInt8;
  }
  return s;
}

class QuantizeInt4Pass final : public Pass {
 public:
  const PassInfo& info() const override {
    static const PassInfo kInfo = WithAwqOptions(WithSearchOptions({
        "quantize_int4",
        "int4 weight-only quantization, group-wise along K, FP16 scales, scale search",
        {
            IntChoiceOption("group_size", 32, {"32", "64", "128"},
                            "elements of K sharing one scale (a shorter last group is padded)",
                            true),
            BoolOption("symmetric", true,
                       "true: codes -8..7, scale only; false: codes 0..15 with a zero point "
                       "per group",
                       true),
            EnumOption("levels", "uniform", {"uniform", "nl"},
                       "int4 levels: uniform (scale * code), or nl: 16 fixed non-uniform levels "
                       "(llama.cpp's IQ4_NL values; symmetric, same 4.5 bits per weight at group 32, "
                       "lower error on bell-shaped weights; i8-dot kernels, layout q4g{G}_nl_x8; "
                       "masked weights stay uniform)",
                       true),
            EnumOption("scheme", "int4", {"int4", "int8", "keep"},
                       "linear layers (MatMul/Gemm weights other than the output projection)",
                       true),
            EnumOption("classifier", "int8", {"int8", "int4", "keep"},
                       "output projection (lm_head, or the tied embedding used as classifier); "
                       "int4 there is known to make models repeat themselves",
                       true),
            EnumOption("embeddings", "int8", {"int8", "keep"},
                       "embedding tables read by Gather: int8 (slimpack.GatherQ) or keep; a "
                       "tied table follows `classifier`",
                       true),
        }}, "group"));
    return kInfo;
  }

  bool NeedsHessians(const PassContext& ctx) const override { return WeightPassNeedsHessians(ctx); }
  bool NeedsActivations(const PassContext& ctx) const override { return WeightPassNeedsActivations(ctx); }
  bool WantsHessians(const PassContext& ctx) const override { return WeightPassNeedsActivations(ctx); }

  Expected<PassReport> Run(Graph& graph, const PassContext& ctx) const override {
    return RunWeightQuantization(graph, ctx, [](const WeightCandidate& c, const Options& o) {
      return RequestForRole(c.role, o, [&o](const std::string& choice) { return SchemeFor(choice, o); });
    });
  }
};

}  // namespace

std::unique_ptr<Pass> MakeQuantizeInt4Pass() { return std::make_unique<QuantizeInt4Pass>(); }

}  // namespace slim
