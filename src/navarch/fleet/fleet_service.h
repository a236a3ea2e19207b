// The fleet core: the one place that changes state (docs/architecture.md).
//
// Every transport (gRPC, HTTP) and every controller calls FleetService. It
// validates the request, checks the change against the node state machine,
// applies it to its in-memory index, appends events that say why, and commits
// it through the Store before the caller hears "done". Reads are served from
// the index (events from the store).
//
// Threading: one absl::Mutex guards the index. Mutating calls are
// asynchronous: `done` runs once the change is committed, on the store's
// writer thread or inline (memory store), never with the fleet lock held.
// Batches are submitted to the store in the order the index changed, so the
// store sees changes to a node in the order they happened.
#ifndef NAVARCH_FLEET_FLEET_SERVICE_H_
#define NAVARCH_FLEET_FLEET_SERVICE_H_

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/function_ref.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.pb.h"
#include "navarch/fleet/command_book.h"
#include "navarch/fleet/node_index.h"
#include "navarch/health/evaluator.h"
#include "navarch/store/store.h"

namespace navarch {

// Largest ListNodes page (about 2 KB a node: well under gRPC's 64 MiB).
inline constexpr int kMaxNodesPageSize = 10000;
// Largest ListInstances page (an instance is smaller than a node).
inline constexpr int kMaxInstancesPageSize = 10000;

struct FleetOptions {
  absl::Duration heartbeat_interval = absl::Seconds(30);
  absl::Duration health_check_interval = absl::Seconds(60);
  // A node silent for this long is declared UNHEALTHY.
  absl::Duration heartbeat_timeout = absl::Seconds(90);
  // How often buffered heartbeat timestamps reach the store (<= 1 s).
  absl::Duration heartbeat_flush_interval = absl::Seconds(1);
  std::vector<std::string> enabled_health_checks = {"boot", "nvml", "xid"};
  // Consecutive unhealthy check results that make a node UNHEALTHY
  // (`health.unhealthy_after`); per pool where the pool sets it. Unhealthy
  // events act at once.
  int unhealthy_after = 2;
  std::map<std::string, int> unhealthy_after_by_pool;
  // Commands not yet finished, per node; more is RESOURCE_EXHAUSTED.
  int max_open_commands_per_node = 256;
  uint64_t seed = 0;  // 0: seeded from the clock
  // Called with the events of every batch once it is durable, in commit
  // order: observers (the notifier dispatcher, the pool manager's wake-up)
  // react to what has really happened. Runs on the store's commit thread
  // with no fleet lock held; it must only hand work off, never block or call
  // back into the fleet synchronously. The events are the callee's (moved,
  // not copied, to it).
  std::function<void(std::vector<Event>)> on_events_committed;
};

// Who asked for a change; recorded in the event log.
struct Actor {
  std::string name =
      "operator";  // "operator", "node", "heartbeat-monitor", ...
};

template <typename T>
using Done = std::function<void(absl::StatusOr<T>)>;

// A node as the pool manager reads it: no GPU inventory, metadata or
// metrics, so that a tick over a large fleet copies little.
struct NodeSummary {
  std::string node_id;
  std::string pool;
  std::string provider;
  NodeStatus status = NODE_STATUS_UNKNOWN;
  HealthStatus health_status = HEALTH_STATUS_UNKNOWN;
  std::string status_reason;
  absl::Time registered_at;
  int gpu_count = 0;
  // Mean utilization_percent over the GPUs of the last heartbeat's metrics;
  // unset when they had no GPU metrics.
  std::optional<double> gpu_utilization;
};

// Counters since start, for /metrics. Keys are label values joined with '|'
// where a counter has several labels (documented per field).
struct FleetStats {
  int64_t heartbeats = 0;
  int64_t health_reports = 0;
  // "event_type|xid_code" (xid_code empty for non-XID events).
  std::map<std::string, int64_t> health_events;
  // Rule name -> events it decided (first match).
  std::map<std::string, int64_t> rule_matches;
  // Rule name -> evaluation errors (filled by policy evaluators that report
  // them).
  std::map<std::string, int64_t> rule_errors;
  // Command type short name ("cordon") -> issued.
  std::map<std::string, int64_t> commands_issued;
  // "type|outcome" with outcome delivered, succeeded, failed, cancelled.
  std::map<std::string, int64_t> command_outcomes;
  // "from|to" short status names.
  std::map<std::string, int64_t> status_changes;
  int64_t commit_failures = 0;
};

class FleetService {
 public:
  FleetService(Store& store, Clock& clock, const HealthEvaluator& evaluator,
               Logger log, FleetOptions options);
  ~FleetService();

  FleetService(const FleetService&) = delete;
  FleetService& operator=(const FleetService&) = delete;

  // Loads the index from the store. Every liveness timer restarts now: no node
  // is declared dead because the control plane was down. Starts the heartbeat
  // flush timer on the clock.
  absl::Status Start();
  // Flushes buffered heartbeats and stops the timers. Idempotent.
  void Stop();

  // --- Node agent RPCs ---
  void RegisterNode(const RegisterNodeRequest& req,
                    Done<RegisterNodeResponse> done);
  void SendHeartbeat(const HeartbeatRequest& req, Done<HeartbeatResponse> done);
  // A report that changes nothing but the node's last_health_check (a
  // routine clean one) writes nothing: that time is kept in memory and
  // reaches the store with the node's next write, so after a restart it may
  // read older. Like heartbeat times, it is liveness data, not state.
  void ReportHealth(const ReportHealthRequest& req,
                    Done<ReportHealthResponse> done);
  // Upstream polling: returns the PENDING commands in issue order and marks
  // them DELIVERED (upstream agents never acknowledge). Unknown node: empty
  // list.
  void GetNodeCommands(const GetNodeCommandsRequest& req,
                       Done<GetNodeCommandsResponse> done);
  void AckCommand(const AckCommandRequest& req, Done<AckCommandResponse> done);

  // --- Operator RPCs ---
  void IssueCommand(const IssueCommandRequest& req, const Actor& actor,
                    Done<IssueCommandResponse> done);
  absl::StatusOr<ListNodesResponse> ListNodes(const ListNodesRequest& req);
  absl::StatusOr<GetNodeResponse> GetNode(const GetNodeRequest& req);
  // Pages like ListNodes, in instance id order: page_size 1..10000 (0: every
  // instance in one answer), page_token the last id of the previous page.
  absl::StatusOr<ListInstancesResponse> ListInstances(
      const ListInstancesRequest& req);
  absl::StatusOr<GetInstanceResponse> GetInstance(
      const GetInstanceRequest& req);
  absl::StatusOr<ListEventsResponse> ListEvents(const ListEventsRequest& req);

  // --- Command streams (WatchCommands) ---
  // Registers `deliver` as the node's live command channel, replacing an older
  // one (whose `closed` callback runs). `deliver` first receives every
  // command that is PENDING or DELIVERED-but-unacknowledged (an agent that
  // reconnects may have lost them; it deduplicates by id), then each new one
  // as soon as it is committed. Callbacks run without the fleet lock and must
  // not block. Returns a handle for Unwatch. NOT_FOUND for unknown nodes.
  absl::StatusOr<uint64_t> Watch(
      const std::string& node_id,
      std::function<void(const NodeCommand&)> deliver,
      std::function<void()> closed);
  void Unwatch(const std::string& node_id, uint64_t handle);
  // Ends every command stream (their `closed` callbacks run). New ones may
  // still open until Stop.
  void CloseWatchers();

  // --- For controllers and the pool manager ---
  // Every node, summarized, in id order. Copied a chunk of nodes at a time
  // (RPCs wait for one chunk, not for the whole fleet), so it is not one
  // atomic snapshot: a node that changes meanwhile may appear as it was or
  // as it is, and one registered meanwhile may be missing.
  std::vector<NodeSummary> ListNodeSummaries();
  // The instances a pool manager's tick acts on, in id order: PROVISIONING,
  // PENDING_REGISTRATION, and FAILED ones not terminated yet (a pool of
  // 100,000 running instances has few of these).
  std::vector<InstanceInfo> ListUnsettledInstances();
  // The ids of all instances, in id order.
  std::vector<std::string> ListInstanceIds();
  // Every instance whose label `key` is `value`, in id order (a scan: for
  // rare lookups, such as an agent that registers by its bootstrap token).
  std::vector<InstanceInfo> FindInstancesByLabel(const std::string& key,
                                                 const std::string& value);
  // Declares UNHEALTHY every live node whose last sign of life is older than
  // the heartbeat timeout. Returns how many it declared.
  int CheckHeartbeats();
  // Writes buffered heartbeat timestamps to the store now.
  absl::Status FlushHeartbeats();
  // Deletes old history from the store (see Store::Prune) and forgets the
  // pruned instances here too. Returns the rows deleted.
  absl::StatusOr<int64_t> PruneHistory(const PruneRequest& request);
  // Records an instance (created by a pool or adopted at reconciliation).
  // Its `bootstrap` is left as recorded: RecordBootstrap owns it.
  void UpsertInstance(const InstanceInfo& instance, const Actor& actor,
                      Done<InstanceInfo> done);
  // Records where the instance's SSH bootstrap stands, with an event
  // (instance.bootstrap_started, _succeeded, _failed) and, when
  // `pin_host_key` is not empty and none is pinned yet, the host key later
  // connections must present (ssh_host_key_policy tofu). NOT_FOUND for an
  // unknown instance.
  void RecordBootstrap(const std::string& instance_id,
                       const InstanceBootstrap& bootstrap,
                       const std::string& pin_host_key, const Actor& actor,
                       Done<InstanceInfo> done);
  // The host key pinned for the instance; "" when none is.
  std::string PinnedHostKey(const std::string& instance_id);
  // The node's instance is gone: TERMINATED, terminal.
  void MarkTerminated(const std::string& node_id, const std::string& reason,
                      const Actor& actor, Done<NodeInfo> done);
  // Appends an event that changes no state (a pool's scaling decision, a
  // tripped replacement breaker), so the event log explains what controllers
  // decided. `kind` must be non-empty; node_id and pool may be empty.
  void RecordEvent(const std::string& kind, const std::string& node_id,
                   const std::string& pool, const Actor& actor,
                   const std::string& message,
                   const std::map<std::string, std::string>& details,
                   Done<Event> done);

  // --- Liveness vouching (part of the fleet core's contract) ---
  // The caller vouches that the node beats well within the heartbeat
  // timeout although its beats do not all reach this fleet: the heartbeat
  // monitor passes a vouched node over, through status changes, until the
  // vouch is withdrawn; withdrawn, the node's liveness is its last
  // heartbeat's again (a caller that skipped beats first replays the last
  // one). Registering anew clears it (a new agent vouches for itself).
  // Heartbeats, reports and commands are unaffected. Returns false for
  // unknown nodes. The simulator vouches for nodes whose beats it skips
  // (docs/simulator.md, "Skipped calls"); any caller that has its own proof
  // of life for a node may.
  bool VouchLiveness(absl::string_view node_id, bool vouched);

  // For tests: whether the fleet lock is held (by this thread, in a test
  // that calls the fleet from one thread). `done` callbacks assert it is not.
  bool LockHeldForTest();

  size_t node_count();
  FleetStats stats();
  const FleetOptions& options() const { return options_; }

 private:
  using NodeEntry = fleet_internal::NodeEntry;
  class PendingCommit;

  // What a mutation writes and what runs after it (see Staged).
  template <typename T>
  struct Effects {
    // What the store must record (empty: nothing; `done` is not delayed).
    WriteBatch batch;
    // Runs once mu_ is released, before the commit may have completed: a
    // replaced or ended command stream's `closed`.
    std::function<void()> on_unlocked;
    // Runs after a successful commit, just before `done`: a new command's
    // delivery to its stream, a stream's backlog.
    std::function<void()> on_committed;
    // When set (with an empty batch): the answer for `done`, computed once
    // mu_ is released, in place of the reply (a read of the store).
    std::function<absl::StatusOr<T>()> reply_unlocked;
  };
  // What a mutation decided under mu_, carried out by Mutate once mu_ is
  // released. A mutation that fails returns its error instead: it reaches
  // `done` the same way, after the unlock.
  template <typename T>
  struct Staged {
    // For `done` once the batch (if any) is committed.
    T reply{};
    // Null for a change that writes nothing and has no callbacks (a
    // heartbeat, a routine report): those stay free of allocations.
    std::unique_ptr<Effects<T>> effects;

    Effects<T>& fx() {
      if (effects == nullptr) effects = std::make_unique<Effects<T>>();
      return *effects;
    }
    WriteBatch& batch() { return fx().batch; }
  };

  // The one way the fleet changes. Locks mu_, runs `change` (which edits the
  // index and stages what the store must record, or fails), submits the
  // batch while still holding mu_ (so the store sees batches in the order
  // the index changed), unlocks, and only then runs the callbacks and `done`
  // (at once, or when the store answers). `change` has no `done` to call:
  // every path out of it returns here.
  template <typename T>
  void Mutate(Done<T> done,
              absl::FunctionRef<absl::StatusOr<Staged<T>>()> change)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Submits `batch` (built under mu_) and arranges for `then` to run after the
  // commit, outside mu_. The returned object must be Release()d after mu_ is
  // unlocked (Mutate does).
  std::shared_ptr<PendingCommit> SubmitLocked(
      WriteBatch batch, std::function<void(absl::Status)> then)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a failed commit the index may be ahead of the store: reload these
  // nodes from it.
  void Resync(const std::vector<std::string>& node_ids)
      ABSL_LOCKS_EXCLUDED(mu_);

  Event NewEvent(const std::string& kind, const NodeInfo* node,
                 const Actor& actor, std::string message);
  // Applies a status change to `record` (a copy bound for the batch) and adds
  // the event.
  void ChangeStatusLocked(NodeRecord& record, NodeStatus to,
                          const std::string& reason, const Actor& actor,
                          WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns a copy of the node's record with the version bumped, for editing:
  // the hot part only (no gpus, metadata or last_metrics).
  static NodeRecord NextVersion(const NodeEntry& entry);
  // PENDING -> DELIVERED for a command handed to its agent (poll or
  // stream): adds it to `batch`, counts it.
  void MarkDeliveredLocked(CommandRecord& c, absl::Time now, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // The changes of the mutating calls, run by Mutate under mu_.
  absl::StatusOr<Staged<RegisterNodeResponse>> RegisterLocked(
      const RegisterNodeRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The instance a registering node runs on (instance id == node id, as
  // upstream assumes), if a pool provisioned it, is now running.
  void InstanceRunningLocked(const NodeInfo& node, absl::Time now,
                             WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  RegisterNodeResponse RegisterResponse() const;
  absl::StatusOr<Staged<HeartbeatResponse>> HeartbeatLocked(
      const HeartbeatRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Staged<ReportHealthResponse>> ReportHealthLocked(
      const ReportHealthRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountHealthEventsLocked(const ReportHealthRequest& req,
                               const HealthEvaluation& eval)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ReportHealth once the report may change something: the new record, its
  // events and status change, staged. (The evaluator is handed the hot
  // part of the node: the policy reads only the report.)
  Staged<ReportHealthResponse> ReportHealthChangeLocked(
      const ReportHealthRequest& req, NodeEntry& entry,
      const HealthEvaluation& eval, absl::Time now)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The events of a report's verdicts and rule errors, and of a change of
  // health.
  void AddHealthEventsLocked(const ReportHealthRequest& req,
                             const HealthEvaluation& eval, const NodeInfo& node,
                             HealthStatus before, absl::Time now,
                             WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // UNHEALTHY if the report's events or `consecutive` failed checks say so.
  void ApplyUnhealthyLocked(const HealthEvaluation& eval, int consecutive,
                            NodeRecord& rec, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Staged<GetNodeCommandsResponse>> PollCommandsLocked(
      const GetNodeCommandsRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Staged<AckCommandResponse>> AckLocked(
      const AckCommandRequest& req) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Staged<IssueCommandResponse>> IssueLocked(
      const IssueCommandRequest& req, const Actor& actor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // A cordon, uncordon or drain's status change, staged in `rec`; false when
  // the command changes no status.
  absl::StatusOr<bool> CommandStatusLocked(const IssueCommandRequest& req,
                                           const Actor& actor,
                                           const NodeInfo& current,
                                           NodeRecord& rec, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Staged<std::monostate>> WatchLocked(
      const std::string& node_id,
      std::function<void(const NodeCommand&)> deliver,
      std::function<void()> closed, uint64_t& handle)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Staged<std::monostate> CheckHeartbeatsLocked(int& declared)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<Staged<NodeInfo>> TerminateLocked(const std::string& node_id,
                                                   const std::string& reason,
                                                   const Actor& actor)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleFlush();

  Store& store_;
  Clock& clock_;
  const HealthEvaluator& evaluator_;
  Logger log_;
  const FleetOptions options_;

  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  fleet_internal::NodeIndex index_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, InstanceRecord> instances_ ABSL_GUARDED_BY(mu_);
  fleet_internal::CommandBook book_ ABSL_GUARDED_BY(mu_);
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
  TimerId flush_timer_ ABSL_GUARDED_BY(mu_) = 0;
  FleetStats stats_ ABSL_GUARDED_BY(mu_);
  absl::Mutex flush_mu_;  // one flush at a time
};

// Blocking helpers for tests, tools and the simulator: run an async fleet call
// and wait for its result.
template <typename T, typename Call>
absl::StatusOr<T> Await(Call call) {
  absl::Mutex mu;
  bool ready = false;
  absl::StatusOr<T> result = absl::UnknownError("not run");
  call([&](absl::StatusOr<T> r) {
    absl::MutexLock lock(&mu);
    result = std::move(r);
    ready = true;
  });
  absl::MutexLock lock(&mu);
  mu.Await(absl::Condition(&ready));
  return result;
}

}  // namespace navarch

#endif  // NAVARCH_FLEET_FLEET_SERVICE_H_
