// Output files that never lose data and are never half-written.
//
// AtomicFileWriter writes a temporary file beside the target (created with
// O_EXCL, mode from the umask), then on Commit() flushes, fsyncs, renames it
// onto the target and fsyncs the directory. A writer destroyed without
// Commit() removes the temporary, and so does SIGINT/SIGTERM once
// InstallOutputSignalHandlers() ran: a failed, interrupted or concurrent
// write leaves either the previous file or one complete new file.
//
// Before any work, CheckOutputPath() applies the rules an output must meet
// (every error is kInvalidInput, exit 2, and names the path):
//   - a symlink is resolved; the rules apply to its target;
//   - an existing path must be a regular file (a device, FIFO, socket or
//     directory is left as it is);
//   - the parent directory must exist and be a directory;
//   - the output must not be any of `inputs` (same device and inode, so
//     hard links and symlinks to an input are caught too).
#pragma once

#include <cstdio>
#include <string>
#include <vector>

#include "libcompress/common/status.h"

namespace slim {

Status CheckOutputPath(const std::string& path, const std::vector<std::string>& inputs = {});

class AtomicFileWriter {
 public:
  // Checks `path` with CheckOutputPath(path, inputs) and creates the
  // temporary file.
  static Expected<AtomicFileWriter> Open(const std::string& path,
                                         const std::vector<std::string>& inputs = {});
  AtomicFileWriter(AtomicFileWriter&& o) noexcept;
  AtomicFileWriter& operator=(AtomicFileWriter&&) = delete;
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  ~AtomicFileWriter();

  // Errors (ENOSPC, EIO, ...) are kInvalidInput naming the file and errno.
  Status Write(const void* data, size_t size);
  Status Write(const std::string& s) { return Write(s.data(), s.size()); }
  // Bytes written so far (the next write's offset).
  uint64_t offset() const { return offset_; }
  // Flushes, fsyncs, renames onto the target path, fsyncs the directory.
  Status Commit();

 private:
  AtomicFileWriter(std::string path, std::string tmp, std::FILE* f, int slot)
      : path_(std::move(path)), tmp_(std::move(tmp)), f_(f), slot_(slot) {}
  void Abandon();
  std::string path_, tmp_;  // path_: the resolved target
  std::FILE* f_ = nullptr;
  int slot_ = -1;  // entry in the signal handler's list of temporaries
  uint64_t offset_ = 0;
};

// Writes a whole small file atomically (reports, JSON).
Status WriteFileAtomic(const std::string& path, const std::string& contents,
                       const std::vector<std::string>& inputs = {});

// SIGINT and SIGTERM remove every live temporary file and exit with
// 128 + signal (130, 143). Called once by the command-line tool.
void InstallOutputSignalHandlers();

}  // namespace slim
