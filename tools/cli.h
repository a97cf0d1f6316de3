// Shared plumbing of the slimpack subcommands: exit codes, --json output,
// progress on stderr, number formatting.
#pragma once

#include <CLI/CLI.hpp>
#include <chrono>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "libcompress/common/status.h"
#include "libcompress/ir/graph.h"

namespace slim::cli {

// DESIGN.md exit codes.
enum ExitCode : int { kExitOk = 0, kExitCheckFailed = 1, kExitBadInput = 2, kExitInternal = 3 };

// Prints "slimpack: error: <message>" to stderr and returns the exit code
// for the status (2 for bad input or unsupported, 3 for internal).
int ReportError(const Status& status);

// Writes `j` to `path` ("-" = stdout) atomically; empty path: nothing.
Status WriteJson(const std::string& path, const nlohmann::json& j);

// Checks, before any work, every output a command will write (empty and "-"
// are skipped) against io's output rules (CheckOutputPath: no device, FIFO or
// directory replaced, parent exists, never one of `inputs`) and against each
// other (-o and --report naming one file would lose the first).
Status CheckOutputs(const std::vector<std::string>& outputs, const std::vector<std::string>& inputs);

// True when human-readable results should go to stdout (not when the JSON
// report itself goes to stdout).
inline bool HumanOutput(const std::string& json_path) { return json_path != "-"; }

// Which kernel each quantized layout of `g` runs on this host, by layout
// name: {"compute_path", "kernel"} (the runtime's dispatch, reported by run
// and verify so a user sees whether the fast path was taken).
nlohmann::json KernelPaths(const Graph& g);

// "1,234,567"
std::string WithCommas(uint64_t v);
// "1.50 MiB"
std::string HumanBytes(double bytes);

// Progress on stderr: a bar redrawn at most 10 times a second on a terminal,
// one line per 10% when stderr is a file or pipe, nothing when quiet; both
// with the rate (items/s since the start) and the time left at that rate.
// The --threads default of compile, run, verify and eval: every core up to 8.
// No output depends on it (work is split only where each result element keeps
// its arithmetic), only the host's speed.
int DefaultThreads();

class Progress {
 public:
  Progress(std::string label, uint64_t total, bool quiet);
  void Update(uint64_t done);
  void Finish();

 private:
  std::string label_;
  uint64_t total_;
  bool quiet_, tty_;
  int last_decile_ = -1;
  std::chrono::steady_clock::time_point start_, last_draw_;
};

// What --version prints (version.cpp).
std::string VersionText();

// Registers the subcommands (one function per cmd_*.cpp).
void AddInspectCommand(CLI::App& app, int& exit_code);
void AddRunCommand(CLI::App& app, int& exit_code);
void AddEvalCommand(CLI::App& app, int& exit_code);
void AddSynthCommand(CLI::App& app, int& exit_code);
void AddCompileCommand(CLI::App& app, int& exit_code);
void AddVerifyCommand(CLI::App& app, int& exit_code);
void AddPassesCommand(CLI::App& app, int& exit_code);
void AddTargetsCommand(CLI::App& app, int& exit_code);
void AddExportCommand(CLI::App& app, int& exit_code);
void AddTokenizeCommand(CLI::App& app, int& exit_code);

}  // namespace slim::cli
