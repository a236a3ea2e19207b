// The pool manager: the controller that keeps every pool at the right size
// with healthy machines. Each Tick() it
//   1. tracks instances (PROVISIONING -> PENDING_REGISTRATION -> RUNNING),
//      fails and terminates those not registered within registration_timeout;
//   2. starts replacing UNHEALTHY nodes of auto_replace pools, within
//      max_concurrent_replacements and the max_unhealthy_percent breaker;
//   3. decides the target size (autoscaler, manual ScalePool, or min/max
//      alone) and records every change of it as an event with its reason;
//   4. provisions replacements first, then up to the target, through the
//      pool's ProviderSelector;
//   5. removes nodes above the target (unregistered instances, then
//      unhealthy, cordoned, idle, newest) by cordon -> drain -> terminate;
//   6. finishes removals whose drain is done or timed out: terminates the
//      instance and marks the node TERMINATED.
// Every state change goes through FleetService; this class only decides.
// Removals issue CORDON and DRAIN commands through the fleet; the workload
// system hears of them from the notifier dispatcher, which follows every
// committed command. This class only asks the notifier IsDrained.
//
// Before each provision call the pool manager records a
// `pool.provision_requested` event carrying the idempotency token (also set
// as the instance's `navarch-token` label); it provisions only once that is
// durable. Reconcile(), run once at start-up, uses these to adopt instances
// whose provision call was cut short by a crash.
//
// Threading: Tick() runs on one thread at a time (a PeriodicTask on the
// Clock, or a test); provider and notifier calls block inside it. The
// read/scale methods are thread-safe and never wait for a tick.
#ifndef NAVARCH_POOL_POOL_MANAGER_H_
#define NAVARCH_POOL_POOL_MANAGER_H_

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/notifier/notifier.h"
#include "navarch/pool/autoscaler.h"
#include "navarch/pool/metrics_source.h"
#include "navarch/pool/selector.h"
#include "navarch/provider/registry.h"

namespace navarch {

struct PoolManagerOptions {
  // Tag on every instance, so List() of a shared cloud account can tell ours.
  std::string cluster = "navarch";
  InstanceManagerConfig instance_manager;
  absl::TimeZone time_zone = absl::UTCTimeZone();
  // Pool-wide utilisation samples kept for the predictive autoscaler.
  size_t max_history = 1000;
  // Seeds the nonce that makes idempotency tokens unique across restarts.
  // 0: from the clock's time at construction (as FleetService).
  uint64_t seed = 0;
};

// What `navarch pools list|get` shows.
struct PoolStatus {
  std::string name;
  int min_nodes = 0;
  int max_nodes = 0;
  int current_nodes = 0;  // Counted as the autoscaler counts (see PoolState).
  int target_nodes = 0;
  int healthy_nodes = 0;
  int pending_instances = 0;  // Provisioned, not registered yet.
  int unhealthy_nodes = 0;
  int replacing = 0;
  std::string strategy;
  std::string autoscaler;  // Empty: none (min/max and manual scaling only).
  std::string last_decision;
  absl::Time last_scale_time = absl::InfinitePast();
  absl::Duration cooldown_left = absl::ZeroDuration();
  bool breaker_open = false;
  std::optional<double> utilization;
  // External metrics source ("" for the fleet's own signals), and whether
  // its last fetch worked.
  std::string metrics_source;
  bool metrics_source_up = true;
  std::string metrics_source_error;
  std::optional<int> queue_depth;
  std::optional<int> pending_jobs;
};

// Counters since start, for /metrics. Keys join label values with '|'.
struct PoolCounters {
  // "pool|direction" (up, down): target changes carried out.
  std::map<std::string, int64_t> scaling_actions;
  // "provider|operation|code": operation provision, terminate or list; code
  // the absl status code in snake case ("ok", "resource_exhausted").
  std::map<std::string, int64_t> provider_calls;
  // "pool|outcome": started, provisioned, completed.
  std::map<std::string, int64_t> replacements;
  // pool -> failed fetches of its metrics source.
  std::map<std::string, int64_t> metrics_source_errors;
  // "kind": adopted, unknown_terminated, unknown_reported, vanished,
  // terminated_again — what start-up reconciliation found.
  std::map<std::string, int64_t> reconciled;
};

class PoolManager {
 public:
  PoolManager(FleetService& fleet, const ProviderRegistry& providers,
              Notifier& notifier, Clock& clock, const Config& config,
              PoolManagerOptions options = {});
  ~PoolManager();

  // Builds each pool's autoscaler, metrics source and selector. A pool
  // naming a provider the registry lacks is INVALID_ARGUMENT.
  absl::Status Init();

  // Start-up: compares each pool provider's List() with the store.
  // - listed and known: adopted as is (one we had terminated but that still
  //   runs is terminated again);
  // - listed with this cluster's tags but unknown: adopted when a recorded
  //   provision request carries its token (the control plane died between
  //   the call and recording its answer), else terminated or reported per
  //   instance_manager.unknown_instances;
  // - known as live but not listed: recorded as FAILED ("gone at the
  //   provider").
  // A provider whose List fails is skipped with an event. Call before the
  // first Tick.
  absl::Status Reconcile();

  void Tick();

  std::vector<PoolStatus> ListPools();
  absl::StatusOr<PoolStatus> GetPool(const std::string& name);
  // Sets the pool's target; it takes effect at the next tick and bypasses
  // cooldown (an operator asked). Outside [min_nodes, max_nodes] is
  // INVALID_ARGUMENT; an unknown pool NOT_FOUND.
  absl::Status ScalePool(const std::string& name, int target,
                         const Actor& actor);
  // Closes a tripped replacement breaker and says whether it was open (no
  // event when it was not); NOT_FOUND for an unknown pool. If the pool is
  // still too unhealthy the breaker trips again at the next tick.
  absl::StatusOr<bool> ResetBreaker(const std::string& name,
                                    const Actor& actor);

  PoolCounters counters();

 private:
  struct Removal {
    std::string node_id;
    bool replace = false;
    std::string replacement_id;  // Set once the replacement is provisioned.
    absl::Time deadline;
    std::string reason;
  };
  class CountingProvider;
  // The fleet's nodes as a tick sees them: summaries in id order
  // (FleetService::ListNodeSummaries), not copies of whole records.
  struct NodeIndex {
    std::vector<NodeSummary> nodes;
    // Null when no node has this id.
    const NodeSummary* Find(const std::string& id) const;
  };
  struct Pool {
    PoolConfig config;
    std::unique_ptr<Autoscaler> autoscaler;
    std::unique_ptr<MetricsSource> source;
    std::unique_ptr<ProviderSelector> selector;
    // Tick-only state.
    std::map<std::string, Removal> removals;
    std::vector<UtilizationSample> history;
    // Shared with the API, under mu_.
    int target = -1;  // -1: not decided yet.
    std::optional<int> manual_target;
    std::string manual_actor;
    absl::Time last_scale = absl::InfinitePast();
    std::string last_decision;
    bool breaker_open = false;
    PoolStatus status;
  };

  // `instances`: the unsettled ones (FleetService::ListUnsettledInstances),
  // by id, as this tick changes them; the others (RUNNING, TERMINATED, ...)
  // are read from the fleet when needed.
  void ManageInstances(const NodeIndex& nodes,
                       std::map<std::string, InstanceInfo>& instances);
  void TickPool(Pool& pool, const NodeIndex& nodes,
                std::map<std::string, InstanceInfo>& instances);
  // Provisions one instance for `pool` and records it. Returns its id.
  absl::StatusOr<std::string> ProvisionOne(Pool& pool,
                                           const std::string& purpose);
  void StartRemoval(Pool& pool, const NodeSummary& node, bool replace,
                    const std::string& reason);
  // True when the removal finished (or the node is gone).
  bool ProgressRemoval(Pool& pool, Removal& removal, const NodeIndex& nodes,
                       std::map<std::string, InstanceInfo>& instances);
  absl::Status TerminateInstance(InstanceInfo instance,
                                 InstanceState final_state,
                                 const std::string& reason);
  void Upsert(const InstanceInfo& instance);
  absl::Status Emit(const std::string& kind, const std::string& pool,
                    const std::string& node_id, const std::string& message,
                    std::map<std::string, std::string> details = {});
  // The counting wrapper of a registered provider; null when unknown.
  Provider* GetProvider(const std::string& name);
  void Count(std::map<std::string, int64_t> PoolCounters::*field,
             const std::string& key);
  PoolStatus StatusLocked(const Pool& pool) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  FleetService& fleet_;
  const ProviderRegistry& providers_;
  Notifier& notifier_;
  Clock& clock_;
  const Config config_;
  const PoolManagerOptions options_;
  const Actor actor_{"pool-manager"};
  absl::Mutex tick_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Pool>> pools_;  // Fixed after Init.
  // Fixed after Init.
  std::map<std::string, std::unique_ptr<CountingProvider>> counted_;
  absl::Mutex counters_mu_;
  PoolCounters counters_ ABSL_GUARDED_BY(counters_mu_);
  uint64_t seq_ ABSL_GUARDED_BY(tick_mu_) = 0;
  std::string token_nonce_;  // Fixed at construction.
};

}  // namespace navarch

#endif  // NAVARCH_POOL_POOL_MANAGER_H_
