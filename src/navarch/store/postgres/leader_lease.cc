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

constexpr char kReadSql[] =
    "SELECT epoch, holder, "
    "(extract(epoch FROM expires_at - clock_timestamp()) * 1000000)::int8 "
    "FROM leader_lease";

LeaseState StateOf(const Result& r, const std::string& me) {
  LeaseState s;
  s.epoch = r.Int(0, 0);
  s.holder = std::string(r.Bytes(0, 1));
  s.remaining = absl::Microseconds(r.Int(0, 2));
  s.held = s.holder == me && s.remaining > absl::ZeroDuration();
  return s;
}

}  // namespace

PostgresLeaderLease::PostgresLeaderLease(LeaseOptions options)
    : options_(std::move(options)),
      session_(options_.dsn,
               {{kAcquire, kAcquireSql},
                {kRelease,
                 "UPDATE leader_lease SET expires_at = clock_timestamp() "
                 "WHERE holder = $1::text AND epoch = $2::int8"},
                {kRead, kReadSql}},
               options_.connect_timeout) {}

absl::StatusOr<LeaseState> PostgresLeaderLease::TryAcquireOrRenew(
    int64_t epoch) {
  NAVARCH_RETURN_IF_ERROR(session_.Ensure());
  NAVARCH_ASSIGN_OR_RETURN(
      Result r,
      session_.Run(kAcquire,
                   Params()
                       .Text(options_.replica_id)
                       .Int(epoch)
                       .Int(absl::ToInt64Microseconds(options_.duration))));
  if (r.rows() == 1) return StateOf(r, options_.replica_id);
  return Read();  // someone else holds it
}

absl::Status PostgresLeaderLease::Release(int64_t epoch) {
  NAVARCH_RETURN_IF_ERROR(session_.Ensure());
  return session_.Run(kRelease, Params().Text(options_.replica_id).Int(epoch))
      .status();
}

absl::StatusOr<LeaseState> PostgresLeaderLease::Read() {
  NAVARCH_RETURN_IF_ERROR(session_.Ensure());
  NAVARCH_ASSIGN_OR_RETURN(Result r, session_.Run(kRead, Params()));
  if (r.rows() != 1)
    return absl::InternalError("postgres: the leader_lease row is missing");
  return StateOf(r, options_.replica_id);
}

}  // namespace navarch
