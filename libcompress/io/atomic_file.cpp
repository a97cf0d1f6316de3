#include "libcompress/io/atomic_file.h"

#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace slim {

Expected<AtomicFileWriter> AtomicFileWriter::Open(const std::string& path) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  std::FILE* f = std::fopen(tmp.c_str(), "wb");
  if (!f) return InvalidInput(path, ": cannot create output (", tmp, "): ", std::strerror(errno));
  return AtomicFileWriter(path, tmp, f);
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), f_(o.f_), offset_(o.offset_) {
  o.f_ = nullptr;
  o.tmp_.clear();
}

AtomicFileWriter::~AtomicFileWriter() {
  if (f_) std::fclose(f_);
  if (!tmp_.empty()) std::remove(tmp_.c_str());
}

Status AtomicFileWriter::Write(const void* data, size_t size) {
  if (!f_) return Internal(path_, ": write after commit");
  if (size && std::fwrite(data, 1, size, f_) != size) {
    return Internal(path_, ": write failed at byte ", offset_, ": ", std::strerror(errno));
  }
  offset_ += size;
  return Status::Ok();
}

Status AtomicFileWriter::Commit() {
  if (!f_) return Internal(path_, ": commit twice");
  const bool flushed = std::fflush(f_) == 0 && ::fsync(::fileno(f_)) == 0;
  const bool closed = std::fclose(f_) == 0;
  f_ = nullptr;
  if (!flushed || !closed) return Internal(path_, ": cannot flush output: ", std::strerror(errno));
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    return Internal(path_, ": cannot rename ", tmp_, " onto it: ", std::strerror(errno));
  }
  tmp_.clear();
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& contents) {
  SLIM_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Open(path));
  SLIM_RETURN_IF_ERROR(w.Write(contents));
  return w.Commit();
}

}  // namespace slim
