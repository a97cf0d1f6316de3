// Atomic output files: write `PATH.tmp.<pid>` beside the target, rename over
// the target on Commit(). A writer destroyed without Commit() removes the
// temporary, so a failed or interrupted write never leaves a half-written
// output under the real name.
#pragma once

#include <cstdio>
#include <string>

#include "libcompress/common/status.h"

namespace slim {

class AtomicFileWriter {
 public:
  static Expected<AtomicFileWriter> Open(const std::string& path);
  AtomicFileWriter(AtomicFileWriter&& o) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  Status Write(const void* data, size_t size);
  Status Write(const std::string& s) { return Write(s.data(), s.size()); }
  // Bytes written so far (the next write's offset).
  uint64_t offset() const { return offset_; }
  // Flushes, fsyncs and renames onto the target path.
  Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string tmp, std::FILE* f)
      : path_(std::move(path)), tmp_(std::move(tmp)), f_(f) {}
  std::string path_, tmp_;
  std::FILE* f_ = nullptr;
  uint64_t offset_ = 0;
};

// Writes a whole small file atomically (reports, JSON).
Status WriteFileAtomic(const std::string& path, const std::string& contents);

}  // namespace slim
