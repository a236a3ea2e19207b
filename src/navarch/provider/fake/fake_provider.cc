#include "navarch/provider/fake/fake_provider.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace navarch {

FakeProvider::FakeProvider(Clock& clock, FakeProviderOptions options)
    : clock_(clock), options_(std::move(options)), rng_(options_.seed) {}

FakeProvider::~FakeProvider() {
  absl::MutexLock lock(&mu_);
  for (const auto& [id, timer] : timers_) clock_.Cancel(timer);
}

absl::StatusOr<ProviderInstance> FakeProvider::Provision(
    const ProvisionRequest& request) {
  PassGate(request);
  ProviderInstance instance;
  {
    absl::MutexLock lock(&mu_);
    ++provision_calls_;
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
    int live = 0;
    for (const auto& [id, i] : instances_) {
      if (i.state != ProviderInstanceState::kTerminated) ++live;
    }
    if (options_.capacity > 0 && live >= options_.capacity) {
      return absl::ResourceExhaustedError(
          absl::StrCat(options_.name, ": no capacity (", live, " of ",
                       options_.capacity, " instances in use)"));
    }
    if (options_.failure_probability > 0 &&
        std::uniform_real_distribution<double>(0, 1)(rng_) <
            options_.failure_probability) {
      return absl::UnavailableError(
          absl::StrCat(options_.name, ": injected provisioning failure"));
    }
    instance.id = absl::StrCat(options_.name, "-", next_id_++);
    instance.provider = options_.name;
    instance.region = request.region;
    instance.zone = request.zone;
    instance.instance_type = request.instance_type;
    instance.state = ProviderInstanceState::kProvisioning;
    instance.ip_address = absl::StrCat("10.0.0.", next_id_ - 1);
    instance.gpu_count = options_.gpu_count;
    instance.gpu_type = options_.gpu_type;
    instance.labels = request.labels;
    instance.created_at = clock_.Now();
    instances_[instance.id] = instance;
    by_token_[request.idempotency_token] = instance.id;
    if (options_.provisioning_delay > absl::ZeroDuration()) {
      const std::string id = instance.id;
      timers_[id] = clock_.Schedule(options_.provisioning_delay,
                                    [this, id] { MarkRunning(id); });
      return instance;
    }
  }
  MarkRunning(instance.id);
  absl::MutexLock lock(&mu_);
  return instances_.at(instance.id);
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
  int live = 0;
  for (const auto& [id, i] : instances_) {
    if (i.state != ProviderInstanceState::kTerminated) ++live;
  }
  return live;
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
