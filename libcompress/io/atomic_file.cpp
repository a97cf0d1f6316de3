#include "libcompress/io/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <climits>
#include <csignal>
#include <cstdlib>
#include <cstring>

namespace slim {
namespace {

// Temporaries a signal handler must remove. Fixed storage so the handler
// reads no heap and calls only unlink() and _exit() (async-signal-safe).
constexpr int kMaxLiveTemporaries = 32;
struct TempSlot {
  std::atomic<bool> live{false};
  char path[PATH_MAX + 32] = {};
};
TempSlot g_temporaries[kMaxLiveTemporaries];
std::atomic<bool> g_slot_claim[kMaxLiveTemporaries];

int RegisterTemporary(const std::string& tmp) {
  if (tmp.size() >= sizeof(g_temporaries[0].path)) return -1;
  for (int i = 0; i < kMaxLiveTemporaries; ++i) {
    bool expected = false;
    if (!g_slot_claim[i].compare_exchange_strong(expected, true)) continue;
    std::memcpy(g_temporaries[i].path, tmp.c_str(), tmp.size() + 1);
    g_temporaries[i].live.store(true);
    return i;
  }
  return -1;  // more than 32 open outputs: only the destructor cleans up
}

void UnregisterTemporary(int slot) {
  if (slot < 0) return;
  g_temporaries[slot].live.store(false);
  g_slot_claim[slot].store(false);
}

extern "C" void RemoveTemporariesAndExit(int sig) {
  for (auto& t : g_temporaries) {
    if (t.live.load()) ::unlink(t.path);
  }
  ::_exit(128 + sig);
}

std::string DirOf(const std::string& p) {
  const auto slash = p.find_last_of('/');
  if (slash == std::string::npos) return ".";
  return slash == 0 ? "/" : p.substr(0, slash);
}

std::string BaseOf(const std::string& p) {
  const auto slash = p.find_last_of('/');
  return slash == std::string::npos ? p : p.substr(slash + 1);
}

const char* KindOf(mode_t m) {
  if (S_ISDIR(m)) return "a directory";
  if (S_ISCHR(m)) return "a character device";
  if (S_ISBLK(m)) return "a block device";
  if (S_ISFIFO(m)) return "a FIFO";
  if (S_ISSOCK(m)) return "a socket";
  return "not a regular file";
}

// The path the output really lands on: a symlink's target (followed to
// the end), else the path itself.
Expected<std::string> ResolveOutput(const std::string& path) {
  SLIM_CHECK_INPUT(!path.empty(), "output path is empty");
  struct stat st{};
  if (::lstat(path.c_str(), &st) == 0 && S_ISLNK(st.st_mode)) {
    char real[PATH_MAX];
    if (::realpath(path.c_str(), real) == nullptr) {
      return InvalidInput(path, ": output is a symlink whose target cannot be resolved: ",
                          std::strerror(errno));
    }
    return std::string(real);
  }
  return path;
}

}  // namespace

Status CheckOutputPath(const std::string& path, const std::vector<std::string>& inputs) {
  SLIM_ASSIGN_OR_RETURN(std::string target, ResolveOutput(path));
  const std::string shown = target == path ? path : path + " (-> " + target + ")";
  struct stat st{};
  const bool exists = ::stat(target.c_str(), &st) == 0;
  if (exists && !S_ISREG(st.st_mode)) {
    return InvalidInput(shown, ": output exists and is ", KindOf(st.st_mode),
                        "; refusing to replace it");
  }
  const std::string dir = DirOf(target);
  struct stat dst{};
  if (::stat(dir.c_str(), &dst) != 0) {
    return InvalidInput(shown, ": output directory ", dir, " does not exist");
  }
  SLIM_CHECK_INPUT(S_ISDIR(dst.st_mode), shown, ": ", dir, " is not a directory");
  if (!exists) return Status::Ok();
  for (const std::string& in : inputs) {
    struct stat ist{};
    if (::stat(in.c_str(), &ist) != 0) continue;
    if (ist.st_dev == st.st_dev && ist.st_ino == st.st_ino) {
      return InvalidInput(shown, ": output is the input file ", in,
                          " (same file); refusing to overwrite an input");
    }
  }
  return Status::Ok();
}

Expected<AtomicFileWriter> AtomicFileWriter::Open(const std::string& path,
                                                  const std::vector<std::string>& inputs) {
  SLIM_RETURN_IF_ERROR(CheckOutputPath(path, inputs));
  SLIM_ASSIGN_OR_RETURN(std::string target, ResolveOutput(path));
  // Hidden, unique per process and per call, created exclusively: two
  // writers (threads or processes) never share a temporary.
  static std::atomic<uint64_t> counter{0};
  const std::string prefix = DirOf(target) + "/." + BaseOf(target) + ".tmp." +
                             std::to_string(::getpid()) + ".";
  for (int attempt = 0; attempt < 100; ++attempt) {
    const std::string tmp = prefix + std::to_string(counter.fetch_add(1));
    // Registered before it exists: a signal between creation and
    // registration would otherwise leave the file behind.
    const int slot = RegisterTemporary(tmp);
    const int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
    if (fd < 0) {
      const int err = errno;
      UnregisterTemporary(slot);
      if (err == EEXIST) continue;
      return InvalidInput(path, ": cannot create output (", tmp, "): ", std::strerror(err));
    }
    std::FILE* f = ::fdopen(fd, "wb");
    if (!f) {
      const int err = errno;
      ::close(fd);
      ::unlink(tmp.c_str());
      UnregisterTemporary(slot);
      return InvalidInput(path, ": cannot open output stream: ", std::strerror(err));
    }
    return AtomicFileWriter(target, tmp, f, slot);
  }
  return InvalidInput(path, ": cannot create a unique temporary file beside it");
}

AtomicFileWriter::AtomicFileWriter(AtomicFileWriter&& o) noexcept
    : path_(std::move(o.path_)), tmp_(std::move(o.tmp_)), f_(o.f_), slot_(o.slot_),
      offset_(o.offset_) {
  o.f_ = nullptr;
  o.tmp_.clear();
  o.slot_ = -1;
}

AtomicFileWriter::~AtomicFileWriter() { Abandon(); }

void AtomicFileWriter::Abandon() {
  if (f_) std::fclose(f_);
  f_ = nullptr;
  if (!tmp_.empty()) ::unlink(tmp_.c_str());
  tmp_.clear();
  UnregisterTemporary(slot_);
  slot_ = -1;
}

Status AtomicFileWriter::Write(const void* data, size_t size) {
  if (!f_) return Internal(path_, ": write after commit or failure");
  if (size && std::fwrite(data, 1, size, f_) != size) {
    const int err = errno;
    Abandon();
    return InvalidInput(path_, ": writing ", size, " bytes at byte ", offset_, " failed: ", std::strerror(err));
  }
  offset_ += size;
  return Status::Ok();
}

Status AtomicFileWriter::Commit() {
  if (!f_) return Internal(path_, ": commit after commit or failure");
  int err = 0;
  if (std::fflush(f_) != 0 || ::fsync(::fileno(f_)) != 0) err = errno;
  if (std::fclose(f_) != 0 && err == 0) err = errno;
  f_ = nullptr;
  if (err != 0) {
    Abandon();
    return InvalidInput(path_, ": cannot write output: ", std::strerror(err));
  }
  // Re-check just before replacing: the target may have become a device or
  // directory while we wrote.
  if (Status st = CheckOutputPath(path_); !st.ok()) {
    Abandon();
    return st;
  }
  if (std::rename(tmp_.c_str(), path_.c_str()) != 0) {
    err = errno;
    Abandon();
    return InvalidInput(path_, ": cannot rename the temporary file onto it: ", std::strerror(err));
  }
  tmp_.clear();
  UnregisterTemporary(slot_);
  slot_ = -1;
  // The rename is durable only once the directory entry is on disk.
  const int dir_fd = ::open(DirOf(path_).c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dir_fd >= 0) {
    const int rc = ::fsync(dir_fd);
    err = errno;
    ::close(dir_fd);
    // EINVAL: the file system does not sync directories (some FUSE/tmpfs).
    if (rc != 0 && err != EINVAL) {
      return InvalidInput(path_, ": cannot sync its directory: ", std::strerror(err));
    }
  }
  return Status::Ok();
}

Status WriteFileAtomic(const std::string& path, const std::string& contents,
                       const std::vector<std::string>& inputs) {
  SLIM_ASSIGN_OR_RETURN(AtomicFileWriter w, AtomicFileWriter::Open(path, inputs));
  SLIM_RETURN_IF_ERROR(w.Write(contents));
  return w.Commit();
}

void InstallOutputSignalHandlers() {
  struct sigaction sa{};
  sa.sa_handler = RemoveTemporariesAndExit;
  sigemptyset(&sa.sa_mask);
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

}  // namespace slim
