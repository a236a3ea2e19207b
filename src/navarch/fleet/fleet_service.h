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
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/control_plane.pb.h"
#include "navarch/health/evaluator.h"
#include "navarch/store/store.h"

namespace navarch {

// Largest ListNodes page (about 2 KB a node: well under gRPC's 64 MiB).
inline constexpr int kMaxNodesPageSize = 10000;

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
  // Declares UNHEALTHY every live node whose last sign of life is older than
  // the heartbeat timeout. Returns how many it declared.
  int CheckHeartbeats();
  // Writes buffered heartbeat timestamps to the store now.
  absl::Status FlushHeartbeats();
  // Deletes old history from the store (see Store::Prune) and forgets the
  // pruned instances here too. Returns the rows deleted.
  absl::StatusOr<int64_t> PruneHistory(const PruneRequest& request);
  // Records an instance (created by a pool or adopted at reconciliation).
  void UpsertInstance(const InstanceInfo& instance, const Actor& actor,
                      Done<InstanceInfo> done);
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

  // --- For the simulator ---
  // The caller vouches that the node beats well within the heartbeat
  // timeout: the simulator's nodes that skip beats, each of which would only
  // move their liveness (docs/simulator.md, "Skipped calls"). The heartbeat
  // monitor passes a vouched node over; withdrawn, its liveness is its last
  // heartbeat's again (the simulator first replays the last beat it
  // skipped). Cleared when the node registers anew. Returns false for
  // unknown nodes.
  bool VouchLiveness(absl::string_view node_id, bool vouched);

  size_t node_count();
  FleetStats stats();
  const FleetOptions& options() const { return options_; }

 private:
  // Memory (issue 8, target 3): what a node registered with (its GPU
  // inventory and host metadata: read only by GetNode/ListNodes and written
  // whole by commits) and its last heartbeat's metrics are kept serialized,
  // ~1.3 KB instead of ~4.5 KB of protobuf objects (8 GPUInfo with five heap
  // strings each, 8 GPUMetrics). `record` holds the rest (the hot part every
  // call reads); Expand() puts the whole node together again for reads, and
  // commits hand the serialized parts to the store as they are
  // (WriteBatch::node_extras).
  struct NodeEntry {
    // Without gpus, metadata and last_metrics.
    NodeRecord record;
    // NodeInfo wire format holding only gpus (field 9) and metadata (10).
    std::string cold;
    // NodeInfo wire format holding only last_metrics (13); empty: none.
    std::string metrics;
    // The last sign of life for the heartbeat monitor: max(last heartbeat,
    // registration, control-plane start). Written through TouchLocked (a
    // live node's copy in live_ is what the monitor reads).
    absl::Time alive_at;
    // Index in live_ while the node's status is live, else -1.
    int32_t live_slot = -1;
    // For NodeSummary: the last metrics' mean GPU utilization (unset without
    // GPU metrics), the number of GPUs registered. Set with `cold` and
    // `metrics` (SetCold, SetMetrics).
    std::optional<double> gpu_utilization;
    int32_t gpu_count = 0;
    bool heartbeat_dirty = false;
    // VouchLiveness: live_ holds InfiniteFuture for it (never silent).
    bool vouched = false;
    // Open commands in issue order.
    std::vector<std::string> open_commands;
  };
  // The heartbeat monitor's view of a live node, kept in one dense vector so
  // that a check walks a few MB, not the whole index (100,000 nodes: ~0.2 ms
  // instead of a walk of the map under the lock).
  struct LiveSlot {
    absl::Time alive_at;  // InfiniteFuture while vouched for
    NodeEntry* entry;
  };
  struct Watcher {
    uint64_t handle;
    std::function<void(const NodeCommand&)> deliver;
    std::function<void()> closed;
  };
  class PendingCommit;

  // Submits `batch` (built under mu_) and arranges for `then` to run after the
  // commit, outside mu_. The returned object must be Release()d after mu_ is
  // unlocked.
  std::shared_ptr<PendingCommit> SubmitLocked(
      WriteBatch batch, std::function<void(absl::Status)> then)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // After a failed commit the index may be ahead of the store: reload these
  // nodes from it.
  void Resync(const std::vector<std::string>& node_ids);

  Event NewEvent(const std::string& kind, const NodeInfo* node,
                 const Actor& actor, std::string message)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Applies a status change to `entry` (a copy bound for the batch) and adds
  // the event.
  void ChangeStatusLocked(NodeRecord& record, NodeStatus to,
                          const std::string& reason, const Actor& actor,
                          WriteBatch& batch) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Returns a copy of the node's record with the version bumped, for editing:
  // the hot part only (no gpus, metadata or last_metrics).
  NodeRecord NextVersion(const NodeEntry& entry) const;
  // Lookups through by_id_. InsertLocked and EraseLocked are the only ways
  // in and out of nodes_: they keep by_id_ (and live_) in step.
  NodeEntry* FindLocked(absl::string_view id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  NodeEntry& InsertLocked(const std::string& id)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void EraseLocked(std::map<std::string, NodeEntry>::iterator it)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Puts `entry` into live_ or takes it out, as its record's status says.
  void SyncLiveLocked(NodeEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void RemoveLiveLocked(NodeEntry& entry) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Sets the node's last sign of life.
  void TouchLocked(NodeEntry& entry, absl::Time alive_at)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Commits `hot` (from NextVersion) as the node's new record: adds it to
  // `batch` with the entry's serialized parts as its node_extras (the store
  // merges them; nothing is parsed here) and installs `hot` in the index.
  void StageLocked(NodeEntry& entry, NodeRecord hot, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Moves gpus, metadata and last_metrics out of `record` into the entry's
  // serialized fields and installs the rest.
  static void Compact(NodeRecord record, NodeEntry& entry);
  // The entry's serialized GPU inventory and metadata, and GPU count.
  static void SetCold(NodeEntry& entry,
                      const google::protobuf::RepeatedPtrField<GPUInfo>& gpus,
                      const NodeMetadata* metadata);
  // The entry's serialized last metrics (none: cleared) and utilization.
  static void SetMetrics(NodeEntry& entry, const NodeMetrics* metrics);
  // Adds the serialized parts to `node` (a hot copy of the entry's node).
  static void Expand(const std::string& cold, const std::string& metrics,
                     NodeInfo* node);
  // PENDING -> DELIVERED for a command handed to its agent (poll or
  // stream): bumps its version, adds it to `batch`, counts it.
  void MarkDeliveredLocked(CommandRecord& c, absl::Time now, WriteBatch& batch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // ReportHealth once the report may change something: the new record, its
  // events and status change, committed. (The evaluator is handed the hot
  // part of the node: the policy reads only the report.)
  std::shared_ptr<PendingCommit> ReportHealthChangeLocked(
      const ReportHealthRequest& req, NodeEntry& entry,
      const HealthEvaluation& eval, absl::Time now,
      Done<ReportHealthResponse> done) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ScheduleFlush();

  Store& store_;
  Clock& clock_;
  const HealthEvaluator& evaluator_;
  Logger log_;
  const FleetOptions options_;

  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, NodeEntry> nodes_ ABSL_GUARDED_BY(mu_);
  // The same entries by id, for the per-call lookups of heartbeats and
  // health reports: a hash instead of string compares down a tree of
  // 100,000 ids. Keys view nodes_' own keys (map nodes never move).
  absl::flat_hash_map<absl::string_view, NodeEntry*> by_id_
      ABSL_GUARDED_BY(mu_);
  // Live nodes (ACTIVE, CORDONED, DRAINING), in no particular order;
  // membership follows every install of a record (SyncLiveLocked).
  std::vector<LiveSlot> live_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, InstanceRecord> instances_ ABSL_GUARDED_BY(mu_);
  // Nodes whose heartbeat_dirty flag went up since the last flush, so a
  // flush visits only nodes that beat, not the whole fleet.
  std::vector<std::string> dirty_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, CommandRecord> commands_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, Watcher> watchers_ ABSL_GUARDED_BY(mu_);
  uint64_t next_watch_handle_ ABSL_GUARDED_BY(mu_) = 1;
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
