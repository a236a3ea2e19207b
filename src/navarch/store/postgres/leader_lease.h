// Leadership among control planes sharing one PostgreSQL database: a lease
// row with a fencing epoch (docs/deployment.md).
//
// A replica holds the lease until expires_at, judged by the database
// server's clock alone, and renews it well before. Renewing keeps the epoch;
// taking a free or expired lease raises it, and it never goes down. The
// leader's store checks, inside every write transaction, that the lease still
// carries its epoch (PostgresStore:: SetFence), holding the lease row's lock
// until it commits: a new leader's takeover waits for the old leader's
// transaction in flight, and every later one of the old leader is refused. A
// leader paused past its lease (GC, SIGSTOP, a partition) thus cannot write
// when it wakes up.
#ifndef NAVARCH_STORE_POSTGRES_LEADER_LEASE_H_
#define NAVARCH_STORE_POSTGRES_LEADER_LEASE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/store/postgres/pg_util.h"

namespace navarch {

struct LeaseOptions {
  std::string dsn;         // as PostgresOptions::dsn
  std::string replica_id;  // unique among the replicas: "host:pid"
  // Announced with every round (the replicas table): where the other
  // replicas and operators reach this one, and its build.
  std::string grpc_address;
  std::string http_address;
  std::string version;
  absl::Duration duration = absl::Seconds(10);
  absl::Duration connect_timeout = absl::Seconds(5);
};

struct LeaseState {
  bool held = false;   // by this replica
  int64_t epoch = 0;   // the lease's epoch now (ours when held)
  std::string holder;  // who holds it ("" never held)
  // The database's view of how long the holder's lease has left (negative:
  // expired).
  absl::Duration remaining;
  // Where the holder said it can be reached ("" when it never said).
  std::string holder_grpc_address;
  std::string holder_http_address;
};

// A replica as it last announced itself.
struct ReplicaRecord {
  std::string replica_id;
  std::string grpc_address;
  std::string http_address;
  std::string version;
  absl::Time started_at;
  absl::Duration since_seen;  // by the database's clock
};

// Who leads and who is there: `navarch cluster status`.
struct ClusterView {
  LeaseState lease;
  std::vector<ReplicaRecord> replicas;  // by replica_id
};

// The lease as the elector (controlplane/leader_elector.h) sees it; the
// PostgreSQL one below, and a fake in the elector's tests. Not thread-safe:
// one caller at a time.
class LeaderLease {
 public:
  virtual ~LeaderLease() = default;

  // Renews the lease when this replica holds it at `epoch` (0: it holds
  // none), keeping the epoch even if it lapsed meanwhile, since nobody else
  // took it; otherwise takes it, with a new epoch, if it is free or
  // expired. UNAVAILABLE when the database cannot be reached: the caller
  // must then assume it lost the lease once its own lease time is up.
  virtual absl::StatusOr<LeaseState> TryAcquireOrRenew(int64_t epoch) = 0;

  // Gives the lease up (expires it now) if this replica holds it at
  // `epoch` (0: it holds none), so a standby takes over at once rather than
  // after the lease runs out. For a clean shutdown, of a standby too.
  virtual absl::Status Release(int64_t epoch) = 0;

  // The lease as the database has it.
  virtual absl::StatusOr<LeaseState> Read() = 0;
};

// Replicas that have not announced themselves for this long are dropped
// from the list (a replica announces itself every renew interval).
inline constexpr absl::Duration kReplicaForgottenAfter = absl::Hours(1);

class PostgresLeaderLease final : public LeaderLease {
 public:
  // The database must have been migrated (PostgresStore::Open does).
  explicit PostgresLeaderLease(LeaseOptions options);

  // Also announces this replica (its row in `replicas`, last_seen now).
  absl::StatusOr<LeaseState> TryAcquireOrRenew(int64_t epoch) override;
  // Also removes this replica's row: it left cleanly.
  absl::Status Release(int64_t epoch) override;
  absl::StatusOr<LeaseState> Read() override;

  // The lease and the replicas. Thread-safe (a connection of its own), for
  // the API's handlers.
  absl::StatusOr<ClusterView> ReadCluster() ABSL_LOCKS_EXCLUDED(view_mu_);

  const LeaseOptions& options() const { return options_; }

 private:
  absl::Status Announce();

  const LeaseOptions options_;
  const absl::Time started_at_;
  pg::Session session_;
  absl::Mutex view_mu_;
  pg::Session view_session_ ABSL_GUARDED_BY(view_mu_);
};

}  // namespace navarch

#endif  // NAVARCH_STORE_POSTGRES_LEADER_LEASE_H_
