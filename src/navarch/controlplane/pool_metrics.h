// The pools' gauges, read from the pool manager at scrape time.
#ifndef NAVARCH_CONTROLPLANE_POOL_METRICS_H_
#define NAVARCH_CONTROLPLANE_POOL_METRICS_H_

#include "navarch/controlplane/metrics.h"
#include "navarch/pool/pool_manager.h"

namespace navarch {

// navarch_pool_{nodes,target_nodes,min_nodes,max_nodes,healthy_nodes,
// unhealthy_nodes,pending_instances,replacing_nodes,breaker_open}{pool}.
// `pools` must outlive every Render of `registry`.
void AddPoolMetrics(MetricsRegistry& registry, PoolManager& pools);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_POOL_METRICS_H_
