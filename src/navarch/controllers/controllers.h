// The controllers the control plane runs on its Clock (heartbeat monitor,
// history pruning, the pool manager's periodic evaluation) and when the pool
// manager is woken early, in one place, so the server and the simulator run
// exactly the same ones. The library navarch::controllers (header-only)
// depends on the fleet core and the notifier, never on a transport, so the
// simulator links it without the control plane.
#ifndef NAVARCH_CONTROLLERS_CONTROLLERS_H_
#define NAVARCH_CONTROLLERS_CONTROLLERS_H_

#include <algorithm>
#include <functional>
#include <memory>
#include <optional>
#include <utility>
#include <vector>

#include "navarch/base/clock.h"
#include "navarch/base/logging.h"
#include "navarch/config/config.h"
#include "navarch/controllers/periodic.h"
#include "navarch/fleet/fleet_service.h"
#include "navarch/notifier/dispatcher.h"
#include "navarch/store/store.h"

namespace navarch {

// How long finished events, commands and terminated instances are kept.
inline constexpr absl::Duration kHistoryRetention = absl::Hours(24 * 7);

// The fleet core's options as the config sets them (intervals, timeout,
// unhealthy_after per pool, flush interval); the caller adds its observers
// and seed.
inline FleetOptions FleetOptionsFromConfig(const Config& config) {
  FleetOptions o;
  o.heartbeat_interval = config.server.heartbeat_interval;
  o.health_check_interval = config.server.health_check_interval;
  o.heartbeat_timeout = EffectiveHeartbeatTimeout(config.server);
  o.heartbeat_flush_interval = config.server.heartbeat_flush_interval;
  if (config.defaults.unhealthy_after)
    o.unhealthy_after = *config.defaults.unhealthy_after;
  for (const auto& [name, pool] : config.pools) {
    o.unhealthy_after_by_pool[name] = pool.health.unhealthy_after;
  }
  return o;
}

// The heartbeat monitor looks often enough to notice a silent node within a
// sixth of the timeout.
inline absl::Duration HeartbeatCheckInterval(const ServerConfig& server) {
  return std::clamp(EffectiveHeartbeatTimeout(server) / 6, absl::Seconds(1),
                    std::max(server.heartbeat_interval, absl::Seconds(1)));
}

// The periodic controllers, not started: the heartbeat monitor; pruning,
// every hour, of events and finished commands older than `history_retention`
// and of instances terminated longer ago than
// instance_manager.terminated_retention; and, when `pool_tick` is set, a
// pool-manager evaluation every server.autoscale_interval (`pool_tick` asks
// for one: the server hands it to its pool worker, the simulator ticks).
inline std::vector<std::unique_ptr<PeriodicTask>> MakeControllers(
    Clock& clock, FleetService& fleet, const Config& config,
    absl::Duration history_retention, std::function<void()> pool_tick,
    Logger log) {
  std::vector<std::unique_ptr<PeriodicTask>> out;
  out.push_back(std::make_unique<PeriodicTask>(
      clock, HeartbeatCheckInterval(config.server), [&fleet, log] {
        int n = fleet.CheckHeartbeats();
        if (n > 0) log.Warn("node heartbeat timeout", {{"nodes", n}});
      }));
  const absl::Duration instance_retention =
      config.instance_manager.terminated_retention;
  out.push_back(std::make_unique<PeriodicTask>(
      clock, absl::Hours(1),
      [&clock, &fleet, history_retention, instance_retention, log] {
        const absl::Time now = clock.Now();
        PruneRequest r;
        r.events_before = now - history_retention;
        r.commands_before = now - history_retention;
        r.instances_before = now - instance_retention;
        auto pruned = fleet.PruneHistory(r);
        if (!pruned.ok())
          log.Warn("pruning history failed", {{"error", pruned.status()}});
      }));
  if (pool_tick) {
    out.push_back(std::make_unique<PeriodicTask>(
        clock, config.server.autoscale_interval, std::move(pool_tick)));
  }
  return out;
}

// True for a committed event after which the pool manager should evaluate at
// once instead of at its next tick: a pool node turned UNHEALTHY, so its
// replacement starts now.
inline bool WantsPoolTick(const Event& e) {
  if (e.kind() != "node.status_changed" || e.pool().empty()) return false;
  auto to = e.details().find("to");
  return to != e.details().end() &&
         to->second == NodeStatus_Name(NODE_STATUS_UNHEALTHY);
}

// The notice a committed event asks the notifier to send: cordon, uncordon
// and drain commands issued (by an operator or the pool manager), with the
// command's reason; nothing for other events.
inline std::optional<Notice> NoticeFor(const Event& e) {
  if (e.kind() != "command.issued") return std::nullopt;
  auto type = e.details().find("type");
  if (type == e.details().end()) return std::nullopt;
  NodeCommandType t = NODE_COMMAND_TYPE_UNKNOWN;
  if (!NodeCommandType_Parse(type->second, &t)) return std::nullopt;
  Notice n;
  switch (t) {
    case NODE_COMMAND_TYPE_CORDON:
      n.type = NoticeType::kCordon;
      break;
    case NODE_COMMAND_TYPE_UNCORDON:
      n.type = NoticeType::kUncordon;
      break;
    case NODE_COMMAND_TYPE_DRAIN:
      n.type = NoticeType::kDrain;
      break;
    default:
      return std::nullopt;
  }
  n.node_id = e.node_id();
  if (auto r = e.details().find("reason"); r != e.details().end())
    n.reason = r->second;
  return n;
}

}  // namespace navarch

#endif  // NAVARCH_CONTROLLERS_CONTROLLERS_H_
