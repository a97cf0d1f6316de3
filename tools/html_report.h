// compile --report-html and verify --report-html: one self-contained HTML
// page per report (inline CSS and SVG, no scripts, nothing fetched), drawn
// from the same JSON the --report / --json files hold, so the page never
// shows a figure the JSON does not.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

namespace slim::cli {

// `report`: the compile report (cmd_compile.cpp's JSON, with "passes",
// "totals", "output", "provenance").
std::string CompileReportHtml(const nlohmann::json& report, const std::string& model_path);

// `report`: verify --json's object (language models: "accuracy",
// "bandwidth", "checks"; other graphs: "outputs", "checks").
std::string VerifyReportHtml(const nlohmann::json& report, const std::string& packed_path,
                             const std::string& reference_path);

}  // namespace slim::cli
