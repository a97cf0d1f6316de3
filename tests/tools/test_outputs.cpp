// The command line's output promises (issue "Reliability"): an output is
// never one of the inputs, a device or a directory; an interrupted compile
// leaves the previous output and no temporary file; hostile config counts
// are a clear exit 2.
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "tests/tools/cli_test_util.h"

using namespace slim_test;
namespace fs = std::filesystem;

TEST_CASE("compile refuses to overwrite its input, by any name", "[cli][output]") {
  const TempDir dir("cli_in_out");
  fs::copy(kModels + "kjv-byte", dir.path / "kjv");
  const std::string onnx = dir / "kjv/model.onnx";
  const std::string before = ReadFile(onnx);
  REQUIRE(::symlink(onnx.c_str(), (dir / "alias.onnx").c_str()) == 0);
  for (const std::string& out : {onnx, dir / "alias.onnx"}) {
    INFO(out);
    const Result r = Slimpack("compile " + onnx + " -o " + out + " --preset int8 --quiet");
    CHECK(r.code == 2);
    CHECK_THAT(r.out, Catch::Contains("input"));
  }
  // The safetensors directory: its weights file, its config, and the
  // calibration data are all inputs.
  const std::string model_dir = dir / "kjv";
  for (const std::string& out : {dir / "kjv/model.safetensors", dir / "kjv/config.json"}) {
    INFO(out);
    CHECK(Slimpack("compile " + model_dir + " -o " + out + " --preset int8 --quiet").code == 2);
  }
  const std::string calib = dir / "kjv/calib_tokens.json";
  const std::string calib_before = ReadFile(calib);
  CHECK(Slimpack("compile " + model_dir + " -o " + (dir / "x.slim") + " --preset int8 --quiet --calib " + calib +
                 " --report " + calib)
            .code == 2);
  CHECK(Slimpack("eval " + model_dir + " --data " + calib + " --json " + calib).code == 2);
  CHECK(Slimpack("compile " + model_dir + " -o " + (dir / "x.slim") + " --report " + (dir / "x.slim") +
                 " --preset int8 --quiet")
            .code == 2);
  CHECK(ReadFile(onnx) == before);
  CHECK(ReadFile(calib) == calib_before);
  CHECK_FALSE(fs::exists(dir / "x.slim"));
}

TEST_CASE("compile refuses device, FIFO and directory outputs and leaves them", "[cli][output]") {
  const TempDir dir("cli_special");
  const std::string fifo = dir / "fifo";
  REQUIRE(::mkfifo(fifo.c_str(), 0600) == 0);
  for (const std::string& out : {std::string("/dev/full"), fifo, dir.path.string(), dir / "missing/out.slim"}) {
    INFO(out);
    const Result r = Slimpack("compile " + kModels + "kjv-byte -o " + out + " --preset int8 --quiet");
    CHECK(r.code == 2);
    CHECK_THAT(r.out, Catch::Contains(out));
  }
  struct stat st{};
  REQUIRE(::stat("/dev/full", &st) == 0);
  CHECK(S_ISCHR(st.st_mode));
  REQUIRE(::lstat(fifo.c_str(), &st) == 0);
  CHECK(S_ISFIFO(st.st_mode));
}

TEST_CASE("a config with a hostile layer count is exit 2, not an allocation failure", "[cli][output]") {
  const TempDir dir("cli_hostile_cfg");
  fs::copy(kModels + "kjv-byte", dir.path / "kjv");
  std::string cfg = ReadFile(dir / "kjv/config.json");
  const auto pos = cfg.find("\"num_hidden_layers\"");
  REQUIRE(pos != std::string::npos);
  const auto end = cfg.find_first_of(",}", pos);
  cfg.replace(pos, end - pos, "\"num_hidden_layers\": 1000000000");
  std::ofstream(dir / "kjv/config.json", std::ios::trunc) << cfg;
  const Result r = Slimpack("inspect " + (dir / "kjv"));
  CHECK(r.code == 2);
  CHECK_THAT(r.out, Catch::Contains("num_hidden_layers"));
}

// SIGTERM and SIGINT while the packed file is being written: the temporary
// is removed and the previous output is untouched.
TEST_CASE("an interrupted compile keeps the previous output and removes its temporary", "[cli][output]") {
  const TempDir dir("cli_signal");
  // A synthetic model large enough (about 60 MB of FP16) that the write
  // takes a while on any disk.
  REQUIRE(Slimpack("synth --preset tiny --layers 4 --hidden 1024 --intermediate 4096 --vocab 4096 -o " +
                   (dir / "synth"))
              .code == 0);
  const std::string out = dir / "model.slim";
  for (int sig : {SIGTERM, SIGINT}) {
    INFO("signal " << sig);
    std::ofstream(out, std::ios::trunc) << "previous output";
    const pid_t pid = ::fork();
    REQUIRE(pid >= 0);
    if (pid == 0) {
      ::execl(SLIMPACK_BINARY, SLIMPACK_BINARY, "compile", (dir / "synth").c_str(), "-o", out.c_str(), "--preset",
              "int8", "--quiet", static_cast<char*>(nullptr));
      ::_exit(127);
    }
    // Wait for this child's temporary to appear, then interrupt.
    const std::string tmp_prefix = ".model.slim.tmp." + std::to_string(pid) + ".";
    bool saw_tmp = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
    while (!saw_tmp && std::chrono::steady_clock::now() < deadline) {
      for (const auto& e : fs::directory_iterator(dir.path)) {
        if (e.path().filename().string().rfind(tmp_prefix, 0) == 0) saw_tmp = true;
      }
      int status = 0;
      if (!saw_tmp && ::waitpid(pid, &status, WNOHANG) == pid) FAIL("compile finished before it was interrupted");
      if (!saw_tmp) std::this_thread::sleep_for(std::chrono::microseconds(200));
    }
    REQUIRE(saw_tmp);
    ::kill(pid, sig);
    int status = 0;
    REQUIRE(::waitpid(pid, &status, 0) == pid);
    REQUIRE(WIFEXITED(status));
    CHECK(WEXITSTATUS(status) == 128 + sig);
    CHECK(ReadFile(out) == "previous output");
    std::vector<std::string> names;
    for (const auto& e : fs::directory_iterator(dir.path)) names.push_back(e.path().filename());
    std::sort(names.begin(), names.end());
    CHECK(names == std::vector<std::string>{"model.slim", "synth"});
  }
}
