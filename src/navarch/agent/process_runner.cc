#include "navarch/agent/process_runner.h"

#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "navarch/base/subprocess.h"

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
  ChildOptions options;
  options.argv = {"/bin/sh", "-c", command};
  options.env = env;
  options.output = ChildOptions::Output::kMergedPipe;
  OutputLimits limits;
  limits.max_stdout = kKeepOutput;
  limits.stdout_keep_tail = true;
  std::optional<pid_t> started;
  absl::StatusOr<ChildResult> run =
      RunChild(options, timeout, clock_, limits, [&](pid_t pid) {
        started = pid;
        absl::MutexLock lock(&mu_);
        running_.insert(pid);
        // KillAll ran since the check above: it missed this one.
        if (killed_) kill(-pid, SIGKILL);
      });
  if (started.has_value()) {
    absl::MutexLock lock(&mu_);
    running_.erase(*started);
  }
  if (!run.ok()) {
    return absl::InternalError(
        absl::StrCat("cannot start /bin/sh: ", run.status().message()));
  }
  ProcessResult result;
  result.exit_code = run->exit_code;
  result.timed_out = run->timed_out;
  result.output = std::move(run->stdout_text);
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
