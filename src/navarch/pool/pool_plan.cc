#include "navarch/pool/pool_plan.h"

#include <algorithm>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace navarch {
namespace {

// Below this a node counts as idle when choosing what to scale down.
constexpr double kIdlePercent = 5.0;

// The pool's nodes that are not TERMINATED, in id order.
std::vector<const NodeSummary*> LiveNodes(const NodeIndex& nodes,
                                          const std::string& pool) {
  std::vector<const NodeSummary*> live;
  for (const NodeSummary& n : nodes.nodes) {
    if (n.pool == pool && n.status != NODE_STATUS_TERMINATED) {
      live.push_back(&n);
    }
  }
  return live;
}

// The breaker, then replacements of unhealthy nodes within
// max_concurrent_replacements. Adds the new removals to `removals`.
void PlanReplacements(const PoolSnapshot& snap, const PoolConfig& pc,
                      const std::vector<const NodeSummary*>& live,
                      std::map<std::string, PoolRemoval>& removals,
                      PoolPlan& plan) {
  std::vector<const NodeSummary*> unhealthy;
  for (const NodeSummary* n : live) {
    if (n->status == NODE_STATUS_UNHEALTHY) unhealthy.push_back(n);
  }
  plan.unhealthy = static_cast<int>(unhealthy.size());
  plan.live = static_cast<int>(live.size());
  if (!pc.health.auto_replace) return;
  // One unhealthy node is never "cluster-wide", whatever the pool's size.
  const bool too_many =
      unhealthy.size() >= 2 &&
      unhealthy.size() * 100 >
          static_cast<size_t>(pc.health.max_unhealthy_percent) * live.size();
  if (too_many && !snap.breaker_open) {
    plan.trip_breaker = absl::StrFormat(
        "%d of %d nodes unhealthy (> %d%%): automatic replacement stopped for "
        "pool %s until an operator resets it",
        unhealthy.size(), live.size(), pc.health.max_unhealthy_percent,
        pc.name);
  }
  if (snap.breaker_open || plan.trip_breaker) return;
  int replacing = 0;
  for (const auto& [id, r] : removals) replacing += r.replace ? 1 : 0;
  for (const NodeSummary* n : unhealthy) {
    if (replacing >= pc.health.max_concurrent_replacements) break;
    // Being replaced or scaled down already: nothing more to do.
    if (removals.contains(n->node_id)) continue;
    PoolRemoval r;
    r.node_id = n->node_id;
    r.replace = true;
    r.reason = absl::StrCat(
        "node unhealthy",
        n->status_reason.empty() ? "" : absl::StrCat(": ", n->status_reason));
    r.deadline = snap.now + pc.health.drain_timeout;
    removals[r.node_id] = r;
    plan.start_replacing.push_back(std::move(r));
    ++replacing;
  }
}

// Counts the pool as the autoscaler sees it.
void CountPool(const PoolSnapshot& snap,
               const std::vector<const NodeSummary*>& live,
               const std::map<std::string, PoolRemoval>& removals,
               PoolPlan& plan) {
  double util_sum = 0;
  int util_nodes = 0;
  for (const NodeSummary* n : live) {
    auto r = removals.find(n->node_id);
    if (r != removals.end()) {
      // A node being replaced holds its slot until the replacement exists;
      // a node being scaled down has already left.
      if (r->second.replace && r->second.replacement_id.empty()) {
        ++plan.current;
      }
      continue;
    }
    ++plan.current;
    if (n->status == NODE_STATUS_UNHEALTHY) {
      ++plan.unhealthy_counted;
      continue;
    }
    ++plan.healthy;
    if (n->gpu_utilization) {
      util_sum += *n->gpu_utilization;
      ++util_nodes;
    }
  }
  plan.pending = static_cast<int>(snap.pending.size());
  plan.current += plan.pending;
  plan.healthy += plan.pending;
  if (util_nodes > 0) plan.state.utilization = util_sum / util_nodes;
}

// What the external source adds. When it fails, its signals stay unknown
// and the autoscalers that need them hold the pool.
void PlanSource(const PoolSnapshot& snap, PoolPlan& plan) {
  if (snap.source_name.empty()) return;
  PoolState& state = plan.state;
  if (snap.metrics.ok()) {
    state.queue_depth = snap.metrics->queue_depth;
    state.pending_jobs = snap.metrics->pending_jobs;
    // The source's utilisation, when it gives one, wins over the fleet's
    // (it may weigh jobs, not GPUs).
    if (snap.metrics->utilization)
      state.utilization = snap.metrics->utilization;
  } else {
    plan.source_failed = true;
    plan.source_error = std::string(snap.metrics.status().message());
  }
  if (plan.source_failed && snap.source_was_up) {
    plan.source_change = PoolPlan::SourceChange::kFailed;
  } else if (!plan.source_failed && !snap.source_was_up) {
    plan.source_change = PoolPlan::SourceChange::kRecovered;
  }
}

// The target: a manual one first, else the autoscaler's, else min/max.
void PlanTarget(const PoolSnapshot& snap, const PoolConfig& pc,
                PoolPlan& plan) {
  PoolState& state = plan.state;
  state.name = pc.name;
  state.current_nodes = plan.current;
  state.healthy_nodes = plan.healthy;
  state.min_nodes = pc.min_nodes;
  state.max_nodes = pc.max_nodes;
  state.utilization_history = snap.history;
  if (state.utilization) {
    state.utilization_history.push_back({snap.now, *state.utilization});
    if (state.utilization_history.size() > snap.max_history) {
      state.utilization_history.erase(state.utilization_history.begin());
    }
  }
  state.now = snap.now;
  state.time_zone = snap.time_zone;
  state.cooldown = pc.cooldown;
  state.last_scale_time = snap.last_scale;
  plan.previous = snap.target < 0 ? plan.current : snap.target;
  if (snap.manual_target) {
    plan.decision = {*snap.manual_target,
                     absl::StrCat("manual scale by ", snap.manual_actor)};
    plan.manual_consumed = true;
  } else if (snap.autoscaler != nullptr) {
    plan.decision = Decide(snap.autoscaler, state);
  } else {
    // Without an autoscaler the pool keeps its (manual) target within
    // [min, max]; upstream never provisioned min_nodes here.
    PoolState fixed = state;
    fixed.current_nodes = plan.previous;
    plan.decision = Decide(nullptr, fixed);
    if (plan.decision.target_nodes == plan.previous) {
      plan.decision.reason = "target unchanged";
    }
  }
}

// Above the target: pending instances first (they never registered and
// cost nothing to give back), then nodes: unhealthy, cordoned, idle, the
// rest; newest first within each. Only nodes with an instance.
void PlanScaleDown(const PoolSnapshot& snap,
                   const std::vector<const NodeSummary*>& live,
                   const std::map<std::string, PoolRemoval>& removals,
                   PoolPlan& plan) {
  plan.excess = plan.current - plan.decision.target_nodes;
  std::set<std::string> replacement_ids;
  for (const auto& [id, r] : removals) {
    if (!r.replacement_id.empty()) replacement_ids.insert(r.replacement_id);
  }
  std::vector<const PendingInstance*> pending;
  for (const PendingInstance& p : snap.pending) pending.push_back(&p);
  std::sort(pending.begin(), pending.end(),
            [](auto* a, auto* b) { return a->created_at > b->created_at; });
  for (const PendingInstance* p : pending) {
    if (!replacement_ids.contains(p->instance_id)) {
      plan.terminate_pending.push_back(p->instance_id);
    }
  }
  std::vector<const NodeSummary*> candidates;
  for (const NodeSummary* n : live) {
    if (!removals.contains(n->node_id) && snap.has_instance &&
        snap.has_instance(n->node_id)) {
      candidates.push_back(n);
    }
  }
  auto rank = [](const NodeSummary* n) {
    if (n->status == NODE_STATUS_UNHEALTHY) return 0;
    if (n->status == NODE_STATUS_CORDONED ||
        n->status == NODE_STATUS_DRAINING) {
      return 1;
    }
    const std::optional<double>& u = n->gpu_utilization;
    if (!u || *u < kIdlePercent) return 2;
    return 3;
  };
  std::stable_sort(candidates.begin(), candidates.end(),
                   [&](const NodeSummary* a, const NodeSummary* b) {
                     if (rank(a) != rank(b)) return rank(a) < rank(b);
                     return a->registered_at > b->registered_at;
                   });
  for (const NodeSummary* n : candidates)
    plan.remove_nodes.push_back(n->node_id);
}

}  // namespace

const NodeSummary* NodeIndex::Find(const std::string& id) const {
  auto it = std::lower_bound(
      nodes.begin(), nodes.end(), id,
      [](const NodeSummary& n, const std::string& v) { return n.node_id < v; });
  return it != nodes.end() && it->node_id == id ? &*it : nullptr;
}

PoolPlan PlanPool(const PoolSnapshot& snap, const PoolConfig& pc) {
  PoolPlan plan;
  static const NodeIndex kNoNodes;
  const NodeIndex& nodes = snap.nodes != nullptr ? *snap.nodes : kNoNodes;
  std::vector<const NodeSummary*> live = LiveNodes(nodes, pc.name);
  // The plan's own copy of the removals, as this tick's actions change them.
  std::map<std::string, PoolRemoval> removals;
  for (const auto& [id, r] : snap.removals) {
    const NodeSummary* n = nodes.Find(id);
    if (n == nullptr || n->status == NODE_STATUS_TERMINATED) {
      plan.forget.push_back(id);
    } else {
      removals.emplace(id, r);
    }
  }
  PlanReplacements(snap, pc, live, removals, plan);
  CountPool(snap, live, removals, plan);
  PlanSource(snap, plan);
  PlanTarget(snap, pc, plan);
  // Replacements first (they ignore cooldown and max), then the size.
  for (const auto& [id, r] : removals) {
    if (r.replace && r.replacement_id.empty()) {
      plan.provision_replacements.push_back(id);
    }
  }
  const int target = plan.decision.target_nodes;
  if (plan.current < target) plan.scale_up = target - plan.current;
  if (plan.current > target) PlanScaleDown(snap, live, removals, plan);
  return plan;
}

}  // namespace navarch
