// slimpack --version: version, git commit, compiler, and what this host
// will run: CPU model, the features dispatch reads, and the kernel each
// packed layout takes (the same choice run and verify report per model).
#include <fstream>
#include <set>
#include <sstream>

#include "libcompress/kernels/cpu_features.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/kernels/quant.h"
#include "slimpack_git.h"
#include "tools/cli.h"

namespace slim::cli {

namespace {

std::string CpuModel() {
  std::ifstream in("/proc/cpuinfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind("model name", 0) == 0) {
      const size_t colon = line.find(':');
      if (colon != std::string::npos) return line.substr(line.find_first_not_of(" \t", colon + 1));
    }
  }
  return "unknown";
}

}  // namespace

std::string VersionText() {
  std::ostringstream o;
  o << "slimpack " << SLIMPACK_VERSION << "\n";
  o << "git commit " << SLIMPACK_GIT_COMMIT << "\n";
#if defined(__clang__)
  o << "compiler   clang " << __clang_version__ << "\n";
#elif defined(__GNUC__)
  o << "compiler   GCC " << __VERSION__ << "\n";
#endif
  o << "cpu        " << CpuModel() << "\n";
  const CpuFeatures& f = HostCpuFeatures();
  o << "features   ";
  const std::pair<const char*, bool> flags[] = {{"avx2", f.avx2},         {"fma", f.fma},
                                                {"f16c", f.f16c},         {"avx512f", f.avx512f},
                                                {"avx512bw", f.avx512bw}, {"avx512vl", f.avx512vl},
                                                {"avx512vnni", f.avx512vnni}, {"avx512vbmi", f.avx512vbmi}};
  bool any = false;
  for (const auto& [name, on] : flags) {
    if (!on) continue;
    o << (any ? " " : "") << name;
    any = true;
  }
  o << (any ? "" : "none beyond x86-64") << " (used by dispatch; SLIMPACK_ISA caps them)\n";
  o << "kernels    (layout: default compute path -> kernel on this host)\n";
  std::vector<QuantLayout> layouts = AllQuantLayouts();
  for (const QuantLayout& l : AllSparseQuantLayouts()) layouts.push_back(l);
  for (const QuantLayout& l : AllNlQuantLayouts()) layouts.push_back(l);
  std::set<std::string> seen;
  for (const QuantLayout& l : layouts) {
    if (!seen.insert(l.Name()).second) continue;
    const QComputePath path = DefaultComputePath(l);
    auto plan = SelectQGemm(l, path);
    o << "  " << l.Name() << ": " << QComputePathName(path) << " -> " << (plan.ok() ? plan->kernel_name : "none")
      << "\n";
  }
  std::string s = o.str();
  s.pop_back();  // CLI11 adds the final newline
  return s;
}

}  // namespace slim::cli
