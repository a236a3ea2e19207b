// What the pool manager decides for one pool at one tick, apart from doing
// it: PlanPool() turns a snapshot of the pool (its nodes, removals in
// progress, pending instances, what its metrics source said, the operator's
// manual target) into a plan of actions, without calling a provider, the
// fleet or the clock. The pool manager gathers the snapshot, plans, and
// carries the plan out in order; tests drive PlanPool() directly.
#ifndef NAVARCH_POOL_POOL_PLAN_H_
#define NAVARCH_POOL_POOL_PLAN_H_

#include <functional>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/config/config.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/pool/autoscaler.h"
#include "navarch/pool/metrics_source.h"

namespace navarch {

// The fleet's nodes as a tick sees them: summaries in id order
// (FleetService::ListNodeSummaries), not copies of whole records.
struct NodeIndex {
  std::vector<NodeSummary> nodes;
  // Null when no node has this id.
  const NodeSummary* Find(const std::string& id) const;
};

// A node leaving the pool: cordoned and draining, then terminated. With
// `replace`, a replacement is provisioned first.
struct PoolRemoval {
  std::string node_id;
  bool replace = false;
  std::string replacement_id;  // Set once the replacement is provisioned.
  absl::Time deadline;
  std::string reason;
};

// An instance of the pool provisioned but not registered as a node yet.
struct PendingInstance {
  std::string instance_id;
  absl::Time created_at;
};

struct PoolSnapshot {
  absl::Time now;
  absl::TimeZone time_zone = absl::UTCTimeZone();
  // Every node (the pool's are those whose `pool` is its name).
  const NodeIndex* nodes = nullptr;
  // Removals in progress, by node id.
  std::map<std::string, PoolRemoval> removals;
  // In instance id order.
  std::vector<PendingInstance> pending;
  // Whether a node has an instance we can terminate; asked only when the
  // pool is above its target (the answer is a fleet-wide lookup).
  std::function<bool(const std::string& node_id)> has_instance;
  bool breaker_open = false;
  int target = -1;  // -1: not decided yet.
  std::optional<int> manual_target;
  std::string manual_actor;
  absl::Time last_scale = absl::InfinitePast();
  // Null: min/max and manual scaling only. Asked for its recommendation.
  Autoscaler* autoscaler = nullptr;
  std::vector<UtilizationSample> history;
  size_t max_history = 1000;
  // The external metrics source: its name ("" when the pool has none), what
  // its fetch this tick returned, and whether the previous one worked.
  std::string source_name;
  absl::StatusOr<ExternalMetrics> metrics = ExternalMetrics{};
  bool source_was_up = true;
};

struct PoolPlan {
  // Removals whose node is gone or TERMINATED: forgotten.
  std::vector<std::string> forget;
  // Set when the breaker trips now: the event's message.
  std::optional<std::string> trip_breaker;
  int unhealthy = 0;  // UNHEALTHY live nodes (for the breaker's event).
  int live = 0;       // Live nodes of the pool.
  // Unhealthy nodes whose replacement starts now, in node id order.
  std::vector<PoolRemoval> start_replacing;
  // The metrics source changed state: failed (with its error) or answers
  // again. One event per change, not one per failing tick.
  enum class SourceChange { kNone, kFailed, kRecovered };
  SourceChange source_change = SourceChange::kNone;
  bool source_failed = false;
  std::string source_error;
  // The pool as the autoscaler counted it.
  PoolState state;
  int current = 0;
  int healthy = 0;
  int unhealthy_counted = 0;  // UNHEALTHY nodes not being removed.
  int pending = 0;            // Pending instances (counted in `current`).
  // The decision: from `previous` to `decision.target_nodes`.
  int previous = 0;
  ScaleRecommendation decision;
  bool manual_consumed = false;
  // Nodes whose replacement is provisioned now, in removal order; the rest
  // wait for the next tick once one provision fails.
  std::vector<std::string> provision_replacements;
  int scale_up = 0;  // Instances to provision (stop at the first failure).
  // Above the target: remove `excess`, first by terminating pending
  // instances (newest first), then by removing nodes in this order.
  int excess = 0;
  std::vector<std::string> terminate_pending;
  std::vector<std::string> remove_nodes;
};

// Decides one pool's tick. Pure apart from the autoscaler's Recommend and
// has_instance (both without side effects).
PoolPlan PlanPool(const PoolSnapshot& snapshot, const PoolConfig& config);

}  // namespace navarch

#endif  // NAVARCH_POOL_POOL_PLAN_H_
