#include "tools/cli.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <iostream>

#include "libcompress/io/atomic_file.h"
#include "libcompress/kernels/gemm_q.h"
#include "libcompress/runtime/thread_pool.h"

namespace slim::cli {

int DefaultThreads() { return HardwareThreads(8); }

int ReportError(const Status& status) {
  std::fprintf(stderr, "slimpack: error: %s\n", status.message().c_str());
  return status.code() == StatusCode::kInternal ? kExitInternal : kExitBadInput;
}

Status WriteJson(const std::string& path, const nlohmann::json& j) {
  if (path.empty()) return Status::Ok();
  const std::string text = j.dump(2) + "\n";
  if (path == "-") {
    std::fwrite(text.data(), 1, text.size(), stdout);
    std::fflush(stdout);
    return Status::Ok();
  }
  return WriteFileAtomic(path, text);
}

Status CheckOutputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs) {
  std::vector<std::string> seen;
  for (const std::string& out : outputs) {
    if (out.empty() || out == "-") continue;
    SLIM_RETURN_IF_ERROR(CheckOutputPath(out, inputs));
    for (const std::string& s : seen) {
      SLIM_CHECK_INPUT(s != out, out, ": named as two outputs of one command");
    }
    seen.push_back(out);
  }
  return Status::Ok();
}

std::string WithCommas(uint64_t v) {
  std::string s = std::to_string(v);
  for (int i = static_cast<int>(s.size()) - 3; i > 0; i -= 3) s.insert(static_cast<size_t>(i), ",");
  return s;
}

std::string HumanBytes(double bytes) {
  const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  while (bytes >= 1024 && u < 4) {
    bytes /= 1024;
    ++u;
  }
  char buf[32];
  std::snprintf(buf, sizeof buf, u == 0 ? "%.0f %s" : "%.2f %s", bytes, units[u]);
  return buf;
}

Progress::Progress(std::string label, uint64_t total, bool quiet)
    : label_(std::move(label)),
      total_(total),
      quiet_(quiet),
      tty_(::isatty(2) != 0),
      start_(std::chrono::steady_clock::now()) {}

namespace {

// "12.3/s, 1:05 left" (nothing to say before the first item).
std::string RateAndEta(uint64_t done, uint64_t total, double seconds) {
  if (done == 0 || seconds <= 0) return "";
  const double rate = static_cast<double>(done) / seconds;
  const auto left = static_cast<long long>(static_cast<double>(total - std::min(done, total)) / rate + 0.5);
  char b[64];
  std::snprintf(b, sizeof b, "%.3g/s, %lld:%02lld left", rate, left / 60, left % 60);
  return b;
}

}  // namespace

void Progress::Update(uint64_t done) {
  if (quiet_ || total_ == 0) return;
  const auto now = std::chrono::steady_clock::now();
  const double frac = static_cast<double>(std::min(done, total_)) / static_cast<double>(total_);
  const std::string rate = RateAndEta(done, total_, std::chrono::duration<double>(now - start_).count());
  if (tty_) {
    if (done < total_ && now - last_draw_ < std::chrono::milliseconds(100)) return;
    last_draw_ = now;
    const int width = 30;
    const int filled = static_cast<int>(frac * width);
    // \033[K clears what a longer previous line left.
    std::fprintf(stderr, "\r%s [%s%s] %llu/%llu %s\033[K", label_.c_str(),
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), ' ').c_str(),
                 static_cast<unsigned long long>(done), static_cast<unsigned long long>(total_), rate.c_str());
    std::fflush(stderr);
  } else {
    const int decile = static_cast<int>(frac * 10);
    if (decile != last_decile_) {
      last_decile_ = decile;
      std::fprintf(stderr, "%s: %llu/%llu%s%s\n", label_.c_str(), static_cast<unsigned long long>(done),
                   static_cast<unsigned long long>(total_), rate.empty() ? "" : " (", rate.empty() ? "" : (rate + ")").c_str());
    }
  }
}

void Progress::Finish() {
  if (!quiet_ && tty_ && total_ > 0) std::fprintf(stderr, "\n");
}

nlohmann::json KernelPaths(const Graph& g) {
  nlohmann::json j = nlohmann::json::object();
  for (const Node& n : g.nodes) {
    if (n.domain != "slimpack" || n.op_type != "MatMulQ") continue;
    auto layout = ParseQuantLayout(n.GetString("layout", ""));
    if (!layout.ok()) continue;
    QComputePath path = DefaultComputePath(*layout);
    if (n.HasAttr("compute_path")) {
      auto p = ParseQComputePath(n.GetString("compute_path", ""));
      if (p.ok()) path = *p;
    }
    auto plan = SelectQGemm(*layout, path);
    if (plan.ok()) {
      j[layout->Name()] = {{"compute_path", QComputePathName(plan->path)}, {"kernel", plan->kernel_name}};
    }
  }
  return j;
}

}  // namespace slim::cli
