// Runs the control plane under test as a child process (started through
// navarch::Child, base/subprocess.h): signal, wait with a deadline, and read
// its resident memory. POSIX (Linux for ReadRssBytes).
#ifndef NAVARCH_BENCH_CHILD_PROCESS_H_
#define NAVARCH_BENCH_CHILD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/base/subprocess.h"

namespace navarch::bench {

class ChildProcess {
 public:
  // Starts `binary` with `args`; stdout and stderr are appended to
  // `log_path`.
  static absl::StatusOr<std::unique_ptr<ChildProcess>> Spawn(
      const std::string& binary, const std::vector<std::string>& args,
      const std::string& log_path);
  // SIGKILLs and reaps it if still running (navarch::Child does).
  ~ChildProcess() = default;

  pid_t pid() const { return child_->pid(); }
  void Signal(int sig) { child_->Signal(sig); }
  // Waits up to `timeout` for the exit; its wait status, or DEADLINE_EXCEEDED.
  absl::StatusOr<int> Wait(Clock& clock, absl::Duration timeout);
  // True once the process has exited (reaps it).
  bool Exited();

 private:
  explicit ChildProcess(std::unique_ptr<Child> child)
      : child_(std::move(child)) {}
  std::unique_ptr<Child> child_;
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
