#include "navarch/agent/process_runner.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <spawn.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <memory>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "navarch/base/spawn.h"

extern char** environ;

namespace navarch::agent {
namespace {

constexpr size_t kKeepOutput = 4096;

}  // namespace

absl::StatusOr<ProcessResult> PosixProcessRunner::RunShell(
    const std::string& command, const std::map<std::string, std::string>& env,
    absl::Duration timeout) {
  {
    absl::MutexLock lock(&mu_);
    if (killed_) return absl::CancelledError("the agent is stopping");
  }
  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::InternalError(absl::StrCat("pipe: ", strerror(errno)));
  }
  // The agent's environment with `env` on top.
  std::map<std::string, std::string> merged;
  for (char** e = environ; e != nullptr && *e != nullptr; ++e) {
    absl::string_view kv(*e);
    size_t eq = kv.find('=');
    if (eq == absl::string_view::npos) continue;
    merged[std::string(kv.substr(0, eq))] = std::string(kv.substr(eq + 1));
  }
  for (const auto& [k, v] : env) merged[k] = v;
  std::vector<std::string> env_strings;
  for (const auto& [k, v] : merged)
    env_strings.push_back(absl::StrCat(k, "=", v));
  std::vector<char*> envp;
  for (auto& s : env_strings) envp.push_back(s.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 1);
  posix_spawn_file_actions_adddup2(&actions, fds[1], 2);
  posix_spawnattr_t attr;
  InitChildSpawnAttr(&attr);  // own process group, signals unblocked
  std::string sh = "/bin/sh", dash_c = "-c", cmd = command;
  char* argv[] = {sh.data(), dash_c.data(), cmd.data(), nullptr};
  pid_t pid = -1;
  int rc = posix_spawn(&pid, "/bin/sh", &actions, &attr, argv, envp.data());
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attr);
  close(fds[1]);
  if (rc != 0) {
    close(fds[0]);
    return absl::InternalError(
        absl::StrCat("cannot start /bin/sh: ", strerror(rc)));
  }
  {
    absl::MutexLock lock(&mu_);
    running_.insert(pid);
  }
  auto timed_out = std::make_shared<std::atomic<bool>>(false);
  TimerId timer = clock_.Schedule(timeout, [pid, timed_out] {
    timed_out->store(true);
    kill(-pid, SIGKILL);
  });

  ProcessResult result;
  char buf[4096];
  for (;;) {
    ssize_t n = read(fds[0], buf, sizeof(buf));
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    result.output.append(buf, static_cast<size_t>(n));
    if (result.output.size() > 2 * kKeepOutput) {
      result.output.erase(0, result.output.size() - kKeepOutput);
    }
  }
  close(fds[0]);
  // Not reaped yet, so the pid (and its group) cannot be reused by the time a
  // late timer fires.
  clock_.Cancel(timer);
  int status = 0;
  while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
  }
  {
    absl::MutexLock lock(&mu_);
    running_.erase(pid);
  }
  if (result.output.size() > kKeepOutput) {
    result.output.erase(0, result.output.size() - kKeepOutput);
  }
  result.timed_out = timed_out->load();
  if (WIFEXITED(status)) result.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result.exit_code = 128 + WTERMSIG(status);
  return result;
}

void PosixProcessRunner::KillAll() {
  absl::MutexLock lock(&mu_);
  killed_ = true;
  for (pid_t pid : running_) kill(-pid, SIGKILL);
}

std::optional<std::string> FindExecutable(absl::string_view name,
                                          absl::string_view path_env) {
  for (absl::string_view dir :
       absl::StrSplit(path_env, ':', absl::SkipEmpty())) {
    std::string candidate = absl::StrCat(dir, "/", name);
    struct stat st;
    if (stat(candidate.c_str(), &st) == 0 && S_ISREG(st.st_mode) &&
        access(candidate.c_str(), X_OK) == 0) {
      return candidate;
    }
  }
  return std::nullopt;
}

}  // namespace navarch::agent
