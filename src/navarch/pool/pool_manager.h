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
};

class PoolManager {
 public:
  PoolManager(FleetService& fleet, const ProviderRegistry& providers,
              Notifier& notifier, Clock& clock, const Config& config,
              PoolManagerOptions options = {});

  // Builds each pool's autoscaler and selector. A pool naming a provider the
  // registry lacks is INVALID_ARGUMENT.
  absl::Status Init();

  void Tick();

  std::vector<PoolStatus> ListPools();
  absl::StatusOr<PoolStatus> GetPool(const std::string& name);
  // Sets the pool's target; it takes effect at the next tick and bypasses
  // cooldown (an operator asked). Outside [min_nodes, max_nodes] is
  // INVALID_ARGUMENT; an unknown pool NOT_FOUND.
  absl::Status ScalePool(const std::string& name, int target,
                         const Actor& actor);
  // Closes a tripped replacement breaker.
  absl::Status ResetBreaker(const std::string& name, const Actor& actor);

 private:
  struct Removal {
    std::string node_id;
    bool replace = false;
    std::string replacement_id;  // Set once the replacement is provisioned.
    absl::Time deadline;
    std::string reason;
  };
  struct Pool {
    PoolConfig config;
    std::unique_ptr<Autoscaler> autoscaler;
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

  void ManageInstances(const std::map<std::string, NodeInfo>& nodes,
                       std::map<std::string, InstanceInfo>& instances);
  void TickPool(Pool& pool, const std::map<std::string, NodeInfo>& nodes,
                std::map<std::string, InstanceInfo>& instances);
  // Provisions one instance for `pool` and records it. Returns its id.
  absl::StatusOr<std::string> ProvisionOne(Pool& pool,
                                           const std::string& purpose);
  void StartRemoval(Pool& pool, const NodeInfo& node, bool replace,
                    const std::string& reason);
  // True when the removal finished (or the node is gone).
  bool ProgressRemoval(Pool& pool, Removal& removal,
                       const std::map<std::string, NodeInfo>& nodes,
                       std::map<std::string, InstanceInfo>& instances);
  absl::Status TerminateInstance(InstanceInfo instance,
                                 InstanceState final_state,
                                 const std::string& reason);
  void Upsert(const InstanceInfo& instance);
  void Emit(const std::string& kind, const std::string& pool,
            const std::string& node_id, const std::string& message,
            std::map<std::string, std::string> details = {});
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
  uint64_t seq_ ABSL_GUARDED_BY(tick_mu_) = 0;
};

}  // namespace navarch

#endif  // NAVARCH_POOL_POOL_MANAGER_H_
