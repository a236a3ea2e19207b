#include "navarch/controlplane/cluster_status.h"

#include "navarch/api/time_util.h"
#include "navarch/base/status.h"

namespace navarch {

void ClusterStatus::set_self(ClusterSelf self) {
  absl::MutexLock lock(&mu_);
  self_ = std::move(self);
}

absl::StatusOr<GetClusterResponse> ClusterStatus::Get() const {
  GetClusterResponse resp;
  ClusterSelf self;
  {
    absl::MutexLock lock(&mu_);
    self = self_;
  }
  resp.set_answered_by(self.replica_id);
  if (lease_ == nullptr) {
    resp.set_leader(self.replica_id);
    ReplicaInfo* r = resp.add_replicas();
    r->set_replica_id(self.replica_id);
    r->set_grpc_address(self.grpc_address);
    r->set_http_address(self.http_address);
    r->set_version(self.version);
    *r->mutable_started_at() = ToTimestamp(self.started_at);
    r->set_leader(true);
    return resp;
  }
  NAVARCH_ASSIGN_OR_RETURN(ClusterView view, lease_->ReadCluster());
  resp.set_replicated(true);
  const bool led = view.lease.remaining > absl::ZeroDuration();
  if (led) resp.set_leader(view.lease.holder);
  resp.set_epoch(view.lease.epoch);
  resp.set_lease_seconds_left(led ? absl::ToDoubleSeconds(view.lease.remaining)
                                  : 0);
  for (const ReplicaRecord& rec : view.replicas) {
    ReplicaInfo* r = resp.add_replicas();
    r->set_replica_id(rec.replica_id);
    r->set_grpc_address(rec.grpc_address);
    r->set_http_address(rec.http_address);
    r->set_version(rec.version);
    *r->mutable_started_at() = ToTimestamp(rec.started_at);
    r->set_seconds_since_seen(absl::ToDoubleSeconds(rec.since_seen));
    r->set_leader(led && rec.replica_id == view.lease.holder);
  }
  return resp;
}

absl::StatusOr<GetClusterResponse> GetCluster(const ClusterStatus* cluster) {
  if (cluster == nullptr) {
    return absl::UnimplementedError("this server does not report its cluster");
  }
  return cluster->Get();
}

}  // namespace navarch
