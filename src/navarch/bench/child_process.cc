#include "navarch/bench/child_process.h"

#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

extern char** environ;

namespace navarch::bench {

absl::StatusOr<std::unique_ptr<ChildProcess>> ChildProcess::Spawn(
    const std::string& binary, const std::vector<std::string>& args,
    const std::string& log_path) {
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 1, log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, 1, 2);
  // The child must not inherit a blocked signal mask that keeps it from
  // dying on SIGTERM; posix_spawn keeps ours, so reset it.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> argv;
  argv.push_back(const_cast<char*>(binary.c_str()));
  for (const auto& a : args) argv.push_back(const_cast<char*>(a.c_str()));
  argv.push_back(nullptr);
  pid_t pid = -1;
  int rc =
      posix_spawn(&pid, binary.c_str(), &actions, &attr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  if (rc != 0) {
    return absl::FailedPreconditionError(
        absl::StrCat("cannot start ", binary, ": ", std::strerror(rc)));
  }
  return std::unique_ptr<ChildProcess>(new ChildProcess(pid));
}

ChildProcess::~ChildProcess() {
  if (reaped_) return;
  kill(pid_, SIGKILL);
  int status = 0;
  waitpid(pid_, &status, 0);
}

void ChildProcess::Signal(int sig) {
  if (!reaped_) kill(pid_, sig);
}

bool ChildProcess::Exited() {
  if (reaped_) return true;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) == pid_) reaped_ = true;
  return reaped_;
}

absl::StatusOr<int> ChildProcess::Wait(Clock& clock, absl::Duration timeout) {
  absl::Duration deadline = clock.SteadyNow() + timeout;
  for (;;) {
    int status = 0;
    pid_t r = waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      return status;
    }
    if (r < 0) return absl::InternalError("waitpid failed");
    if (clock.SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(
          absl::StrCat("process ", pid_, " still running"));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

absl::StatusOr<int64_t> ReadRssBytes(pid_t pid) {
  std::ifstream in(absl::StrCat("/proc/", pid, "/status"));
  if (!in) return absl::NotFoundError(absl::StrCat("no process ", pid));
  std::string line;
  while (std::getline(in, line)) {
    absl::string_view v(line);
    if (!absl::ConsumePrefix(&v, "VmRSS:")) continue;
    v = absl::StripAsciiWhitespace(v);
    absl::ConsumeSuffix(&v, "kB");
    v = absl::StripAsciiWhitespace(v);
    int64_t kb = 0;
    if (!absl::SimpleAtoi(v, &kb))
      return absl::InternalError(absl::StrCat("cannot parse VmRSS: ", line));
    return kb * 1024;
  }
  return absl::NotFoundError(absl::StrCat("no VmRSS for process ", pid));
}

absl::StatusOr<std::string> WaitForReadyFile(const std::string& path,
                                             ChildProcess& process,
                                             Clock& clock,
                                             absl::Duration timeout) {
  absl::Duration deadline = clock.SteadyNow() + timeout;
  for (;;) {
    std::ifstream in(path);
    if (in) {
      std::stringstream ss;
      ss << in.rdbuf();
      std::string content = ss.str();
      // The control plane writes it atomically (rename), so a complete
      // object is the whole file.
      if (!content.empty() && content.find('}') != std::string::npos) {
        return content;
      }
    }
    if (process.Exited()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "process ", process.pid(), " exited before writing ", path));
    }
    if (clock.SteadyNow() >= deadline) {
      return absl::DeadlineExceededError(absl::StrCat(
          "no ready file ", path, " after ", absl::FormatDuration(timeout)));
    }
    absl::SleepFor(absl::Milliseconds(1));
  }
}

}  // namespace navarch::bench
