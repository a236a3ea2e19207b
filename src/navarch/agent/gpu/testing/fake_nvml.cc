// A stand-in for libnvidia-ml.so.1, loaded by NvmlBackend in tests exactly as
// the real library is (dlopen + dlsym). Its GPU answers what the H200 in
// shared/fixtures/gpu/h200/nvml-probe.txt answered. It deliberately lacks the
// NVLink functions, so tests see a missing symbol disable one reading only.
// fake_nvml_* functions let a test change what the "driver" reports.
#include <cstring>
#include <deque>

namespace {

constexpr int kSuccess = 0;
constexpr int kErrorUninitialized = 1;
constexpr int kErrorInvalidArgument = 2;
constexpr int kErrorNotSupported = 3;
constexpr int kErrorInsufficientSize = 7;
constexpr int kErrorTimeout = 10;
constexpr int kErrorGpuIsLost = 15;
constexpr int kMaxGpus = 8;

struct Gpu {
  int lost = 0;
  unsigned int temperature = 38;
  unsigned long long ecc_corrected = 0;
  unsigned long long ecc_uncorrected = 0;
  unsigned int remap_pending = 0;
  unsigned int remap_failure = 0;
  unsigned long long reasons = 0x1;
  unsigned int pcie_width = 16;
};

struct Event {
  int gpu;
  unsigned long long code;
};

struct State {
  int init_result = kSuccess;
  int initialized = 0;
  int inits = 0;
  unsigned int count = 1;
  int ecc_supported = 1;
  Gpu gpus[kMaxGpus];
  std::deque<Event> events;
  int registered = 0;
};

State state;
char event_set_token;

int Index(void* device) {
  auto* p = static_cast<Gpu*>(device);
  if (p < state.gpus || p >= state.gpus + kMaxGpus) return -1;
  return static_cast<int>(p - state.gpus);
}

// Common checks of every device call: initialised, valid handle, not lost.
int Check(void* device, int* index) {
  if (state.initialized == 0) return kErrorUninitialized;
  int i = Index(device);
  if (i < 0 || static_cast<unsigned int>(i) >= state.count)
    return kErrorInvalidArgument;
  if (state.gpus[i].lost) return kErrorGpuIsLost;
  *index = i;
  return kSuccess;
}

int CopyString(const char* s, char* buf, unsigned int len) {
  if (std::strlen(s) + 1 > len) return kErrorInsufficientSize;
  std::strcpy(buf, s);
  return kSuccess;
}

struct PciInfo {
  char bus_id_legacy[16];
  unsigned int domain, bus, device, pci_device_id, pci_sub_system_id;
  char bus_id[32];
};
struct Memory {
  unsigned long long total, free, used;
};
struct Utilization {
  unsigned int gpu, memory;
};
struct EventData {
  void* device;
  unsigned long long event_type;
  unsigned long long event_data;
  unsigned int gpu_instance_id;
  unsigned int compute_instance_id;
};

}  // namespace

extern "C" {

// ---- Test controls.
void fake_nvml_reset() { state = State(); }
void fake_nvml_set_init_result(int r) { state.init_result = r; }
void fake_nvml_set_gpu_count(unsigned int n) {
  state.count = n > kMaxGpus ? kMaxGpus : n;
}
void fake_nvml_set_lost(int gpu, int lost) { state.gpus[gpu].lost = lost; }
void fake_nvml_set_ecc(int gpu, unsigned long long corrected,
                       unsigned long long uncorrected) {
  state.gpus[gpu].ecc_corrected = corrected;
  state.gpus[gpu].ecc_uncorrected = uncorrected;
}
void fake_nvml_set_ecc_supported(int supported) {
  state.ecc_supported = supported;
}
void fake_nvml_set_temperature(int gpu, unsigned int t) {
  state.gpus[gpu].temperature = t;
}
void fake_nvml_set_remap(int gpu, unsigned int pending, unsigned int failure) {
  state.gpus[gpu].remap_pending = pending;
  state.gpus[gpu].remap_failure = failure;
}
void fake_nvml_set_reasons(int gpu, unsigned long long reasons) {
  state.gpus[gpu].reasons = reasons;
}
void fake_nvml_set_pcie_width(int gpu, unsigned int width) {
  state.gpus[gpu].pcie_width = width;
}
void fake_nvml_inject_xid(int gpu, unsigned long long code) {
  state.events.push_back({gpu, code});
}
int fake_nvml_inits() { return state.inits; }
int fake_nvml_registered() { return state.registered; }

// ---- The NVML API.
int nvmlInit_v2() {
  ++state.inits;
  if (state.init_result != kSuccess) return state.init_result;
  ++state.initialized;
  return kSuccess;
}
int nvmlShutdown() {
  if (state.initialized == 0) return kErrorUninitialized;
  --state.initialized;
  return kSuccess;
}
const char* nvmlErrorString(int r) {
  switch (r) {
    case kSuccess:
      return "Success";
    case kErrorUninitialized:
      return "Uninitialized";
    case kErrorNotSupported:
      return "Not Supported";
    case kErrorGpuIsLost:
      return "GPU is lost";
    case 9:
      return "Driver Not Loaded";
    default:
      return "Unknown Error";
  }
}
int nvmlSystemGetDriverVersion(char* buf, unsigned int len) {
  return CopyString("580.159.04", buf, len);
}
int nvmlSystemGetCudaDriverVersion_v2(int* v) {
  *v = 13000;
  return kSuccess;
}
int nvmlDeviceGetCount_v2(unsigned int* n) {
  if (state.initialized == 0) return kErrorUninitialized;
  *n = state.count;
  return kSuccess;
}
int nvmlDeviceGetHandleByIndex_v2(unsigned int i, void** device) {
  if (state.initialized == 0) return kErrorUninitialized;
  if (i >= state.count) return kErrorInvalidArgument;
  *device = &state.gpus[i];
  return kSuccess;
}
int nvmlDeviceGetName(void* d, char* buf, unsigned int len) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  return CopyString("NVIDIA H200", buf, len);
}
int nvmlDeviceGetUUID(void* d, char* buf, unsigned int len) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  char uuid[64];
  std::strcpy(uuid, "GPU-d49c1d00-83d3-507c-2219-9467d956de9a");
  uuid[std::strlen(uuid) - 1] = static_cast<char>('a' + i);
  return CopyString(uuid, buf, len);
}
int nvmlDeviceGetPciInfo_v3(void* d, PciInfo* pci) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  std::memset(pci, 0, sizeof(*pci));
  pci->bus = 0;
  pci->device = 6 + static_cast<unsigned int>(i);
  pci->pci_device_id = 0x233510DE;
  pci->pci_sub_system_id = 0x18BF10DE;
  char id[32];
  std::strcpy(id, "00000000:00:06.0");
  id[13] = static_cast<char>('6' + i);
  std::strcpy(pci->bus_id, id);
  std::strcpy(pci->bus_id_legacy, id + 4);
  return kSuccess;
}
int nvmlDeviceGetMemoryInfo(void* d, Memory* m) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  m->total = 150754820096ULL;
  m->used = 644939776ULL;
  m->free = m->total - m->used;
  return kSuccess;
}
int nvmlDeviceGetTemperature(void* d, int sensor, unsigned int* t) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  if (sensor != 0) return kErrorInvalidArgument;
  *t = state.gpus[i].temperature;
  return kSuccess;
}
int nvmlDeviceGetTemperatureThreshold(void* d, int which, unsigned int* t) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  if (which == 0)
    *t = 95;  // shutdown
  else if (which == 1)
    *t = 89;  // slowdown
  else
    return kErrorNotSupported;
  return kSuccess;
}
int nvmlDeviceGetPowerUsage(void* d, unsigned int* mw) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *mw = 86715;
  return kSuccess;
}
int nvmlDeviceGetUtilizationRates(void* d, Utilization* u) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  u->gpu = 0;
  u->memory = 0;
  return kSuccess;
}
int nvmlDeviceGetTotalEccErrors(void* d, int type, int counter,
                                unsigned long long* n) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  if (!state.ecc_supported) return kErrorNotSupported;
  if (counter != 0) return kErrorInvalidArgument;
  *n = type == 0 ? state.gpus[i].ecc_corrected : state.gpus[i].ecc_uncorrected;
  return kSuccess;
}
int nvmlDeviceGetRemappedRows(void* d, unsigned int* corr, unsigned int* unc,
                              unsigned int* pending, unsigned int* failure) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *corr = 0;
  *unc = state.gpus[i].remap_failure;
  *pending = state.gpus[i].remap_pending;
  *failure = state.gpus[i].remap_failure;
  return kSuccess;
}
int nvmlDeviceGetCurrentClocksEventReasons(void* d,
                                           unsigned long long* reasons) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *reasons = state.gpus[i].reasons;
  return kSuccess;
}
int nvmlDeviceGetCurrPcieLinkGeneration(void* d, unsigned int* v) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *v = 5;
  return kSuccess;
}
int nvmlDeviceGetMaxPcieLinkGeneration(void* d, unsigned int* v) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *v = 5;
  return kSuccess;
}
int nvmlDeviceGetCurrPcieLinkWidth(void* d, unsigned int* v) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *v = state.gpus[i].pcie_width;
  return kSuccess;
}
int nvmlDeviceGetMaxPcieLinkWidth(void* d, unsigned int* v) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *v = 16;
  return kSuccess;
}
int nvmlEventSetCreate(void** set) {
  if (state.initialized == 0) return kErrorUninitialized;
  *set = &event_set_token;
  return kSuccess;
}
int nvmlEventSetFree(void*) { return kSuccess; }
int nvmlDeviceGetSupportedEventTypes(void* d, unsigned long long* types) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  *types = 0xff9f;
  return kSuccess;
}
int nvmlDeviceRegisterEvents(void* d, unsigned long long, void*) {
  int i;
  if (int r = Check(d, &i); r != kSuccess) return r;
  ++state.registered;
  return kSuccess;
}
// Never blocks: a test has no reason to wait.
int nvmlEventSetWait_v2(void*, EventData* data, unsigned int) {
  if (state.events.empty()) return kErrorTimeout;
  Event e = state.events.front();
  state.events.pop_front();
  std::memset(data, 0, sizeof(*data));
  data->device = &state.gpus[e.gpu];
  data->event_type = 0x8;
  data->event_data = e.code;
  return kSuccess;
}

}  // extern "C"
