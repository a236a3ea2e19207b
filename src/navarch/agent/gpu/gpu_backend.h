// What the agent needs from a GPU driver: an inventory and readings. Two
// implementations: NvmlBackend (the real driver through dlopen) and
// FakeGpuBackend (simulated GPUs with injectable faults, for tests, the local
// provider and the simulator). Everything above this interface (the monitor
// that turns readings into health events, checks, diagnostics) is shared, so
// simulated and real GPUs go through the same logic.
#ifndef NAVARCH_AGENT_GPU_GPU_BACKEND_H_
#define NAVARCH_AGENT_GPU_GPU_BACKEND_H_

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace navarch::agent {

// Driver-wide facts.
struct GpuSystemInfo {
  std::string driver_version;  // "580.159.04"
  std::string cuda_version;    // "13.0"; empty if unknown
};

// One GPU as enumerated now. Fixed for the life of the GPU except `index`:
// when a GPU vanishes the driver renumbers the rest, so identify GPUs by UUID.
struct GpuDevice {
  int index = 0;
  std::string uuid;        // "GPU-d49c1d00-83d3-507c-2219-9467d956de9a"
  std::string name;        // "NVIDIA H100 80GB HBM3"
  std::string pci_bus_id;  // "00000000:18:00.0"
  int64_t memory_total_bytes = 0;
};

// Clock event ("throttle") reason bits, as NVML defines them.
inline constexpr uint64_t kClockEventGpuIdle = 0x1;
inline constexpr uint64_t kClockEventApplicationsClocksSetting = 0x2;
inline constexpr uint64_t kClockEventSwPowerCap = 0x4;
inline constexpr uint64_t kClockEventHwSlowdown = 0x8;
inline constexpr uint64_t kClockEventSyncBoost = 0x10;
inline constexpr uint64_t kClockEventSwThermalSlowdown = 0x20;
inline constexpr uint64_t kClockEventHwThermalSlowdown = 0x40;
inline constexpr uint64_t kClockEventHwPowerBrakeSlowdown = 0x80;
inline constexpr uint64_t kClockEventDisplayClockSetting = 0x100;

// One NVLink of a GPU. Counters count since the driver loaded.
struct NvLinkReading {
  int link = 0;
  bool active = false;
  std::optional<uint64_t> replay_errors;
  std::optional<uint64_t> recovery_errors;
  std::optional<uint64_t> crc_flit_errors;
  std::optional<uint64_t> crc_data_errors;
};

// A snapshot of one GPU. Every field is optional: a reading the GPU, the
// driver version or our permissions cannot give is absent, and the rest of the
// agent works without it.
struct GpuReading {
  int index = 0;
  std::optional<int> temperature_c;
  std::optional<int>
      slowdown_temperature_c;  // the driver starts slowing clocks
  std::optional<int> shutdown_temperature_c;  // the GPU shuts down
  std::optional<double> power_watts;
  std::optional<int> utilization_gpu_percent;
  std::optional<int> utilization_memory_percent;
  std::optional<int64_t> memory_used_bytes;
  std::optional<int64_t> memory_total_bytes;
  // Volatile (since driver load) ECC error counts.
  std::optional<uint64_t> ecc_corrected;
  std::optional<uint64_t> ecc_uncorrected;
  // Row remapping (A100 and later).
  std::optional<uint32_t> remapped_rows_correctable;
  std::optional<uint32_t> remapped_rows_uncorrectable;
  std::optional<bool> remap_pending;  // a reset is needed to apply a remap
  std::optional<bool> remap_failure;  // a row could not be remapped
  std::optional<uint64_t> clock_event_reasons;  // kClockEvent* bits
  std::optional<int> pcie_gen_current;
  std::optional<int> pcie_gen_max;
  std::optional<int> pcie_width_current;
  std::optional<int> pcie_width_max;
  std::vector<NvLinkReading> nvlinks;  // empty: no NVLink (or not readable)
};

// An XID critical error reported by the driver.
struct XidEvent {
  int gpu_index = -1;  // -1: the driver did not say which GPU
  std::string gpu_uuid;
  int code = 0;  // 0: the driver reported an unknown XID (NVML's 999)
};

// The contract every backend keeps:
//  - Init() is called once, before anything else; after a failed Init() the
//    other methods fail too.
//  - Every method is thread-safe. The agent reads GPUs on one thread while
//    another blocks in WaitXid().
//  - NOT_FOUND from Device() or Read() means the GPU is gone (fell off the
//    bus, "GPU is lost"); any other error means the driver did not answer.
class GpuBackend {
 public:
  virtual ~GpuBackend() = default;

  // "nvml" or "fake"; for logs and reports.
  virtual std::string Name() const = 0;

  // Starts the driver library.
  virtual absl::Status Init() = 0;

  virtual absl::StatusOr<GpuSystemInfo> SystemInfo() = 0;

  // GPUs the driver enumerates now.
  virtual absl::StatusOr<int> DeviceCount() = 0;

  // Inventory of the GPU at `index` (0 <= index < DeviceCount()).
  virtual absl::StatusOr<GpuDevice> Device(int index) = 0;

  // Reads everything readable about the GPU at `index`. Cheap enough to call
  // every few seconds for every GPU.
  virtual absl::StatusOr<GpuReading> Read(int index) = 0;

  // Waits up to `timeout` for XID critical errors and returns those that
  // arrived (possibly none). A zero timeout only collects what is pending.
  // UNIMPLEMENTED when the driver cannot deliver XID events; the kernel log
  // still can.
  virtual absl::StatusOr<std::vector<XidEvent>> WaitXid(
      absl::Duration timeout) = 0;
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_GPU_GPU_BACKEND_H_
