// Metrics about the process itself, read from /proc at scrape time, under
// the names every Prometheus client library uses (process_*), and the build.
#ifndef NAVARCH_CONTROLPLANE_PROCESS_METRICS_H_
#define NAVARCH_CONTROLPLANE_PROCESS_METRICS_H_

#include "navarch/controlplane/metrics.h"

namespace navarch {

// process_cpu_seconds_total, process_resident_memory_bytes,
// process_virtual_memory_bytes, process_open_fds, process_max_fds,
// process_start_time_seconds. Families whose source cannot be read are left
// out rather than reported as zero.
void AddProcessMetrics(MetricsRegistry& registry);

// navarch_build_info{version, grpc_version} 1.
void AddBuildInfo(MetricsRegistry& registry);

}  // namespace navarch

#endif  // NAVARCH_CONTROLPLANE_PROCESS_METRICS_H_
