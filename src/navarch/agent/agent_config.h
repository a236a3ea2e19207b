// The agent's own configuration file (--config): hooks into the local
// workload system, the diagnostic and shutdown commands, and tuning. Read by
// the same strict reader as the control plane's (config/yaml_reader.h): an
// unknown key is an error naming file, line, column and key, so a typo never
// silently disables a hook. docs/agent.md has the format:
//
//   hooks:        # run with /bin/sh -c; NAVARCH_* variables describe it
//     cordon: "scontrol update nodename=$(hostname -s) state=drain ..."
//     uncordon: "scontrol update nodename=$(hostname -s) state=resume"
//     drain: "/usr/local/bin/drain-jobs --timeout $NAVARCH_DRAIN_TIMEOUT"
//     timeout: 5m
//   diagnostic:
//     command: "dcgmi diag -r 2"  # default: dcgmi diag -r 1, else NVML
//     timeout: 15m
//   shutdown:
//     command: "systemctl poweroff"  # default: terminate stops the agent
//     timeout: 2m
//   events:
//     queue_size: 1000
//     xid_dedup_window: 30s
//   intervals:
//     gpu_poll: 10s
//     command_poll: 10s  # only against control planes without WatchCommands
//     kmsg_poll: 250ms
//   logging:
//     level: info   # debug | info | warn | error
//     format: json  # json | text
//   node_id: auto   # or the id; --node-id overrides (node_identity.h)
//   node_identity:
//     source: ec2   # ec2 | gce | file:PATH | hostname; empty: in turn
//     allow_hostname: false
//     timeout: 2s   # per metadata request
//     connect_timeout: 1s
#ifndef NAVARCH_AGENT_AGENT_CONFIG_H_
#define NAVARCH_AGENT_AGENT_CONFIG_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/base/logging.h"

namespace navarch::agent {

struct HookConfig {
  std::string cordon;
  std::string uncordon;
  std::string drain;
  absl::Duration timeout = absl::Minutes(5);
};

// How the node id is found (node_identity.h); the flags override it.
struct NodeIdConfig {
  std::string node_id;  // "auto" or an id; empty: --node-id or the hostname
  std::string source;   // As --node-id-source; checked on load.
  bool allow_hostname = false;
  absl::Duration timeout = absl::Seconds(2);
  absl::Duration connect_timeout = absl::Seconds(1);
};

struct AgentConfig {
  NodeIdConfig identity;
  HookConfig hooks;
  std::string diagnostic_command;
  absl::Duration diagnostic_timeout = absl::Minutes(15);
  std::string shutdown_command;
  absl::Duration shutdown_timeout = absl::Minutes(2);
  size_t event_queue_size = 1000;
  absl::Duration xid_dedup_window = absl::Seconds(30);
  absl::Duration gpu_poll_interval = absl::Seconds(10);
  absl::Duration command_poll_interval = absl::Seconds(10);
  absl::Duration kmsg_poll_interval = absl::Milliseconds(250);
  std::optional<LogLevel> log_level;
  std::optional<LogFormat> log_format;
};

// Parses the YAML text of a config file; `filename` names it in errors.
// INVALID_ARGUMENT listing every problem, one per line, as
// "file:line:column: key.path: message" (ConfigError::ToString).
absl::StatusOr<AgentConfig> ParseAgentConfig(absl::string_view yaml,
                                             const std::string& filename);
absl::StatusOr<AgentConfig> LoadAgentConfig(const std::string& path);

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_AGENT_CONFIG_H_
