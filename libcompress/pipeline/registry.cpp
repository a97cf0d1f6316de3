// The explicit, ordered pass list (no static self-registration: linkers drop
// unreferenced objects from static libraries, and the order is the listing
// order of `slimpack passes`). A recipe decides the order passes run in.
#include "libcompress/pipeline/registry.h"

#include <memory>

#include "passes/hook_external.h"
#include "passes/mixed_precision.h"
#include "passes/prune.h"
#include "passes/prune_structured.h"
#include "passes/quantize_int4.h"
#include "passes/quantize_int8.h"
#include "passes/reconstruct.h"
#include "passes/select_layout.h"

namespace slim {

const std::vector<const Pass*>& AllPasses() {
  static const std::vector<std::unique_ptr<Pass>> kOwned = [] {
    std::vector<std::unique_ptr<Pass>> v;
    // Recipes list prune before the quantization passes, which keep its zeros.
    v.push_back(MakePruneStructuredPass());
    v.push_back(MakePrunePass());
    // reconstruct refits pruned float weights: after prune, before quantization.
    v.push_back(MakeReconstructPass());
    v.push_back(MakeHookExternalPass());
    v.push_back(MakeQuantizeInt8Pass());
    v.push_back(MakeQuantizeInt4Pass());
    // mixed chooses int4/int8/FP16 per tensor; it replaces the two above.
    v.push_back(MakeMixedPrecisionPass());
    // Order matters in recipes, not here; but select_layout only sees
    // weights a quantization pass packed, so recipes list it after them.
    v.push_back(MakeSelectLayoutPass());
    return v;
  }();
  static const std::vector<const Pass*> kList = [] {
    std::vector<const Pass*> v;
    for (const auto& p : kOwned) v.push_back(p.get());
    return v;
  }();
  return kList;
}

const Pass* FindPass(const std::string& name) {
  for (const Pass* p : AllPasses()) {
    if (p->info().name == name) return p;
  }
  return nullptr;
}

}  // namespace slim
