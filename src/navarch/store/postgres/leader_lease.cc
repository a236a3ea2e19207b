#include "navarch/store/postgres/leader_lease.h"

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "navarch/base/status.h"

namespace navarch {

namespace {

using pg::Params;
using pg::Result;

constexpr char kAcquire[] = "lease_acquire";
constexpr char kRelease[] = "lease_release";
constexpr char kRead[] = "lease_read";
constexpr char kAnnounce[] = "replica_announce";
constexpr char kLeave[] = "replica_leave";
constexpr char kReplicas[] = "replicas_list";

// $1 replica, $2 its epoch (0: none), $3 the lease in microseconds. Ours
// (holder and epoch match): renewed, same epoch, lapsed or not. Anyone
// else's that expired, or a free one: taken with the next epoch.
constexpr char kAcquireSql[] =
    "UPDATE leader_lease SET "
    "epoch = CASE WHEN holder = $1::text AND epoch = $2::int8 THEN epoch "
    "ELSE epoch + 1 END, "
    "acquired_at = CASE WHEN holder = $1::text AND epoch = $2::int8 THEN "
    "acquired_at ELSE clock_timestamp() END, "
    "holder = $1::text, "
    "expires_at = clock_timestamp() + $3::int8 * interval '1 microsecond' "
    "WHERE (holder = $1::text AND epoch = $2::int8) OR "
    "expires_at <= clock_timestamp() "
    "RETURNING epoch, holder, "
    "(extract(epoch FROM expires_at - clock_timestamp()) * 1000000)::int8";

// With the holder's addresses, when it announced them.
constexpr char kReadSql[] =
    "SELECT l.epoch, l.holder, "
    "(extract(epoch FROM l.expires_at - clock_timestamp()) * 1000000)::int8, "
    "coalesce(r.grpc_address, ''), coalesce(r.http_address, '') "
    "FROM leader_lease l LEFT JOIN replicas r ON r.replica_id = l.holder";

// $1 replica, $2 gRPC, $3 HTTP, $4 version, $5 started (unix
// microseconds), $6 forget after (microseconds). Replicas long gone are
// dropped on the way.
constexpr char kAnnounceSql[] =
    "WITH gone AS (DELETE FROM replicas WHERE replica_id <> $1::text AND "
    "last_seen < clock_timestamp() - $6::int8 * interval '1 microsecond') "
    "INSERT INTO replicas (replica_id, grpc_address, http_address, version, "
    "started_at, last_seen) VALUES ($1::text, $2::text, $3::text, $4::text, "
    "to_timestamp($5::int8 / 1000000.0), clock_timestamp()) "
    "ON CONFLICT (replica_id) DO UPDATE SET grpc_address = "
    "excluded.grpc_address, http_address = excluded.http_address, version = "
    "excluded.version, started_at = excluded.started_at, last_seen = "
    "excluded.last_seen";

constexpr char kReplicasSql[] =
    "SELECT replica_id, grpc_address, http_address, version, "
    "(extract(epoch FROM started_at) * 1000000)::int8, "
    "(extract(epoch FROM clock_timestamp() - last_seen) * 1000000)::int8 "
    "FROM replicas ORDER BY replica_id";

LeaseState StateOf(const Result& r, const std::string& me) {
  LeaseState s;
  s.epoch = r.Int(0, 0);
  s.holder = std::string(r.Bytes(0, 1));
  s.remaining = absl::Microseconds(r.Int(0, 2));
  s.held = s.holder == me && s.remaining > absl::ZeroDuration();
  if (r.columns() > 3) {
    s.holder_grpc_address = std::string(r.Bytes(0, 3));
    s.holder_http_address = std::string(r.Bytes(0, 4));
  }
  return s;
}

std::vector<pg::Statement> LeaseStatements() {
  return {{kAcquire, kAcquireSql},
          {kRelease,
           "UPDATE leader_lease SET expires_at = clock_timestamp() "
           "WHERE holder = $1::text AND epoch = $2::int8"},
          {kRead, kReadSql},
          {kAnnounce, kAnnounceSql},
          {kLeave, "DELETE FROM replicas WHERE replica_id = $1::text"},
          {kReplicas, kReplicasSql}};
}

}  // namespace

PostgresLeaderLease::PostgresLeaderLease(LeaseOptions options)
    : options_(std::move(options)),
      started_at_(absl::Now()),
      session_(options_.dsn, LeaseStatements(), options_.connect_timeout),
      view_session_(options_.dsn, LeaseStatements(), options_.connect_timeout) {
}

absl::Status PostgresLeaderLease::Announce() {
  return session_
      .Run(kAnnounce,
           Params()
               .Text(options_.replica_id)
               .Text(options_.grpc_address)
               .Text(options_.http_address)
               .Text(options_.version)
               .Int(absl::ToUnixMicros(started_at_))
               .Int(absl::ToInt64Microseconds(kReplicaForgottenAfter)))
      .status();
}

absl::StatusOr<LeaseState> PostgresLeaderLease::TryAcquireOrRenew(
    int64_t epoch) {
  NAVARCH_RETURN_IF_ERROR(session_.Ensure());
  NAVARCH_RETURN_IF_ERROR(Announce());
  NAVARCH_ASSIGN_OR_RETURN(
      Result r,
      session_.Run(kAcquire,
                   Params()
                       .Text(options_.replica_id)
                       .Int(epoch)
                       .Int(absl::ToInt64Microseconds(options_.duration))));
  if (r.rows() == 1) {
    LeaseState state = StateOf(r, options_.replica_id);
    state.holder_grpc_address = options_.grpc_address;
    state.holder_http_address = options_.http_address;
    return state;
  }
  return Read();  // someone else holds it
}

absl::Status PostgresLeaderLease::Release(int64_t epoch) {
  NAVARCH_RETURN_IF_ERROR(session_.Ensure());
  NAVARCH_RETURN_IF_ERROR(
      session_.Run(kLeave, Params().Text(options_.replica_id)).status());
  if (epoch == 0) return absl::OkStatus();
  return session_.Run(kRelease, Params().Text(options_.replica_id).Int(epoch))
      .status();
}

absl::StatusOr<ClusterView> PostgresLeaderLease::ReadCluster() {
  absl::MutexLock lock(&view_mu_);
  NAVARCH_RETURN_IF_ERROR(view_session_.Ensure());
  ClusterView view;
  NAVARCH_ASSIGN_OR_RETURN(Result lease, view_session_.Run(kRead, Params()));
  if (lease.rows() != 1)
    return absl::InternalError("postgres: the leader_lease row is missing");
  view.lease = StateOf(lease, options_.replica_id);
  NAVARCH_ASSIGN_OR_RETURN(Result r, view_session_.Run(kReplicas, Params()));
  for (int i = 0; i < r.rows(); ++i) {
    ReplicaRecord rec;
    rec.replica_id = std::string(r.Bytes(i, 0));
    rec.grpc_address = std::string(r.Bytes(i, 1));
    rec.http_address = std::string(r.Bytes(i, 2));
    rec.version = std::string(r.Bytes(i, 3));
    rec.started_at = absl::FromUnixMicros(r.Int(i, 4));
    rec.since_seen = absl::Microseconds(r.Int(i, 5));
    view.replicas.push_back(std::move(rec));
  }
  return view;
}

absl::StatusOr<LeaseState> PostgresLeaderLease::Read() {
  NAVARCH_RETURN_IF_ERROR(session_.Ensure());
  NAVARCH_ASSIGN_OR_RETURN(Result r, session_.Run(kRead, Params()));
  if (r.rows() != 1)
    return absl::InternalError("postgres: the leader_lease row is missing");
  return StateOf(r, options_.replica_id);
}

}  // namespace navarch
