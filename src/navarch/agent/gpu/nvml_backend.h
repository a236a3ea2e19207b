// The real GPUs, through NVIDIA's management library loaded with dlopen.
//
// Every NVML function is resolved with dlsym. Only nvmlInit, nvmlShutdown,
// nvmlDeviceGetCount and nvmlDeviceGetHandleByIndex are required; a missing
// optional symbol, or a call that answers NOT_SUPPORTED / NO_PERMISSION,
// disables that one reading for that GPU (and we stop asking), never the
// agent. Drivers differ widely in what they support (NVLink counters are gone
// on recent GPUs, row remapping only exists since Ampere, VMs hide ECC).
#ifndef NAVARCH_AGENT_GPU_NVML_BACKEND_H_
#define NAVARCH_AGENT_GPU_NVML_BACKEND_H_

#include <bitset>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/agent/gpu/gpu_backend.h"
#include "navarch/agent/gpu/nvml_api.h"

namespace navarch::agent {

inline constexpr char kNvmlLibrary[] = "libnvidia-ml.so.1";

class NvmlBackend final : public GpuBackend {
 public:
  // Loads `library` and resolves its symbols; does not initialise NVML yet.
  // FAILED_PRECONDITION with the loader's message when the library cannot be
  // loaded (no NVIDIA driver) or lacks the required symbols.
  static absl::StatusOr<std::unique_ptr<NvmlBackend>> Load(
      const std::string& library = kNvmlLibrary);

  // Frees the event set, shuts NVML down and unloads the library. No other
  // thread may be inside a method (stop the WaitXid thread first).
  ~NvmlBackend() override;

  std::string Name() const override { return "nvml"; }
  absl::Status Init() override;
  absl::StatusOr<GpuSystemInfo> SystemInfo() override;
  absl::StatusOr<int> DeviceCount() override;
  absl::StatusOr<GpuDevice> Device(int index) override;
  absl::StatusOr<GpuReading> Read(int index) override;
  absl::StatusOr<std::vector<XidEvent>> WaitXid(
      absl::Duration timeout) override;

  // Optional symbols the library lacks, for the startup log.
  const std::vector<std::string>& missing_symbols() const { return missing_; }

 private:
  // Readings that can be switched off one by one.
  enum Reading {
    kTemperature,
    kSlowdownThreshold,
    kShutdownThreshold,
    kPower,
    kUtilization,
    kMemory,
    kEccCorrected,
    kEccUncorrected,
    kRemappedRows,
    kClockEventReasons,
    kPcieGenCurrent,
    kPcieGenMax,
    kPcieWidthCurrent,
    kPcieWidthMax,
    kNvLink,
    kNvLinkReplay,
    kNvLinkRecovery,
    kNvLinkCrcFlit,
    kNvLinkCrcData,
    kReadingCount,
  };
  struct PerGpu {
    std::bitset<kReadingCount> unsupported;
    bool links_known = false;
    std::vector<unsigned int> links;  // links that exist on this GPU
  };
  // The resolved symbols; null when absent.
  struct Api {
    nvml::InitFn init = nullptr;
    nvml::ShutdownFn shutdown = nullptr;
    nvml::ErrorStringFn error_string = nullptr;
    nvml::SystemGetDriverVersionFn driver_version = nullptr;
    nvml::SystemGetCudaDriverVersionFn cuda_version = nullptr;
    nvml::DeviceGetCountFn device_count = nullptr;
    nvml::DeviceGetHandleByIndexFn handle_by_index = nullptr;
    nvml::DeviceGetStringFn name = nullptr;
    nvml::DeviceGetStringFn uuid = nullptr;
    nvml::DeviceGetPciInfoFn pci_info = nullptr;
    nvml::DeviceGetMemoryInfoFn memory_info = nullptr;
    nvml::DeviceGetTemperatureFn temperature = nullptr;
    nvml::DeviceGetTemperatureThresholdFn temperature_threshold = nullptr;
    nvml::DeviceGetUintFn power_usage = nullptr;
    nvml::DeviceGetUtilizationRatesFn utilization = nullptr;
    nvml::DeviceGetTotalEccErrorsFn total_ecc_errors = nullptr;
    nvml::DeviceGetRemappedRowsFn remapped_rows = nullptr;
    nvml::DeviceGetUllFn clock_event_reasons = nullptr;
    nvml::DeviceGetUintFn pcie_gen_current = nullptr;
    nvml::DeviceGetUintFn pcie_gen_max = nullptr;
    nvml::DeviceGetUintFn pcie_width_current = nullptr;
    nvml::DeviceGetUintFn pcie_width_max = nullptr;
    nvml::DeviceGetNvLinkStateFn nvlink_state = nullptr;
    nvml::DeviceGetNvLinkErrorCounterFn nvlink_error_counter = nullptr;
    nvml::EventSetCreateFn event_set_create = nullptr;
    nvml::EventSetFreeFn event_set_free = nullptr;
    nvml::DeviceGetUllFn supported_event_types = nullptr;
    nvml::DeviceRegisterEventsFn register_events = nullptr;
    nvml::EventSetWaitFn event_set_wait = nullptr;
  };

  NvmlBackend(void* handle, std::string library);
  // Resolves the first of `names` that exists; records a missing optional one.
  void* Resolve(std::initializer_list<const char*> names);
  std::string ErrorText(nvml::Return r) const;
  absl::Status Error(absl::string_view what, nvml::Return r) const;
  absl::StatusOr<nvml::Device> Handle(int index);
  // True when `reading` may be tried for GPU `index`.
  bool Enabled(int index, Reading reading, const void* fn);
  // Classifies a reading's result: true on success; false (and the reading
  // switched off when the GPU cannot give it) otherwise. A lost GPU fails the
  // whole Read through `lost`.
  bool Check(int index, Reading reading, nvml::Return r, absl::Status* lost);
  // The groups of readings Read takes in turn; each fills `out` and sets
  // `lost` when the GPU is lost (or, for the temperature, does not answer).
  void ReadTemperatures(int index, nvml::Device dev, GpuReading* out,
                        absl::Status* lost);
  void ReadPowerAndLoad(int index, nvml::Device dev, GpuReading* out,
                        absl::Status* lost);
  void ReadMemoryErrors(int index, nvml::Device dev, GpuReading* out,
                        absl::Status* lost);
  void ReadClocksAndPcie(int index, nvml::Device dev, GpuReading* out,
                         absl::Status* lost);
  void ReadNvLinks(int index, nvml::Device dev, GpuReading* out,
                   absl::Status* lost);

  void* handle_;
  std::string library_;
  Api api_;
  std::vector<std::string> missing_;

  absl::Mutex mu_;
  bool initialized_ ABSL_GUARDED_BY(mu_) = false;
  std::map<int, PerGpu> gpus_ ABSL_GUARDED_BY(mu_);
  // Set once by Init() before any WaitXid; read without the lock.
  nvml::EventSet event_set_ = nullptr;
  std::map<nvml::Device, int> index_of_;  // written by Init() only
};

}  // namespace navarch::agent

#endif  // NAVARCH_AGENT_GPU_NVML_BACKEND_H_
