#include "libcompress/kernels/cpu_features.h"

#include <cstdlib>
#include <cstring>

namespace slim {

const CpuFeatures& HostCpuFeatures() {
  static const CpuFeatures features = [] {
    CpuFeatures f;
    const char* force = std::getenv("SLIMPACK_FORCE_SCALAR");
    if (force && std::strcmp(force, "0") != 0) return f;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    f.avx2 = __builtin_cpu_supports("avx2");
    f.fma = __builtin_cpu_supports("fma");
    // GCC's __builtin_cpu_supports has no "f16c" key; every AVX2 CPU shipped
    // has F16C, but check CPUID leaf 1 ECX bit 29 to be exact.
    unsigned eax, ebx, ecx, edx;
    __asm__("cpuid" : "=a"(eax), "=b"(ebx), "=c"(ecx), "=d"(edx) : "a"(1), "c"(0));
    f.f16c = (ecx >> 29) & 1u;
#endif
    return f;
  }();
  return features;
}

}  // namespace slim
