#include "navarch/controlplane/pool_metrics.h"

#include <functional>
#include <vector>

namespace navarch {
namespace {

struct PoolGauge {
  const char* name;
  const char* help;
  std::function<double(const PoolStatus&)> value;
};

}  // namespace

void AddPoolMetrics(MetricsRegistry& registry, PoolManager& pools) {
  registry.AddCollector([&pools](MetricWriter& w) {
    static const std::vector<PoolGauge> kGauges = {
        {"navarch_pool_nodes",
         "Nodes of the pool: live nodes plus provisioned instances not "
         "registered yet.",
         [](const PoolStatus& s) { return s.current_nodes; }},
        {"navarch_pool_target_nodes", "The size the pool is driven towards.",
         [](const PoolStatus& s) { return s.target_nodes; }},
        {"navarch_pool_min_nodes", "The pool's lower limit.",
         [](const PoolStatus& s) { return s.min_nodes; }},
        {"navarch_pool_max_nodes", "The pool's upper limit.",
         [](const PoolStatus& s) { return s.max_nodes; }},
        {"navarch_pool_healthy_nodes", "Healthy nodes of the pool.",
         [](const PoolStatus& s) { return s.healthy_nodes; }},
        {"navarch_pool_unhealthy_nodes", "Unhealthy nodes of the pool.",
         [](const PoolStatus& s) { return s.unhealthy_nodes; }},
        {"navarch_pool_pending_instances",
         "Instances provisioned for the pool whose node has not registered.",
         [](const PoolStatus& s) { return s.pending_instances; }},
        {"navarch_pool_replacing_nodes", "Nodes being replaced.",
         [](const PoolStatus& s) { return s.replacing; }},
        {"navarch_pool_breaker_open",
         "1 while automatic replacement is stopped because too much of the "
         "pool is unhealthy.",
         [](const PoolStatus& s) { return s.breaker_open ? 1 : 0; }},
    };
    const std::vector<PoolStatus> status = pools.ListPools();
    for (const PoolGauge& g : kGauges) {
      w.Family(g.name, g.help, MetricType::kGauge, {"pool"});
      for (const PoolStatus& s : status) w.Sample({s.name}, g.value(s));
    }
  });
}

}  // namespace navarch
