#include "navarch/controlplane/pool_api.h"

#include <utility>

#include "navarch/api/time_util.h"
#include "navarch/base/status.h"

namespace navarch {
namespace {

absl::Status NoPools() {
  return absl::UnimplementedError(
      "this control plane does not manage pools (none configured, or their "
      "providers are unavailable)");
}

}  // namespace

PoolInfo ToPoolInfo(const PoolStatus& s) {
  PoolInfo p;
  p.set_name(s.name);
  p.set_min_nodes(s.min_nodes);
  p.set_max_nodes(s.max_nodes);
  p.set_current_nodes(s.current_nodes);
  p.set_target_nodes(s.target_nodes);
  p.set_healthy_nodes(s.healthy_nodes);
  p.set_pending_instances(s.pending_instances);
  p.set_unhealthy_nodes(s.unhealthy_nodes);
  p.set_replacing_nodes(s.replacing);
  p.set_strategy(s.strategy);
  p.set_autoscaler(s.autoscaler);
  p.set_last_decision(s.last_decision);
  if (s.last_scale_time != absl::InfinitePast()) {
    *p.mutable_last_scale_time() = ToTimestamp(s.last_scale_time);
  }
  p.set_cooldown_remaining_seconds(
      absl::ToInt64Seconds(absl::Ceil(s.cooldown_left, absl::Seconds(1))));
  p.set_replacement_breaker_open(s.breaker_open);
  if (s.utilization) p.set_utilization_percent(*s.utilization);
  p.set_metrics_source(s.metrics_source);
  p.set_metrics_source_up(s.metrics_source.empty() || s.metrics_source_up);
  p.set_metrics_source_error(s.metrics_source_error);
  if (s.queue_depth) p.set_queue_depth(*s.queue_depth);
  if (s.pending_jobs) p.set_pending_jobs(*s.pending_jobs);
  return p;
}

absl::StatusOr<ListPoolsResponse> ListPools(PoolManager* pools) {
  if (pools == nullptr) return NoPools();
  ListPoolsResponse out;
  for (const PoolStatus& s : pools->ListPools()) {
    *out.add_pools() = ToPoolInfo(s);
  }
  return out;
}

absl::StatusOr<GetPoolResponse> GetPool(PoolManager* pools,
                                        const GetPoolRequest& req) {
  if (pools == nullptr) return NoPools();
  absl::StatusOr<PoolStatus> s = pools->GetPool(req.name());
  if (!s.ok()) return s.status();
  GetPoolResponse out;
  *out.mutable_pool() = ToPoolInfo(*s);
  return out;
}

absl::StatusOr<ScalePoolResponse> ScalePool(PoolManager* pools,
                                            const ScalePoolRequest& req,
                                            const Actor& actor) {
  if (pools == nullptr) return NoPools();
  absl::Status scaled = pools->ScalePool(req.name(), req.target_nodes(), actor);
  if (!scaled.ok()) return scaled;
  absl::StatusOr<PoolStatus> s = pools->GetPool(req.name());
  if (!s.ok()) return s.status();
  ScalePoolResponse out;
  *out.mutable_pool() = ToPoolInfo(*s);
  return out;
}

absl::StatusOr<ResetPoolBreakerResponse> ResetPoolBreaker(
    PoolManager* pools, const ResetPoolBreakerRequest& req,
    const Actor& actor) {
  if (pools == nullptr) return NoPools();
  absl::StatusOr<bool> was_open = pools->ResetBreaker(req.name(), actor);
  if (!was_open.ok()) return was_open.status();
  absl::StatusOr<PoolStatus> s = pools->GetPool(req.name());
  if (!s.ok()) return s.status();
  ResetPoolBreakerResponse out;
  *out.mutable_pool() = ToPoolInfo(*s);
  out.set_was_open(*was_open);
  return out;
}

}  // namespace navarch
