// SSH bootstrap: waits for a new machine's sshd, then runs a pool's
// setup_commands on it in order, stopping at the first that fails. Upstream's
// pkg/bootstrap, with the host key verified (ssh_client.h) and every step's
// output and duration kept, bounded.
//
// Blocking: run it on a worker thread. Every wait is bounded by the options'
// timeouts, and `cancel` stops it within about 100 ms (a dial in progress
// runs to its own timeout first).
#ifndef NAVARCH_BOOTSTRAP_SSH_BOOTSTRAP_H_
#define NAVARCH_BOOTSTRAP_SSH_BOOTSTRAP_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/bootstrap/ssh_client.h"

namespace navarch::bootstrap {

// Upstream's defaults (inventory §3.6 and its list of defaults).
struct BootstrapOptions {
  // How long to keep dialling until sshd answers (the machine is booting).
  absl::Duration ssh_timeout = absl::Minutes(10);
  // One dial: TCP connect, key exchange, authentication.
  absl::Duration ssh_connect_timeout = absl::Seconds(30);
  // Each command; a command past it is killed on the machine.
  absl::Duration command_timeout = absl::Minutes(5);
  // Between dials that failed.
  absl::Duration retry_interval = absl::Seconds(5);
  HostKeyCheck host_key;
  // Per step and stream (stdout, stderr): head and tail are kept.
  size_t output_limit = 64 * 1024;
  // Notified by another thread to stop: the running command is killed and
  // the result says "cancelled". Must outlive the call.
  const absl::Notification* cancel = nullptr;
};

struct BootstrapStep {
  // The command as given. A rendered command can hold secrets: the caller
  // decides what of it to keep (upstream stored the template).
  std::string command;
  int exit_code = -1;  // -1 when timed out (see CommandResult)
  std::string stdout_text;
  std::string stderr_text;
  absl::Duration duration;
  bool timed_out = false;
};

struct BootstrapResult {
  std::vector<BootstrapStep> steps;  // those that ran, the failed one last
  absl::Duration ssh_wait;           // from the start until connected
  absl::Duration duration;           // the whole bootstrap
  HostKey host_key;                  // the key seen (empty if none was)
  bool success = false;
  // Why not, when !success: the status of the failure. FAILED_PRECONDITION
  // for a refused host key, DEADLINE_EXCEEDED when sshd never answered within
  // ssh_timeout or a command timed out, ABORTED when a command exited
  // non-zero, PERMISSION_DENIED for a refused client key, INVALID_ARGUMENT
  // for bad options, CANCELLED, UNAVAILABLE for a lost connection.
  absl::StatusCode error_code = absl::StatusCode::kOk;
  std::string error;
};

// Connects to `target` (retrying dials within options.ssh_timeout) and runs
// `commands` in order. Time is measured and retry waits are timed on
// `clock`; network I/O runs in real time. With a FakeClock, waits and
// timeouts end only when the test advances it (use a RealClock against a
// real server).
BootstrapResult RunBootstrap(const SshTarget& target,
                             const std::vector<std::string>& commands,
                             const BootstrapOptions& options, Clock& clock);

}  // namespace navarch::bootstrap

#endif  // NAVARCH_BOOTSTRAP_SSH_BOOTSTRAP_H_
