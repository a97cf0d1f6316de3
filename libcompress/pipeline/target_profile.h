// Hardware target profiles: what the packing and the bandwidth check assume
// about the device a packed model will run on.
//
// A profile names an ISA family (which fast kernels its layouts are meant
// for), the DRAM bandwidth and the fraction of it a decoder can actually use
// (budget_gbps = dram_gbps * usable_fraction), an optional target decode rate,
// the packed layout families it prefers for int4 and int8 weights, the int4
// group size its kernels are tuned for, and cache sizes. Built-in profiles
// cover a generic host, AVX2 desktops and phone-class ARM SoCs; a user JSON
// file (same keys as ProfileToJson writes) adds others.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

struct TargetProfile {
  std::string name;
  std::string description;
  std::string isa;  // "generic", "x86-avx2", "arm-neon-dotprod", "arm-i8mm"
  double dram_gbps = 0;        // total DRAM bandwidth, GB/s (1e9 bytes/s)
  double usable_fraction = 0;  // share of it a decoder sustains, (0, 1]
  std::optional<double> target_tokens_per_s;
  // Layout families the packer writes ("row" or "x8" for int4, "row" for
  // int8); docs/LAYOUTS.md defines them.
  std::string int4_layout = "row";
  std::string int8_layout = "row";
  int64_t group_size = 32;  // int4 group size the profile's kernels are tuned for
  int64_t l1d_kib = 0;      // per core
  int64_t l2_kib = 0;       // per core (or per cluster on phones)
  int64_t l3_kib = 0;       // shared last level (system cache on phones); 0 if none

  double budget_gbps() const { return dram_gbps * usable_fraction; }
};

// Built-in profiles, in listing order (generic first).
const std::vector<TargetProfile>& BuiltinTargets();
// `slimpack targets`: every built-in profile.
std::vector<TargetProfile> ListTargets();
// A built-in profile by name, or else a JSON file at that path. Unknown
// names say which built-ins exist.
Expected<TargetProfile> FindTarget(const std::string& name_or_path);
// Parses a user profile; errors name `source` (the file) and the key.
Expected<TargetProfile> ParseTargetJson(const std::string& json_text, const std::string& source);
Expected<TargetProfile> LoadTargetFile(const std::string& path);
// The profile as JSON (the keys ParseTargetJson accepts), for reports,
// packed-file provenance and `slimpack targets --json`.
std::string TargetToJson(const TargetProfile& t);

}  // namespace slim
