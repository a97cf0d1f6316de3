// CPU feature detection, read once at start-up. Kernel dispatch tables are
// chosen from this; call sites never test ISA macros.
#pragma once

namespace slim {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool has_x86_avx2() const { return avx2 && fma && f16c; }
};

// Features of this host. SLIMPACK_FORCE_SCALAR=1 in the environment reports
// none, so the scalar reference kernels can be run end to end.
const CpuFeatures& HostCpuFeatures();

}  // namespace slim
