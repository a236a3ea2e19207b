#include "navarch/agent/gpu/fake_backend.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "navarch/base/ids.h"

namespace navarch::agent {
namespace {

// The PCI buses of the eight GPUs of an HGX H100 board, in NVML order.
constexpr uint32_t kHgxBuses[] = {0x18, 0x2a, 0x3a, 0x5d,
                                  0x9a, 0xab, 0xba, 0xdb};

// "%08x:%02X:00.0" (domain, bus), by hand: a simulated fleet builds
// backends by the thousand and StrFormat was most of the cost.
std::string PciBusId(uint32_t domain, uint32_t bus) {
  static constexpr char kLower[] = "0123456789abcdef";
  static constexpr char kUpper[] = "0123456789ABCDEF";
  std::string out = "00000000:00:00.0";
  for (int i = 7; i >= 0; --i, domain >>= 4) out[i] = kLower[domain & 0xf];
  out[9] = kUpper[(bus >> 4) & 0xf];
  out[10] = kUpper[bus & 0xf];
  return out;
}

constexpr int64_t kMiB = 1024 * 1024;

}  // namespace

FakeGpuBackend::Model FakeGpuBackend::ModelFor(const std::string& name) {
  // Figures from nvidia-smi on real machines (the H200 row is the fixture in
  // shared/fixtures/gpu/h200); thresholds are what the driver reports as
  // slowdown and shutdown temperatures.
  static const Model kModels[] = {
      {"NVIDIA H100 80GB HBM3", 81559 * kMiB, 70, 700, 32, 68, 89, 92, 5, 18},
      {"NVIDIA H200", 143771 * kMiB, 87, 700, 38, 70, 89, 95, 5, 18},
      {"NVIDIA A100-SXM4-80GB", 81920 * kMiB, 60, 400, 34, 65, 89, 92, 4, 12},
      {"NVIDIA A100-SXM4-40GB", 40960 * kMiB, 55, 400, 34, 65, 89, 92, 4, 12},
      {"NVIDIA L4", 23034 * kMiB, 16, 72, 35, 70, 89, 95, 4, 0},
      {"NVIDIA A10", 23028 * kMiB, 20, 150, 35, 72, 89, 95, 4, 0},
  };
  for (const Model& m : kModels) {
    if (m.name == name) return m;
  }
  Model m = kModels[0];
  m.name = name;
  return m;
}

FakeGpuBackend::FakeGpuBackend(FakeGpuOptions options)
    : options_(std::move(options)),
      model_(ModelFor(options_.model)),
      rng_(options_.seed) {
  absl::MutexLock lock(&mu_);
  int n = std::max(0, options_.gpu_count);
  gpus_.resize(n);
  for (int i = 0; i < n; ++i) {
    Gpu& g = gpus_[i];
    g.device.index = i;
    g.device.uuid = absl::StrCat("GPU-", NewUuid(rng_));
    g.device.name = model_.name;
    g.device.pci_bus_id =
        PciBusId(static_cast<uint32_t>(i / 8), kHgxBuses[i % 8]);
    g.device.memory_total_bytes = model_.memory_bytes;
    ResetGpu(g);
    // Start each GPU somewhere different, as a running job would.
    g.utilization = std::uniform_real_distribution<double>(0, 100)(rng_);
    g.temperature = model_.idle_temp +
                    (model_.load_temp - model_.idle_temp) * g.utilization / 100;
    g.power = model_.idle_watts + (model_.max_watts * 0.8 - model_.idle_watts) *
                                      g.utilization / 100;
    g.memory_used = model_.memory_bytes *
                    std::uniform_real_distribution<double>(0.05, 0.9)(rng_);
  }
}

FakeGpuBackend::FakeGpuBackend(const FakeGpuBackend& other, uint64_t seed,
                               const std::vector<std::string>& uuids)
    : options_([&] {
        FakeGpuOptions o = other.options_;
        o.seed = seed;
        return o;
      }()),
      model_(other.model_),
      rng_(seed) {
  absl::MutexLock theirs(&other.mu_);
  absl::MutexLock lock(&mu_);
  gpus_ = other.gpus_;
  xids_ = other.xids_;
  initialized_ = other.initialized_;
  nvml_failing_ = other.nvml_failing_;
  init_failure_ = other.init_failure_;
  for (size_t i = 0; i < uuids.size() && i < gpus_.size(); ++i)
    gpus_[i].device.uuid = uuids[i];
}

void FakeGpuBackend::ResetGpu(Gpu& g) {
  g.pinned_temperature.reset();
  g.ecc_corrected = 0;
  g.ecc_uncorrected = 0;
  g.remap_pending = false;
  g.remap_failure = false;
  g.clock_event_reasons = kClockEventGpuIdle;
  g.pcie_gen = model_.pcie_gen;
  g.pcie_width = 16;
  g.nvlinks.clear();
  g.nvlinks.reserve(model_.nvlinks);
  for (int l = 0; l < model_.nvlinks; ++l) {
    NvLinkReading link;
    link.link = l;
    link.active = true;
    link.replay_errors = 0;
    link.recovery_errors = 0;
    link.crc_flit_errors = 0;
    link.crc_data_errors = 0;
    g.nvlinks.push_back(link);
  }
  g.lost = false;
  g.removed = false;
  g.failing = false;
}

absl::Status FakeGpuBackend::Init() {
  absl::MutexLock lock(&mu_);
  if (!init_failure_.ok()) return init_failure_;
  initialized_ = true;
  return absl::OkStatus();
}

absl::Status FakeGpuBackend::CheckAlive() const {
  if (!initialized_)
    return absl::FailedPreconditionError("fake GPUs: Init() was not called");
  if (nvml_failing_)
    return absl::UnavailableError("fake NVML: Unknown Error (NVML error 999)");
  return absl::OkStatus();
}

absl::StatusOr<GpuSystemInfo> FakeGpuBackend::SystemInfo() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckAlive(); !s.ok()) return s;
  return GpuSystemInfo{options_.driver_version, options_.cuda_version};
}

absl::StatusOr<int> FakeGpuBackend::DeviceCount() {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckAlive(); !s.ok()) return s;
  return static_cast<int>(std::count_if(
      gpus_.begin(), gpus_.end(), [](const Gpu& g) { return !g.removed; }));
}

int FakeGpuBackend::BootIndex(int index) const {
  int seen = 0;
  for (size_t i = 0; i < gpus_.size(); ++i) {
    if (gpus_[i].removed) continue;
    if (seen++ == index) return static_cast<int>(i);
  }
  return -1;
}

absl::StatusOr<GpuDevice> FakeGpuBackend::Device(int index) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckAlive(); !s.ok()) return s;
  int b = BootIndex(index);
  if (b < 0)
    return absl::NotFoundError(absl::StrCat("no GPU at index ", index));
  // Inventory stays readable on a lost GPU in NVML only until it is touched;
  // the UUID is what the monitor needs to name it, so keep answering.
  if (gpus_[b].failing) {
    return absl::UnavailableError(
        absl::StrCat("GPU ", index, " does not answer"));
  }
  GpuDevice d = gpus_[b].device;
  d.index = index;
  return d;
}

void FakeGpuBackend::Step(Gpu& g) {
  // Utilisation wanders like a training job's (phases of load and idle);
  // temperature and power follow it with some lag and noise.
  std::normal_distribution<double> noise(0, 1);
  g.utilization = std::clamp(g.utilization + 8 * noise(rng_), 0.0, 100.0);
  double target_temp =
      model_.idle_temp +
      (model_.load_temp - model_.idle_temp) * g.utilization / 100;
  g.temperature += 0.3 * (target_temp - g.temperature) + 0.5 * noise(rng_);
  g.temperature = std::clamp<double>(g.temperature, model_.idle_temp - 5,
                                     model_.load_temp + 5);
  double target_power =
      model_.idle_watts +
      (model_.max_watts * 0.8 - model_.idle_watts) * g.utilization / 100;
  g.power = std::clamp(0.5 * g.power + 0.5 * target_power + 5 * noise(rng_),
                       model_.idle_watts * 0.8, model_.max_watts);
  g.memory_used =
      std::clamp(g.memory_used + model_.memory_bytes * 0.01 * noise(rng_), 0.0,
                 static_cast<double>(model_.memory_bytes));
}

absl::StatusOr<GpuReading> FakeGpuBackend::Read(int index) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckAlive(); !s.ok()) return s;
  int b = BootIndex(index);
  if (b < 0)
    return absl::NotFoundError(absl::StrCat("no GPU at index ", index));
  Gpu& g = gpus_[b];
  if (g.lost) {
    return absl::NotFoundError(
        absl::StrCat("reading GPU ", index,
                     ": GPU is lost (NVML error 15); the GPU has "
                     "fallen off the bus"));
  }
  if (g.failing)
    return absl::UnavailableError(
        absl::StrCat("GPU ", index, " does not answer"));
  Step(g);
  GpuReading r;
  r.index = index;
  r.temperature_c = g.pinned_temperature.value_or(
      static_cast<int>(std::lround(g.temperature)));
  r.slowdown_temperature_c = model_.slowdown_temp;
  r.shutdown_temperature_c = model_.shutdown_temp;
  r.power_watts = std::round(g.power * 1000) / 1000;
  r.utilization_gpu_percent = static_cast<int>(std::lround(g.utilization));
  r.utilization_memory_percent =
      static_cast<int>(std::lround(g.utilization * 0.6));
  r.memory_used_bytes = static_cast<int64_t>(g.memory_used);
  r.memory_total_bytes = model_.memory_bytes;
  r.ecc_corrected = g.ecc_corrected;
  r.ecc_uncorrected = g.ecc_uncorrected;
  r.remapped_rows_correctable = 0;
  r.remapped_rows_uncorrectable = g.remap_failure || g.remap_pending ? 1 : 0;
  r.remap_pending = g.remap_pending;
  r.remap_failure = g.remap_failure;
  uint64_t reasons = g.clock_event_reasons;
  // An idle GPU says so; a busy one does not, unless a fault forced reasons.
  if (reasons == kClockEventGpuIdle && g.utilization >= 1) reasons = 0;
  r.clock_event_reasons = reasons;
  r.pcie_gen_current = g.pcie_gen;
  r.pcie_gen_max = model_.pcie_gen;
  r.pcie_width_current = g.pcie_width;
  r.pcie_width_max = 16;
  r.nvlinks = g.nvlinks;
  return r;
}

absl::StatusOr<std::vector<XidEvent>> FakeGpuBackend::WaitXid(
    absl::Duration timeout) {
  absl::MutexLock lock(&mu_);
  if (absl::Status s = CheckAlive(); !s.ok()) return s;
  if (xids_.empty() && timeout > absl::ZeroDuration()) {
    auto pending = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
      return !xids_.empty();
    };
    mu_.AwaitWithTimeout(absl::Condition(&pending), timeout);
  }
  std::vector<XidEvent> out(xids_.begin(), xids_.end());
  xids_.clear();
  return out;
}

// ---- Faults

FakeGpuBackend::Gpu* FakeGpuBackend::At(int gpu) {
  if (gpu < 0 || gpu >= static_cast<int>(gpus_.size())) return nullptr;
  return &gpus_[gpu];
}

void FakeGpuBackend::InjectXid(int gpu, int code) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  // NVML names the GPU by its current index.
  int index = 0;
  for (int i = 0; i < gpu; ++i) index += gpus_[i].removed ? 0 : 1;
  xids_.push_back(XidEvent{g.removed ? -1 : index, g.device.uuid, code});
}

void FakeGpuBackend::SetTemperature(int gpu, int celsius) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.pinned_temperature = celsius;
}

void FakeGpuBackend::ClearTemperature(int gpu) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.pinned_temperature.reset();
}

void FakeGpuBackend::AddEccErrors(int gpu, uint64_t corrected,
                                  uint64_t uncorrected) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.ecc_corrected += corrected;
  g.ecc_uncorrected += uncorrected;
}

void FakeGpuBackend::SetRowRemap(int gpu, bool pending, bool failure) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.remap_pending = pending;
  g.remap_failure = failure;
}

void FakeGpuBackend::SetClockEventReasons(int gpu, uint64_t reasons) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.clock_event_reasons = reasons;
}

void FakeGpuBackend::AddNvLinkErrors(int gpu, int link, uint64_t replay,
                                     uint64_t recovery, uint64_t crc) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  if (link < 0 || link >= static_cast<int>(g.nvlinks.size())) return;
  NvLinkReading& l = g.nvlinks[link];
  l.replay_errors = l.replay_errors.value_or(0) + replay;
  l.recovery_errors = l.recovery_errors.value_or(0) + recovery;
  l.crc_flit_errors = l.crc_flit_errors.value_or(0) + crc;
}

void FakeGpuBackend::SetNvLinkActive(int gpu, int link, bool active) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  if (link < 0 || link >= static_cast<int>(g.nvlinks.size())) return;
  g.nvlinks[link].active = active;
}

void FakeGpuBackend::SetPcieLink(int gpu, int generation, int width) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.pcie_gen = generation;
  g.pcie_width = width;
}

void FakeGpuBackend::LoseGpu(int gpu) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.lost = true;
}

void FakeGpuBackend::RemoveGpu(int gpu) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.removed = true;
}

void FakeGpuBackend::RestoreGpu(int gpu) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.lost = false;
  g.removed = false;
}

void FakeGpuBackend::SetGpuError(int gpu, bool failing) {
  absl::MutexLock lock(&mu_);
  Gpu* gp = At(gpu);
  if (gp == nullptr) return;
  Gpu& g = *gp;
  g.failing = failing;
}

void FakeGpuBackend::SetNvmlFailure(bool failing) {
  absl::MutexLock lock(&mu_);
  nvml_failing_ = failing;
}

void FakeGpuBackend::SetInitFailure(absl::Status status) {
  absl::MutexLock lock(&mu_);
  init_failure_ = std::move(status);
}

void FakeGpuBackend::ClearFaults() {
  absl::MutexLock lock(&mu_);
  for (Gpu& g : gpus_) ResetGpu(g);
  xids_.clear();
  nvml_failing_ = false;
  init_failure_ = absl::OkStatus();
}

}  // namespace navarch::agent
