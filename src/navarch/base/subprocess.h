// The one way Navarch starts a child process: the agent's hooks and
// diagnostics (agent/process_runner), the `command` metrics source, the local
// provider's node agents and navarch-bench's control plane all come here.
//
// Every child gets an empty signal mask and default dispositions for the
// termination signals: our binaries block SIGTERM, SIGINT and SIGHUP in every
// thread (they wait for them with sigwait), posix_spawn and fork keep the
// mask, and a child that inherited it could not be stopped. stdin is
// /dev/null. By default a child leads its own process group, so a timeout
// kills the whole tree it started.
#ifndef NAVARCH_BASE_SUBPROCESS_H_
#define NAVARCH_BASE_SUBPROCESS_H_

#include <sys/types.h>

#include <cstddef>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"

namespace navarch {

struct ChildOptions {
  // argv[0] is a path, or a name looked up in $PATH.
  std::vector<std::string> argv;
  // The child's environment is ours, less `unset_env`, with `env` on top.
  std::map<std::string, std::string> env;
  std::vector<std::string> unset_env;

  enum class Group {
    kNew,      // its own process group: SignalGroup reaches its children
    kInherit,  // ours: a Ctrl-C in our terminal reaches it too
    kSession,  // a new session: outlives our group and terminal (setsid)
  };
  Group group = Group::kNew;

  enum class Output {
    kPipes,         // stdout and stderr on two pipes (stdout_fd, stderr_fd)
    kMergedPipe,    // both on one pipe (stdout_fd)
    kAppendToFile,  // both appended to `output_file`
  };
  Output output = Output::kPipes;
  std::string output_file;
};

// A started child. Not thread-safe; one owner.
class Child {
 public:
  // An error when it could not be started (no such program, no pipe...).
  static absl::StatusOr<std::unique_ptr<Child>> Start(
      const ChildOptions& options);
  Child(const Child&) = delete;
  Child& operator=(const Child&) = delete;
  // Unless reaped or released: SIGKILLs it (its group when it leads one)
  // and reaps it, so no zombie and no orphan is left behind.
  ~Child();

  pid_t pid() const { return pid_; }
  // The read ends of its output (-1 when not piped). Owned by the Child.
  int stdout_fd() const { return stdout_fd_; }
  int stderr_fd() const { return stderr_fd_; }
  void CloseOutput();

  // `sig` to its process group when it leads one, else to it alone. A no-op
  // once reaped (the pid may have been reused).
  void Signal(int sig);
  // Reaps it if it exited, without blocking; true once reaped.
  bool TryReap();
  // Blocks until it exits and reaps it.
  void WaitBlocking();
  // The waitpid status and exit code (128 + signal when killed by one);
  // meaningful once reaped.
  int wait_status() const { return wait_status_; }
  int exit_code() const;
  // Forgets the child: the destructor leaves it running (the local
  // provider's agents outlive the control plane). Returns its pid.
  pid_t Release();

 private:
  Child() = default;
  pid_t pid_ = -1;
  bool leads_group_ = false;
  bool reaped_ = false;
  int wait_status_ = 0;
  int stdout_fd_ = -1;
  int stderr_fd_ = -1;
};

// How much of a child's output RunChild keeps.
struct OutputLimits {
  // stdout: the first `max_stdout` bytes, or the last when `keep_tail`.
  size_t max_stdout = 1 << 20;
  bool stdout_keep_tail = false;
  // stderr: the last `keep_stderr` bytes.
  size_t keep_stderr = 4096;
};

struct ChildResult {
  int exit_code = -1;      // 128 + signal when killed
  bool timed_out = false;  // killed because it ran past its timeout
  std::string stdout_text;
  std::string stderr_text;  // empty with kMergedPipe
};

// Starts `options` (its output must be piped), reads its output until it
// exits, and SIGKILLs its process group once `timeout` has passed on
// `clock`'s SteadyNow. Waits are sliced (at most 100 ms), so a FakeClock's
// advance is noticed: with a FakeClock a hung child is only killed when the
// test advances the clock. `on_start` sees the pid before any wait (the
// agent keeps it to kill on shutdown). An error only when it could not be
// started.
absl::StatusOr<ChildResult> RunChild(
    const ChildOptions& options, absl::Duration timeout, Clock& clock,
    const OutputLimits& limits = {},
    const std::function<void(pid_t)>& on_start = nullptr);

}  // namespace navarch

#endif  // NAVARCH_BASE_SUBPROCESS_H_
