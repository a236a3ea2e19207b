// The controllers the control plane runs on its Clock (heartbeat monitor,
// history pruning, the pool manager's tick), built in one place so the server
// and the simulator run exactly the same ones. Header-only: the simulator
// uses it without the transports.
#ifndef NAVARCH_CONTROLPLANE_CONTROLLERS_H_
#define NAVARCH_CONTROLPLANE_CONTROLLERS_H_

#include <algorithm>
#include <memory>
#include <vector>

#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/controlplane/periodic.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/pool/pool_manager.h"
#include "navarch/store/store.h"

namespace navarch {

// The heartbeat monitor looks often enough to notice a silent node within a
// sixth of the timeout.
inline absl::Duration HeartbeatCheckInterval(const ServerConfig& server) {
  return std::clamp(EffectiveHeartbeatTimeout(server) / 6, absl::Seconds(1),
                    std::max(server.heartbeat_interval, absl::Seconds(1)));
}

// The periodic controllers, not started. `pools` may be null (no pools).
// Events, finished commands and terminated instances older than
// `history_retention` are pruned every hour.
inline std::vector<std::unique_ptr<PeriodicTask>> MakeControllers(
    Clock& clock, FleetService& fleet, Store& store, PoolManager* pools,
    const ServerConfig& server, absl::Duration history_retention, Logger log) {
  std::vector<std::unique_ptr<PeriodicTask>> out;
  out.push_back(std::make_unique<PeriodicTask>(
      clock, HeartbeatCheckInterval(server), [&fleet, log] {
        int n = fleet.CheckHeartbeats();
        if (n > 0) log.Warn("node heartbeat timeout", {{"nodes", n}});
      }));
  out.push_back(std::make_unique<PeriodicTask>(
      clock, absl::Hours(1), [&clock, &store, history_retention, log] {
        auto pruned = store.Prune(clock.Now() - history_retention);
        if (!pruned.ok())
          log.Warn("pruning history failed", {{"error", pruned.status()}});
      }));
  if (pools != nullptr) {
    out.push_back(std::make_unique<PeriodicTask>(
        clock, server.autoscale_interval, [pools] { pools->Tick(); }));
  }
  return out;
}

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_CONTROLLERS_H_
