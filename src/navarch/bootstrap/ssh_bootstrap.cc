#include "navarch/bootstrap/ssh_bootstrap.h"

#include <algorithm>
#include <memory>
#include <utility>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch::bootstrap {
namespace {

constexpr absl::Duration kSlice = absl::Milliseconds(100);

bool Cancelled(const BootstrapOptions& options) {
  return options.cancel != nullptr && options.cancel->HasBeenNotified();
}

// Waits `d` on `clock`; false when cancelled first.
bool Wait(Clock& clock, absl::Duration d, const BootstrapOptions& options) {
  // Shared with the timer, which may still fire after a return.
  auto done = std::make_shared<absl::Notification>();
  const TimerId id = clock.Schedule(d, [done] { done->Notify(); });
  while (!done->WaitForNotificationWithTimeout(kSlice)) {
    if (Cancelled(options)) {
      clock.Cancel(id);
      return false;
    }
  }
  return true;
}

// A dial may pass later: sshd not up yet (refused, timed out, reset) or
// cloud-init not done writing authorized_keys (refused key). A refused host
// key or bad options never will.
bool RetryableDialError(const absl::Status& status) {
  return status.code() == absl::StatusCode::kUnavailable ||
         status.code() == absl::StatusCode::kDeadlineExceeded ||
         status.code() == absl::StatusCode::kPermissionDenied;
}

void Fail(BootstrapResult& result, const absl::Status& status) {
  result.success = false;
  result.error_code = status.code();
  result.error = std::string(status.message());
}

// Dials until connected, a dial fails for good, `ssh_timeout` passes or
// cancel.
absl::StatusOr<std::unique_ptr<SshClient>> Dial(const SshTarget& target,
                                                const BootstrapOptions& options,
                                                Clock& clock) {
  const absl::Duration deadline = clock.SteadyNow() + options.ssh_timeout;
  absl::Status last;
  int dials = 0;
  while (true) {
    if (Cancelled(options)) return absl::CancelledError("bootstrap cancelled");
    const absl::Duration left = deadline - clock.SteadyNow();
    if (left <= absl::ZeroDuration()) break;
    ++dials;
    absl::StatusOr<std::unique_ptr<SshClient>> client = SshClient::Connect(
        target, options.host_key, std::min(options.ssh_connect_timeout, left),
        clock, options.cancel);
    if (client.ok() || !RetryableDialError(client.status())) return client;
    last = client.status();
    const absl::Duration pause =
        std::min(options.retry_interval, deadline - clock.SteadyNow());
    if (pause > absl::ZeroDuration() && !Wait(clock, pause, options)) {
      return absl::CancelledError("bootstrap cancelled");
    }
  }
  return absl::DeadlineExceededError(
      absl::StrCat("no ssh connection to ", target.host, ":", target.port,
                   " within ", absl::FormatDuration(options.ssh_timeout), " (",
                   dials, " dials); last error: ", last.message()));
}

// Runs one command into a step; the failure, if the bootstrap stops here.
absl::Status RunStep(SshClient& client, const std::string& command, size_t i,
                     size_t n, const BootstrapOptions& options,
                     BootstrapStep& step) {
  step.command = command;
  absl::StatusOr<CommandResult> run =
      client.Run(command, options.command_timeout, options.output_limit);
  if (!run.ok()) {
    return Annotate(run.status(), absl::StrCat("command ", i + 1, " of ", n));
  }
  step.exit_code = run->exit_code;
  step.stdout_text = std::move(run->stdout_text);
  step.stderr_text = std::move(run->stderr_text);
  step.duration = run->duration;
  step.timed_out = run->timed_out;
  if (step.timed_out) {
    return absl::DeadlineExceededError(absl::StrCat(
        "command ", i + 1, " of ", n, " timed out after ",
        absl::FormatDuration(options.command_timeout), " (killed)"));
  }
  if (step.exit_code != 0) {
    return absl::AbortedError(absl::StrCat(
        "command ", i + 1, " of ", n, " exited with status ", step.exit_code));
  }
  return absl::OkStatus();
}

}  // namespace

BootstrapResult RunBootstrap(const SshTarget& target,
                             const std::vector<std::string>& commands,
                             const BootstrapOptions& options, Clock& clock) {
  const absl::Duration start = clock.SteadyNow();
  BootstrapResult result;
  absl::StatusOr<std::unique_ptr<SshClient>> client =
      Dial(target, options, clock);
  result.ssh_wait = clock.SteadyNow() - start;
  if (!client.ok()) {
    Fail(result, client.status());
    result.duration = clock.SteadyNow() - start;
    return result;
  }
  result.host_key = (*client)->host_key();
  result.success = true;
  for (size_t i = 0; i < commands.size(); ++i) {
    result.steps.emplace_back();
    const absl::Status status =
        RunStep(**client, commands[i], i, commands.size(), options,
                result.steps.back());
    if (!status.ok()) {
      Fail(result, status);
      break;
    }
  }
  result.duration = clock.SteadyNow() - start;
  return result;
}

}  // namespace navarch::bootstrap
