// Turns successive GPU readings into health events and check results. The
// same code watches real GPUs (NVML) and simulated ones (fake backend), so a
// fault injected into the fake goes exactly the way the real one would.
//
// Events are edges, not levels: a GPU that stays hot raises one thermal
// event when it crosses the threshold, not one per poll. What each condition
// becomes (docs/agent.md has the table):
//   ECC corrected count rises      -> ecc_sbe  / MEM     ecc_sbe_count,
//   ecc_sbe_delta ECC uncorrected count rises    -> ecc_dbe  / MEM
//   ecc_dbe_count, ecc_dbe_delta row remap pending              -> memory   /
//   MEM     row_remap_pending=1 row remap failure              -> memory   /
//   MEM     row_remap_failure=1, ecc_dbe_count thermal slowdown reason ->
//   thermal  / THERMAL temperature, clock_event_reasons power brake / hw
//   slowdown      -> power    / POWER   power_watts, clock_event_reasons
//   temperature >= slowdown/shutdown threshold -> thermal / THERMAL
//   temperature, threshold PCIe link below its maximum    -> pcie     / PCIE
//   pcie_link_gen[_max], pcie_link_width[_max] NVLink error counters rise, link
//   down -> nvlink / NVLINK link_id, *_errors GPU lost or gone from enumeration
//   -> xid / DRIVER   xid_code=79 ("GPU has fallen off the bus")
#ifndef NAVARCH_AGENT_MONITOR_H_
#define NAVARCH_AGENT_MONITOR_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/events/kmsg.h"
#include "navarch/agent/gpu/gpu_backend.h"
#include "navarch/base/clock.h"
#include "navarch/control_plane.pb.h"

namespace navarch::agent {

struct MonitorOptions {
  // Used when the driver does not report the GPU's own thresholds; they match
  // the thermal rules of the default health policy.
  int default_slowdown_c = 85;
  int default_shutdown_c = 95;
  // A thermal level is left only this far below its threshold, so a GPU
  // hovering at the threshold does not raise an event per poll.
  int thermal_hysteresis_c = 5;
  // PCIe downtraining must be seen on this many consecutive polls: links
  // retrain briefly, and idle GPUs lower their link speed to save power.
  int pcie_confirm_polls = 2;
  // A generation below the maximum only counts at this utilisation or more.
  int pcie_busy_utilization = 10;
};

// The outcome of a run_diagnostic sweep.
struct SweepResult {
  bool passed = true;
  int gpus_checked = 0;
  std::vector<std::string> problems;  // one line each, "GPU 3: ..."
};

class GpuMonitor {
 public:
  GpuMonitor(GpuBackend& backend, Clock& clock, MonitorOptions options = {});
  // A monitor that knows what `other` knows (started or not, inventory,
  // baselines), watching `backend`: a copy of other's backend made by
  // FakeGpuBackend's copying constructor with the same `uuids` (one per GPU
  // of the inventory, in order; empty: other's).
  GpuMonitor(const GpuMonitor& other, GpuBackend& backend, Clock& clock,
             const std::vector<std::string>& uuids);

  // Initialises the backend and takes the inventory: the GPUs the node
  // registers with, against which later polls are compared. On failure the
  // boot and gpu checks report it and Poll() tries again.
  absl::Status Start();

  // Reads every GPU and returns events for what changed since the previous
  // poll. Call from one thread at a time.
  std::vector<HealthEvent> Poll();

  // A full read of every GPU now, judged against hard limits (run_diagnostic
  // without DCGM). Does not change what Poll() remembers. Thread-safe.
  SweepResult Sweep();

  // Events for XIDs from the driver and from the kernel log, naming the GPU
  // as registered. Thread-safe.
  HealthEvent XidEvent(const ::navarch::agent::XidEvent& xid) const;
  HealthEvent XidEvent(const XidLine& xid) const;

  // --- Snapshots as of the last poll, for heartbeats and reports. Thread-safe.
  bool started() const;
  std::vector<GpuDevice> Inventory() const;
  GpuSystemInfo SystemInfo() const;
  std::vector<GPUMetrics> Metrics() const;
  // The last reading of each GPU of the inventory (nullopt: none yet, or it
  // failed), in inventory order.
  std::vector<std::optional<GpuReading>> LastReadings() const;
  // `boot`: what the start found. `gpu`: the driver answers, every GPU of the
  // inventory is present and answering, none is above its slowdown
  // temperature.
  HealthCheckResult BootCheck() const;
  HealthCheckResult GpuCheck() const;

 private:
  // What we remember about one GPU of the inventory between polls.
  struct Slot {
    GpuDevice device;  // as registered (index = registration index)
    std::optional<GpuReading> last;
    bool present = true;  // enumerated by the last poll
    bool lost = false;    // NOT_FOUND from the driver, or not enumerated
    bool lost_reported = false;
    absl::Status error;  // the last read failed (not answering)
    uint64_t ecc_corrected = 0;
    uint64_t ecc_uncorrected = 0;
    bool remap_pending = false;
    bool remap_failure = false;
    uint64_t clock_reasons = 0;
    int thermal_level = 0;  // 0 normal, 1 >= slowdown, 2 >= shutdown
    int pcie_bad_polls = 0;
    bool pcie_reported = false;
    // Each link's last reading, in the order the backend reports them.
    std::vector<NvLinkReading> links;
  };

  HealthEvent NewEvent(const Slot& slot, HealthEventType type,
                       HealthWatchSystem system, std::string message) const;
  void Detect(Slot& slot, const GpuReading& r, std::vector<HealthEvent>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The detectors Detect runs, one per signal (the table in the header
  // comment). Each reads only `r` and `slot`, and updates `slot`.
  using Detector = void (GpuMonitor::*)(Slot&, const GpuReading&,
                                        std::vector<HealthEvent>&) const;
  void DetectEcc(Slot& slot, const GpuReading& r,
                 std::vector<HealthEvent>& out) const;
  void DetectRowRemap(Slot& slot, const GpuReading& r,
                      std::vector<HealthEvent>& out) const;
  void DetectClockEvents(Slot& slot, const GpuReading& r,
                         std::vector<HealthEvent>& out) const;
  void DetectTemperature(Slot& slot, const GpuReading& r,
                         std::vector<HealthEvent>& out) const;
  void DetectPcie(Slot& slot, const GpuReading& r,
                  std::vector<HealthEvent>& out) const;
  void DetectNvLinks(Slot& slot, const GpuReading& r,
                     std::vector<HealthEvent>& out) const;
  // Events for what changed on one NVLink between readings `p` and `l`.
  void LinkEvents(const Slot& slot, const NvLinkReading& p,
                  const NvLinkReading& l, std::vector<HealthEvent>& out) const;
  void MarkLost(Slot& slot, const std::string& why,
                std::vector<HealthEvent>& out)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int Slowdown(const GpuReading& r) const;
  int Shutdown(const GpuReading& r) const;
  const Slot* FindByUuid(const std::string& uuid) const
      ABSL_SHARED_LOCKS_REQUIRED(mu_);

  GpuBackend& backend_;
  Clock& clock_;
  const MonitorOptions options_;

  mutable absl::Mutex mu_;
  bool started_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status start_error_ ABSL_GUARDED_BY(mu_);
  absl::Status driver_error_ ABSL_GUARDED_BY(mu_);  // DeviceCount failed
  GpuSystemInfo system_ ABSL_GUARDED_BY(mu_);
  std::vector<Slot> slots_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_MONITOR_H_
