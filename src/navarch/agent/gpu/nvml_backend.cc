#include "navarch/agent/gpu/nvml_backend.h"

#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace navarch::agent {
namespace {

// Copies a NUL-terminated C string out of a fixed buffer, never past its end.
std::string FromBuffer(const char* buf, size_t size) {
  return std::string(buf, strnlen(buf, size));
}

// The reading cannot be had from this GPU (or by us): stop asking.
bool Unsupported(nvml::Return r) {
  return r == nvml::kErrorNotSupported || r == nvml::kErrorNoPermission ||
         r == nvml::kErrorFunctionNotFound || r == nvml::kErrorInvalidArgument;
}

}  // namespace

absl::StatusOr<std::unique_ptr<NvmlBackend>> NvmlBackend::Load(
    const std::string& library) {
  dlerror();
  void* handle = dlopen(library.c_str(), RTLD_NOW | RTLD_LOCAL);
  if (handle == nullptr) {
    const char* err = dlerror();
    return absl::FailedPreconditionError(absl::StrCat(
        "cannot load ", library,
        " (NVIDIA's management library, installed with the NVIDIA driver): ",
        err != nullptr ? err : "unknown dlopen error"));
  }
  std::unique_ptr<NvmlBackend> backend(new NvmlBackend(handle, library));
  const Api& a = backend->api_;
  std::vector<std::string> required;
  if (a.init == nullptr) required.push_back("nvmlInit_v2");
  if (a.shutdown == nullptr) required.push_back("nvmlShutdown");
  if (a.device_count == nullptr) required.push_back("nvmlDeviceGetCount_v2");
  if (a.handle_by_index == nullptr)
    required.push_back("nvmlDeviceGetHandleByIndex_v2");
  if (!required.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(
        library,
        " lacks required NVML functions: ", absl::StrJoin(required, ", ")));
  }
  return backend;
}

NvmlBackend::NvmlBackend(void* handle, std::string library)
    : handle_(handle), library_(std::move(library)) {
  auto get = [this](std::initializer_list<const char*> names, auto* fn) {
    *fn = reinterpret_cast<std::remove_pointer_t<decltype(fn)>>(Resolve(names));
  };
  // Newer versioned names first: the unversioned ones are kept by the driver
  // for old binaries and may use older struct layouts.
  get({"nvmlInit_v2", "nvmlInit"}, &api_.init);
  get({"nvmlShutdown"}, &api_.shutdown);
  get({"nvmlErrorString"}, &api_.error_string);
  get({"nvmlSystemGetDriverVersion"}, &api_.driver_version);
  get({"nvmlSystemGetCudaDriverVersion_v2", "nvmlSystemGetCudaDriverVersion"},
      &api_.cuda_version);
  get({"nvmlDeviceGetCount_v2", "nvmlDeviceGetCount"}, &api_.device_count);
  get({"nvmlDeviceGetHandleByIndex_v2", "nvmlDeviceGetHandleByIndex"},
      &api_.handle_by_index);
  get({"nvmlDeviceGetName"}, &api_.name);
  get({"nvmlDeviceGetUUID"}, &api_.uuid);
  // v1 of GetPciInfo has another layout; only v2 and v3 match PciInfo.
  get({"nvmlDeviceGetPciInfo_v3", "nvmlDeviceGetPciInfo_v2"}, &api_.pci_info);
  get({"nvmlDeviceGetMemoryInfo"}, &api_.memory_info);
  get({"nvmlDeviceGetTemperature"}, &api_.temperature);
  get({"nvmlDeviceGetTemperatureThreshold"}, &api_.temperature_threshold);
  get({"nvmlDeviceGetPowerUsage"}, &api_.power_usage);
  get({"nvmlDeviceGetUtilizationRates"}, &api_.utilization);
  get({"nvmlDeviceGetTotalEccErrors"}, &api_.total_ecc_errors);
  get({"nvmlDeviceGetRemappedRows"}, &api_.remapped_rows);
  // Renamed in CUDA 12.2 drivers; same meaning, same bits.
  get({"nvmlDeviceGetCurrentClocksEventReasons",
       "nvmlDeviceGetCurrentClocksThrottleReasons"},
      &api_.clock_event_reasons);
  get({"nvmlDeviceGetCurrPcieLinkGeneration"}, &api_.pcie_gen_current);
  get({"nvmlDeviceGetMaxPcieLinkGeneration"}, &api_.pcie_gen_max);
  get({"nvmlDeviceGetCurrPcieLinkWidth"}, &api_.pcie_width_current);
  get({"nvmlDeviceGetMaxPcieLinkWidth"}, &api_.pcie_width_max);
  get({"nvmlDeviceGetNvLinkState"}, &api_.nvlink_state);
  get({"nvmlDeviceGetNvLinkErrorCounter"}, &api_.nvlink_error_counter);
  get({"nvmlEventSetCreate"}, &api_.event_set_create);
  get({"nvmlEventSetFree"}, &api_.event_set_free);
  get({"nvmlDeviceGetSupportedEventTypes"}, &api_.supported_event_types);
  get({"nvmlDeviceRegisterEvents"}, &api_.register_events);
  get({"nvmlEventSetWait_v2", "nvmlEventSetWait"}, &api_.event_set_wait);
}

NvmlBackend::~NvmlBackend() {
  bool initialized;
  {
    absl::MutexLock lock(&mu_);
    initialized = initialized_;
  }
  if (initialized) {
    if (event_set_ != nullptr && api_.event_set_free != nullptr)
      api_.event_set_free(event_set_);
    api_.shutdown();
  }
  dlclose(handle_);
}

void* NvmlBackend::Resolve(std::initializer_list<const char*> names) {
  for (const char* name : names) {
    if (void* p = dlsym(handle_, name); p != nullptr) return p;
  }
  missing_.push_back(*names.begin());
  return nullptr;
}

std::string NvmlBackend::ErrorText(nvml::Return r) const {
  const char* text =
      api_.error_string != nullptr ? api_.error_string(r) : nullptr;
  return absl::StrCat(text != nullptr ? text : "error", " (NVML error ", r,
                      ")");
}

absl::Status NvmlBackend::Error(absl::string_view what, nvml::Return r) const {
  std::string msg = absl::StrCat(what, ": ", ErrorText(r));
  switch (r) {
    case nvml::kErrorGpuIsLost:
      return absl::NotFoundError(
          absl::StrCat(msg, "; the GPU has fallen off the bus"));
    case nvml::kErrorUninitialized:
    case nvml::kErrorDriverNotLoaded:
      return absl::FailedPreconditionError(msg);
    case nvml::kErrorTimeout:
      return absl::DeadlineExceededError(msg);
    case nvml::kErrorNotSupported:
    case nvml::kErrorFunctionNotFound:
      return absl::UnimplementedError(msg);
    case nvml::kErrorInvalidArgument:
    case nvml::kErrorNotFound:
      return absl::NotFoundError(msg);
    default:
      return absl::UnavailableError(msg);
  }
}

absl::Status NvmlBackend::Init() {
  {
    absl::MutexLock lock(&mu_);
    if (initialized_) return absl::OkStatus();
  }
  if (nvml::Return r = api_.init(); r != nvml::kSuccess) {
    return Error(absl::StrCat("nvmlInit (", library_, ")"), r);
  }
  {
    absl::MutexLock lock(&mu_);
    initialized_ = true;
  }
  // XID critical errors through an event set, for every GPU that supports
  // them. Without it the kernel log is the only XID source, which is fine.
  if (api_.event_set_create == nullptr || api_.register_events == nullptr ||
      api_.event_set_wait == nullptr) {
    return absl::OkStatus();
  }
  unsigned int count = 0;
  if (api_.device_count(&count) != nvml::kSuccess) return absl::OkStatus();
  nvml::EventSet set = nullptr;
  if (api_.event_set_create(&set) != nvml::kSuccess) return absl::OkStatus();
  int registered = 0;
  for (unsigned int i = 0; i < count; ++i) {
    nvml::Device dev = nullptr;
    if (api_.handle_by_index(i, &dev) != nvml::kSuccess) continue;
    index_of_[dev] = static_cast<int>(i);
    unsigned long long supported = nvml::kEventTypeXidCriticalError;
    if (api_.supported_event_types != nullptr &&
        api_.supported_event_types(dev, &supported) != nvml::kSuccess) {
      continue;
    }
    if ((supported & nvml::kEventTypeXidCriticalError) == 0) continue;
    if (api_.register_events(dev, nvml::kEventTypeXidCriticalError, set) ==
        nvml::kSuccess) {
      ++registered;
    }
  }
  if (registered == 0) {
    if (api_.event_set_free != nullptr) api_.event_set_free(set);
    return absl::OkStatus();
  }
  event_set_ = set;
  return absl::OkStatus();
}

absl::StatusOr<GpuSystemInfo> NvmlBackend::SystemInfo() {
  GpuSystemInfo info;
  if (api_.driver_version != nullptr) {
    char buf[nvml::kSystemDriverVersionBufferSize] = {};
    if (nvml::Return r = api_.driver_version(buf, sizeof(buf));
        r != nvml::kSuccess) {
      return Error("nvmlSystemGetDriverVersion", r);
    }
    info.driver_version = FromBuffer(buf, sizeof(buf));
  }
  if (api_.cuda_version != nullptr) {
    int v = 0;
    if (api_.cuda_version(&v) == nvml::kSuccess && v > 0) {
      // 13000 -> "13.0", 12020 -> "12.2".
      info.cuda_version = absl::StrCat(v / 1000, ".", (v % 1000) / 10);
    }
  }
  return info;
}

absl::StatusOr<int> NvmlBackend::DeviceCount() {
  unsigned int count = 0;
  if (nvml::Return r = api_.device_count(&count); r != nvml::kSuccess) {
    return Error("nvmlDeviceGetCount", r);
  }
  return static_cast<int>(std::min<unsigned int>(count, INT_MAX));
}

absl::StatusOr<nvml::Device> NvmlBackend::Handle(int index) {
  if (index < 0) return absl::InvalidArgumentError("negative GPU index");
  nvml::Device dev = nullptr;
  if (nvml::Return r =
          api_.handle_by_index(static_cast<unsigned int>(index), &dev);
      r != nvml::kSuccess) {
    return Error(absl::StrCat("nvmlDeviceGetHandleByIndex(", index, ")"), r);
  }
  return dev;
}

absl::StatusOr<GpuDevice> NvmlBackend::Device(int index) {
  auto dev = Handle(index);
  if (!dev.ok()) return dev.status();
  GpuDevice d;
  d.index = index;
  if (api_.uuid != nullptr) {
    char buf[nvml::kDeviceUuidBufferSize] = {};
    if (nvml::Return r = api_.uuid(*dev, buf, sizeof(buf));
        r != nvml::kSuccess) {
      return Error(absl::StrCat("nvmlDeviceGetUUID(", index, ")"), r);
    }
    d.uuid = FromBuffer(buf, sizeof(buf));
  }
  if (api_.name != nullptr) {
    char buf[nvml::kDeviceNameBufferSize] = {};
    if (nvml::Return r = api_.name(*dev, buf, sizeof(buf));
        r == nvml::kSuccess) {
      d.name = FromBuffer(buf, sizeof(buf));
    } else if (r == nvml::kErrorGpuIsLost) {
      return Error("nvmlDeviceGetName", r);
    }
  }
  if (api_.pci_info != nullptr) {
    nvml::PciInfo pci;
    std::memset(&pci, 0, sizeof(pci));
    if (nvml::Return r = api_.pci_info(*dev, &pci); r == nvml::kSuccess) {
      d.pci_bus_id = FromBuffer(pci.bus_id, sizeof(pci.bus_id));
    } else if (r == nvml::kErrorGpuIsLost) {
      return Error("nvmlDeviceGetPciInfo", r);
    }
  }
  if (api_.memory_info != nullptr) {
    nvml::Memory mem{};
    if (api_.memory_info(*dev, &mem) == nvml::kSuccess) {
      d.memory_total_bytes = static_cast<int64_t>(
          std::min<unsigned long long>(mem.total, INT64_MAX));
    }
  }
  return d;
}

bool NvmlBackend::Enabled(int index, Reading reading, const void* fn) {
  if (fn == nullptr) return false;
  absl::MutexLock lock(&mu_);
  return !gpus_[index].unsupported[reading];
}

bool NvmlBackend::Check(int index, Reading reading, nvml::Return r,
                        absl::Status* lost) {
  if (r == nvml::kSuccess) return true;
  if (r == nvml::kErrorGpuIsLost) {
    if (lost->ok()) *lost = Error(absl::StrCat("reading GPU ", index), r);
  } else if (Unsupported(r)) {
    absl::MutexLock lock(&mu_);
    gpus_[index].unsupported.set(reading);
  }
  // Anything else (a transient driver error) only skips the reading this time.
  return false;
}

absl::StatusOr<GpuReading> NvmlBackend::Read(int index) {
  auto handle = Handle(index);
  if (!handle.ok()) return handle.status();
  nvml::Device dev = *handle;
  GpuReading out;
  out.index = index;
  // Each group of readings stops at the first sign of a lost GPU (or, for
  // the temperature, one that does not answer), which then fails the Read.
  absl::Status lost;
  using Group =
      void (NvmlBackend::*)(int, nvml::Device, GpuReading*, absl::Status*);
  for (Group group :
       {&NvmlBackend::ReadTemperatures, &NvmlBackend::ReadPowerAndLoad,
        &NvmlBackend::ReadMemoryErrors, &NvmlBackend::ReadClocksAndPcie,
        &NvmlBackend::ReadNvLinks}) {
    if (!lost.ok()) break;
    (this->*group)(index, dev, &out, &lost);
  }
  if (!lost.ok()) return lost;
  return out;
}

void NvmlBackend::ReadTemperatures(int index, nvml::Device dev, GpuReading* out,
                                   absl::Status* lost) {
  unsigned int u = 0;
  if (Enabled(index, kTemperature,
              reinterpret_cast<const void*>(api_.temperature))) {
    nvml::Return r = api_.temperature(dev, nvml::kTemperatureGpu, &u);
    if (Check(index, kTemperature, r, lost)) {
      out->temperature_c = static_cast<int>(u);
    } else if (lost->ok() && !Unsupported(r)) {
      // The temperature is the one reading every GPU gives; failing to read
      // it means the GPU does not answer.
      *lost = Error(absl::StrCat("nvmlDeviceGetTemperature(", index, ")"), r);
      return;
    }
  }
  auto threshold = [&](Reading reading, int which, std::optional<int>* dst) {
    if (!lost->ok() ||
        !Enabled(index, reading,
                 reinterpret_cast<const void*>(api_.temperature_threshold))) {
      return;
    }
    unsigned int v = 0;
    if (Check(index, reading, api_.temperature_threshold(dev, which, &v),
              lost)) {
      *dst = static_cast<int>(v);
    }
  };
  threshold(kSlowdownThreshold, nvml::kTemperatureThresholdSlowdown,
            &out->slowdown_temperature_c);
  threshold(kShutdownThreshold, nvml::kTemperatureThresholdShutdown,
            &out->shutdown_temperature_c);
}

void NvmlBackend::ReadPowerAndLoad(int index, nvml::Device dev, GpuReading* out,
                                   absl::Status* lost) {
  unsigned int u = 0;
  if (lost->ok() &&
      Enabled(index, kPower, reinterpret_cast<const void*>(api_.power_usage)) &&
      Check(index, kPower, api_.power_usage(dev, &u), lost)) {
    out->power_watts = u / 1000.0;  // milliwatts
  }
  if (lost->ok() && Enabled(index, kUtilization,
                            reinterpret_cast<const void*>(api_.utilization))) {
    nvml::Utilization util{};
    if (Check(index, kUtilization, api_.utilization(dev, &util), lost)) {
      out->utilization_gpu_percent = static_cast<int>(util.gpu);
      out->utilization_memory_percent = static_cast<int>(util.memory);
    }
  }
  if (lost->ok() && Enabled(index, kMemory,
                            reinterpret_cast<const void*>(api_.memory_info))) {
    nvml::Memory mem{};
    if (Check(index, kMemory, api_.memory_info(dev, &mem), lost)) {
      out->memory_used_bytes = static_cast<int64_t>(
          std::min<unsigned long long>(mem.used, INT64_MAX));
      out->memory_total_bytes = static_cast<int64_t>(
          std::min<unsigned long long>(mem.total, INT64_MAX));
    }
  }
}

void NvmlBackend::ReadMemoryErrors(int index, nvml::Device dev, GpuReading* out,
                                   absl::Status* lost) {
  auto ecc = [&](Reading reading, int type, std::optional<uint64_t>* dst) {
    if (!lost->ok() ||
        !Enabled(index, reading,
                 reinterpret_cast<const void*>(api_.total_ecc_errors))) {
      return;
    }
    unsigned long long v = 0;
    if (Check(index, reading,
              api_.total_ecc_errors(dev, type, nvml::kVolatileEcc, &v), lost)) {
      *dst = v;
    }
  };
  ecc(kEccCorrected, nvml::kMemoryErrorCorrected, &out->ecc_corrected);
  ecc(kEccUncorrected, nvml::kMemoryErrorUncorrected, &out->ecc_uncorrected);

  if (lost->ok() &&
      Enabled(index, kRemappedRows,
              reinterpret_cast<const void*>(api_.remapped_rows))) {
    unsigned int corr = 0, unc = 0, pending = 0, failure = 0;
    if (Check(index, kRemappedRows,
              api_.remapped_rows(dev, &corr, &unc, &pending, &failure), lost)) {
      out->remapped_rows_correctable = corr;
      out->remapped_rows_uncorrectable = unc;
      out->remap_pending = pending != 0;
      out->remap_failure = failure != 0;
    }
  }
}

void NvmlBackend::ReadClocksAndPcie(int index, nvml::Device dev,
                                    GpuReading* out, absl::Status* lost) {
  if (lost->ok() &&
      Enabled(index, kClockEventReasons,
              reinterpret_cast<const void*>(api_.clock_event_reasons))) {
    unsigned long long reasons = 0;
    if (Check(index, kClockEventReasons,
              api_.clock_event_reasons(dev, &reasons), lost)) {
      out->clock_event_reasons = reasons;
    }
  }
  auto pcie = [&](Reading reading, nvml::DeviceGetUintFn fn,
                  std::optional<int>* dst) {
    if (!lost->ok() ||
        !Enabled(index, reading, reinterpret_cast<const void*>(fn)))
      return;
    unsigned int v = 0;
    if (Check(index, reading, fn(dev, &v), lost)) *dst = static_cast<int>(v);
  };
  pcie(kPcieGenCurrent, api_.pcie_gen_current, &out->pcie_gen_current);
  pcie(kPcieGenMax, api_.pcie_gen_max, &out->pcie_gen_max);
  pcie(kPcieWidthCurrent, api_.pcie_width_current, &out->pcie_width_current);
  pcie(kPcieWidthMax, api_.pcie_width_max, &out->pcie_width_max);
}

void NvmlBackend::ReadNvLinks(int index, nvml::Device dev, GpuReading* out,
                              absl::Status* lost) {
  if (!Enabled(index, kNvLink,
               reinterpret_cast<const void*>(api_.nvlink_state)))
    return;
  std::vector<unsigned int> links;
  bool known;
  {
    absl::MutexLock lock(&mu_);
    known = gpus_[index].links_known;
    links = gpus_[index].links;
  }
  if (!known) {
    // Which links exist is fixed per GPU: probe all possible ones once.
    for (unsigned int link = 0; link < nvml::kNvLinkMaxLinks; ++link) {
      int state = 0;
      nvml::Return r = api_.nvlink_state(dev, link, &state);
      if (r == nvml::kErrorGpuIsLost) {
        *lost = Error(absl::StrCat("reading GPU ", index), r);
        return;
      }
      if (r == nvml::kSuccess) links.push_back(link);
    }
    absl::MutexLock lock(&mu_);
    PerGpu& g = gpus_[index];
    g.links_known = true;
    g.links = links;
    if (links.empty()) g.unsupported.set(kNvLink);
  }
  for (unsigned int link : links) {
    NvLinkReading l;
    l.link = static_cast<int>(link);
    int state = 0;
    nvml::Return r = api_.nvlink_state(dev, link, &state);
    if (r == nvml::kErrorGpuIsLost) {
      *lost = Error(absl::StrCat("reading GPU ", index), r);
      return;
    }
    if (r != nvml::kSuccess) continue;
    l.active = state == nvml::kFeatureEnabled;
    auto counter = [&](Reading reading, int which,
                       std::optional<uint64_t>* dst) {
      if (!lost->ok() ||
          !Enabled(index, reading,
                   reinterpret_cast<const void*>(api_.nvlink_error_counter))) {
        return;
      }
      unsigned long long v = 0;
      if (Check(index, reading, api_.nvlink_error_counter(dev, link, which, &v),
                lost))
        *dst = v;
    };
    if (l.active) {
      counter(kNvLinkReplay, nvml::kNvLinkErrorDlReplay, &l.replay_errors);
      counter(kNvLinkRecovery, nvml::kNvLinkErrorDlRecovery,
              &l.recovery_errors);
      counter(kNvLinkCrcFlit, nvml::kNvLinkErrorDlCrcFlit, &l.crc_flit_errors);
      counter(kNvLinkCrcData, nvml::kNvLinkErrorDlCrcData, &l.crc_data_errors);
    }
    out->nvlinks.push_back(l);
  }
}

absl::StatusOr<std::vector<XidEvent>> NvmlBackend::WaitXid(
    absl::Duration timeout) {
  if (event_set_ == nullptr) {
    return absl::UnimplementedError(
        "this driver delivers no XID events through NVML");
  }
  std::vector<XidEvent> out;
  int64_t ms =
      std::clamp<int64_t>(absl::ToInt64Milliseconds(timeout), 0, UINT_MAX);
  // After the first event, drain what else is pending without waiting.
  for (int i = 0; i < 64; ++i) {
    nvml::EventData data;
    std::memset(&data, 0, sizeof(data));
    nvml::Return r =
        api_.event_set_wait(event_set_, &data, static_cast<unsigned int>(ms));
    if (r == nvml::kErrorTimeout) break;
    if (r != nvml::kSuccess) {
      if (!out.empty()) break;
      return Error("nvmlEventSetWait", r);
    }
    ms = 0;
    if ((data.event_type & nvml::kEventTypeXidCriticalError) == 0) continue;
    XidEvent e;
    auto it = index_of_.find(data.device);
    if (it != index_of_.end()) {
      e.gpu_index = it->second;
      if (api_.uuid != nullptr) {
        char buf[nvml::kDeviceUuidBufferSize] = {};
        if (api_.uuid(data.device, buf, sizeof(buf)) == nvml::kSuccess) {
          e.gpu_uuid = FromBuffer(buf, sizeof(buf));
        }
      }
    }
    e.code = data.event_data == nvml::kXidUnknown
                 ? 0
                 : static_cast<int>(
                       std::min<unsigned long long>(data.event_data, INT_MAX));
    out.push_back(std::move(e));
  }
  return out;
}

}  // namespace navarch::agent
