// An in-process provider for tests and the simulator: instances are records
// that become RUNNING after a provisioning delay on the injected Clock. Knobs
// make it fail like a cloud does (random transient failures from a seeded
// generator, a capacity cap, scripted errors) and answer like one: capacity
// per region and zone that runs out and comes back, quotas, and calls that
// take time. Those errors are CloudErrors (provider/cloud/cloud_http.h)
// carrying the scope the selector backs off (zone, region, provider).
#ifndef NAVARCH_PROVIDER_FAKE_FAKE_PROVIDER_H_
#define NAVARCH_PROVIDER_FAKE_FAKE_PROVIDER_H_

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/provider/provider.h"

namespace navarch {

// Caps on live (not terminated) instances; -1: none.
struct FakeRegionOptions {
  // More fails RESOURCE_EXHAUSTED "InsufficientInstanceCapacity", scope
  // region.
  int capacity = -1;
  // More fails RESOURCE_EXHAUSTED "QUOTA_EXCEEDED", quota, scope region.
  int quota = -1;
  // Per zone of the region: more fails RESOURCE_EXHAUSTED
  // "ZONE_RESOURCE_POOL_EXHAUSTED", scope zone. A zone not listed: no cap.
  std::map<std::string, int> zones;
};

struct FakeProviderOptions {
  std::string name = "fake";
  absl::Duration provisioning_delay = absl::ZeroDuration();
  double failure_probability = 0;  // Of each Provision: UNAVAILABLE.
  int capacity = 0;                // Live instances at most; 0: unlimited.
  int gpu_count = 8;
  std::string gpu_type = "NVIDIA H100 80GB HBM3 (fake)";
  uint64_t seed = 1;
  // Prices reported by ListInstanceTypes; empty: UNIMPLEMENTED.
  std::vector<InstanceTypeInfo> instance_types;
  // Live instances at most across the provider, answered as a quota
  // (RESOURCE_EXHAUSTED "QUOTA_EXCEEDED", scope provider); -1: none.
  int quota = -1;
  // By region name: a region not listed has no caps.
  std::map<std::string, FakeRegionOptions> regions;
  // How long Provision takes to answer (success or error).
  absl::Duration call_latency = absl::ZeroDuration();
  // How the call spends call_latency. Null: it blocks the calling thread
  // until that much time has passed on the clock (a FakeClock must be
  // advanced by another thread). A hook may return sooner (the simulator's
  // one thread cannot block): the part of call_latency that did not pass on
  // the clock delays the instance instead (created, then running, that much
  // later), as if the answer had come then.
  std::function<void(absl::Duration)> wait;
};

// What a FakeProvider answered, for reports.
struct FakeProviderStats {
  int calls = 0;        // Provision calls, replays of a token included
  int provisioned = 0;  // new instances
  int capacity_errors = 0;
  int quota_errors = 0;
  int other_errors = 0;                           // scripted, injected, invalid
  absl::Duration latency = absl::ZeroDuration();  // call_latency, summed
};

class FakeProvider final : public Provider {
 public:
  FakeProvider(Clock& clock, FakeProviderOptions options);
  ~FakeProvider() override;

  const std::string& name() const override { return options_.name; }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override;
  absl::Status Terminate(const std::string& instance_id) override;
  absl::StatusOr<std::vector<ProviderInstance>> List() override;
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override;

  // The next Provision calls fail with these, in order, before anything else.
  void FailNextProvision(absl::Status status);
  // The next Terminate calls fail with these, in order (the cloud refused).
  void FailNextTerminate(absl::Status status);
  // Called (outside the lock) when an instance becomes RUNNING or is
  // terminated; the simulator starts and stops agents here.
  void set_on_running(std::function<void(const ProviderInstance&)> fn);
  void set_on_terminated(std::function<void(const ProviderInstance&)> fn);

  // Called at the start of every Provision, outside the lock: a test makes
  // a call block (a cloud taking its time) by waiting on a latch here.
  void set_provision_gate(std::function<void(const ProvisionRequest&)> fn);
  // The same for List: a test holds the pool manager's instance phase.
  void set_list_gate(std::function<void()> fn);

  int provision_calls();
  int live_count();
  FakeProviderStats stats();

  // Changes the capacity model while running (the simulator's
  // set_capacity and set_quota actions); -1 lifts a cap. Instances already
  // live are kept: a cap below their number only stops new ones. An empty
  // region with SetQuota is the provider's quota. Each returns the cap it
  // replaced.
  int SetRegionCapacity(const std::string& region, int capacity);
  int SetZoneCapacity(const std::string& region, const std::string& zone,
                      int capacity);
  int SetQuota(const std::string& region, int quota);

 private:
  void MarkRunning(const std::string& id);
  void PassGate(const ProvisionRequest& request);
  // Spends call_latency; returns the part that did not pass on the clock.
  absl::Duration SpendLatency();
  // The capacity or quota error `request` meets; OK when it fits.
  absl::Status CheckCaps(const ProvisionRequest& request)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int LiveIn(const std::string& region, const std::string* zone)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  absl::StatusOr<ProviderInstance> Create(const ProvisionRequest& request,
                                          absl::Duration lag)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void CountError(const absl::Status& status)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  Clock& clock_;
  const FakeProviderOptions options_;
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int provision_calls_ ABSL_GUARDED_BY(mu_) = 0;
  FakeProviderStats stats_ ABSL_GUARDED_BY(mu_);
  int quota_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, FakeRegionOptions> regions_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, ProviderInstance> instances_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> by_token_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TimerId> timers_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> scripted_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> scripted_terminate_ ABSL_GUARDED_BY(mu_);
  std::function<void(const ProviderInstance&)> on_running_ ABSL_GUARDED_BY(mu_);
  std::function<void(const ProvisionRequest&)> provision_gate_
      ABSL_GUARDED_BY(mu_);
  std::function<void()> list_gate_ ABSL_GUARDED_BY(mu_);
  std::function<void(const ProviderInstance&)> on_terminated_
      ABSL_GUARDED_BY(mu_);
};

// Options from a `type: fake` entry of `providers:`.
FakeProviderOptions FakeOptionsFromConfig(const ProviderConfig& config,
                                          uint64_t seed);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_FAKE_FAKE_PROVIDER_H_
