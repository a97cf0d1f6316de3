// SHA-256 (FIPS 180-4) for provenance: source model, calibration data and
// output hashes recorded in reports and packed files.
#pragma once

#include <cstdint>
#include <string>

#include "libcompress/common/status.h"

namespace slim {

class Sha256 {
 public:
  Sha256();
  void Update(const void* data, size_t size);
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  void Block(const uint8_t* p);
  uint32_t h_[8];
  uint8_t buf_[64];
  size_t buf_len_ = 0;
  uint64_t total_ = 0;
};

std::string Sha256Hex(const void* data, size_t size);
// Hash of a file's bytes (read through a memory map).
Expected<std::string> Sha256File(const std::string& path);

}  // namespace slim
