// A simulated node agent, in-process: it calls FleetService directly (no
// gRPC, no threads) on the simulation's Clock, with the agent's protocol:
// register, a heartbeat every heartbeat interval, a health report every
// health interval and at once when there are events, commands through a
// command stream, each acknowledged.
//
// GPUs: a healthy node reports fixed readings shared by every node of its
// type (cheap enough for fleets of thousands). The first injected fault gives
// the node its own FakeGpuBackend and GpuMonitor, the agent's own code, so a
// fault becomes health events and check results exactly as on a real node.
//
// Steady nodes (docs/simulator.md, "Elided calls"): once a node reports the
// shared healthy readings and its last health report changed nothing in the
// fleet core (no event committed), its next identical reports would change
// nothing but the node's `last_health_check`, and its heartbeats nothing but
// its liveness. Such a node is *steady*: its timers keep their schedule, but
// it skips its reports, and sends only every k-th heartbeat, k =
// heartbeat_timeout / heartbeat_interval, so the heartbeat monitor, which
// only asks whether the last beat is older than the timeout, decides exactly
// as with every beat. Whatever can change that (a fault, the network, power,
// a recovery) first replays the last skipped beat at the time it was due
// (`Hooks::as_of`); any fleet event about the node ends steady mode at once
// (its next report really happens). So the fleet core decides what it would
// have with every call. What differs: `last_health_check` of a steady node
// lags (no controller reads it), and a node terminated by the fleet while
// steady keeps an earlier `last_heartbeat`.
#ifndef NAVARCH_SIM_SIM_AGENT_H_
#define NAVARCH_SIM_SIM_AGENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <set>
#include <string>
#include <vector>

#include "navarch/agent/gpu/fake_backend.h"
#include "navarch/agent/monitor.h"
#include "navarch/base/clock.h"
#include "navarch/control_plane.pb.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/sim/scenario.h"

namespace navarch::sim {

struct Failure {
  std::string type;  // one of kFailureTypes
  int xid = 0;
  int gpu = 0;  // -1: every GPU (temperature)
  std::string message;
};

// What a healthy node of one GPU type reports; built once per type from a
// FakeGpuBackend and GpuMonitor.
struct AgentTemplate {
  std::vector<agent::GpuDevice> devices;
  agent::GpuSystemInfo system;
  std::vector<GPUMetrics> metrics;
  HealthCheckResult boot;
  HealthCheckResult gpu;
};
std::shared_ptr<const AgentTemplate> MakeAgentTemplate(
    Clock& clock, int gpu_count, const std::string& model);

struct AgentTiming {
  // Until the control plane says otherwise at registration.
  absl::Duration heartbeat_interval = absl::Seconds(30);
  absl::Duration health_interval = absl::Seconds(60);
  absl::Duration gpu_poll_interval = absl::Seconds(10);
  // The control plane's heartbeat timeout; with `Hooks::as_of`, lets a
  // steady node skip heartbeats (above). Zero: never skip.
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
};

// Calls a steady node did not make (see above), for the report.
struct ElidedCalls {
  int64_t heartbeats = 0;
  int64_t health_reports = 0;
};

class SimAgent {
 public:
  struct Hooks {
    // The node was started but will never register (boot_failure).
    std::function<void(SimAgent&)> start_failed;
    // A terminate command arrived (after it was acknowledged).
    std::function<void(SimAgent&)> terminate;
    // Counts simulation events (timer callbacks, calls).
    std::function<void()> count;
    // Runs `fn` (a call into the fleet core) with the fleet core's clock
    // reading `at`, a time in the past: replays a skipped heartbeat. Null:
    // the node never skips calls.
    std::function<void(absl::Time at, const std::function<void()>& fn)> as_of;
  };

  SimAgent(NodeSpec spec, FleetService& fleet, Clock& clock,
           std::shared_ptr<const AgentTemplate> tmpl, AgentTiming timing,
           uint64_t gpu_seed, Hooks hooks);
  ~SimAgent();

  // Powers the node on: the agent registers after `boot_delay`, unless a
  // boot_failure is pending. Does nothing when running.
  void Start(absl::Duration boot_delay);
  // Powers it off: no more calls. Injected faults stay (a boot_failure
  // then bites at the next Start).
  void Stop();

  // False (nothing injected) when the node is not running; boot_failure is
  // accepted on a stopped node too.
  bool Inject(const Failure& failure);
  // Clears one failure type, or everything with "".
  void Recover(const std::string& type);

  // The fleet core committed an event about this node: whatever it changed,
  // the node's next report may matter, so it stops skipping calls. Safe to
  // call from the fleet's commit callback (it makes no call).
  void FleetChanged();
  // At the end of a run: replays the heartbeat a steady node skipped last,
  // so the fleet core holds what it would with every call.
  void Settle();
  const ElidedCalls& elided() const { return elided_; }

  const NodeSpec& spec() const { return spec_; }
  const std::string& id() const { return spec_.id; }
  bool running() const { return running_; }
  const std::set<std::string>& active_failures() const { return active_; }

 private:
  void Register(uint64_t epoch);
  void HeartbeatTick(uint64_t epoch);
  void HealthTick(uint64_t epoch);
  void SendHeartbeat();
  // Steady mode (see the top of this file).
  void MaybeEnterSteady(bool fleet_quiet);
  void LeaveSteady();
  // The last skipped heartbeat, if none was sent since, sent now with the
  // fleet's clock reading the time it was due.
  void ReplaySkippedBeat();
  int HeartbeatStride() const;
  void GpuPollTick(uint64_t epoch);
  void Report(bool force);
  void CollectXids();
  // A fault that stays until recovered (not an edge such as an XID).
  bool HasStandingFault() const;
  void EnsureGpu();
  void OpenStream();
  void CloseStream();
  void OnCommand(const NodeCommand& command);
  // Runs `fn` after `d` on the clock, unless the agent is gone by then. A
  // template: one std::function per timer, not two (millions of timers).
  template <typename F>
  void After(absl::Duration d, F fn) {
    clock_.Schedule(d, [this, alive = alive_, fn = std::move(fn)]() mutable {
      if (!*alive) return;
      if (hooks_.count) hooks_.count();
      fn();
    });
  }
  void Ack(const NodeCommand& command, bool ok, const std::string& message);

  NodeSpec spec_;
  FleetService& fleet_;
  Clock& clock_;
  std::shared_ptr<const AgentTemplate> tmpl_;
  AgentTiming timing_;
  const uint64_t gpu_seed_;
  Hooks hooks_;

  bool running_ = false;
  bool registered_ = false;
  bool network_down_ = false;
  bool boot_failure_ = false;
  // Timer chains carry the epoch they were started in; Stop and
  // re-registration bump it, which ends the old chains.
  uint64_t epoch_ = 0;
  uint64_t watch_handle_ = 0;
  std::set<std::string> active_;
  std::vector<HealthEvent> queue_;
  std::vector<GPUInfo> gpus_;                    // as registered
  std::unique_ptr<HeartbeatRequest> heartbeat_;  // a healthy node's
  HeartbeatRequest bare_;                        // the same, without metrics
  std::unique_ptr<agent::FakeGpuBackend> backend_;
  std::unique_ptr<agent::GpuMonitor> monitor_;
  bool polling_ = false;  // the GPU poll chain runs
  // Steady mode.
  bool steady_ = false;
  bool fleet_changed_ = false;  // a fleet event since the last report began
  absl::Time last_beat_ = absl::InfinitePast();     // last heartbeat sent
  absl::Time skipped_beat_ = absl::InfinitePast();  // last one skipped
  // The fleet holds the shared healthy readings as this node's last
  // metrics: heartbeats may leave them out (same effect, no copy).
  bool template_metrics_sent_ = false;
  ElidedCalls elided_;
  // Shared with command callbacks that may outlive a stream.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_SIM_AGENT_H_
