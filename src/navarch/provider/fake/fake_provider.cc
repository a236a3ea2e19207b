#include "navarch/provider/fake/fake_provider.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {

FakeProvider::FakeProvider(Clock& clock, FakeProviderOptions options)
    : clock_(clock),
      options_(std::move(options)),
      rng_(options_.seed),
      quota_(options_.quota),
      regions_(options_.regions) {}

FakeProvider::~FakeProvider() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, timer] : timers_) clock_.Cancel(timer);
}

absl::StatusOr<ProviderInstance> FakeProvider::Provision(
    const ProvisionRequest& request) {
  PassGate(request);
  const absl::Duration lag = SpendLatency();
  std::string id;
  {
    absl::MutexLock lock(&mu_);
    ++provision_calls_;
    stats_.latency += options_.call_latency;
    absl::StatusOr<ProviderInstance> instance = Create(request, lag);
    if (!instance.ok()) {
      CountError(instance.status());
      return instance.status();
    }
    // Replayed, or RUNNING only after a delay: as it is now.
    if (instance->state != ProviderInstanceState::kProvisioning ||
        timers_.contains(instance->id)) {
      return instance;
    }
    id = instance->id;
  }
  MarkRunning(id);
  absl::MutexLock lock(&mu_);
  return instances_.at(id);
}

absl::StatusOr<ProviderInstance> FakeProvider::Create(
    const ProvisionRequest& request, absl::Duration lag) {
  if (request.idempotency_token.empty()) {
    return absl::InvalidArgumentError("idempotency_token is required");
  }
  if (auto it = by_token_.find(request.idempotency_token);
      it != by_token_.end()) {
    return instances_.at(it->second);
  }
  if (!scripted_.empty()) {
    absl::Status s = std::move(scripted_.front());
    scripted_.pop_front();
    if (!s.ok()) return s;
  }
  const int live = LiveIn("", nullptr);
  if (options_.capacity > 0 && live >= options_.capacity) {
    return absl::ResourceExhaustedError(
        absl::StrCat(options_.name, ": no capacity (", live, " of ",
                     options_.capacity, " instances in use)"));
  }
  if (absl::Status s = CheckCaps(request); !s.ok()) return s;
  if (options_.failure_probability > 0 &&
      std::uniform_real_distribution<double>(0, 1)(rng_) <
          options_.failure_probability) {
    return absl::UnavailableError(
        absl::StrCat(options_.name, ": injected provisioning failure"));
  }
  ProviderInstance instance;
  instance.id = absl::StrCat(options_.name, "-", next_id_++);
  instance.provider = options_.name;
  instance.region = request.region;
  instance.zone = request.zone;
  instance.instance_type = request.instance_type;
  instance.state = ProviderInstanceState::kProvisioning;
  // Loopback, as every address a fake hands out: whatever a test does with
  // it (an SSH bootstrap dials it) stays on this machine.
  const uint64_t n = next_id_ - 1;
  instance.ip_address =
      absl::StrCat("127.", (n >> 16) & 255, ".", (n >> 8) & 255, ".", n & 255);
  instance.gpu_count = options_.gpu_count;
  instance.gpu_type = options_.gpu_type;
  instance.labels = request.labels;
  instance.created_at = clock_.Now() + lag;
  instances_[instance.id] = instance;
  by_token_[request.idempotency_token] = instance.id;
  ++stats_.provisioned;
  if (const absl::Duration delay = lag + options_.provisioning_delay;
      delay > absl::ZeroDuration()) {
    const std::string id = instance.id;
    timers_[id] = clock_.Schedule(delay, [this, id] { MarkRunning(id); });
  }
  return instance;
}

absl::Status FakeProvider::CheckCaps(const ProvisionRequest& request) {
  const std::string& name = options_.name;
  if (quota_ >= 0) {
    if (const int live = LiveIn("", nullptr); live >= quota_) {
      return CloudError(
          absl::StatusCode::kResourceExhausted, name,
          {CloudErrorScope::kProvider, "QUOTA_EXCEEDED", "", "", true},
          absl::StrCat("instance quota of ", quota_, " reached (", live,
                       " in use)"));
    }
  }
  auto it = regions_.find(request.region);
  if (it == regions_.end()) return absl::OkStatus();
  const FakeRegionOptions& r = it->second;
  const int live = LiveIn(request.region, nullptr);
  if (r.quota >= 0 && live >= r.quota) {
    return CloudError(
        absl::StatusCode::kResourceExhausted, name,
        {CloudErrorScope::kRegion, "QUOTA_EXCEEDED", request.region, "", true},
        absl::StrCat("regional instance quota of ", r.quota, " reached (", live,
                     " in use)"));
  }
  if (r.capacity >= 0 && live >= r.capacity) {
    return CloudError(absl::StatusCode::kResourceExhausted, name,
                      {CloudErrorScope::kRegion, "InsufficientInstanceCapacity",
                       request.region, "", false},
                      absl::StrCat("no capacity in the region (", live, " of ",
                                   r.capacity, " in use)"));
  }
  auto z = r.zones.find(request.zone);
  if (request.zone.empty() || z == r.zones.end() || z->second < 0) {
    return absl::OkStatus();
  }
  if (const int in_zone = LiveIn(request.region, &request.zone);
      in_zone >= z->second) {
    return CloudError(absl::StatusCode::kResourceExhausted, name,
                      {CloudErrorScope::kZone, "ZONE_RESOURCE_POOL_EXHAUSTED",
                       request.region, request.zone, false},
                      absl::StrCat("no capacity in the zone (", in_zone, " of ",
                                   z->second, " in use)"));
  }
  return absl::OkStatus();
}

int FakeProvider::LiveIn(const std::string& region, const std::string* zone) {
  int live = 0;
  for (const auto& [id, i] : instances_) {
    if (i.state == ProviderInstanceState::kTerminated) continue;
    if (!region.empty() && i.region != region) continue;
    if (zone != nullptr && i.zone != *zone) continue;
    ++live;
  }
  return live;
}

void FakeProvider::CountError(const absl::Status& status) {
  if (status.code() != absl::StatusCode::kResourceExhausted) {
    ++stats_.other_errors;
    return;
  }
  const std::optional<CloudErrorInfo> info = CloudErrorInfoOf(status);
  if (info && info->quota) {
    ++stats_.quota_errors;
  } else {
    ++stats_.capacity_errors;
  }
}

absl::Duration FakeProvider::SpendLatency() {
  const absl::Duration latency = options_.call_latency;
  if (latency <= absl::ZeroDuration()) return absl::ZeroDuration();
  const absl::Time before = clock_.Now();
  if (options_.wait) {
    options_.wait(latency);
  } else {
    absl::Notification done;
    clock_.Schedule(latency, [&done] { done.Notify(); });
    done.WaitForNotification();
  }
  const absl::Duration passed = clock_.Now() - before;
  return passed >= latency ? absl::ZeroDuration() : latency - passed;
}

void FakeProvider::PassGate(const ProvisionRequest& request) {
  std::function<void(const ProvisionRequest&)> gate;
  {
    absl::MutexLock lock(&mu_);
    gate = provision_gate_;
  }
  // Outside the lock: a gate that blocks (a slow cloud) holds up only this
  // call, not List or Terminate.
  if (gate) gate(request);
}

void FakeProvider::set_provision_gate(
    std::function<void(const ProvisionRequest&)> fn) {
  absl::MutexLock lock(&mu_);
  provision_gate_ = std::move(fn);
}

void FakeProvider::set_list_gate(std::function<void()> fn) {
  absl::MutexLock lock(&mu_);
  list_gate_ = std::move(fn);
}

void FakeProvider::MarkRunning(const std::string& id) {
  ProviderInstance copy;
  std::function<void(const ProviderInstance&)> fn;
  {
    absl::MutexLock lock(&mu_);
    timers_.erase(id);
    auto it = instances_.find(id);
    if (it == instances_.end() ||
        it->second.state != ProviderInstanceState::kProvisioning) {
      return;
    }
    it->second.state = ProviderInstanceState::kRunning;
    copy = it->second;
    fn = on_running_;
  }
  if (fn) fn(copy);
}

absl::Status FakeProvider::Terminate(const std::string& instance_id) {
  ProviderInstance copy;
  std::function<void(const ProviderInstance&)> fn;
  {
    absl::MutexLock lock(&mu_);
    if (!scripted_terminate_.empty()) {
      absl::Status s = std::move(scripted_terminate_.front());
      scripted_terminate_.pop_front();
      return s;
    }
    auto it = instances_.find(instance_id);
    if (it == instances_.end()) {
      return absl::NotFoundError(
          absl::StrCat("instance ", instance_id, " not found"));
    }
    if (it->second.state == ProviderInstanceState::kTerminated) {
      return absl::OkStatus();
    }
    if (auto t = timers_.find(instance_id); t != timers_.end()) {
      clock_.Cancel(t->second);
      timers_.erase(t);
    }
    it->second.state = ProviderInstanceState::kTerminated;
    copy = it->second;
    fn = on_terminated_;
  }
  if (fn) fn(copy);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ProviderInstance>> FakeProvider::List() {
  std::function<void()> gate;
  {
    absl::MutexLock lock(&mu_);
    gate = list_gate_;
  }
  if (gate) gate();  // Outside the lock, as Provision's.
  absl::MutexLock lock(&mu_);
  std::vector<ProviderInstance> out;
  for (const auto& [id, i] : instances_) {
    if (i.state != ProviderInstanceState::kTerminated) out.push_back(i);
  }
  return out;
}

absl::StatusOr<std::vector<InstanceTypeInfo>>
FakeProvider::ListInstanceTypes() {
  if (options_.instance_types.empty()) {
    return absl::UnimplementedError("fake provider lists no instance types");
  }
  return options_.instance_types;
}

void FakeProvider::FailNextProvision(absl::Status status) {
  absl::MutexLock lock(&mu_);
  scripted_.push_back(std::move(status));
}

void FakeProvider::FailNextTerminate(absl::Status status) {
  absl::MutexLock lock(&mu_);
  scripted_terminate_.push_back(std::move(status));
}

void FakeProvider::set_on_running(
    std::function<void(const ProviderInstance&)> fn) {
  absl::MutexLock lock(&mu_);
  on_running_ = std::move(fn);
}

void FakeProvider::set_on_terminated(
    std::function<void(const ProviderInstance&)> fn) {
  absl::MutexLock lock(&mu_);
  on_terminated_ = std::move(fn);
}

int FakeProvider::provision_calls() {
  absl::MutexLock lock(&mu_);
  return provision_calls_;
}

int FakeProvider::live_count() {
  absl::MutexLock lock(&mu_);
  return LiveIn("", nullptr);
}

FakeProviderStats FakeProvider::stats() {
  absl::MutexLock lock(&mu_);
  FakeProviderStats s = stats_;
  s.calls = provision_calls_;
  return s;
}

int FakeProvider::SetRegionCapacity(const std::string& region, int capacity) {
  absl::MutexLock lock(&mu_);
  return std::exchange(regions_[region].capacity, capacity);
}

int FakeProvider::SetZoneCapacity(const std::string& region,
                                  const std::string& zone, int capacity) {
  absl::MutexLock lock(&mu_);
  std::map<std::string, int>& zones = regions_[region].zones;
  auto [it, added] = zones.try_emplace(zone, -1);
  return std::exchange(it->second, capacity);
}

int FakeProvider::SetQuota(const std::string& region, int quota) {
  absl::MutexLock lock(&mu_);
  if (region.empty()) return std::exchange(quota_, quota);
  return std::exchange(regions_[region].quota, quota);
}

FakeProviderOptions FakeOptionsFromConfig(const ProviderConfig& config,
                                          uint64_t seed) {
  FakeProviderOptions options;
  options.name = config.name;
  if (config.gpu_count > 0) options.gpu_count = config.gpu_count;
  options.seed = seed;
  return options;
}

}  // namespace navarch
