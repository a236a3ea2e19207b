// Simulated GPUs: realistic inventories, readings that move, and the faults
// real fleets see, injectable one by one. The node agent runs on it with
// --gpu-backend fake (tests, the local provider); the simulator drives the
// same faults through the same monitor code as real hardware.
//
// Faults address GPUs by their boot index (0..gpu_count-1), which does not
// change when another GPU is removed from enumeration.
#ifndef NAVARCH_AGENT_GPU_FAKE_BACKEND_H_
#define NAVARCH_AGENT_GPU_FAKE_BACKEND_H_

#include <cstdint>
#include <deque>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/gpu/gpu_backend.h"

namespace navarch::agent {

inline constexpr char kDefaultFakeGpuModel[] = "NVIDIA H100 80GB HBM3";

struct FakeGpuOptions {
  int gpu_count = 8;
  // A known model gets its real memory size, power range, thresholds, PCIe
  // generation and NVLink count; other names get H100-like figures.
  std::string model = kDefaultFakeGpuModel;
  // Same seed, same UUIDs and the same sequence of readings.
  uint64_t seed = 1;
  std::string driver_version = "580.159.04";
  std::string cuda_version = "13.0";
};

class FakeGpuBackend final : public GpuBackend {
 public:
  explicit FakeGpuBackend(FakeGpuOptions options);
  // A backend in the state `other` is in now (GPUs, readings, faults,
  // pending XIDs), with its own generator seeded from `seed` and, if `uuids`
  // is not empty, these GPU UUIDs (one per GPU, in boot order). For the
  // simulator: a faulted node gets a copy of its GPU type's prototype rather
  // than a backend built and polled from scratch.
  FakeGpuBackend(const FakeGpuBackend& other, uint64_t seed,
                 const std::vector<std::string>& uuids);

  std::string Name() const override { return "fake"; }
  absl::Status Init() override;
  absl::StatusOr<GpuSystemInfo> SystemInfo() override;
  absl::StatusOr<int> DeviceCount() override;
  absl::StatusOr<GpuDevice> Device(int index) override;
  absl::StatusOr<GpuReading> Read(int index) override;
  // Returns injected XIDs. Waits (real time, at most `timeout`) only when
  // none is pending, so a zero timeout never blocks.
  absl::StatusOr<std::vector<XidEvent>> WaitXid(
      absl::Duration timeout) override;

  const FakeGpuOptions& options() const { return options_; }

  // ---- Faults. `gpu` is the boot index; out-of-range indexes are ignored.
  // All thread-safe.

  // An XID critical error, delivered by the next WaitXid().
  void InjectXid(int gpu, int code);
  // Pins the temperature (e.g. above the slowdown threshold) until cleared.
  void SetTemperature(int gpu, int celsius);
  void ClearTemperature(int gpu);
  // Adds to the volatile ECC counters (single-bit corrected, double-bit
  // uncorrected).
  void AddEccErrors(int gpu, uint64_t corrected, uint64_t uncorrected);
  void SetRowRemap(int gpu, bool pending, bool failure);
  // Replaces the clock event (throttle) reasons, kClockEvent* bits.
  void SetClockEventReasons(int gpu, uint64_t reasons);
  // Adds errors to one NVLink's replay, recovery and CRC counters.
  void AddNvLinkErrors(int gpu, int link, uint64_t replay, uint64_t recovery,
                       uint64_t crc);
  void SetNvLinkActive(int gpu, int link, bool active);
  // Trains the PCIe link down (or back up with the model's maximum).
  void SetPcieLink(int gpu, int generation, int width);
  // The GPU fell off the bus: still enumerated, every call on it fails with
  // NOT_FOUND ("GPU is lost"), as NVML does until the driver reloads.
  void LoseGpu(int gpu);
  // The GPU is no longer enumerated at all: the count drops and later GPUs
  // move down one index.
  void RemoveGpu(int gpu);
  // Undoes LoseGpu and RemoveGpu.
  void RestoreGpu(int gpu);
  // Calls about this GPU fail with UNAVAILABLE (it does not answer).
  void SetGpuError(int gpu, bool failing);
  // Every call fails with UNAVAILABLE, as when the driver is wedged.
  void SetNvmlFailure(bool failing);
  // Init() fails with `status` (OK to clear).
  void SetInitFailure(absl::Status status);
  // Back to a healthy node: every fault above is cleared and counters reset.
  void ClearFaults();

 private:
  struct Model {
    std::string name;
    int64_t memory_bytes;
    double idle_watts;
    double max_watts;
    int idle_temp;
    int load_temp;
    int slowdown_temp;
    int shutdown_temp;
    int pcie_gen;
    int nvlinks;
  };
  struct Gpu {
    GpuDevice device;
    // Moving readings.
    double utilization = 0;
    double temperature = 0;
    double power = 0;
    double memory_used = 0;
    // Faults.
    std::optional<int> pinned_temperature;
    uint64_t ecc_corrected = 0;
    uint64_t ecc_uncorrected = 0;
    bool remap_pending = false;
    bool remap_failure = false;
    uint64_t clock_event_reasons = kClockEventGpuIdle;
    int pcie_gen = 0;
    int pcie_width = 16;
    std::vector<NvLinkReading> nvlinks;
    bool lost = false;
    bool removed = false;
    bool failing = false;
  };

  static Model ModelFor(const std::string& name);
  void ResetGpu(Gpu& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The boot index of the GPU enumerated at `index`, or -1.
  int BootIndex(int index) const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::Status CheckAlive() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Gpu* At(int gpu) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void Step(Gpu& g) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  const FakeGpuOptions options_;
  const Model model_;

  mutable absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  std::vector<Gpu> gpus_ ABSL_GUARDED_BY(mu_);
  std::deque<XidEvent> xids_ ABSL_GUARDED_BY(mu_);
  bool initialized_ ABSL_GUARDED_BY(mu_) = false;
  bool nvml_failing_ ABSL_GUARDED_BY(mu_) = false;
  absl::Status init_failure_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_GPU_FAKE_BACKEND_H_
