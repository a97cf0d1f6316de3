#include "tools/html_report.h"
#include "tools/cli.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <sstream>
#include <vector>

namespace slim::cli {

namespace {

using nlohmann::json;

std::string Esc(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&': o += "&amp;"; break;
      case '<': o += "&lt;"; break;
      case '>': o += "&gt;"; break;
      case '"': o += "&quot;"; break;
      default: o.push_back(c);
    }
  }
  return o;
}

std::string Num(double v, int digits = 3) {
  char b[64];
  std::snprintf(b, sizeof b, "%.*g", digits, v);
  return b;
}

double Get(const json& j, const char* key, double fallback = 0) {
  return j.is_object() && j.contains(key) && j[key].is_number() ? j[key].get<double>() : fallback;
}

std::string Str(const json& j, const char* key) {
  return j.is_object() && j.contains(key) && j[key].is_string() ? j[key].get<std::string>() : "";
}

const char* kCss = R"(
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;margin:24px auto;max-width:1180px;color:#1d1d1f;background:#fff;padding:0 16px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:17px;margin:28px 0 8px;border-bottom:1px solid #ddd;padding-bottom:4px}
.sub{color:#666;margin-bottom:16px}.cards{display:flex;flex-wrap:wrap;gap:10px}
.card{border:1px solid #ddd;border-radius:8px;padding:10px 14px;min-width:150px}.card b{display:block;font-size:19px}
.card span{color:#666;font-size:12px}.pass{color:#1b7f3b}.fail{color:#c62828}
table{border-collapse:collapse;width:100%;font-size:12.5px}th,td{border-bottom:1px solid #eee;padding:3px 6px;text-align:right}
th{background:#f6f6f6;position:sticky;top:0}td:first-child,th:first-child{text-align:left}
.legend span{display:inline-block;margin-right:14px}.sw{display:inline-block;width:11px;height:11px;border-radius:2px;margin-right:4px;vertical-align:-1px}
pre{background:#f6f6f6;padding:10px;overflow:auto;font-size:12px}footer{margin-top:32px;color:#666;font-size:12px}
svg text{font:11px system-ui,"DejaVu Sans",sans-serif;fill:#444}
)";

std::string Page(const std::string& title, const std::string& body) {
  return "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>" + Esc(title) +
         "</title><style>" + kCss + "</style></head><body>\n" + body + "</body></html>\n";
}

std::string Card(const std::string& value, const std::string& label, const std::string& cls = "") {
  return "<div class=\"card\"><b class=\"" + cls + "\">" + value + "</b><span>" + Esc(label) + "</span></div>";
}

// The smallest 1, 2, 2.5 or 5 times a power of ten at or above v (axis tops).
double NiceCeil(double v) {
  if (!(v > 0)) return 1;
  const double p = std::pow(10.0, std::floor(std::log10(v)));
  for (double m : {1.0, 2.0, 2.5, 5.0, 10.0})
    if (v <= m * p * (1 + 1e-12)) return m * p;
  return 10 * p;
}

struct Bar {
  std::string label;  // under the axis when there is room, always in the tooltip
  double value = 0;
  std::string color;
  std::string title;  // tooltip
};

// Vertical bars over a y axis from 0 (or 10^floor for log) to y_max.
std::string SvgBars(const std::vector<Bar>& bars, double y_max, const std::string& y_label, bool log_scale,
                    int height = 220, bool labels = false) {
  const int width = 1140, left = 70, right = 10, top = 10, bottom = labels ? 60 : 16;
  const int plot_w = width - left - right, plot_h = height - top - bottom;
  double lo = 0, hi = y_max > 0 ? y_max : 1;
  if (log_scale) {
    double min_v = hi;
    for (const Bar& b : bars)
      if (b.value > 0) min_v = std::min(min_v, b.value);
    lo = std::floor(std::log10(min_v));
    hi = std::ceil(std::log10(hi));
    if (hi <= lo) hi = lo + 1;
  }
  auto y_of = [&](double v) {
    double t = log_scale ? (v > 0 ? (std::log10(v) - lo) / (hi - lo) : 0) : v / hi;
    t = std::clamp(t, 0.0, 1.0);
    return top + plot_h * (1 - t);
  };
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 "
    << width << " " << height << "\" role=\"img\">";
  // Grid and y ticks.
  const int ticks = log_scale ? static_cast<int>(hi - lo) : 4;
  for (int i = 0; i <= ticks; ++i) {
    const double v = log_scale ? std::pow(10.0, lo + i) : hi * i / ticks;
    const double y = y_of(v);
    o << "<line x1=\"" << left << "\" x2=\"" << width - right << "\" y1=\"" << y << "\" y2=\"" << y
      << "\" stroke=\"#eee\"/><text x=\"" << left - 6 << "\" y=\"" << y + 4 << "\" text-anchor=\"end\">" << Num(v, 3)
      << "</text>";
  }
  o << "<text x=\"12\" y=\"" << top + plot_h / 2 << "\" transform=\"rotate(-90 12 " << top + plot_h / 2
    << ")\" text-anchor=\"middle\">" << Esc(y_label) << "</text>";
  const double slot = bars.empty() ? plot_w : static_cast<double>(plot_w) / static_cast<double>(bars.size());
  for (size_t i = 0; i < bars.size(); ++i) {
    const Bar& b = bars[i];
    const double x = left + slot * static_cast<double>(i) + slot * 0.1;
    const double y = y_of(b.value), y0 = top + plot_h;
    o << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << std::max(1.0, slot * 0.8) << "\" height=\""
      << std::max(0.0, y0 - y) << "\" fill=\"" << b.color << "\"><title>" << Esc(b.title.empty() ? b.label : b.title)
      << "</title></rect>";
    if (labels) {
      o << "<text x=\"" << x + slot * 0.4 << "\" y=\"" << y0 + 14 << "\" text-anchor=\"middle\">" << Esc(b.label)
        << "</text>";
    }
  }
  o << "<line x1=\"" << left << "\" x2=\"" << width - right << "\" y1=\"" << top + plot_h << "\" y2=\""
    << top + plot_h << "\" stroke=\"#999\"/></svg>";
  return o.str();
}

// One horizontal stacked bar per row: segments (value, color, label).
struct Segment {
  double value;
  std::string color, label;
};
std::string SvgStacked(const std::vector<std::pair<std::string, std::vector<Segment>>>& rows, double max_total) {
  const int width = 1140, left = 150, row_h = 30, height = static_cast<int>(rows.size()) * (row_h + 10) + 10;
  std::ostringstream o;
  o << "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" << width << "\" height=\"" << height << "\" viewBox=\"0 0 "
    << width << " " << height << "\" role=\"img\">";
  for (size_t r = 0; r < rows.size(); ++r) {
    const double y = 10 + static_cast<double>(r) * (row_h + 10);
    o << "<text x=\"" << left - 8 << "\" y=\"" << y + row_h / 2 + 4 << "\" text-anchor=\"end\">" << Esc(rows[r].first)
      << "</text>";
    double x = left;
    for (const Segment& s : rows[r].second) {
      const double w = max_total > 0 ? (width - left - 20) * s.value / max_total : 0;
      o << "<rect x=\"" << x << "\" y=\"" << y << "\" width=\"" << std::max(0.0, w) << "\" height=\"" << row_h
        << "\" fill=\"" << s.color << "\"><title>" << Esc(s.label + ": " + HumanBytes(s.value)) << "</title></rect>";
      x += w;
    }
  }
  o << "</svg>";
  return o.str();
}

std::string Legend(const std::vector<std::pair<std::string, std::string>>& items) {
  std::string o = "<div class=\"legend\">";
  for (const auto& [color, label] : items) o += "<span><i class=\"sw\" style=\"background:" + color + "\"></i>" + Esc(label) + "</span>";
  return o + "</div>";
}

const char* kFp16 = "#9e9e9e";
const char* kInt8 = "#1565c0";
const char* kInt4 = "#2e7d32";
const char* kSparse = "#ef6c00";

const char* SchemeColor(const std::string& layout, double sparsity) {
  const bool sparse_layout = layout.find("_s24") != std::string::npos || layout.find("_bm") != std::string::npos;
  if (sparse_layout || sparsity > 0) return kSparse;
  if (layout.rfind("q4", 0) == 0 || layout == "int4") return kInt4;
  if (layout.rfind("q8", 0) == 0 || layout == "int8") return kInt8;
  return kFp16;
}

// One row per weight tensor: the last pass's layout and bytes, the first
// pass's bytes before, the output error and sparsity where a pass gave them.
struct TensorRow {
  std::string name, role, layout;
  double params = 0, bits = 16, bpw = 16, sparsity = 0, bytes_before = 0, bytes_after = 0, out_err = -1;
  std::string pattern;
};

std::vector<TensorRow> Tensors(const json& report) {
  std::vector<TensorRow> rows;
  std::map<std::string, size_t> index;
  if (!report.contains("passes") || !report["passes"].is_array()) return rows;
  for (const json& pass : report["passes"]) {
    if (!pass.contains("tensors") || !pass["tensors"].is_array()) continue;
    for (const json& t : pass["tensors"]) {
      const std::string name = Str(t, "name");
      auto it = index.find(name);
      if (it == index.end()) {
        it = index.emplace(name, rows.size()).first;
        rows.push_back({});
        rows.back().name = name;
        rows.back().bytes_before = Get(t, "bytes_before");
        rows.back().params = Get(t, "params");
      }
      TensorRow& r = rows[it->second];
      const std::string role = Str(t, "role");
      if (r.role.empty() && role != "packed-matmul-weight") r.role = role;
      const std::string actual = Str(t, "actual").empty() ? Str(t, "layout") : Str(t, "actual");
      if (!actual.empty()) r.layout = actual;
      r.bytes_after = Get(t, "bytes_after", r.bytes_after);
      r.bpw = Get(t, "bits_per_weight", r.bpw);
      r.bits = Get(t, "bits", r.bits);
      if (Get(t, "sparsity") > 0 || !Str(t, "sparsity_pattern").empty()) {
        r.sparsity = Get(t, "sparsity");
        r.pattern = Str(t, "sparsity_pattern");
      }
      if (t.contains("output_rel_error") && t["output_rel_error"].is_number()) r.out_err = t["output_rel_error"].get<double>();
    }
  }
  return rows;
}

std::string Provenance(const json& p) {
  std::string o = "<footer><h2>Provenance</h2><table>";
  if (p.is_object()) {
    for (const auto& [k, v] : p.items()) {
      if (k == "recipe") continue;
      o += "<tr><td>" + Esc(k) + "</td><td style=\"text-align:left\">" + Esc(v.is_string() ? v.get<std::string>() : v.dump()) +
           "</td></tr>";
    }
  }
  o += "</table>";
  if (p.is_object() && p.contains("recipe")) o += "<h2>Recipe</h2><pre>" + Esc(p["recipe"].dump(2)) + "</pre>";
  return o + "<p>Written by slimpack from the same figures as the JSON report.</p></footer>";
}

}  // namespace

std::string CompileReportHtml(const json& report, const std::string& model_path) {
  const std::vector<TensorRow> rows = Tensors(report);
  const json totals = report.value("totals", json::object());
  const json output = report.value("output", json::object());
  std::ostringstream b;
  b << "<h1>slimpack compile report</h1><div class=\"sub\">" << Esc(model_path) << " &rarr; "
    << Esc(Str(output, "path")) << (report.value("dry_run", false) ? " (dry run: estimated)" : "") << "</div>";
  const double before = Get(totals, "bytes_before"), after = Get(totals, "bytes_after");
  b << "<div class=\"cards\">" << Card(HumanBytes(before) + " &rarr; " + HumanBytes(after), "weight bytes")
    << Card(Num(before > 0 ? after / before : 0, 3) + "x", "of the source weights")
    << Card(Num(Get(totals, "bits_per_weight_before"), 4) + " &rarr; " + Num(Get(totals, "bits_per_weight_after"), 4),
            "bits per weight (scales included)")
    << Card(Num(Get(totals, "weight_tensors"), 6), "weight tensors")
    << Card(Num(Get(totals, "fallbacks"), 6), "fallbacks", Get(totals, "fallbacks") > 0 ? "fail" : "pass")
    << Card(Esc(report.value("target", std::string("generic"))), "target profile")
    << Card(HumanBytes(Get(output, "bytes")), "packed file") << "</div>";

  // Bits per weight along the layer order.
  std::vector<Bar> bits, sparsity, errs;
  double max_err = 0;
  for (const TensorRow& r : rows) {
    const std::string tip = r.name + ": " + r.layout + ", " + Num(r.bpw, 4) + " bits/weight" +
                            (r.sparsity > 0 ? ", sparsity " + Num(r.sparsity, 3) + " " + r.pattern : "");
    bits.push_back({r.name, r.bpw, SchemeColor(r.layout, r.sparsity), tip});
    sparsity.push_back({r.name, r.sparsity, kSparse, r.name + ": sparsity " + Num(r.sparsity, 3)});
    if (r.out_err > 0) {
      errs.push_back({r.name, r.out_err, SchemeColor(r.layout, r.sparsity), r.name + ": output error " + Num(r.out_err, 3)});
      max_err = std::max(max_err, r.out_err);
    }
  }
  b << "<h2>Scheme and bits per weight, in layer order</h2>"
    << Legend({{kFp16, "FP16/FP32"}, {kInt8, "int8"}, {kInt4, "int4"}, {kSparse, "sparse"}})
    << SvgBars(bits, 16, "bits per weight", false);
  bool any_sparse = false;
  for (const TensorRow& r : rows) any_sparse = any_sparse || r.sparsity > 0;
  if (any_sparse) b << "<h2>Sparsity, in layer order</h2>" << SvgBars(sparsity, 1, "fraction of zeros", false, 150);

  // Bytes before and after, split.
  double codes = 0, side = 0, plain = 0, sum_after = 0;
  for (const TensorRow& r : rows) {
    sum_after += r.bytes_after;
    if (r.bits >= 16 || SchemeColor(r.layout, r.sparsity) == kFp16) {
      plain += r.bytes_after;
      continue;
    }
    const double c = r.params * (1 - r.sparsity) * r.bits / 8;
    codes += std::min(c, r.bytes_after);
    side += std::max(0.0, r.bytes_after - c);
  }
  const double file = Get(output, "bytes");
  const double rest = std::max(0.0, file - sum_after);
  b << "<h2>Bytes before and after</h2>"
    << Legend({{kFp16, "FP16/FP32 weights"}, {kInt4, "quantized codes"}, {kSparse, "scales and sparse indices"},
               {"#bdbdbd", "rest of the file: other tensors, metadata, alignment"}})
    << SvgStacked({{"source weights", {{before, kFp16, "FP16/FP32 weights"}}},
                   {"packed", {{plain, kFp16, "FP16/FP32 weights"}, {codes, kInt4, "quantized codes"},
                               {side, kSparse, "scales and sparse indices"},
                               {rest, "#bdbdbd", "rest of the file"}}}},
                  std::max(before, plain + codes + side + rest))
    << "<p>Source " << HumanBytes(before) << "; packed weights " << HumanBytes(sum_after) << " (codes " << HumanBytes(codes)
    << ", scales and indices " << HumanBytes(side) << ", unquantized " << HumanBytes(plain) << ")"
    << (file > 0 ? "; file " + HumanBytes(file) + ", of which " + HumanBytes(rest) + " other tensors, metadata and alignment" : "")
    << ".</p>";

  if (!errs.empty()) {
    b << "<h2>Output error per tensor (relative, on calibration activations)</h2>"
      << SvgBars(errs, max_err, "relative output error (log)", true);
  }

  b << "<h2>Tensors</h2><table><tr><th>tensor</th><th>role</th><th>layout</th><th>bits/weight</th><th>sparsity</th>"
       "<th>bytes before</th><th>bytes after</th><th>output error</th></tr>";
  for (const TensorRow& r : rows) {
    b << "<tr><td>" << Esc(r.name) << "</td><td>" << Esc(r.role) << "</td><td>" << Esc(r.layout) << "</td><td>"
      << Num(r.bpw, 4) << "</td><td>" << (r.sparsity > 0 ? Num(r.sparsity, 3) + " " + Esc(r.pattern) : "-")
      << "</td><td>" << Num(r.bytes_before, 10) << "</td><td>" << Num(r.bytes_after, 10) << "</td><td>"
      << (r.out_err >= 0 ? Num(r.out_err, 3) : "-") << "</td></tr>";
  }
  b << "</table>" << Provenance(report.value("provenance", json::object()));
  return Page("slimpack compile: " + model_path, b.str());
}

std::string VerifyReportHtml(const json& report, const std::string& packed_path, const std::string& reference_path) {
  std::ostringstream b;
  const bool pass = report.value("pass", false);
  b << "<h1>slimpack verify report</h1><div class=\"sub\">" << Esc(packed_path) << " against " << Esc(reference_path)
    << "</div><div class=\"cards\">" << Card(pass ? "PASS" : "FAIL", "every check", pass ? "pass" : "fail");
  const json acc = report.value("accuracy", json::object());
  if (!acc.empty()) {
    b << Card(Num(Get(acc, "kl_mean"), 4), "mean KL (nats/token)") << Card(Num(Get(acc, "kl_p99"), 4), "p99 KL")
      << Card(Num(100 * Get(acc, "top1_agreement"), 4) + " %", "top-1 agreement")
      << Card(Num(Get(acc, "ppl_ratio"), 5), "perplexity ratio")
      << Card(Num(Get(acc, "tokens_evaluated"), 8), "tokens evaluated");
  }
  b << "</div><h2>Checks</h2><table><tr><th>check</th><th>limit</th><th>value</th><th>result</th></tr>";
  for (const json& c : report.value("checks", json::array())) {
    const bool ok = c.value("pass", false);
    b << "<tr><td>" << Esc(Str(c, "name")) << "</td><td>" << Num(Get(c, "limit"), 6) << "</td><td>"
      << Num(Get(c, "value"), 6) << "</td><td class=\"" << (ok ? "pass\">pass" : "fail\">FAIL") << "</td></tr>";
  }
  b << "</table>";

  if (acc.contains("by_position")) {
    std::vector<Bar> kl, top1;
    double max_kl = 0;
    for (const json& k : acc["by_position"]) {
      const std::string label = Num(Get(k, "first"), 8) + (Get(k, "last") > Get(k, "first") ? "-" + Num(Get(k, "last"), 8) : "");
      kl.push_back({label, Get(k, "kl_mean"), "#6a1b9a",
                    "positions " + label + ": mean KL " + Num(Get(k, "kl_mean"), 4) + " over " + Num(Get(k, "tokens"), 8) + " tokens"});
      top1.push_back({label, Get(k, "top1_agreement"), "#00838f",
                      "positions " + label + ": top-1 " + Num(100 * Get(k, "top1_agreement"), 4) + " %"});
      max_kl = std::max(max_kl, Get(k, "kl_mean"));
    }
    b << "<h2>KL by position in the sequence</h2>" << SvgBars(kl, NiceCeil(max_kl), "mean KL", false, 200, true)
      << "<h2>Top-1 agreement by position</h2>" << SvgBars(top1, 1, "top-1 agreement", false, 200, true);
  }
  if (acc.contains("worst_sequences")) {
    b << "<h2>Worst sequences</h2><table><tr><th>sequence</th><th>tokens</th><th>mean KL</th><th>top-1</th></tr>";
    for (const json& w : acc["worst_sequences"]) {
      b << "<tr><td>" << Num(Get(w, "sequence"), 8) << "</td><td>" << Num(Get(w, "tokens"), 8) << "</td><td>"
        << Num(Get(w, "kl_mean"), 4) << "</td><td>" << Num(100 * Get(w, "top1_agreement"), 4) << " %</td></tr>";
    }
    b << "</table>";
  }
  if (report.contains("outputs")) {
    b << "<h2>Outputs</h2><table><tr><th>output</th><th>min cosine</th><th>max relative L2</th><th>argmax agreement</th></tr>";
    for (const json& o : report["outputs"]) {
      b << "<tr><td>" << Esc(Str(o, "name")) << "</td><td>" << Num(Get(o, "cosine_min"), 6) << "</td><td>"
        << Num(Get(o, "rel_l2_max"), 4) << "</td><td>" << Num(Get(o, "argmax_agreement"), 4) << "</td></tr>";
    }
    b << "</table>";
  }

  const json bw = report.value("bandwidth", json::object());
  if (bw.contains("bytes_per_token")) {
    const double weights = Get(bw, "bytes_per_token_weights"), kv = Get(bw, "bytes_per_token_kv_cache");
    const double allowed = Get(bw, "max_tokens_per_s_under_budget"), target = Get(bw, "target_tokens_per_s");
    b << "<h2>Bytes per decoded token and the bandwidth budget</h2>"
      << Legend({{kInt4, "weights and scales"}, {"#8d6e63", "KV cache"}})
      << SvgStacked({{"bytes per token", {{weights, kInt4, "weights and scales"}, {kv, "#8d6e63", "KV cache"}}}}, weights + kv)
      << "<p>" << HumanBytes(Get(bw, "bytes_per_token")) << " read per decoded token at context "
      << Num(Get(bw, "context"), 8) << " (counted by the runtime). Budget " << Num(Get(bw, "budget_gbps"), 4)
      << " GB/s (" << Esc(Str(bw, "budget_source")) << "): at most <b>" << Num(allowed, 4) << " tokens/s</b>"
      << (target > 0 ? " against a target of <b>" + Num(target, 4) + " tokens/s</b>" : ", no target set") << ". This host: "
      << Num(Get(bw, "host_tokens_per_s"), 4) << " tokens/s.</p>";
    if (target > 0) {
      b << SvgBars({{"allowed by the budget", allowed, allowed >= target ? "#1b7f3b" : "#c62828",
                     "allowed by the budget: " + Num(allowed, 4) + " tokens/s"},
                    {"target", target, "#616161", "target: " + Num(target, 4) + " tokens/s"}},
                   NiceCeil(std::max(allowed, target)), "tokens/s (log)", true, 180, true);
    }
  }
  json prov = json::object();
  if (report.contains("data")) prov["data"] = report["data"];
  if (report.contains("runtime")) prov["runtime"] = report["runtime"];
  prov["packed"] = packed_path;
  prov["reference"] = reference_path;
  b << Provenance(prov);
  return Page("slimpack verify: " + packed_path, b.str());
}

}  // namespace slim::cli
