// The host's CPU and memory use for heartbeats, from /proc (paths injectable
// for tests), computed as upstream does so dashboards read the same numbers.
#ifndef NAVARCH_AGENT_HOST_METRICS_H_
#define NAVARCH_AGENT_HOST_METRICS_H_

#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"

namespace navarch::agent {

class HostMetrics {
 public:
  explicit HostMetrics(std::string proc_stat = "/proc/stat",
                       std::string proc_meminfo = "/proc/meminfo");

  // Percent of CPU time spent busy since the previous call, 0..100: the delta
  // of the "cpu " line's user..steal, with idle = idle + iowait. The first
  // call has no previous sample and returns 0; unreadable files give 0.
  // Not thread-safe (it remembers the previous sample).
  double CpuPercent();

  // (MemTotal - MemAvailable) / MemTotal * 100; 0 when unreadable.
  double MemoryPercent() const;

 private:
  struct CpuSample {
    uint64_t total = 0;
    uint64_t idle = 0;
  };
  absl::StatusOr<CpuSample> ReadCpu() const;

  std::string proc_stat_;
  std::string proc_meminfo_;
  std::optional<CpuSample> previous_;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_HOST_METRICS_H_
