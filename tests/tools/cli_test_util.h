// Runs the slimpack program for CLI tests: exit code, output, JSON report.
#pragma once

#include <sys/wait.h>

#include <array>
#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/test_util.h"

namespace slim_test {

inline const std::string kModels = SLIMPACK_SOURCE_DIR "/models/";

struct Result {
  int code;
  std::string out;  // stdout + stderr
};

// Runs in `cwd` when given (relative paths in args resolve there).
inline Result Slimpack(const std::string& args, const std::string& cwd = "") {
  const std::string cmd =
      (cwd.empty() ? "" : "cd '" + cwd + "' && ") + std::string(SLIMPACK_BINARY) + " " + args + " 2>&1";
  FILE* p = popen(cmd.c_str(), "r");
  REQUIRE(p != nullptr);
  std::string out;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = fread(buf.data(), 1, buf.size(), p)) > 0) out.append(buf.data(), n);
  const int status = pclose(p);
  return {WIFEXITED(status) ? WEXITSTATUS(status) : -1, out};
}

// Runs with --json into a file of its own (test cases run concurrently under
// `ctest -j`) and parses it; requires exit 0.
inline nlohmann::json SlimpackJson(const std::string& args) {
  const TempDir dir("cli");
  const std::string path = dir / "report.json";
  const Result r = Slimpack(args + " --json " + path);
  INFO(r.out);
  REQUIRE(r.code == 0);
  std::ifstream in(path);
  return nlohmann::json::parse(in);
}

}  // namespace slim_test
