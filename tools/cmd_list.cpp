// slimpack passes / slimpack targets: what the compiler can do and for which
// hardware.
#include <cstdio>

#include "libcompress/pipeline/options.h"
#include "libcompress/pipeline/recipe.h"
#include "libcompress/pipeline/registry.h"
#include "libcompress/pipeline/target_profile.h"
#include "tools/cli.h"

namespace slim::cli {

void AddPassesCommand(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "passes",
      "List the compression passes with their options (type, range, default) and the presets.\n"
      "Example: slimpack passes --json -");
  sub->add_option("--json", *json, "Write passes, options and presets as JSON to FILE ('-' = stdout)");
  sub->callback([json, &exit_code] {
    nlohmann::json j;
    for (const Pass* p : AllPasses()) {
      const PassInfo& info = p->info();
      nlohmann::json pj{{"name", info.name}, {"summary", info.summary}};
      for (const auto& o : info.options) {
        pj["options"].push_back({{"key", o.key}, {"type", OptionTypeName(o.type)},
                                 {"default", FormatOptionValue(o.default_value)}, {"help", o.help},
                                 {"per_tensor", o.per_tensor}, {"choices", o.choices}});
      }
      j["passes"].push_back(pj);
      if (HumanOutput(*json)) std::printf("%s\n", DescribePass(info).c_str());
    }
    if (HumanOutput(*json)) std::printf("presets:\n");
    for (const auto& p : ListPresets()) {
      j["presets"].push_back({{"name", p.name}, {"description", p.description}});
      if (HumanOutput(*json)) std::printf("  %-10s %s\n", p.name.c_str(), p.description.c_str());
    }
    Status st = WriteJson(*json, j);
    exit_code = st.ok() ? kExitOk : ReportError(st);
  });
}

void AddTargetsCommand(CLI::App& app, int& exit_code) {
  auto json = std::make_shared<std::string>();
  CLI::App* sub = app.add_subcommand(
      "targets",
      "List the hardware profiles: ISA, DRAM bandwidth and usable share, preferred layouts.\n"
      "A profile drives packing (compile --target) and the bandwidth budget (verify --target);\n"
      "a user profile is a JSON file with the same keys. Example: slimpack targets --json -");
  sub->add_option("--json", *json, "Write the profiles as JSON to FILE ('-' = stdout)");
  sub->callback([json, &exit_code] {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& t : ListTargets()) {
      j.push_back(nlohmann::json::parse(TargetToJson(t)));
      if (HumanOutput(*json)) {
        std::printf("%-20s %-17s %6.1f GB/s x %.2f usable = %6.1f GB/s  int4 %s g%lld, int8 %s  %s\n",
                    t.name.c_str(), t.isa.c_str(), t.dram_gbps, t.usable_fraction, t.budget_gbps(),
                    t.int4_layout.c_str(), static_cast<long long>(t.group_size), t.int8_layout.c_str(),
                    t.description.c_str());
      }
    }
    Status st = WriteJson(*json, j);
    exit_code = st.ok() ? kExitOk : ReportError(st);
  });
}

}  // namespace slim::cli
