// Durable state of the control plane.
//
// The fleet core is the only caller: it keeps an in-memory index for reads and
// writes every change through Commit before acknowledging it to a client.
// Backends: memory (tests, the simulator), sqlite (the embedded default),
// postgres (HA, later). One conformance suite (testing/store_conformance.h)
// runs against each.
//
// Several control planes may share one database (HA), so no backend may assume
// it is the only writer: records carry a version, and a write whose version is
// not exactly one more than the stored one fails with ABORTED and changes
// nothing.
#ifndef NAVARCH_STORE_STORE_H_
#define NAVARCH_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/control_plane.pb.h"
#include "navarch/internal/records.pb.h"

namespace navarch {

using internal::CommandRecord;
using internal::InstanceRecord;
using internal::NodeRecord;

// One atomic unit of change: either all of it is committed or none of it.
struct WriteBatch {
  // Upserts, each checked against the stored version (see above).
  std::vector<NodeRecord> nodes;
  // Either empty (every record in `nodes` is complete) or one entry per
  // record: node_extras[i] is NodeInfo wire format that completes
  // nodes[i].node(). The node stored is nodes[i] with node_extras[i] merged
  // into its `node` (protobuf merge: set singular fields replace, messages
  // merge, repeated fields append). It is for a writer that keeps part of a
  // node serialized (the fleet core: GPU inventory, metadata, last metrics),
  // so that a commit neither parses those bytes nor builds the full message;
  // a backend that stores the record serialized appends them as they are.
  // The writer keeps the two disjoint (the fleet core's records never hold
  // the fields its extras carry). An entry must not set the fields a backend
  // reads from the record itself: node_id, pool, status, health_status and
  // last_heartbeat. A batch with a size mismatch, extras whose framing (the
  // top-level tags and lengths) is broken, or one of those fields in them is
  // INVALID_ARGUMENT; the bytes inside each field are not parsed, so broken
  // ones are the writer's bug and surface as INTERNAL when the node is read.
  std::vector<std::string> node_extras;
  std::vector<InstanceRecord> instances;
  std::vector<CommandRecord> commands;
  // Appended to the event log. `id` is ignored: the store assigns increasing
  // ids in commit order.
  std::vector<Event> events;

  bool empty() const {
    return nodes.empty() && node_extras.empty() && instances.empty() &&
           commands.empty() && events.empty();
  }
};

// Liveness data written in bulk, off the critical path: it may be flushed in
// batches at most a second apart (docs/architecture.md, durability). Never
// lowers a stored last_heartbeat; does not change the record version.
struct HeartbeatUpdate {
  std::string node_id;
  absl::Time last_heartbeat;
  std::optional<NodeMetrics> metrics;
};

// Everything the control plane needs back after a restart.
struct StoreSnapshot {
  std::vector<NodeRecord> nodes;
  std::vector<InstanceRecord> instances;
  // Commands that are not finished (PENDING or DELIVERED).
  std::vector<CommandRecord> open_commands;
  int64_t last_event_id = 0;
};

struct EventQuery {
  std::string node_id;             // empty: any
  std::string pool;                // empty: any
  std::vector<std::string> kinds;  // empty: any; "node.*" matches a prefix
  absl::Time since = absl::InfinitePast();    // inclusive
  absl::Time until = absl::InfiniteFuture();  // exclusive
  int64_t after_id = 0;  // only events with id > after_id (paging cursor)
  int limit = 100;       // >= 1
};

// What Prune deletes: each kind of history has its own retention.
struct PruneRequest {
  absl::Time events_before = absl::InfinitePast();
  // Terminated or failed instances whose terminated_at is older.
  absl::Time instances_before = absl::InfinitePast();
  // Finished commands last updated before this.
  absl::Time commands_before = absl::InfinitePast();
};

struct EventPage {
  std::vector<Event> events;  // ascending id
  bool more = false;          // another page exists
};

class Store {
 public:
  virtual ~Store() = default;

  // Commits `batch` atomically, then calls `done` exactly once with the
  // outcome, possibly on another thread (a backend's writer) and possibly
  // before Commit returns. OK means the batch is durable. Batches submitted by
  // one thread are committed in submission order, and their `done` callbacks
  // run in that order too (a batch refused without being queued, because it
  // is invalid or the store is closed or overloaded, may hear back at once,
  // ahead of earlier ones). Errors: INVALID_ARGUMENT for a malformed batch
  // (nothing is written), ABORTED for a version conflict (the whole batch
  // fails), UNAVAILABLE for retryable storage trouble, a full write queue or a
  // closed store, INTERNAL for corruption. Records are written whole, except
  // that a node's last_heartbeat never goes backwards (see UpdateHeartbeats).
  // Commit never blocks on I/O, so it may be called with a caller's lock held;
  // `done` must not block on the store (no CommitSync or Close inside it),
  // since it may run on the thread that commits. Thread-safe.
  virtual void Commit(WriteBatch batch,
                      std::function<void(absl::Status)> done) = 0;

  // Commit, waiting for the outcome. Thread-safe.
  absl::Status CommitSync(WriteBatch batch);

  // Applies heartbeat updates and returns once they are durable. Unknown
  // nodes are skipped. last_heartbeat only moves forward; metrics replace the
  // stored ones unless the update is older than the stored heartbeat. The
  // record version does not change: this is liveness data, not a state
  // change, so it never conflicts with a concurrent Commit. Must not be
  // called from a `done` callback. Thread-safe.
  virtual absl::Status UpdateHeartbeats(
      const std::vector<HeartbeatUpdate>& updates) = 0;

  // Reads everything back (start-up), as one consistent snapshot: nodes by
  // id, instances by id, open commands in issue order (issued_at, then id).
  // Thread-safe.
  virtual absl::StatusOr<StoreSnapshot> Load() = 0;

  // Point reads, for callers that do not keep an index. Thread-safe.
  virtual absl::StatusOr<std::optional<NodeRecord>> GetNode(
      const std::string& node_id) = 0;
  virtual absl::StatusOr<std::optional<CommandRecord>> GetCommand(
      const std::string& command_id) = 0;

  // Reads the event log: events matching every given filter, ascending id,
  // at most `limit`. INVALID_ARGUMENT for a bad query. Thread-safe.
  virtual absl::StatusOr<EventPage> ListEvents(const EventQuery& query) = 0;

  // Deletes events older than events_before, terminated (or failed)
  // instances whose terminated_at is older than instances_before, and
  // finished commands last updated before commands_before. Returns how many
  // rows went. Event ids are never reused, even when every event is pruned.
  // Must not be called from a `done` callback. Thread-safe.
  virtual absl::StatusOr<int64_t> Prune(const PruneRequest& request) = 0;
  // The same cutoff for all three.
  absl::StatusOr<int64_t> Prune(absl::Time before) {
    return Prune(PruneRequest{before, before, before});
  }

  // OK when the store can serve reads and writes (/readyz): UNAVAILABLE after
  // Close, or while the last write transaction failed for a storage reason.
  // Thread-safe.
  virtual absl::Status Ping() = 0;

  // Waits until everything submitted so far is committed (every `done` has
  // run), then stops accepting writes: later ones fail with UNAVAILABLE, and
  // `done` is still called. Reads and Ping after Close may fail with
  // UNAVAILABLE too. Idempotent; must not be called from a `done` callback.
  virtual void Close() = 0;

  // The backend's name: "memory", "sqlite", ...
  virtual std::string Name() const = 0;
};

// Whether `kind` matches a query kind ("node.*" is a prefix match).
bool EventKindMatches(const std::string& pattern, const std::string& kind);

}  // namespace navarch

#endif  // NAVARCH_STORE_STORE_H_
