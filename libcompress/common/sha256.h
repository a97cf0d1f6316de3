// SHA-256 (FIPS 180-4) for provenance: source model, calibration data and
// output hashes recorded in reports and packed files. OpenSSL's libcrypto
// computes it: its SHA-NI / AVX2 code hashes about 1 GB/s on these hosts,
// where the portable loop this replaced managed ~0.25 GB/s and took a fifth
// of a TinyLlama-shape `--preset int4` compile (2.2 GB source + output).
#pragma once

#include <cstdint>
#include <memory>
#include <string>

#include "libcompress/common/status.h"

namespace slim {

class Sha256 {
 public:
  Sha256();
  ~Sha256();
  Sha256(const Sha256&) = delete;
  Sha256& operator=(const Sha256&) = delete;
  void Update(const void* data, size_t size);
  // Lower-case hex digest; the object must not be updated afterwards.
  std::string HexDigest();

 private:
  struct Ctx;
  std::unique_ptr<Ctx> ctx_;
};

std::string Sha256Hex(const void* data, size_t size);
// Hash of a file's bytes (read through a memory map).
Expected<std::string> Sha256File(const std::string& path);

}  // namespace slim
