// Output rules of io/atomic_file.h: nothing lost, nothing half-written.
#include <fcntl.h>
#include <sys/mount.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <csignal>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "libcompress/io/atomic_file.h"
#include "tests/test_util.h"

using slim::AtomicFileWriter;
using slim::CheckOutputPath;
using slim::StatusCode;
using slim::WriteFileAtomic;
using slim_test::TempDir;

namespace {


// Files in `dir` other than the expected ones (left-over temporaries).
std::vector<std::string> Entries(const std::filesystem::path& dir) {
  std::vector<std::string> names;
  for (const auto& e : std::filesystem::directory_iterator(dir)) names.push_back(e.path().filename());
  std::sort(names.begin(), names.end());
  return names;
}

}  // namespace

TEST_CASE("outputs that are an input, by any name, are refused", "[io][output]") {
  const TempDir dir("out_input");
  const std::string input = dir / "model.onnx";
  std::ofstream(input) << "source bytes";
  REQUIRE(::symlink(input.c_str(), (dir / "link.onnx").c_str()) == 0);
  REQUIRE(::link(input.c_str(), (dir / "hard.onnx").c_str()) == 0);
  for (const std::string& out : {input, dir / "link.onnx", dir / "hard.onnx", dir / "./model.onnx"}) {
    INFO(out);
    const slim::Status st = CheckOutputPath(out, {input});
    CHECK(st.code() == StatusCode::kInvalidInput);
    CHECK_THAT(st.message(), Catch::Contains("input"));
    const auto w = AtomicFileWriter::Open(out, {input});
    CHECK_FALSE(w.ok());
  }
  CHECK(slim_test::ReadFile(input) == "source bytes");
  CHECK(CheckOutputPath(dir / "other.slim", {input}).ok());
}

TEST_CASE("outputs that are not regular files are left as they are", "[io][output]") {
  const TempDir dir("out_special");
  const std::string fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& out : {std::string("/dev/null"), std::string("/dev/full"), fifo, dir.path.string()}) {
    INFO(out);
    const slim::Status st = WriteFileAtomic(out, "x");
    CHECK(st.code() == StatusCode::kInvalidInput);
    CHECK_THAT(st.message(), Catch::Contains(out));
    CHECK_THAT(st.message(), Catch::Contains("refusing"));
  }
  struct stat st{};
  REQUIRE(::stat("/dev/full", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));

  // A symlink to a device is resolved and refused too.
  REQUIRE(::symlink("/dev/null", (dir / "null-link").c_str()) == 0);
  CHECK(WriteFileAtomic(dir / "null-link", "x").code() == StatusCode::kInvalidInput);

  const slim::Status missing = WriteFileAtomic(dir / "no/such/dir/out.slim", "x");
  CHECK(missing.code() == StatusCode::kInvalidInput);
  CHECK_THAT(missing.message(), Catch::Contains("does not exist"));
}

TEST_CASE("a symlinked output replaces its target, not the link", "[io][output]") {
  const TempDir dir("out_symlink");
  const std::string target = dir / "real.json";
  std::ofstream(target) << "old";
  REQUIRE(::symlink("real.json", (dir / "link.json").c_str()) == 0);
  REQUIRE(WriteFileAtomic(dir / "link.json", "new").ok());
  struct stat st{};
  REQUIRE(::lstat((dir / "link.json").c_str(), &st) == 0);
  CHECK(S_ISLNK(st.st_mode));
  CHECK(slim_test::ReadFile(target) == "new");
  CHECK(Entries(dir.path) == std::vector<std::string>{"link.json", "real.json"});
}

TEST_CASE("new files get the umask's mode and no temporary is left", "[io][output]") {
  const TempDir dir("out_mode");
  const mode_t old = ::umask(027);
  const slim::Status st = WriteFileAtomic(dir / "report.json", "{}");
  ::umask(old);
  REQUIRE(st.ok());
  struct stat s{};
  REQUIRE(::stat((dir / "report.json").c_str(), &s) == 0);
  CHECK((s.st_mode & 0777) == 0640);
  CHECK(Entries(dir.path) == std::vector<std::string>{"report.json"});
}

TEST_CASE("a read-only directory is a clear error", "[io][output]") {
  if (::geteuid() == 0) {
    WARN("running as root: permissions do not stop writes, case skipped");
    return;
  }
  const TempDir dir("out_ro");
  REQUIRE(::chmod(dir.path.c_str(), 0555) == 0);
  const slim::Status st = WriteFileAtomic(dir / "out.slim", "x");
  ::chmod(dir.path.c_str(), 0755);
  CHECK(st.code() == StatusCode::kInvalidInput);
  CHECK_THAT(st.message(), Catch::Contains("Permission denied"));
}

// A write that hits the file-size limit (RLIMIT_FSIZE, what a full disk looks
// like to the writer: the write fails with an errno) runs in a child process
// so the limit does not reach other tests.
TEST_CASE("a failed write names the file and errno and keeps the previous output", "[io][output]") {
  const TempDir dir("out_full");
  const std::string out = dir / "model.slim";
  std::ofstream(out) << "previous output";
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    std::signal(SIGXFSZ, SIG_IGN);
    rlimit lim{1 << 16, 1 << 16};
    ::setrlimit(RLIMIT_FSIZE, &lim);
    const std::string big(1 << 20, 'x');
    const slim::Status st = WriteFileAtomic(out, big);
    const bool named = st.message().find(out) != std::string::npos &&
                       st.message().find(std::strerror(EFBIG)) != std::string::npos;
    ::_exit(st.code() == StatusCode::kInvalidInput && named ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  CHECK(WIFEXITED(status));
  CHECK(WEXITSTATUS(status) == 0);
  CHECK(slim_test::ReadFile(out) == "previous output");
  CHECK(Entries(dir.path) == std::vector<std::string>{"model.slim"});
}

// The real thing where the machine allows it: a 64 KiB tmpfs (needs
// CAP_SYS_ADMIN and a private mount namespace; skipped otherwise).
TEST_CASE("ENOSPC on a small file system", "[io][output]") {
  const TempDir dir("out_enospc");
  const pid_t pid = ::fork();
  REQUIRE(pid >= 0);
  if (pid == 0) {
    if (::unshare(CLONE_NEWNS) != 0 || ::mount(nullptr, "/", nullptr, MS_REC | MS_PRIVATE, nullptr) != 0 ||
        ::mount("tmpfs", dir.path.c_str(), "tmpfs", 0, "size=64k") != 0) {
      ::_exit(77);
    }
    const std::string out = dir / "model.slim";
    { std::ofstream(out) << "previous output"; }
    const slim::Status st = WriteFileAtomic(out, std::string(1 << 20, 'x'));
    const bool ok = st.code() == StatusCode::kInvalidInput &&
                    st.message().find(std::strerror(ENOSPC)) != std::string::npos &&
                    slim_test::ReadFile(out) == "previous output" && Entries(dir.path).size() == 1;
    ::_exit(ok ? 0 : 1);
  }
  int status = 0;
  REQUIRE(::waitpid(pid, &status, 0) == pid);
  REQUIRE(WIFEXITED(status));
  if (WEXITSTATUS(status) == 77) {
    WARN("cannot mount a private tmpfs here; the RLIMIT_FSIZE case covers write errors");
    return;
  }
  CHECK(WEXITSTATUS(status) == 0);
}

TEST_CASE("concurrent writers to one output leave one complete file", "[io][output]") {
  const TempDir dir("out_race");
  const std::string out = dir / "model.slim";
  const std::string a(1 << 20, 'a'), b(1 << 20, 'b');
  for (int round = 0; round < 8; ++round) {
    std::thread ta([&] { CHECK(WriteFileAtomic(out, a).ok()); });
    std::thread tb([&] { CHECK(WriteFileAtomic(out, b).ok()); });
    ta.join();
    tb.join();
    const std::string got = slim_test::ReadFile(out);
    CHECK((got == a || got == b));
  }
  CHECK(Entries(dir.path) == std::vector<std::string>{"model.slim"});
}
