// Our own declarations of the small part of NVML the agent uses, written from
// NVIDIA's published API reference (docs.nvidia.com/deploy/nvml-api). We load
// libnvidia-ml.so.1 at run time, so the build never needs NVIDIA's headers or
// the CUDA toolkit, and one binary runs on hosts with and without a GPU.
//
// The values and layouts below are part of NVML's stable C ABI. Only what we
// call is declared.
#ifndef NAVARCH_AGENT_GPU_NVML_API_H_
#define NAVARCH_AGENT_GPU_NVML_API_H_

namespace navarch::agent::nvml {

using Return = int;  // nvmlReturn_t
inline constexpr Return kSuccess = 0;
inline constexpr Return kErrorUninitialized = 1;
inline constexpr Return kErrorInvalidArgument = 2;
inline constexpr Return kErrorNotSupported = 3;
inline constexpr Return kErrorNoPermission = 4;
inline constexpr Return kErrorNotFound = 6;
inline constexpr Return kErrorInsufficientSize = 7;
inline constexpr Return kErrorDriverNotLoaded = 9;
inline constexpr Return kErrorTimeout = 10;
inline constexpr Return kErrorFunctionNotFound = 13;
inline constexpr Return kErrorGpuIsLost = 15;
inline constexpr Return kErrorUnknown = 999;

struct DeviceOpaque;
using Device = DeviceOpaque*;  // nvmlDevice_t
struct EventSetOpaque;
using EventSet = EventSetOpaque*;  // nvmlEventSet_t

// nvmlPciInfo_t as filled by nvmlDeviceGetPciInfo_v2 and _v3.
struct PciInfo {
  char bus_id_legacy[16];
  unsigned int domain;
  unsigned int bus;
  unsigned int device;
  unsigned int pci_device_id;
  unsigned int pci_sub_system_id;
  char bus_id[32];
};

// nvmlMemory_t (version 1).
struct Memory {
  unsigned long long total;
  unsigned long long free;
  unsigned long long used;
};

// nvmlUtilization_t.
struct Utilization {
  unsigned int gpu;
  unsigned int memory;
};

// nvmlEventData_t as filled by nvmlEventSetWait_v2. nvmlEventSetWait (v1)
// fills only the first three fields.
struct EventData {
  Device device;
  unsigned long long event_type;
  unsigned long long event_data;
  unsigned int gpu_instance_id;
  unsigned int compute_instance_id;
};

// Buffer sizes (bytes, with the terminating NUL).
inline constexpr unsigned int kDeviceNameBufferSize = 96;
inline constexpr unsigned int kDeviceUuidBufferSize = 96;
inline constexpr unsigned int kSystemDriverVersionBufferSize = 80;

// nvmlTemperatureSensors_t
inline constexpr int kTemperatureGpu = 0;
// nvmlTemperatureThresholds_t
inline constexpr int kTemperatureThresholdShutdown = 0;
inline constexpr int kTemperatureThresholdSlowdown = 1;
// nvmlMemoryErrorType_t
inline constexpr int kMemoryErrorCorrected = 0;
inline constexpr int kMemoryErrorUncorrected = 1;
// nvmlEccCounterType_t
inline constexpr int kVolatileEcc = 0;
// nvmlEnableState_t
inline constexpr int kFeatureEnabled = 1;
// nvmlNvLinkErrorCounter_t
inline constexpr int kNvLinkErrorDlReplay = 0;
inline constexpr int kNvLinkErrorDlRecovery = 1;
inline constexpr int kNvLinkErrorDlCrcFlit = 2;
inline constexpr int kNvLinkErrorDlCrcData = 3;
inline constexpr unsigned int kNvLinkMaxLinks = 18;  // NVML_NVLINK_MAX_LINKS
// nvmlEventType bits
inline constexpr unsigned long long kEventTypeXidCriticalError = 0x8;
// The XID code NVML reports when it does not know the code.
inline constexpr unsigned long long kXidUnknown = 999;

// Function types, one per symbol we resolve.
using InitFn = Return (*)();
using ShutdownFn = Return (*)();
using ErrorStringFn = const char* (*)(Return);
using SystemGetDriverVersionFn = Return (*)(char*, unsigned int);
using SystemGetCudaDriverVersionFn = Return (*)(int*);
using DeviceGetCountFn = Return (*)(unsigned int*);
using DeviceGetHandleByIndexFn = Return (*)(unsigned int, Device*);
using DeviceGetStringFn = Return (*)(Device, char*, unsigned int);
using DeviceGetPciInfoFn = Return (*)(Device, PciInfo*);
using DeviceGetMemoryInfoFn = Return (*)(Device, Memory*);
using DeviceGetTemperatureFn = Return (*)(Device, int, unsigned int*);
using DeviceGetTemperatureThresholdFn = Return (*)(Device, int, unsigned int*);
using DeviceGetUintFn = Return (*)(Device, unsigned int*);
using DeviceGetUtilizationRatesFn = Return (*)(Device, Utilization*);
using DeviceGetTotalEccErrorsFn = Return (*)(Device, int, int,
                                             unsigned long long*);
using DeviceGetRemappedRowsFn = Return (*)(Device, unsigned int*, unsigned int*,
                                           unsigned int*, unsigned int*);
using DeviceGetUllFn = Return (*)(Device, unsigned long long*);
using DeviceGetNvLinkStateFn = Return (*)(Device, unsigned int, int*);
using DeviceGetNvLinkErrorCounterFn = Return (*)(Device, unsigned int, int,
                                                 unsigned long long*);
using EventSetCreateFn = Return (*)(EventSet*);
using EventSetFreeFn = Return (*)(EventSet);
using DeviceRegisterEventsFn = Return (*)(Device, unsigned long long, EventSet);
using EventSetWaitFn = Return (*)(EventSet, EventData*, unsigned int);

}  // namespace navarch::agent::nvml

#endif  // NAVARCH_AGENT_GPU_NVML_API_H_
