// Built-in target profiles and the user-profile JSON reader.
#include "libcompress/pipeline/target_profile.h"
#include "libcompress/common/file_util.h"
#include "libcompress/common/json_parse.h"

#include <cmath>
#include <fstream>
#include <set>
#include <sstream>

#include <nlohmann/json.hpp>

namespace slim {
namespace {

TargetProfile Make(std::string name, std::string description, std::string isa, double dram_gbps,
                   double usable_fraction, std::optional<double> tokens_per_s,
                   std::string int4_layout, int64_t l1d, int64_t l2, int64_t l3) {
  TargetProfile t;
  t.name = std::move(name);
  t.description = std::move(description);
  t.isa = std::move(isa);
  t.dram_gbps = dram_gbps;
  t.usable_fraction = usable_fraction;
  t.target_tokens_per_s = tokens_per_s;
  t.int4_layout = std::move(int4_layout);
  t.int8_layout = "row";
  t.group_size = 32;
  t.l1d_kib = l1d;
  t.l2_kib = l2;
  t.l3_kib = l3;
  return t;
}

const std::set<std::string>& KnownIsas() {
  static const std::set<std::string> k = {"generic", "x86-avx2", "arm-neon-dotprod", "arm-i8mm"};
  return k;
}

std::string JoinSet(const std::set<std::string>& s) {
  std::string out;
  for (const auto& v : s) out += (out.empty() ? "" : ", ") + v;
  return out;
}

}  // namespace

const std::vector<TargetProfile>& BuiltinTargets() {
  // Bandwidths are the DRAM interface peaks (transfer rate x bus width);
  // usable fractions are what a single decode stream typically sustains
  // (desktops reach ~70% with all cores streaming, phones ~50% because the
  // bus is shared with the GPU/modem and big cores are power-limited). The
  // ARM profiles pack int4 as 8-row interleaved tiles: a 32-byte chunk is
  // two 128-bit registers of 4 rows x 4 codes, the operand shape of SDOT /
  // SMMLA, even when this host cannot run that fast path.
  static const std::vector<TargetProfile> k = {
      // x8 tiles by default: the i8-dot kernels that read them are the fast
      // path on AVX2 and AVX-512 hosts and bit-identical to their scalar
      // reference elsewhere, so the default file is fast wherever it runs
      // and its numbers do not depend on the host (docs/LAYOUTS.md).
      Make("generic", "any host: int4 in 8-row tiles (int8-activation dot products; SIMD where the host has it)",
           "generic", 25.6, 0.6, std::nullopt, "x8", 32, 512, 8192),
      Make("x86-avx2", "x86-64 desktop with AVX2/FMA, dual-channel DDR4-3200", "x86-avx2", 51.2,
           0.7, std::nullopt, "x8", 32, 512, 32768),
      Make("phone-arm-dotprod",
           "phone-class ARMv8.2 SoC with NEON dot product, LPDDR5X 76.8 GB/s, about half usable "
           "for decoding; 10 tokens/s interactive target",
           "arm-neon-dotprod", 76.8, 0.5, 10.0, "x8", 64, 512, 8192),
      Make("phone-arm-i8mm",
           "phone-class ARMv8.6 SoC with int8 matrix multiply (i8mm), LPDDR5X-8533 68.3 GB/s, "
           "about half usable; 10 tokens/s interactive target",
           "arm-i8mm", 68.3, 0.5, 10.0, "x8", 64, 1024, 12288),
  };
  return k;
}

std::vector<TargetProfile> ListTargets() { return BuiltinTargets(); }

Expected<TargetProfile> FindTarget(const std::string& name_or_path) {
  for (const auto& t : BuiltinTargets()) {
    if (t.name == name_or_path) return t;
  }
  std::ifstream probe(name_or_path);
  if (!probe) {
    std::string names;
    for (const auto& t : BuiltinTargets()) names += (names.empty() ? "" : ", ") + t.name;
    return InvalidInput("target '", name_or_path, "' is neither a built-in profile (", names,
                        ") nor a readable JSON file");
  }
  return LoadTargetFile(name_or_path);
}

Expected<TargetProfile> LoadTargetFile(const std::string& path) {
  SLIM_ASSIGN_OR_RETURN(const std::string text, ReadFileBytes(path, "target profile"));
  return ParseTargetJson(text, path);
}

Expected<TargetProfile> ParseTargetJson(const std::string& json_text, const std::string& source) {
  SLIM_ASSIGN_OR_RETURN(const nlohmann::json j, ParseJsonText(json_text, source));
  SLIM_CHECK_INPUT(j.is_object(), source, ": a target profile must be a JSON object");
  static const std::set<std::string> kKeys = {
      "name",        "description", "isa",        "dram_gbps", "usable_fraction",
      "target_tokens_per_s", "int4_layout", "int8_layout", "group_size", "l1d_kib",
      "l2_kib",      "l3_kib"};
  for (auto it = j.begin(); it != j.end(); ++it) {
    SLIM_CHECK_INPUT(kKeys.count(it.key()), source, ": unknown key '", it.key(),
                     "' (known: ", JoinSet(kKeys), ")");
  }
  auto need_string = [&](const char* key, bool required, std::string* out) -> Status {
    if (!j.contains(key)) {
      SLIM_CHECK_INPUT(!required, source, ": key '", key, "' is required");
      return Status::Ok();
    }
    SLIM_CHECK_INPUT(j[key].is_string(), source, ": key '", key, "' must be a string");
    *out = j[key].get<std::string>();
    return Status::Ok();
  };
  auto need_number = [&](const char* key, bool required, double lo, double hi, bool lo_open,
                         double* out, bool* present) -> Status {
    *present = j.contains(key);
    if (!*present) {
      SLIM_CHECK_INPUT(!required, source, ": key '", key, "' is required");
      return Status::Ok();
    }
    SLIM_CHECK_INPUT(j[key].is_number(), source, ": key '", key, "' must be a number");
    const double v = j[key].get<double>();
    const bool above = lo_open ? v > lo : v >= lo;
    SLIM_CHECK_INPUT(std::isfinite(v) && above && v <= hi, source, ": key '", key, "' is ", v,
                     ", must be in ", lo_open ? "(" : "[", lo, ", ", hi, "]");
    *out = v;
    return Status::Ok();
  };

  TargetProfile t;
  SLIM_RETURN_IF_ERROR(need_string("name", true, &t.name));
  SLIM_CHECK_INPUT(!t.name.empty(), source, ": key 'name' must not be empty");
  SLIM_RETURN_IF_ERROR(need_string("description", false, &t.description));
  SLIM_RETURN_IF_ERROR(need_string("isa", true, &t.isa));
  SLIM_CHECK_INPUT(KnownIsas().count(t.isa), source, ": key 'isa' is '", t.isa,
                   "', must be one of ", JoinSet(KnownIsas()));
  bool present = false;
  SLIM_RETURN_IF_ERROR(need_number("dram_gbps", true, 0, 1e6, true, &t.dram_gbps, &present));
  SLIM_RETURN_IF_ERROR(
      need_number("usable_fraction", true, 0, 1, true, &t.usable_fraction, &present));
  double tps = 0;
  SLIM_RETURN_IF_ERROR(need_number("target_tokens_per_s", false, 0, 1e9, true, &tps, &present));
  if (present) t.target_tokens_per_s = tps;

  SLIM_RETURN_IF_ERROR(need_string("int4_layout", false, &t.int4_layout));
  SLIM_CHECK_INPUT(t.int4_layout == "row" || t.int4_layout == "x8", source,
                   ": key 'int4_layout' is '", t.int4_layout, "', must be \"row\" or \"x8\"");
  SLIM_RETURN_IF_ERROR(need_string("int8_layout", false, &t.int8_layout));
  SLIM_CHECK_INPUT(t.int8_layout == "row", source, ": key 'int8_layout' is '", t.int8_layout,
                   "', must be \"row\" (the only int8 layout)");
  double group = 32;
  SLIM_RETURN_IF_ERROR(need_number("group_size", false, 32, 128, false, &group, &present));
  SLIM_CHECK_INPUT(group == 32 || group == 64 || group == 128, source, ": key 'group_size' is ",
                   group, ", must be 32, 64 or 128");
  t.group_size = static_cast<int64_t>(group);
  double kib = 0;
  SLIM_RETURN_IF_ERROR(need_number("l1d_kib", false, 0, 1 << 20, false, &kib, &present));
  t.l1d_kib = static_cast<int64_t>(kib);
  kib = 0;
  SLIM_RETURN_IF_ERROR(need_number("l2_kib", false, 0, 1 << 22, false, &kib, &present));
  t.l2_kib = static_cast<int64_t>(kib);
  kib = 0;
  SLIM_RETURN_IF_ERROR(need_number("l3_kib", false, 0, 1 << 24, false, &kib, &present));
  t.l3_kib = static_cast<int64_t>(kib);
  return t;
}

std::string TargetToJson(const TargetProfile& t) {
  nlohmann::ordered_json j;
  j["name"] = t.name;
  j["description"] = t.description;
  j["isa"] = t.isa;
  j["dram_gbps"] = t.dram_gbps;
  j["usable_fraction"] = t.usable_fraction;
  if (t.target_tokens_per_s) j["target_tokens_per_s"] = *t.target_tokens_per_s;
  j["int4_layout"] = t.int4_layout;
  j["int8_layout"] = t.int8_layout;
  j["group_size"] = t.group_size;
  j["l1d_kib"] = t.l1d_kib;
  j["l2_kib"] = t.l2_kib;
  j["l3_kib"] = t.l3_kib;
  return j.dump();
}

}  // namespace slim
