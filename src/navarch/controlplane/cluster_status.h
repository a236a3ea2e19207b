// What GetCluster, GET /api/v1/cluster and `navarch cluster status` answer:
// the control planes sharing this one's database, who leads and at which
// fencing epoch (store/postgres/leader_lease.h), or this control plane alone
// when it has no replicas.
#ifndef NAVARCH_CONTROLPLANE_CLUSTER_STATUS_H_
#define NAVARCH_CONTROLPLANE_CLUSTER_STATUS_H_

#include <string>
#include <utility>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/control_plane.pb.h"
#include "navarch/store/postgres/leader_lease.h"

namespace navarch {

struct ClusterSelf {
  std::string replica_id;
  std::string grpc_address;
  std::string http_address;
  std::string version;
  absl::Time started_at;
};

class ClusterStatus {
 public:
  // `lease` null: one control plane (SQLite, memory). It must outlive this.
  ClusterStatus(ClusterSelf self, PostgresLeaderLease* lease)
      : self_(std::move(self)), lease_(lease) {}

  // UNAVAILABLE when the database cannot be read.
  absl::StatusOr<GetClusterResponse> Get() const ABSL_LOCKS_EXCLUDED(mu_);
  // The addresses once bound (a port 0 asked for).
  void set_self(ClusterSelf self) ABSL_LOCKS_EXCLUDED(mu_);

 private:
  mutable absl::Mutex mu_;
  ClusterSelf self_ ABSL_GUARDED_BY(mu_);
  PostgresLeaderLease* const lease_;
};

// `cluster`->Get(), or UNIMPLEMENTED when the server has none.
absl::StatusOr<GetClusterResponse> GetCluster(const ClusterStatus* cluster);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_CLUSTER_STATUS_H_
