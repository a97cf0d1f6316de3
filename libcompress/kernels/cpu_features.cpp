#include "libcompress/kernels/cpu_features.h"

#include <cstdio>
#include <cstdlib>
#include <cstring>

namespace slim {
namespace {

CpuFeatures Detect() {
  CpuFeatures f;
#if defined(__x86_64__) || defined(__i386__)
  __builtin_cpu_init();
  f.avx2 = __builtin_cpu_supports("avx2");
  f.fma = __builtin_cpu_supports("fma");
  // GCC's __builtin_cpu_supports has no "f16c" key; every AVX2 CPU shipped
  // has F16C, but check CPUID leaf 1 ECX bit 29 to be exact.
  unsigned eax, ebx, ecx, edx;
  __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
  f.f16c = (ecx >> 29) & 1u;
  // GCC checks that the OS saves the AVX-512 state (XCR0) for these keys.
  f.avx512f = __builtin_cpu_supports("avx512f");
  f.avx512bw = __builtin_cpu_supports("avx512bw");
  f.avx512vl = __builtin_cpu_supports("avx512vl");
  f.avx512vnni = __builtin_cpu_supports("avx512vnni");
  f.avx512vbmi = __builtin_cpu_supports("avx512vbmi");
#endif
  return f;
}

void DropAvx512(CpuFeatures& f) { f.avx512f = f.avx512bw = f.avx512vl = f.avx512vnni = f.avx512vbmi = false; }

}  // namespace

const CpuFeatures& HostCpuFeatures() {
  static const CpuFeatures features = [] {
    CpuFeatures f = Detect();
    const char* force = std::getenv("SLIMPACK_FORCE_SCALAR");
    const char* isa = std::getenv("SLIMPACK_ISA");
    if ((force && std::strcmp(force, "0") != 0) || (isa && std::strcmp(isa, "scalar") == 0)) {
      return CpuFeatures{};
    }
    if (isa && std::strcmp(isa, "avx2") == 0) {
      DropAvx512(f);
    } else if (isa && *isa && std::strcmp(isa, "avx512") != 0) {
      std::fprintf(stderr, "slimpack: ignoring SLIMPACK_ISA=%s (known: scalar, avx2, avx512)\n", isa);
    }
    return f;
  }();
  return features;
}

}  // namespace slim
