#include "navarch/controlplane/provider_api.h"

#include <algorithm>
#include <set>
#include <thread>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/synchronization/mutex.h"
#include "navarch/provider/instance_types.h"

namespace navarch {

// What calls share with their threads and deadline timers. Held by
// shared_ptr: an abandoned call's thread may return after the ProviderApi is
// gone, and then touches only this.
struct ProviderApi::Shared {
  struct Waiting {
    Done<ListInstanceTypesResponse> done;
    TimerId timer = 0;
  };
  absl::Mutex mu;
  bool stopped ABSL_GUARDED_BY(mu) = false;
  int running ABSL_GUARDED_BY(mu) = 0;  // Provider threads not returned.
  uint64_t next_id ABSL_GUARDED_BY(mu) = 0;
  // Calls not answered yet.
  std::map<uint64_t, Waiting> waiting ABSL_GUARDED_BY(mu);

  // Answers call `id` unless it was answered already (deadline, Stop). With
  // `clock`, cancels the call's deadline timer.
  void Answer(uint64_t id, absl::StatusOr<ListInstanceTypesResponse> r,
              Clock* clock) {
    Waiting w;
    {
      absl::MutexLock lock(&mu);
      auto it = waiting.find(id);
      if (it == waiting.end()) return;
      w = std::move(it->second);
      waiting.erase(it);
    }
    if (clock != nullptr && w.timer != 0) clock->Cancel(w.timer);
    w.done(std::move(r));
  }
};

absl::Status ProvidersNotServed() {
  return absl::UnimplementedError(
      "this control plane does not serve the provider API");
}

ProviderInstanceType ToProviderInstanceType(const InstanceTypeInfo& info,
                                            ProviderType type) {
  ProviderInstanceType t;
  t.set_name(info.name);
  t.set_gpu_model(info.gpu_type);
  t.set_gpu_count(info.gpu_count);
  t.set_memory_gb(info.memory_gb);
  t.set_vcpus(info.vcpus);
  if (info.price_per_hour > 0) t.set_price_per_hour(info.price_per_hour);
  for (const std::string& r : info.regions) t.add_regions(r);
  t.set_available(info.available);
  for (const AbstractInstanceType& a : AbstractInstanceTypes()) {
    if (!info.name.empty() && ResolveInstanceType(a.name, type) == info.name) {
      t.add_abstract_types(std::string(a.name));
    }
  }
  return t;
}

ProviderApi::ProviderApi(const Config& config, const ProviderRegistry* registry,
                         PoolManager* pools, Clock& clock,
                         std::map<std::string, std::string> unavailable,
                         ProviderApiOptions options)
    : config_(config),
      registry_(registry),
      pools_(pools),
      clock_(clock),
      unavailable_(std::move(unavailable)),
      options_(options),
      shared_(std::make_shared<Shared>()) {}

ProviderApi::~ProviderApi() { Stop(); }

namespace {

// Why provider `name` (configured) cannot be asked; OK when it can.
absl::Status Availability(const std::string& name,
                          const ProviderRegistry* registry,
                          const std::map<std::string, std::string>& why) {
  if (registry == nullptr) {
    return absl::FailedPreconditionError(
        "not built: the control plane builds providers only when it manages "
        "pools, and no pool is configured");
  }
  if (auto it = why.find(name); it != why.end()) {
    return absl::FailedPreconditionError(it->second);
  }
  if (registry->Get(name) == nullptr) {
    return absl::FailedPreconditionError(
        "not built (the control plane's log says why)");
  }
  return absl::OkStatus();
}

int64_t CeilSeconds(absl::Duration d) {
  return absl::ToInt64Seconds(absl::Ceil(d, absl::Seconds(1)));
}

}  // namespace

absl::StatusOr<ListProvidersResponse> ProviderApi::ListProviders() {
  std::map<std::string, std::set<std::string>> pools_of;
  for (const auto& [pool, pc] : config_.pools) {
    for (const PoolProvider& pp : pc.providers) pools_of[pp.name].insert(pool);
  }
  std::vector<PoolStatus> statuses;
  if (pools_ != nullptr) statuses = pools_->ListPools();
  ListProvidersResponse out;
  for (const auto& [name, pc] : config_.providers) {
    ProviderInfo* p = out.add_providers();
    p->set_name(name);
    p->set_type(std::string(ProviderTypeName(pc.type)));
    for (const std::string& pool : pools_of[name]) p->add_pools(pool);
    const absl::Status available = Availability(name, registry_, unavailable_);
    p->set_available(available.ok());
    p->set_unavailable_reason(std::string(available.message()));
    for (const PoolStatus& s : statuses) {
      for (const ProviderSelector::BackoffEntry& b : s.provider_backoffs) {
        if (b.provider != name) continue;
        ProviderBackoff* o = p->add_backoffs();
        o->set_pool(s.name);
        o->set_region(b.region);
        o->set_zone(b.zone);
        o->set_remaining_seconds(CeilSeconds(b.left));
      }
    }
  }
  return out;
}

namespace {

struct Target {
  Provider* provider;
  ProviderType type;
};

absl::StatusOr<ListInstanceTypesResponse> ToResponse(
    const std::string& name, ProviderType type,
    absl::StatusOr<std::vector<InstanceTypeInfo>> types) {
  if (types.status().code() == absl::StatusCode::kUnimplemented) {
    // The provider cannot list types (fake without a list, local): not the
    // RPC being unimplemented, which clients read as an older server.
    return absl::FailedPreconditionError(absl::StrCat(
        "provider ", name,
        " cannot list instance types: ", types.status().message()));
  }
  const absl::StatusCode code = types.status().code();
  if (code == absl::StatusCode::kUnauthenticated ||
      code == absl::StatusCode::kPermissionDenied) {
    // The cloud refused the control plane's own credentials: not the
    // caller's, which these codes would say to every client (the CLI would
    // ask for a token, REST would send a 401 challenge).
    return absl::FailedPreconditionError(absl::StrCat(
        "provider ", name, ": the cloud refused the control plane's ",
        "credentials (", absl::StatusCodeToString(code),
        "): ", types.status().message()));
  }
  if (!types.ok()) return types.status();
  std::sort(types->begin(), types->end(),
            [](const InstanceTypeInfo& a, const InstanceTypeInfo& b) {
              return a.name < b.name;
            });
  ListInstanceTypesResponse resp;
  resp.set_provider(name);
  resp.set_type(std::string(ProviderTypeName(type)));
  for (const InstanceTypeInfo& t : *types) {
    *resp.add_instance_types() = ToProviderInstanceType(t, type);
  }
  return resp;
}

// The built provider `name` names; why it cannot be asked otherwise.
absl::StatusOr<Target> FindTarget(
    const std::string& name, const Config& config,
    const ProviderRegistry* registry,
    const std::map<std::string, std::string>& unavailable) {
  if (name.empty()) return absl::InvalidArgumentError("provider is required");
  auto conf = config.providers.find(name);
  if (conf == config.providers.end()) {
    std::vector<std::string> names;
    for (const auto& [n, pc] : config.providers) names.push_back(n);
    return absl::NotFoundError(
        absl::StrCat("provider ", name, " not found (configured: ",
                     names.empty() ? "none" : absl::StrJoin(names, ", "), ")"));
  }
  if (absl::Status s = Availability(name, registry, unavailable); !s.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat("provider ", name, " is unavailable: ", s.message()));
  }
  return Target{registry->Get(name), conf->second.type};
}

}  // namespace

void ProviderApi::ListInstanceTypes(const ListInstanceTypesRequest& req,
                                    Done<ListInstanceTypesResponse> done) {
  const std::string name = req.provider();
  absl::StatusOr<Target> target =
      FindTarget(name, config_, registry_, unavailable_);
  if (!target.ok()) {
    done(target.status());
    return;
  }
  std::shared_ptr<Shared> shared = shared_;
  uint64_t id = 0;
  {
    absl::MutexLock lock(&shared->mu);
    if (!shared->stopped) {
      id = ++shared->next_id;
      shared->waiting[id].done = std::move(done);
      ++shared->running;
    }
  }
  if (id == 0) {
    done(absl::UnavailableError("control plane is shutting down"));
    return;
  }
  const TimerId timer = clock_.Schedule(
      options_.call_timeout, [shared, id, name, t = options_.call_timeout] {
        shared->Answer(id,
                       absl::DeadlineExceededError(absl::StrCat(
                           "provider ", name, ": no answer within ",
                           absl::FormatDuration(t), " (ListInstanceTypes)")),
                       nullptr);
      });
  {
    absl::MutexLock lock(&shared->mu);
    if (auto it = shared->waiting.find(id); it != shared->waiting.end()) {
      it->second.timer = timer;
    }
  }
  std::thread([shared, id, target = *target, name, clock = &clock_] {
    shared->Answer(
        id, ToResponse(name, target.type, target.provider->ListInstanceTypes()),
        clock);
    absl::MutexLock lock(&shared->mu);
    --shared->running;
  }).detach();
}

absl::StatusOr<ListInstanceTypesResponse> ProviderApi::ListInstanceTypes(
    const ListInstanceTypesRequest& req) {
  return Await<ListInstanceTypesResponse>(
      [&](auto done) { ListInstanceTypes(req, std::move(done)); });
}

void ProviderApi::Stop() {
  std::map<uint64_t, Shared::Waiting> waiting;
  {
    absl::MutexLock lock(&shared_->mu);
    shared_->stopped = true;
    waiting.swap(shared_->waiting);
  }
  for (auto& [id, w] : waiting) {
    if (w.timer != 0) clock_.Cancel(w.timer);
    w.done(absl::UnavailableError("control plane is shutting down"));
  }
}

int ProviderApi::calls_running() {
  absl::MutexLock lock(&shared_->mu);
  return shared_->running;
}

void ProviderApi::AwaitNoCallsRunning() {
  absl::MutexLock lock(&shared_->mu);
  shared_->mu.Await(absl::Condition(
      +[](Shared* s)
           ABSL_EXCLUSIVE_LOCKS_REQUIRED(s->mu) { return s->running == 0; },
      shared_.get()));
}

}  // namespace navarch
