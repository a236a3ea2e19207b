// The node agent: registers the node, heartbeats, reports health, carries out
// commands, and survives a control plane that goes away.
//
// Structure. All of the agent's state lives on one serial executor (the
// "control" executor), so its logic needs no locks; every timer, stream
// callback and event source only posts work there. GPU reads, XID waits and
// commands run on their own executors because they can block. Time comes from
// the injected Clock and randomness (backoff jitter) from a seeded generator,
// so tests drive a whole agent with FakeClock, InlineExecutors and a fake
// ControlPlaneClient, without sleeping or opening a socket.
//
// Behaviour (docs/agent.md is the user's version):
//  - Registration is retried with exponential backoff and jitter until it
//    succeeds; the intervals come from the server's answer.
//  - A heartbeat right after registration and then every heartbeat interval,
//    with host CPU/memory and per-GPU metrics. Health checks (boot, gpu,
//    health_events) right after registration and then every health interval.
//  - A health event is queued and reported at once. While the control plane
//    is unreachable events stay queued (bounded; drops are counted and
//    reported) and are delivered in order when it is back; a probe retries
//    with backoff meanwhile.
//  - NOT_FOUND from the control plane (it lost the node) re-registers.
//  - Commands arrive through WatchCommands; against a control plane without it
//    (UNIMPLEMENTED, or commands_ack_supported false) GetNodeCommands is
//    polled instead. Each outcome is acknowledged when the server supports it.
#ifndef NAVARCH_AGENT_AGENT_H_
#define NAVARCH_AGENT_AGENT_H_

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/agent_config.h"
#include "navarch/agent/client.h"
#include "navarch/agent/commands.h"
#include "navarch/agent/event_queue.h"
#include "navarch/agent/events/kmsg.h"
#include "navarch/agent/executor.h"
#include "navarch/agent/gpu/gpu_backend.h"
#include "navarch/agent/host_metrics.h"
#include "navarch/agent/monitor.h"
#include "navarch/agent/process_runner.h"
#include "navarch/agent/timer_set.h"
#include "navarch/base/backoff.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.pb.h"

namespace navarch::agent {

struct AgentOptions {
  // node_id, provider, region, zone, instance_type and metadata; the agent
  // fills in the GPUs.
  RegisterNodeRequest identity;
  AgentConfig config;
  // As ResolveDiagnosticCommand returned it ("" = the NVML sweep).
  std::string diagnostic_command;

  // The kernel log to follow for XIDs; empty: none.
  std::string kmsg_path = "/dev/kmsg";
  std::string proc_stat = "/proc/stat";
  std::string proc_meminfo = "/proc/meminfo";

  BackoffPolicy register_backoff{absl::Seconds(1), absl::Seconds(30), 2.0, 0.2};
  // Probing an unreachable control plane, restarting a command stream,
  // retrying an acknowledgement.
  BackoffPolicy retry_backoff{absl::Milliseconds(500), absl::Seconds(15), 2.0,
                              0.2};
  // Used when the server's answer has no intervals (0).
  absl::Duration default_heartbeat_interval = absl::Seconds(30);
  absl::Duration default_health_interval = absl::Seconds(60);
  // Seeds the backoff jitter.
  uint64_t seed = 1;
  // Production: a thread blocks in GpuBackend::WaitXid so NVML XIDs arrive at
  // once. Tests leave it off; XIDs are then collected with each GPU poll.
  bool xid_thread = false;
  // Called (once, on the control executor) when a terminate command asks the
  // agent to stop. The owner then calls Stop(); the agent never exits.
  std::function<void()> on_terminate;
};

// Where the agent's work runs. Null executors are replaced by threads the
// agent owns; tests pass InlineExecutors.
struct AgentExecutors {
  Executor* control = nullptr;
  Executor* gpu = nullptr;
  Executor* commands = nullptr;
  Executor* xid = nullptr;
};

// What the agent has done, for tests, logs and benchmarks.
struct AgentStats {
  bool registered = false;
  bool connected = false;
  bool polling_commands = false;  // no WatchCommands on this control plane
  bool acks_supported = false;
  int registrations = 0;
  int register_failures = 0;
  uint64_t heartbeats_sent = 0;
  uint64_t reports_sent = 0;
  uint64_t events_reported = 0;
  uint64_t events_dropped = 0;
  uint64_t duplicate_xids = 0;
  size_t events_queued = 0;
  uint64_t commands_executed = 0;
  uint64_t commands_acked = 0;
  uint64_t kmsg_records = 0;
  absl::Duration heartbeat_interval;
  absl::Duration health_interval;
};

class Agent {
 public:
  Agent(AgentOptions options, Clock& clock, ControlPlaneClient& client,
        GpuBackend& backend, ProcessRunner& processes, Logger log,
        AgentExecutors executors = {});
  ~Agent();  // Stop()

  Agent(const Agent&) = delete;
  Agent& operator=(const Agent&) = delete;

  // Finds the GPUs, starts following the kernel log and registers. Returns at
  // once; everything else happens on the executors.
  void Start();
  // Stops everything: kills running hooks, ends the command stream, waits for
  // the executors. No callback runs after it returns. Idempotent. Not from an
  // agent callback.
  void Stop();

  // Queues a health event for the control plane, as the built-in sources do
  // (the simulator and tests add their own). Thread-safe.
  void RaiseEvent(HealthEvent event);

  AgentStats stats() const;
  GpuMonitor& monitor() { return monitor_; }
  const std::string& node_id() const { return options_.identity.node_id(); }

 private:
  // --- On the control executor.
  void Register();
  void OnRegistered(const RegisterNodeResponse& resp);
  void Reregister(const absl::Status& why);
  void HeartbeatTick(uint64_t epoch);
  bool SendHeartbeat();
  void HealthTick(uint64_t epoch);
  // Sends queued events (and, with `force`, the checks even without events).
  void Report(bool force);
  void ScheduleReport();
  std::vector<HealthCheckResult> Checks(int events_in_report) const;
  // Acts on a failed call by its class: NOT_FOUND re-registers, a refusal is
  // logged, an unreachable control plane schedules a backed-off probe.
  void OnCallFailed(const char* what, const absl::Status& status);
  void OnConnected();
  void Probe();
  void StartCommands();
  void OnStreamEnd(uint64_t generation, const absl::Status& status);
  void PollCommandsTick(uint64_t epoch);
  void OnCommand(const NodeCommand& command);
  void OnCommandDone(const NodeCommand& command, CommandResult result);
  void FlushAcks();
  void OnEvent(HealthEvent event);
  void OnGpuPoll(std::vector<HealthEvent> events);
  void UpdateStats();
  void LogInventory();

  // --- Elsewhere.
  void GpuPollTick();                      // timer -> gpu executor
  void XidWait();                          // xid executor
  void OnKmsgRecord(const KmsgRecord& r);  // clock thread

  // Runs `fn` on the control executor after `delay`, unless stopped.
  void After(absl::Duration delay, std::function<void()> fn);
  void Post(std::function<void()> fn);

  AgentOptions options_;
  Clock& clock_;
  ControlPlaneClient& client_;
  GpuBackend& backend_;
  ProcessRunner& processes_;
  Logger log_;

  std::vector<std::unique_ptr<ThreadExecutor>> owned_executors_;
  Executor* control_;
  Executor* gpu_;
  Executor* commands_;
  Executor* xid_;

  GpuMonitor monitor_;
  CommandHandler handler_;
  TimerSet timers_;
  std::unique_ptr<KmsgFollower> kmsg_;
  std::atomic<bool> stopping_{false};
  std::atomic<bool> started_{false};
  std::atomic<bool> gpu_poll_busy_{false};

  // --- Control executor state.
  std::mt19937_64 rng_;
  Backoff register_backoff_;
  Backoff retry_backoff_;
  Backoff stream_backoff_;
  HostMetrics host_;
  EventQueue queue_;
  bool registered_ = false;
  bool connected_ = false;
  bool ack_supported_ = false;
  bool polling_ = false;
  bool report_posted_ = false;
  bool probe_scheduled_ = false;
  bool registering_ = false;
  bool terminating_ = false;
  size_t registered_gpus_ = 0;
  // Periodic chains carry the epoch they were started in; a re-registration
  // bumps it, which ends the old chains.
  uint64_t epoch_ = 0;
  uint64_t poll_epoch_ = 0;  // the epoch whose command-poll chain runs
  absl::Duration heartbeat_interval_;
  absl::Duration health_interval_;
  std::unique_ptr<CommandStream> stream_;
  uint64_t stream_generation_ = 0;
  absl::Duration stream_started_;
  std::set<std::string> seen_commands_;
  std::deque<std::string> seen_order_;
  std::deque<AckCommandRequest> pending_acks_;
  std::vector<HealthCheckResult> one_shot_checks_;  // the diagnostic verdict
  AgentStats counters_;

  mutable absl::Mutex stats_mu_;
  AgentStats stats_ ABSL_GUARDED_BY(stats_mu_);
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_AGENT_H_
