#include "navarch/agent/monitor.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "navarch/agent/gpu/pci.h"
#include "navarch/api/time_util.h"

namespace navarch::agent {
namespace {

constexpr int kFellOffTheBus = 79;

std::string Hex(uint64_t v) { return absl::StrFormat("0x%x", v); }

// What one GPU's poll returned, gathered before taking the monitor's lock so
// that a slow driver never blocks heartbeats reading the snapshot.
struct Observation {
  absl::StatusOr<GpuDevice> device;
  absl::StatusOr<GpuReading> reading = absl::UnknownError("not read");
};

HealthCheckResult Check(const char* name, HealthStatus status,
                        std::string message, absl::Time now) {
  HealthCheckResult r;
  r.set_check_name(name);
  r.set_status(status);
  r.set_message(std::move(message));
  *r.mutable_timestamp() = ToTimestamp(now);
  return r;
}

}  // namespace

GpuMonitor::GpuMonitor(GpuBackend& backend, Clock& clock,
                       MonitorOptions options)
    : backend_(backend), clock_(clock), options_(options) {}

GpuMonitor::GpuMonitor(const GpuMonitor& other, GpuBackend& backend,
                       Clock& clock, const std::vector<std::string>& uuids)
    : backend_(backend), clock_(clock), options_(other.options_) {
  absl::MutexLock theirs(&other.mu_);
  absl::MutexLock lock(&mu_);
  started_ = other.started_;
  start_error_ = other.start_error_;
  driver_error_ = other.driver_error_;
  system_ = other.system_;
  slots_ = other.slots_;
  for (size_t i = 0; i < uuids.size() && i < slots_.size(); ++i)
    slots_[i].device.uuid = uuids[i];
}

absl::Status GpuMonitor::Start() {
  absl::Status status = backend_.Init();
  GpuSystemInfo system;
  std::vector<GpuDevice> devices;
  if (status.ok()) {
    auto info = backend_.SystemInfo();
    if (info.ok()) system = *info;
    auto count = backend_.DeviceCount();
    if (!count.ok()) status = count.status();
    for (int i = 0; status.ok() && i < *count; ++i) {
      auto d = backend_.Device(i);
      if (!d.ok()) {
        status = absl::Status(
            d.status().code(),
            absl::StrCat("GPU ", i, " at start: ", d.status().message()));
        break;
      }
      devices.push_back(*d);
    }
  }
  absl::MutexLock lock(&mu_);
  if (!status.ok()) {
    start_error_ = status;
    return status;
  }
  started_ = true;
  start_error_ = absl::OkStatus();
  system_ = system;
  slots_.clear();
  for (const GpuDevice& d : devices) {
    Slot s;
    s.device = d;
    slots_.push_back(std::move(s));
  }
  return absl::OkStatus();
}

bool GpuMonitor::started() const {
  absl::MutexLock lock(&mu_);
  return started_;
}

std::vector<GpuDevice> GpuMonitor::Inventory() const {
  absl::MutexLock lock(&mu_);
  std::vector<GpuDevice> out;
  for (const Slot& s : slots_) out.push_back(s.device);
  return out;
}

GpuSystemInfo GpuMonitor::SystemInfo() const {
  absl::MutexLock lock(&mu_);
  return system_;
}

int GpuMonitor::Slowdown(const GpuReading& r) const {
  return r.slowdown_temperature_c.value_or(options_.default_slowdown_c);
}

int GpuMonitor::Shutdown(const GpuReading& r) const {
  return r.shutdown_temperature_c.value_or(options_.default_shutdown_c);
}

const GpuMonitor::Slot* GpuMonitor::FindByUuid(const std::string& uuid) const {
  for (const Slot& s : slots_) {
    if (!uuid.empty() && s.device.uuid == uuid) return &s;
  }
  return nullptr;
}

HealthEvent GpuMonitor::NewEvent(const Slot& slot, HealthEventType type,
                                 HealthWatchSystem system,
                                 std::string message) const {
  HealthEvent e;
  *e.mutable_timestamp() = ToTimestamp(clock_.Now());
  e.set_gpu_index(slot.device.index);
  e.set_gpu_uuid(slot.device.uuid);
  e.set_event_type(type);
  e.set_system(system);
  e.set_message(std::move(message));
  return e;
}

std::vector<HealthEvent> GpuMonitor::Poll() {
  if (!started() && !Start().ok()) return {};
  std::vector<Observation> seen;
  absl::StatusOr<int> count = backend_.DeviceCount();
  if (count.ok()) {
    seen.reserve(*count);
    for (int i = 0; i < *count; ++i) {
      Observation o{backend_.Device(i)};
      if (o.device.ok()) o.reading = backend_.Read(i);
      seen.push_back(std::move(o));
    }
  }

  std::vector<HealthEvent> events;
  absl::MutexLock lock(&mu_);
  if (!count.ok()) {
    // The driver itself does not answer: nothing is known about any GPU.
    // That is the gpu check's to report, not a per-GPU event.
    driver_error_ = count.status();
    return events;
  }
  driver_error_ = absl::OkStatus();
  std::vector<bool> enumerated(slots_.size(), false);
  for (size_t i = 0; i < seen.size(); ++i) {
    const Observation& o = seen[i];
    if (!o.device.ok()) {
      // A GPU in trouble may not even tell its UUID. Without renumbering
      // (nothing vanished from enumeration) its index is still its
      // registration index.
      if (seen.size() == slots_.size()) {
        enumerated[i] = true;
        if (absl::IsNotFound(o.device.status())) {
          MarkLost(slots_[i], std::string(o.device.status().message()), events);
        } else {
          slots_[i].error = o.device.status();
        }
      }
      continue;
    }
    auto it = std::find_if(slots_.begin(), slots_.end(), [&](const Slot& s) {
      return s.device.uuid == o.device->uuid;
    });
    if (it == slots_.end()) continue;  // a GPU that was not there at start
    Slot& slot = *it;
    enumerated[it - slots_.begin()] = true;
    slot.present = true;
    if (o.reading.ok()) {
      if (slot.lost) {
        slot.lost = false;
        slot.lost_reported = false;
      }
      slot.error = absl::OkStatus();
      Detect(slot, *o.reading, events);
      slot.last = *o.reading;
    } else if (absl::IsNotFound(o.reading.status())) {
      MarkLost(slot, std::string(o.reading.status().message()), events);
    } else {
      slot.error = o.reading.status();
    }
  }
  // A GPU of the inventory the driver no longer enumerates is gone.
  for (size_t i = 0; i < slots_.size(); ++i) {
    if (enumerated[i]) continue;
    Slot& slot = slots_[i];
    slot.present = false;
    MarkLost(slot,
             absl::StrCat("the driver now enumerates ", *count, " of ",
                          slots_.size(), " GPUs"),
             events);
  }
  return events;
}

void GpuMonitor::MarkLost(Slot& slot, const std::string& why,
                          std::vector<HealthEvent>& out) {
  slot.lost = true;
  slot.error = absl::OkStatus();
  if (slot.lost_reported) return;
  slot.lost_reported = true;
  // Reported as the XID the driver logs for it, so policies written for XIDs
  // (the default one: 79 is fatal) treat it the same.
  HealthEvent e =
      NewEvent(slot, HEALTH_EVENT_TYPE_XID, HEALTH_WATCH_SYSTEM_DRIVER,
               absl::StrCat("GPU ", slot.device.index, " (", slot.device.uuid,
                            "): GPU has fallen off the bus: ", why));
  auto& m = *e.mutable_metrics();
  m["xid_code"] = absl::StrCat(kFellOffTheBus);
  m["source"] = "gpu_count";
  m["pci_bus_id"] = slot.device.pci_bus_id;
  out.push_back(std::move(e));
}

namespace {
bool SameLink(const NvLinkReading& a, const NvLinkReading& b) {
  return a.link == b.link && a.active == b.active &&
         a.replay_errors == b.replay_errors &&
         a.recovery_errors == b.recovery_errors &&
         a.crc_flit_errors == b.crc_flit_errors &&
         a.crc_data_errors == b.crc_data_errors;
}
}  // namespace

// One detector per signal, in the order their events are reported. Each
// compares a reading with what its Slot fields remember and updates them.
void GpuMonitor::Detect(Slot& slot, const GpuReading& r,
                        std::vector<HealthEvent>& out) {
  static constexpr Detector kDetectors[] = {
      &GpuMonitor::DetectEcc,         &GpuMonitor::DetectRowRemap,
      &GpuMonitor::DetectClockEvents, &GpuMonitor::DetectTemperature,
      &GpuMonitor::DetectPcie,        &GpuMonitor::DetectNvLinks,
  };
  for (Detector detect : kDetectors) (this->*detect)(slot, r, out);
}

void GpuMonitor::DetectEcc(Slot& slot, const GpuReading& r,
                           std::vector<HealthEvent>& out) const {
  const int gpu = slot.device.index;
  // ECC: volatile counters only grow until the driver reloads; any rise is
  // new errors. We start from zero, so errors from earlier in this boot are
  // reported once at start.
  if (r.ecc_corrected && *r.ecc_corrected > slot.ecc_corrected) {
    uint64_t delta = *r.ecc_corrected - slot.ecc_corrected;
    HealthEvent e = NewEvent(
        slot, HEALTH_EVENT_TYPE_ECC_SBE, HEALTH_WATCH_SYSTEM_MEM,
        absl::StrCat("GPU ", gpu, ": ", delta, " new corrected ECC error(s), ",
                     *r.ecc_corrected, " since the driver loaded"));
    (*e.mutable_metrics())["ecc_sbe_count"] = absl::StrCat(*r.ecc_corrected);
    (*e.mutable_metrics())["ecc_sbe_delta"] = absl::StrCat(delta);
    out.push_back(std::move(e));
  }
  if (r.ecc_corrected) slot.ecc_corrected = *r.ecc_corrected;
  if (r.ecc_uncorrected && *r.ecc_uncorrected > slot.ecc_uncorrected) {
    uint64_t delta = *r.ecc_uncorrected - slot.ecc_uncorrected;
    HealthEvent e =
        NewEvent(slot, HEALTH_EVENT_TYPE_ECC_DBE, HEALTH_WATCH_SYSTEM_MEM,
                 absl::StrCat("GPU ", gpu, ": ", delta,
                              " new uncorrectable ECC error(s), ",
                              *r.ecc_uncorrected, " since the driver loaded"));
    (*e.mutable_metrics())["ecc_dbe_count"] = absl::StrCat(*r.ecc_uncorrected);
    (*e.mutable_metrics())["ecc_dbe_delta"] = absl::StrCat(delta);
    out.push_back(std::move(e));
  }
  if (r.ecc_uncorrected) slot.ecc_uncorrected = *r.ecc_uncorrected;
}

void GpuMonitor::DetectRowRemap(Slot& slot, const GpuReading& r,
                                std::vector<HealthEvent>& out) const {
  const int gpu = slot.device.index;
  // Row remapping.
  if (r.remap_pending) {
    if (*r.remap_pending && !slot.remap_pending) {
      HealthEvent e =
          NewEvent(slot, HEALTH_EVENT_TYPE_MEMORY, HEALTH_WATCH_SYSTEM_MEM,
                   absl::StrCat("GPU ", gpu,
                                ": a memory row remapping is pending; the GPU "
                                "needs a reset"));
      (*e.mutable_metrics())["row_remap_pending"] = "1";
      out.push_back(std::move(e));
    }
    slot.remap_pending = *r.remap_pending;
  }
  if (r.remap_failure) {
    if (*r.remap_failure && !slot.remap_failure) {
      HealthEvent e = NewEvent(
          slot, HEALTH_EVENT_TYPE_MEMORY, HEALTH_WATCH_SYSTEM_MEM,
          absl::StrCat("GPU ", gpu,
                       ": memory row remapping failed; the GPU should be "
                       "replaced"));
      auto& m = *e.mutable_metrics();
      m["row_remap_failure"] = "1";
      // Lets DCGM-style rules ("MEM with ecc_dbe_count > 0") see it as fatal.
      m["ecc_dbe_count"] = absl::StrCat(
          std::max<uint64_t>(1, r.remapped_rows_uncorrectable.value_or(0)));
      out.push_back(std::move(e));
    }
    slot.remap_failure = *r.remap_failure;
  }
}

void GpuMonitor::DetectClockEvents(Slot& slot, const GpuReading& r,
                                   std::vector<HealthEvent>& out) const {
  const int gpu = slot.device.index;
  const std::string temp =
      r.temperature_c ? absl::StrCat(*r.temperature_c) : "";
  // Clock event (throttle) reasons that just became active.
  if (r.clock_event_reasons) {
    uint64_t now = *r.clock_event_reasons;
    uint64_t fresh = now & ~slot.clock_reasons;
    constexpr uint64_t kThermal =
        kClockEventHwThermalSlowdown | kClockEventSwThermalSlowdown;
    if (fresh & kThermal) {
      const char* which =
          (fresh & kClockEventHwThermalSlowdown) ? "hardware" : "software";
      HealthEvent e = NewEvent(
          slot, HEALTH_EVENT_TYPE_THERMAL, HEALTH_WATCH_SYSTEM_THERMAL,
          absl::StrCat("GPU ", gpu, ": clocks slowed by ", which,
                       " thermal slowdown",
                       temp.empty() ? "" : absl::StrCat(" at ", temp, "°C")));
      auto& m = *e.mutable_metrics();
      if (!temp.empty()) m["temperature"] = temp;
      m["clock_event_reasons"] = Hex(now);
      out.push_back(std::move(e));
    }
    bool brake = fresh & kClockEventHwPowerBrakeSlowdown;
    // Plain "HW slowdown" without a more specific reason: power or an
    // external signal; reported as power.
    bool hw = (fresh & kClockEventHwSlowdown) &&
              !(now & (kClockEventHwThermalSlowdown |
                       kClockEventHwPowerBrakeSlowdown));
    if (brake || hw) {
      HealthEvent e =
          NewEvent(slot, HEALTH_EVENT_TYPE_POWER, HEALTH_WATCH_SYSTEM_POWER,
                   absl::StrCat("GPU ", gpu, ": clocks slowed by ",
                                brake ? "the hardware power brake"
                                      : "hardware slowdown"));
      auto& m = *e.mutable_metrics();
      if (r.power_watts) m["power_watts"] = absl::StrCat(*r.power_watts);
      m["clock_event_reasons"] = Hex(now);
      out.push_back(std::move(e));
    }
    slot.clock_reasons = now;
  }
}

void GpuMonitor::DetectTemperature(Slot& slot, const GpuReading& r,
                                   std::vector<HealthEvent>& out) const {
  const int gpu = slot.device.index;
  // Temperature against the GPU's own thresholds, with hysteresis.
  if (r.temperature_c) {
    int t = *r.temperature_c;
    int slowdown = Slowdown(r), shutdown = Shutdown(r);
    int level = t >= shutdown ? 2 : t >= slowdown ? 1 : 0;
    if (level > slot.thermal_level) {
      bool critical = level == 2;
      HealthEvent e = NewEvent(
          slot, HEALTH_EVENT_TYPE_THERMAL, HEALTH_WATCH_SYSTEM_THERMAL,
          absl::StrCat("GPU ", gpu, ": temperature ", t, "°C reached the ",
                       critical ? "shutdown" : "slowdown", " threshold (",
                       critical ? shutdown : slowdown, "°C)"));
      auto& m = *e.mutable_metrics();
      m["temperature"] = absl::StrCat(t);
      m["threshold"] = critical ? "shutdown" : "slowdown";
      m["threshold_c"] = absl::StrCat(critical ? shutdown : slowdown);
      out.push_back(std::move(e));
      slot.thermal_level = level;
    } else if (level < slot.thermal_level) {
      int boundary = slot.thermal_level == 2 ? shutdown : slowdown;
      if (t <= boundary - options_.thermal_hysteresis_c)
        slot.thermal_level = level;
    }
  }
}

void GpuMonitor::DetectPcie(Slot& slot, const GpuReading& r,
                            std::vector<HealthEvent>& out) const {
  const int gpu = slot.device.index;
  // PCIe link training: width below its maximum is always wrong; generation
  // below its maximum only under load (idle GPUs slow their link on purpose).
  if (r.pcie_width_current && r.pcie_width_max && r.pcie_gen_current &&
      r.pcie_gen_max) {
    bool busy = r.utilization_gpu_percent.value_or(0) >=
                    options_.pcie_busy_utilization &&
                !(r.clock_event_reasons.value_or(0) & kClockEventGpuIdle);
    bool narrow =
        *r.pcie_width_current > 0 && *r.pcie_width_current < *r.pcie_width_max;
    bool slow = busy && *r.pcie_gen_current > 0 &&
                *r.pcie_gen_current < *r.pcie_gen_max;
    if (narrow || slow) {
      ++slot.pcie_bad_polls;
      if (slot.pcie_bad_polls >= options_.pcie_confirm_polls &&
          !slot.pcie_reported) {
        slot.pcie_reported = true;
        HealthEvent e = NewEvent(
            slot, HEALTH_EVENT_TYPE_PCIE, HEALTH_WATCH_SYSTEM_PCIE,
            absl::StrCat("GPU ", gpu, ": PCIe link degraded to Gen",
                         *r.pcie_gen_current, " x", *r.pcie_width_current,
                         " (maximum Gen", *r.pcie_gen_max, " x",
                         *r.pcie_width_max, ")"));
        auto& m = *e.mutable_metrics();
        m["pcie_link_gen"] = absl::StrCat(*r.pcie_gen_current);
        m["pcie_link_gen_max"] = absl::StrCat(*r.pcie_gen_max);
        m["pcie_link_width"] = absl::StrCat(*r.pcie_width_current);
        m["pcie_link_width_max"] = absl::StrCat(*r.pcie_width_max);
        out.push_back(std::move(e));
      }
    } else {
      slot.pcie_bad_polls = 0;
      // Re-armed only by a link back at full speed and width, so a degraded
      // GPU alternating between idle and busy does not report every time.
      if (*r.pcie_gen_current == *r.pcie_gen_max &&
          *r.pcie_width_current == *r.pcie_width_max) {
        slot.pcie_reported = false;
      }
    }
  }
}

void GpuMonitor::DetectNvLinks(Slot& slot, const GpuReading& r,
                               std::vector<HealthEvent>& out) const {
  // NVLink: counters count since the driver loaded and old replays are
  // routine, so the first reading is the baseline; later rises are events.
  for (size_t i = 0; i < r.nvlinks.size(); ++i) {
    const NvLinkReading& l = r.nvlinks[i];
    // Links come in the same order every poll: look at the same place first.
    NvLinkReading* prev = nullptr;
    if (i < slot.links.size() && slot.links[i].link == l.link) {
      prev = &slot.links[i];
    } else {
      for (NvLinkReading& p : slot.links) {
        if (p.link == l.link) {
          prev = &p;
          break;
        }
      }
    }
    if (prev == nullptr) {  // the baseline
      if (slot.links.empty()) slot.links.reserve(r.nvlinks.size());
      slot.links.push_back(l);
      continue;
    }
    if (SameLink(*prev, l)) continue;  // nothing new: the common case
    LinkEvents(slot, *prev, l, out);
    // Keep counters across readings that lack them.
    NvLinkReading merged = l;
    const NvLinkReading& p = *prev;
    if (!merged.replay_errors) merged.replay_errors = p.replay_errors;
    if (!merged.recovery_errors) merged.recovery_errors = p.recovery_errors;
    if (!merged.crc_flit_errors) merged.crc_flit_errors = p.crc_flit_errors;
    if (!merged.crc_data_errors) merged.crc_data_errors = p.crc_data_errors;
    *prev = merged;
  }
}

void GpuMonitor::LinkEvents(const Slot& slot, const NvLinkReading& p,
                            const NvLinkReading& l,
                            std::vector<HealthEvent>& out) const {
  const int gpu = slot.device.index;
  if (p.active && !l.active) {
    HealthEvent e =
        NewEvent(slot, HEALTH_EVENT_TYPE_NVLINK, HEALTH_WATCH_SYSTEM_NVLINK,
                 absl::StrCat("GPU ", gpu, ": NVLink ", l.link, " went down"));
    (*e.mutable_metrics())["link_id"] = absl::StrCat(l.link);
    (*e.mutable_metrics())["link_state"] = "inactive";
    out.push_back(std::move(e));
  }
  std::vector<std::string> parts;
  std::map<std::string, std::string> metrics;
  auto rise = [&](const char* key, const char* words,
                  const std::optional<uint64_t>& now,
                  const std::optional<uint64_t>& before) {
    if (!now || !before || *now <= *before) return;
    uint64_t d = *now - *before;
    parts.push_back(absl::StrCat(d, " new ", words));
    metrics[key] = absl::StrCat(d);
  };
  rise("replay_errors", "replay errors", l.replay_errors, p.replay_errors);
  rise("recovery_errors", "recovery errors", l.recovery_errors,
       p.recovery_errors);
  rise("crc_flit_errors", "CRC flit errors", l.crc_flit_errors,
       p.crc_flit_errors);
  rise("crc_data_errors", "CRC data errors", l.crc_data_errors,
       p.crc_data_errors);
  if (!parts.empty()) {
    HealthEvent e =
        NewEvent(slot, HEALTH_EVENT_TYPE_NVLINK, HEALTH_WATCH_SYSTEM_NVLINK,
                 absl::StrCat("GPU ", gpu, ": NVLink ", l.link, ": ",
                              absl::StrJoin(parts, ", ")));
    auto& m = *e.mutable_metrics();
    m["link_id"] = absl::StrCat(l.link);
    for (auto& [k, v] : metrics) m[k] = v;
    out.push_back(std::move(e));
  }
}

HealthEvent GpuMonitor::XidEvent(const ::navarch::agent::XidEvent& xid) const {
  absl::MutexLock lock(&mu_);
  Slot unknown;
  unknown.device.index = -1;
  const Slot* slot = FindByUuid(xid.gpu_uuid);
  if (slot == nullptr && xid.gpu_uuid.empty() && xid.gpu_index >= 0 &&
      xid.gpu_index < static_cast<int>(slots_.size())) {
    slot = &slots_[xid.gpu_index];
  }
  if (slot == nullptr) {
    unknown.device.uuid = xid.gpu_uuid;
    slot = &unknown;
  }
  absl::string_view what = XidDescription(xid.code);
  HealthEvent e = NewEvent(
      *slot, HEALTH_EVENT_TYPE_XID, HEALTH_WATCH_SYSTEM_DRIVER,
      xid.code == 0
          ? absl::StrCat("GPU ", slot->device.index, ": XID of unknown code")
          : absl::StrCat("GPU ", slot->device.index, ": XID ", xid.code,
                         what.empty() ? "" : ": ", what));
  auto& m = *e.mutable_metrics();
  m["xid_code"] = absl::StrCat(xid.code);
  m["source"] = "nvml";
  if (!slot->device.pci_bus_id.empty())
    m["pci_bus_id"] = slot->device.pci_bus_id;
  return e;
}

HealthEvent GpuMonitor::XidEvent(const XidLine& xid) const {
  absl::MutexLock lock(&mu_);
  Slot unknown;
  unknown.device.index = -1;
  const Slot* slot = &unknown;
  if (xid.address) {
    for (const Slot& s : slots_) {
      auto a = ParsePciAddress(s.device.pci_bus_id);
      if (a && a->SameDevice(*xid.address)) {
        slot = &s;
        break;
      }
    }
  }
  std::string text =
      xid.text.empty() ? std::string(XidDescription(xid.code)) : xid.text;
  HealthEvent e =
      NewEvent(*slot, HEALTH_EVENT_TYPE_XID, HEALTH_WATCH_SYSTEM_DRIVER,
               absl::StrCat("XID ", xid.code, " on PCI ", xid.pci,
                            text.empty() ? "" : ": ", text));
  auto& m = *e.mutable_metrics();
  m["xid_code"] = absl::StrCat(xid.code);
  m["source"] = "kmsg";
  m["pci_bus_id"] =
      slot->device.pci_bus_id.empty() ? xid.pci : slot->device.pci_bus_id;
  if (!xid.pid.empty()) m["pid"] = xid.pid;
  if (!xid.process_name.empty()) m["process_name"] = xid.process_name;
  return e;
}

std::vector<GPUMetrics> GpuMonitor::Metrics() const {
  absl::MutexLock lock(&mu_);
  std::vector<GPUMetrics> out;
  for (const Slot& s : slots_) {
    if (!s.last || s.lost || !s.error.ok()) continue;
    const GpuReading& r = *s.last;
    GPUMetrics m;
    m.set_gpu_index(s.device.index);
    m.set_temperature(r.temperature_c.value_or(0));
    m.set_power_usage(
        static_cast<int32_t>(std::lround(r.power_watts.value_or(0))));
    m.set_utilization_percent(r.utilization_gpu_percent.value_or(0));
    m.set_memory_used(r.memory_used_bytes.value_or(0));
    out.push_back(std::move(m));
  }
  return out;
}

std::vector<std::optional<GpuReading>> GpuMonitor::LastReadings() const {
  absl::MutexLock lock(&mu_);
  std::vector<std::optional<GpuReading>> out;
  for (const Slot& s : slots_)
    out.push_back(s.lost || !s.error.ok() ? std::nullopt : s.last);
  return out;
}

HealthCheckResult GpuMonitor::BootCheck() const {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_.Now();
  if (!started_) {
    return Check("boot", HEALTH_STATUS_UNHEALTHY,
                 absl::StrCat("GPU initialization failed (", backend_.Name(),
                              "): ", start_error_.message()),
                 now);
  }
  if (slots_.empty())
    return Check("boot", HEALTH_STATUS_UNHEALTHY, "no GPUs detected", now);
  HealthCheckResult r = Check(
      "boot", HEALTH_STATUS_HEALTHY,
      absl::StrCat(slots_.size(), " GPUs detected and accessible at start"),
      now);
  auto& d = *r.mutable_details();
  d["gpus"] = absl::StrCat(slots_.size());
  d["backend"] = backend_.Name();
  if (!system_.driver_version.empty())
    d["driver_version"] = system_.driver_version;
  if (!system_.cuda_version.empty()) d["cuda_version"] = system_.cuda_version;
  return r;
}

HealthCheckResult GpuMonitor::GpuCheck() const {
  absl::MutexLock lock(&mu_);
  absl::Time now = clock_.Now();
  if (!started_) {
    return Check("gpu", HEALTH_STATUS_UNHEALTHY,
                 absl::StrCat(backend_.Name(),
                              " is not available: ", start_error_.message()),
                 now);
  }
  if (!driver_error_.ok()) {
    return Check("gpu", HEALTH_STATUS_UNHEALTHY,
                 absl::StrCat(backend_.Name(),
                              " does not answer: ", driver_error_.message()),
                 now);
  }
  std::vector<std::string> unhealthy, degraded;
  int present = 0;
  for (const Slot& s : slots_) {
    if (s.lost) {
      unhealthy.push_back(absl::StrCat("GPU ", s.device.index, " (",
                                       s.device.uuid,
                                       ") has fallen off the bus"));
      continue;
    }
    if (!s.error.ok()) {
      unhealthy.push_back(absl::StrCat(
          "GPU ", s.device.index, " does not answer: ", s.error.message()));
      continue;
    }
    ++present;
    if (s.last && s.last->temperature_c &&
        *s.last->temperature_c >= Slowdown(*s.last)) {
      degraded.push_back(absl::StrCat(
          "GPU ", s.device.index, " temperature high: ", *s.last->temperature_c,
          "°C (slowdown at ", Slowdown(*s.last), "°C)"));
    }
  }
  HealthCheckResult r;
  if (!unhealthy.empty()) {
    r = Check("gpu", HEALTH_STATUS_UNHEALTHY, absl::StrJoin(unhealthy, "; "),
              now);
  } else if (!degraded.empty()) {
    r = Check("gpu", HEALTH_STATUS_DEGRADED, absl::StrJoin(degraded, "; "),
              now);
  } else {
    r = Check("gpu", HEALTH_STATUS_HEALTHY,
              absl::StrCat("all ", slots_.size(), " GPUs healthy"), now);
  }
  (*r.mutable_details())["gpus_expected"] = absl::StrCat(slots_.size());
  (*r.mutable_details())["gpus_answering"] = absl::StrCat(present);
  return r;
}

SweepResult GpuMonitor::Sweep() {
  SweepResult out;
  std::vector<GpuDevice> inventory = Inventory();
  if (!started()) {
    out.passed = false;
    out.problems.push_back(absl::StrCat(backend_.Name(), " is not available"));
    return out;
  }
  auto count = backend_.DeviceCount();
  if (!count.ok()) {
    out.passed = false;
    out.problems.push_back(std::string(count.status().message()));
    return out;
  }
  std::vector<bool> found(inventory.size(), false);
  for (int i = 0; i < *count; ++i) {
    auto d = backend_.Device(i);
    if (!d.ok()) {
      out.problems.push_back(
          absl::StrCat("GPU at index ", i, ": ", d.status().message()));
      continue;
    }
    auto it =
        std::find_if(inventory.begin(), inventory.end(),
                     [&](const GpuDevice& g) { return g.uuid == d->uuid; });
    int gpu = it == inventory.end() ? i : it->index;
    if (it != inventory.end()) found[it - inventory.begin()] = true;
    ++out.gpus_checked;
    auto r = backend_.Read(i);
    if (!r.ok()) {
      out.problems.push_back(
          absl::StrCat("GPU ", gpu, ": ", r.status().message()));
      continue;
    }
    auto problem = [&](std::string what) {
      out.problems.push_back(absl::StrCat("GPU ", gpu, ": ", what));
    };
    if (r->ecc_uncorrected.value_or(0) > 0) {
      problem(absl::StrCat(*r->ecc_uncorrected, " uncorrectable ECC error(s)"));
    }
    if (r->remap_failure.value_or(false)) problem("row remapping failed");
    if (r->remap_pending.value_or(false))
      problem("row remapping pending (reset needed)");
    if (r->temperature_c && *r->temperature_c >= Slowdown(*r)) {
      problem(absl::StrCat("temperature ", *r->temperature_c,
                           "°C at or above slowdown (", Slowdown(*r), "°C)"));
    }
    if (r->pcie_width_current && r->pcie_width_max &&
        *r->pcie_width_current > 0 &&
        *r->pcie_width_current < *r->pcie_width_max) {
      problem(absl::StrCat("PCIe link x", *r->pcie_width_current, " of x",
                           *r->pcie_width_max));
    }
    for (const NvLinkReading& l : r->nvlinks) {
      if (!l.active) problem(absl::StrCat("NVLink ", l.link, " is down"));
    }
    if (r->clock_event_reasons &&
        (*r->clock_event_reasons &
         (kClockEventHwSlowdown | kClockEventHwThermalSlowdown |
          kClockEventHwPowerBrakeSlowdown))) {
      problem(absl::StrCat("hardware slowdown active (clock event reasons ",
                           Hex(*r->clock_event_reasons), ")"));
    }
  }
  for (size_t i = 0; i < inventory.size(); ++i) {
    if (!found[i]) {
      out.problems.push_back(absl::StrCat("GPU ", inventory[i].index, " (",
                                          inventory[i].uuid, ") is missing"));
    }
  }
  out.passed = out.problems.empty();
  return out;
}

}  // namespace navarch::agent
