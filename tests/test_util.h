// Helpers shared by test programs of several layers.
#pragma once

#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

namespace slim_test {

// A fresh scratch directory per test case, removed with its contents at the
// end of the scope. mkdtemp makes the name unique, so test programs that
// `ctest -j` runs at the same time never share (or delete) a directory.
class TempDir {
 public:
  // `tag` names the directory (slimpack_<tag>_XXXXXX in the system temp
  // directory) so that one left behind by a crash says which test made it.
  explicit TempDir(const std::string& tag) {
    std::string name =
        (std::filesystem::temp_directory_path() / ("slimpack_" + tag + "_XXXXXX")).string();
    if (::mkdtemp(name.data()) == nullptr) FAIL("mkdtemp " << name << ": " << std::strerror(errno));
    path = name;
  }
  ~TempDir() {
    std::error_code ec;  // a destructor must not throw; a leftover is harmless
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  // The path of `name` inside the directory.
  std::string operator/(const std::string& name) const { return (path / name).string(); }

  std::filesystem::path path;
};

// The whole file as bytes ("" when it cannot be read).
inline std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// Deterministic values uniform in [-1, 1).
// Writes `bytes` to `path` (a test's own fixture file).
inline void WriteFile(const std::string& path, const std::string& bytes) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << bytes;
  REQUIRE(out.good());
}

inline std::vector<float> RandomFloats(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  std::vector<float> v(n);
  for (float& x : v) x = dist(rng);
  return v;
}

}  // namespace slim_test
