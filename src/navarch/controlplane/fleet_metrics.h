// The fleet's metrics, computed at scrape time: upstream's three node
// families (same names, labels and values, so its dashboards keep working)
// and the fleet core's counters (FleetStats).
#ifndef NAVARCH_CONTROLPLANE_FLEET_METRICS_H_
#define NAVARCH_CONTROLPLANE_FLEET_METRICS_H_

#include "navarch/controlplane/metrics.h"
#include "navarch/fleet/fleet_service.h"

namespace navarch {

// `fleet` must outlive every Render of `registry`.
void AddFleetMetrics(MetricsRegistry& registry, FleetService& fleet);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_FLEET_METRICS_H_
