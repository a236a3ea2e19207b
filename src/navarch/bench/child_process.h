// Runs the control plane under test as a child process: spawn, signal, reap,
// and read its resident memory. POSIX (Linux for ReadRssBytes).
#ifndef NAVARCH_BENCH_CHILD_PROCESS_H_
#define NAVARCH_BENCH_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch::bench {

class ChildProcess {
 public:
  // Starts `binary` with `args`; stdout and stderr are appended to
  // `log_path`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::string& binary, const std::vector<std::string>& args,
      const std::string& log_path);
  ~ChildProcess();  // SIGKILLs and reaps it if still running

  pid_t pid() const { return pid_; }
  void Signal(int sig);
  // Waits up to `timeout` for the exit; its wait status, or DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(Clock& clock, absl::Duration timeout);
  // True once the process has exited (reaps it).
  bool Exited();

 private:
  explicit ChildProcess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
};

// VmRSS of `pid` from /proc/<pid>/status, in bytes.
absl::StatusOr<int64_t> ReadRssBytes(pid_t pid);

// Polls (every millisecond) until `path` holds a complete JSON object, the
// process exits, or `timeout` passes; returns the content.
absl::StatusOr<std::string> WaitForReadyFile(const std::string& path,
                                             ChildProcess& process,
                                             Clock& clock,
                                             absl::Duration timeout);

}  // namespace navarch::bench

#endif  // NAVARCH_BENCH_CHILD_PROCESS_H_
