// CPU feature detection, read once at start-up. Kernel dispatch tables are
// chosen from this; call sites never test ISA macros.
#pragma once

namespace slim {

struct CpuFeatures {
  bool avx2 = false;
  bool fma = false;
  bool f16c = false;
  bool avx512f = false;
  bool avx512bw = false;
  bool avx512vl = false;
  bool avx512vnni = false;
  bool avx512vbmi = false;
  bool has_x86_avx2() const { return avx2 && fma && f16c; }
  // The AVX-512 kernels (gemm_q_avx512.cpp) use 512-bit VNNI dot products,
  // byte masks (BW), 256-bit forms of AVX-512 instructions (VL) and byte
  // permutes (VBMI: the 2:4 kernel picks its activations with vpermb). Ice
  // Lake, Sapphire Rapids and Zen 4 on have all of them; Cascade Lake (VNNI
  // without VBMI) runs the AVX2 table.
  bool has_x86_avx512_vnni() const {
    return has_x86_avx2() && avx512f && avx512bw && avx512vl && avx512vnni && avx512vbmi;
  }
};

// Features of this host, capped by the environment so that lower kernel paths
// can be run end to end on a host that has higher ones (tests, benchmarks):
//   SLIMPACK_ISA=scalar | avx2 | avx512   the highest path to report
//   SLIMPACK_FORCE_SCALAR=1               same as SLIMPACK_ISA=scalar
// An unknown SLIMPACK_ISA value is reported on stderr once and ignored.
const CpuFeatures& HostCpuFeatures();

}  // namespace slim
