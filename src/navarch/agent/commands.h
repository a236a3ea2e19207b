// What the agent does with each command from the control plane. Runs on the
// agent's command thread: hooks and diagnostics may take minutes, and must
// not hold up heartbeats.
//
//   cordon     runs hooks.cordon (parameter uncordon=true: as uncordon, the
//              upstream spelling)
//   uncordon   runs hooks.uncordon
//   drain      runs hooks.drain with NAVARCH_DRAIN_TIMEOUT (parameter
//              `timeout`, seconds, default 300) and NAVARCH_DRAIN_FORCE
//   run_diagnostic  runs the diagnostic command (or the NVML sweep) and
//              reports the verdict as the `diagnostic` health check
//   terminate  drains (unless force=true), acknowledges, runs the shutdown
//              command if one is configured, then stops the agent (unless
//              exit=false). Never exit(): the agent's owner decides.
// Without a hook, cordon/uncordon/drain succeed: the control plane already
// changed the node's status, and there is nothing local to tell.
#ifndef NAVARCH_AGENT_COMMANDS_H_
#define NAVARCH_AGENT_COMMANDS_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/agent_config.h"
#include "navarch/agent/monitor.h"
#include "navarch/agent/process_runner.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.pb.h"

namespace navarch::agent {

inline constexpr char kDcgmDiagnostic[] = "dcgmi diag -r 1";

// The diagnostic to run: the configured command, else DCGM's quick test when
// dcgmi is on `path_env`, else "" (the NVML sweep).
std::string ResolveDiagnosticCommand(const std::string& configured,
                                     absl::string_view path_env);

struct CommandResult {
  bool succeeded = false;
  std::string message;  // for the acknowledgement and the event log
  // run_diagnostic: the verdict, sent as a health check right away.
  std::optional<HealthCheckResult> check;
  // terminate: what happens after the acknowledgement.
  bool run_shutdown_command = false;
  bool stop_agent = false;
};

class CommandHandler {
 public:
  // `diagnostic_command` as ResolveDiagnosticCommand returned it.
  CommandHandler(std::string node_id, AgentConfig config,
                 std::string diagnostic_command, ProcessRunner& processes,
                 GpuMonitor& monitor, Clock& clock, Logger log);

  // Carries out `command`; blocks for as long as its hook or diagnostic runs.
  CommandResult Execute(const NodeCommand& command);
  // Runs the configured shutdown command (terminate, after the ack).
  void RunShutdownCommand();

  // Local view of the node; thread-safe.
  bool cordoned() const;
  bool draining() const;

 private:
  CommandResult RunHook(const NodeCommand& command, const std::string& name,
                        const std::string& hook,
                        std::map<std::string, std::string> extra_env,
                        absl::Duration timeout);
  CommandResult Diagnose(const NodeCommand& command);
  std::map<std::string, std::string> Env(const NodeCommand& command) const;

  const std::string node_id_;
  const AgentConfig config_;
  const std::string diagnostic_command_;
  ProcessRunner& processes_;
  GpuMonitor& monitor_;
  Clock& clock_;
  Logger log_;

  mutable absl::Mutex mu_;
  bool cordoned_ ABSL_GUARDED_BY(mu_) = false;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_COMMANDS_H_
