// Runs the operator's hook, diagnostic and shutdown commands. An interface so
// tests can observe what would run without spawning anything.
#ifndef NAVARCH_AGENT_PROCESS_RUNNER_H_
#define NAVARCH_AGENT_PROCESS_RUNNER_H_

#include <sys/types.h>

#include <map>
#include <optional>
#include <set>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch::agent {

struct ProcessResult {
  int exit_code = -1;      // 128 + signal when killed
  bool timed_out = false;  // killed because it ran past its timeout
  std::string output;      // the last few KB of stdout and stderr together
};

class ProcessRunner {
 public:
  virtual ~ProcessRunner() = default;
  // Runs `command` through /bin/sh -c with `env` added to the agent's own
  // environment, in its own process group, which is killed after `timeout`.
  // Blocks until it exits. An error only when it could not be started.
  // Thread-safe.
  virtual absl::StatusOr<ProcessResult> RunShell(
      const std::string& command, const std::map<std::string, std::string>& env,
      absl::Duration timeout) = 0;
  // Kills every command still running (the agent is stopping). Later calls
  // to RunShell fail. Thread-safe.
  virtual void KillAll() = 0;
};

class PosixProcessRunner final : public ProcessRunner {
 public:
  // Timeouts are deadlines on `clock` (base/subprocess.h: RunChild).
  explicit PosixProcessRunner(Clock& clock) : clock_(clock) {}

  absl::StatusOr<ProcessResult> RunShell(
      const std::string& command, const std::map<std::string, std::string>& env,
      absl::Duration timeout) override;
  void KillAll() override;

 private:
  Clock& clock_;
  absl::Mutex mu_;
  std::set<pid_t> running_ ABSL_GUARDED_BY(mu_);
  bool killed_ ABSL_GUARDED_BY(mu_) = false;
};

// The path of an executable `name` in the ':'-separated directories of
// `path_env` (as $PATH), or nullopt.
std::optional<std::string> FindExecutable(absl::string_view name,
                                          absl::string_view path_env);

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_PROCESS_RUNNER_H_
