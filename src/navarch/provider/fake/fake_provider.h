// An in-process provider for tests and the simulator: instances are records
// that become RUNNING after a provisioning delay on the injected Clock. Knobs
// make it fail like a cloud does (random transient failures from a seeded
// generator, a capacity cap, scripted errors).
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
  // Called (outside the lock) when an instance becomes RUNNING or is
  // terminated; the simulator starts and stops agents here.
  void set_on_running(std::function<void(const ProviderInstance&)> fn);
  void set_on_terminated(std::function<void(const ProviderInstance&)> fn);

  // Called at the start of every Provision, outside the lock: a test makes
  // a call block (a cloud taking its time) by waiting on a latch here.
  void set_provision_gate(std::function<void(const ProvisionRequest&)> fn);

  int provision_calls();
  int live_count();

 private:
  void MarkRunning(const std::string& id);
  void PassGate(const ProvisionRequest& request);

  Clock& clock_;
  const FakeProviderOptions options_;
  absl::Mutex mu_;
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_);
  uint64_t next_id_ ABSL_GUARDED_BY(mu_) = 1;
  int provision_calls_ ABSL_GUARDED_BY(mu_) = 0;
  std::map<std::string, ProviderInstance> instances_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, std::string> by_token_ ABSL_GUARDED_BY(mu_);
  std::map<std::string, TimerId> timers_ ABSL_GUARDED_BY(mu_);
  std::deque<absl::Status> scripted_ ABSL_GUARDED_BY(mu_);
  std::function<void(const ProviderInstance&)> on_running_ ABSL_GUARDED_BY(mu_);
  std::function<void(const ProvisionRequest&)> provision_gate_
      ABSL_GUARDED_BY(mu_);
  std::function<void(const ProviderInstance&)> on_terminated_
      ABSL_GUARDED_BY(mu_);
};

// Options from a `type: fake` entry of `providers:`.
FakeProviderOptions FakeOptionsFromConfig(const ProviderConfig& config,
                                          uint64_t seed);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_FAKE_FAKE_PROVIDER_H_
