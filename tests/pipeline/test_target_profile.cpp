// Target profiles: built-ins, user JSON files and their validation messages.
#include <catch2/catch.hpp>

#include <cstdio>
#include <fstream>
#include <unistd.h>

#include "libcompress/pipeline/target_profile.h"

namespace slim {
namespace {

bool Contains(const std::string& s, const std::string& part) {
  return s.find(part) != std::string::npos;
}

std::string ProfileError(const std::string& json) {
  auto t = ParseTargetJson(json, "my_phone.json");
  REQUIRE_FALSE(t.ok());
  CHECK(Contains(t.status().message(), "my_phone.json"));
  return t.status().message();
}

}  // namespace

TEST_CASE("built-in target profiles", "[pipeline][targets]") {
  std::vector<std::string> names;
  for (const auto& t : ListTargets()) {
    names.push_back(t.name);
    INFO(t.name);
    CHECK(t.dram_gbps > 0);
    CHECK(t.usable_fraction > 0);
    CHECK(t.usable_fraction <= 1);
    CHECK_FALSE(t.description.empty());
    // Every built-in survives the JSON round trip a user file goes through.
    auto again = ParseTargetJson(TargetToJson(t), "roundtrip");
    INFO(again.status().message());
    REQUIRE(again.ok());
    CHECK(again->isa == t.isa);
    CHECK(again->dram_gbps == t.dram_gbps);
    CHECK(again->target_tokens_per_s == t.target_tokens_per_s);
    CHECK(again->int4_layout == t.int4_layout);
  }
  REQUIRE(names.size() >= 3);
  CHECK(names[0] == "generic");
  auto phone = FindTarget("phone-arm-dotprod");
  REQUIRE(phone.ok());
  CHECK(phone->isa == "arm-neon-dotprod");
  CHECK(phone->dram_gbps == 76.8);
  CHECK(phone->usable_fraction == 0.5);
  CHECK(phone->budget_gbps() == Approx(38.4));
  CHECK(phone->int4_layout == "x8");
  REQUIRE(FindTarget("x86-avx2").ok());
  CHECK(FindTarget("x86-avx2")->int4_layout == "x8");
  CHECK(FindTarget("generic")->int4_layout == "x8");  // the default target packs the fast tiles

  auto missing = FindTarget("toaster");
  REQUIRE_FALSE(missing.ok());
  CHECK(Contains(missing.status().message(), "generic, x86-avx2, phone-arm-dotprod"));
}

TEST_CASE("user profile files are validated key by key", "[pipeline][targets]") {
  auto ok = ParseTargetJson(R"({"name": "my-phone", "isa": "arm-i8mm", "dram_gbps": 51.2,
      "usable_fraction": 0.45, "target_tokens_per_s": 8, "int4_layout": "x8", "group_size": 64,
      "l2_kib": 1024})",
                            "my_phone.json");
  INFO(ok.status().message());
  REQUIRE(ok.ok());
  CHECK(ok->target_tokens_per_s == 8.0);
  CHECK(ok->group_size == 64);
  CHECK(ok->l2_kib == 1024);
  CHECK(ok->int8_layout == "row");

  CHECK(Contains(ProfileError("[1]"), "must be a JSON object"));
  CHECK(Contains(ProfileError("{"), "not valid JSON"));
  CHECK(Contains(ProfileError(R"({"isa": "generic", "dram_gbps": 10, "usable_fraction": 0.5})"),
                 "key 'name' is required"));
  CHECK(Contains(ProfileError(R"({"name": "x", "isa": "riscv", "dram_gbps": 10, "usable_fraction": 0.5})"),
                 "key 'isa' is 'riscv'"));
  CHECK(Contains(ProfileError(R"({"name": "x", "isa": "generic", "dram_gbps": 10, "usable_fraction": 1.5})"),
                 "key 'usable_fraction' is 1.5"));
  CHECK(Contains(ProfileError(R"({"name": "x", "isa": "generic", "dram_gbps": "fast", "usable_fraction": 0.5})"),
                 "key 'dram_gbps' must be a number"));
  CHECK(Contains(ProfileError(R"({"name": "x", "isa": "generic", "dram_gbps": 10, "usable_fraction": 0.5, "bandwidth": 3})"),
                 "unknown key 'bandwidth'"));
  CHECK(Contains(ProfileError(R"({"name": "x", "isa": "generic", "dram_gbps": 10, "usable_fraction": 0.5, "group_size": 48})"),
                 "key 'group_size' is 48"));
  CHECK(Contains(ProfileError(R"({"name": "x", "isa": "generic", "dram_gbps": 10, "usable_fraction": 0.5, "int4_layout": "x16"})"),
                 "key 'int4_layout'"));
}

TEST_CASE("FindTarget loads a JSON file by path", "[pipeline][targets]") {
  const std::string path = "/tmp/slimpack_test_target_" + std::to_string(::getpid()) + ".json";
  {
    std::ofstream f(path);
    f << R"({"name": "lab-board", "isa": "generic", "dram_gbps": 12.8, "usable_fraction": 0.6})";
  }
  auto t = FindTarget(path);
  INFO(t.status().message());
  REQUIRE(t.ok());
  CHECK(t->name == "lab-board");
  CHECK(t->budget_gbps() == Approx(7.68));
  {
    std::ofstream f(path);
    f << R"({"name": "lab-board", "isa": "generic", "dram_gbps": -1, "usable_fraction": 0.6})";
  }
  auto bad = FindTarget(path);
  REQUIRE_FALSE(bad.ok());
  CHECK(Contains(bad.status().message(), path + ": key 'dram_gbps'"));
  std::remove(path.c_str());
}

}  // namespace slim
