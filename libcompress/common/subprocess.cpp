#include "libcompress/common/subprocess.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

namespace slim {

Expected<int> RunCommand(const std::vector<std::string>& argv,
                         const std::vector<std::pair<std::string, std::string>>& env, double timeout_s) {
  SLIM_CHECK_INPUT(!argv.empty() && !argv[0].empty(), "hook command: empty argument vector");
  // Build everything the child needs before fork (no allocation after it).
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<std::string> env_strings;
  for (char** e = environ; *e; ++e) {
    bool overridden = false;
    for (const auto& [k, v] : env) overridden |= std::strncmp(*e, (k + "=").c_str(), k.size() + 1) == 0;
    if (!overridden) env_strings.push_back(*e);
  }
  for (const auto& [k, v] : env) env_strings.push_back(k + "=" + v);
  std::vector<char*> envp;
  for (std::string& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);
  int pipefd[2];
  if (::pipe2(pipefd, O_CLOEXEC) != 0) return Internal("pipe: ", std::strerror(errno));
  const pid_t pid = ::fork();
  if (pid < 0) return Internal("fork: ", std::strerror(errno));
  if (pid == 0) {
    ::setpgid(0, 0);  // its own group, so a timeout kills what it started too
    ::execvpe(args[0], args.data(), envp.data());
    const int err = errno;
    (void)!::write(pipefd[1], &err, sizeof err);
    ::_exit(127);
  }
  ::close(pipefd[1]);
  int exec_errno = 0;
  const bool exec_failed = ::read(pipefd[0], &exec_errno, sizeof exec_errno) == static_cast<ssize_t>(sizeof exec_errno);
  ::close(pipefd[0]);
  const auto start = std::chrono::steady_clock::now();
  int status = 0;
  for (;;) {
    const pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) break;
    if (r < 0 && errno != EINTR) return Internal("waitpid: ", std::strerror(errno));
    if (std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count() > timeout_s) {
      ::kill(-pid, SIGKILL);
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return InvalidInput("hook command '", argv[0], "' ran past its timeout of ", timeout_s, " s and was killed");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (exec_failed) return InvalidInput("hook command '", argv[0], "' cannot be run: ", std::strerror(exec_errno));
  if (WIFSIGNALED(status)) {
    return InvalidInput("hook command '", argv[0], "' was killed by signal ", WTERMSIG(status));
  }
  return WEXITSTATUS(status);
}

}  // namespace slim
