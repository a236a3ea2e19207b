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
// Skipped calls (docs/simulator.md, "Skipped calls"). A node's heartbeats
// and health reports are ticks on the simulation's AgentCalendar. Two kinds
// of calls have an effect that is known in advance, so a node may skip them
// and the simulation stands in for them:
// - Heartbeats of a node that sends the shared healthy readings (the fleet
//   holds them already) and whose network is up: such a beat only moves the
//   node's liveness, and a node beating every interval (<= the timeout) is
//   never silent. The node *skips beats*: no ticks queued, the schedule goes
//   on in arithmetic, and the node vouches for its liveness instead
//   (FleetService::VouchLiveness: the heartbeat monitor passes it over, as
//   it would with every beat). Whatever changes what a beat would send or
//   whether it is sent (a fault, the network, power, a recovery, the end of
//   the run) first replays the last beat the schedule passed, with the
//   fleet's clock reading the time it was due (`Hooks::as_of`), withdraws
//   the vouch, then queues the next tick.
// - Health reports of a node that reports the shared healthy readings, whose
//   last report changed nothing in the fleet core: the next identical ones
//   would change nothing but its `last_health_check`. The node *skips
//   reports* until any fleet event about it (FleetChanged) or a change of
//   its own; then the next tick on its schedule really reports.
// The calendar's ordering rule makes "would this tick have run by now" a
// function of the time alone (AgentCalendar::Fired), so a run that skips
// calls decides exactly as one that makes every call (`--every-call`). What
// differs: a skipping node's `last_heartbeat` and `last_health_check` lag
// (no controller reads them), and a node terminated by the fleet while
// skipping keeps an earlier `last_heartbeat`.
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
#include "navarch/sim/calendar.h"
#include "navarch/sim/scenario.h"

namespace navarch::sim {

struct Failure {
  std::string type;  // one of kFailureTypes
  int xid = 0;
  int gpu = 0;  // -1: every GPU (temperature)
  std::string message;
};

// What a healthy node of one GPU type reports; built once per type from a
// FakeGpuBackend and GpuMonitor, which stay as the prototype a node copies
// at its first fault.
struct AgentTemplate {
  std::unique_ptr<agent::FakeGpuBackend> backend;  // started, polled once
  std::unique_ptr<agent::GpuMonitor> monitor;
  std::vector<agent::GpuDevice> devices;
  agent::GpuSystemInfo system;
  HealthCheckResult boot;
  HealthCheckResult gpu;
  // Heartbeats with the shared readings, and without metrics (the fleet
  // keeps a node's last ones): shared by every node of the type, which sets
  // node_id and timestamp before each send (the simulation is
  // single-threaded).
  mutable HeartbeatRequest heartbeat;
  mutable HeartbeatRequest bare;
  // The health report of a node with the shared readings and no events
  // (node_id and timestamps set per send, as above).
  mutable ReportHealthRequest report;
  // The registration, without the node's id, place, GPU UUIDs and labels.
  mutable RegisterNodeRequest registration;
};
std::shared_ptr<const AgentTemplate> MakeAgentTemplate(
    Clock& clock, int gpu_count, const std::string& model);

struct AgentTiming {
  // Until the control plane says otherwise at registration.
  absl::Duration heartbeat_interval = absl::Seconds(30);
  absl::Duration health_interval = absl::Seconds(60);
  absl::Duration gpu_poll_interval = absl::Seconds(10);
  // The control plane's heartbeat timeout: a node skips beats (above) only
  // when its interval is no longer. Zero: never.
  absl::Duration heartbeat_timeout = absl::ZeroDuration();
};

// A node's calls, for the report: those it made or skipped (the same in a
// run that makes every call), and how many of them it skipped.
struct CallCounts {
  int64_t heartbeats = 0;
  int64_t health_reports = 0;
  int64_t heartbeats_skipped = 0;
  int64_t health_reports_skipped = 0;
};

class SimAgent {
 public:
  struct Hooks {
    // The node was started but will never register (boot_failure).
    std::function<void(SimAgent&)> start_failed;
    // A terminate command arrived (after it was acknowledged).
    std::function<void(SimAgent&)> terminate;
    // Counts simulation events (ticks, skipped ones included; timer
    // callbacks; commands).
    std::function<void(int64_t n)> count;
    // Runs `fn` (a call into the fleet core) with the fleet core's clock
    // reading `at`, a time in the past: replays a skipped heartbeat. Null:
    // the node never skips calls.
    std::function<void(absl::Time at, const std::function<void()>& fn)> as_of;
  };

  // `ordinal`: the agent's key on `calendar` (unique, stable for a run).
  SimAgent(NodeSpec spec, FleetService& fleet, Clock& clock,
           AgentCalendar& calendar, uint32_t ordinal,
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

  // A calendar tick (the simulation dispatches them).
  void Tick(AgentCalendar::Kind kind, uint64_t epoch);

  // The fleet core committed an event about this node: whatever it changed,
  // the node's next report may matter, so it stops skipping reports. Safe
  // to call from the fleet's commit callback (it makes no call).
  void FleetChanged();
  // At the end of a run: counts the ticks skipped so far and replays the
  // last skipped beat, so the fleet core holds what it would with every
  // call.
  void Settle();
  const CallCounts& calls() const { return calls_; }

  const NodeSpec& spec() const { return spec_; }
  const std::string& id() const { return spec_.id; }
  bool running() const { return running_; }
  const std::set<std::string>& active_failures() const { return active_; }

 private:
  void Register(uint64_t epoch);
  void HeartbeatTick();
  void HealthTick();
  // Queues the next tick of `kind` on the calendar.
  void Queue(AgentCalendar::Kind kind);
  // Returns whether the fleet took it.
  bool SendHeartbeat();
  // Skipping calls (see the top of this file).
  void MaybeSkipBeats();
  void MaybeSkipReports(bool fleet_quiet);
  // Back to real calls: counts the ticks the schedule passed meanwhile,
  // replays the last skipped beat (ResumeBeats; not from inside a fleet
  // commit), and queues the next tick when `queue`.
  void ResumeBeats(bool queue);
  void ResumeReports(bool queue);
  void StopSkipping(bool queue);  // both
  // Moves `next` past every tick of `kind` the schedule has run by now;
  // returns how many, and the last one's time in `*last`.
  int64_t CatchUp(AgentCalendar::Kind kind, absl::Duration interval,
                  absl::Time& next, absl::Time* last);
  // The last skipped heartbeat, if none was sent since, sent now with the
  // fleet's clock reading the time it was due.
  void ReplaySkippedBeat();
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
  // template: one std::function per timer, not two.
  template <typename F>
  void After(absl::Duration d, F fn) {
    clock_.Schedule(d, [this, alive = alive_, fn = std::move(fn)]() mutable {
      if (!*alive) return;
      Count(1);
      fn();
    });
  }
  void Count(int64_t n) {
    if (hooks_.count && n > 0) hooks_.count(n);
  }
  void Ack(const NodeCommand& command, bool ok, const std::string& message);

  NodeSpec spec_;
  FleetService& fleet_;
  Clock& clock_;
  AgentCalendar& calendar_;
  const uint32_t ordinal_;
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
  std::unique_ptr<agent::FakeGpuBackend> backend_;
  std::unique_ptr<agent::GpuMonitor> monitor_;
  bool polling_ = false;  // the GPU poll chain runs
  // The schedule: the next tick of each kind (queued or not), and whether
  // it is queued on the calendar in this epoch.
  absl::Time next_beat_ = absl::InfinitePast();
  absl::Time next_report_ = absl::InfinitePast();
  bool beat_queued_ = false;
  bool report_queued_ = false;
  // Skipping calls.
  bool skip_beats_ = false;
  bool skip_reports_ = false;
  bool fleet_changed_ = false;  // a fleet event since the last report began
  absl::Time last_beat_ = absl::InfinitePast();     // last heartbeat sent
  absl::Time skipped_beat_ = absl::InfinitePast();  // last one skipped
  // The fleet holds the shared healthy readings as this node's last
  // metrics: heartbeats may leave them out (same effect, no copy).
  bool template_metrics_sent_ = false;
  CallCounts calls_;
  // Shared with command callbacks that may outlive a stream.
  std::shared_ptr<bool> alive_ = std::make_shared<bool>(true);
};

}  // namespace navarch::sim

#endif  // NAVARCH_SIM_SIM_AGENT_H_
