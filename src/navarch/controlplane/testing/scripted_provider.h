// Test-only: a provider whose ListInstanceTypes is scripted (an answer, or
// a hang until released), for the provider API's tests on every transport.
#ifndef NAVARCH_CONTROLPLANE_TESTING_SCRIPTED_PROVIDER_H_
#define NAVARCH_CONTROLPLANE_TESTING_SCRIPTED_PROVIDER_H_

#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "navarch/provider/provider.h"

namespace navarch::testing {

// A provider whose ListInstanceTypes answers `answer`, after `release` is
// notified when `hang` is set. Records the thread it was called on.
class ScriptedProvider final : public Provider {
 public:
  ScriptedProvider(std::string name,
                   absl::StatusOr<std::vector<InstanceTypeInfo>> answer,
                   bool hang = false)
      : name_(std::move(name)), answer_(std::move(answer)), hang_(hang) {}
  const std::string& name() const override { return name_; }
  absl::StatusOr<ProviderInstance> Provision(const ProvisionRequest&) override {
    return absl::UnimplementedError("no");
  }
  absl::Status Terminate(const std::string&) override {
    return absl::UnimplementedError("no");
  }
  absl::StatusOr<std::vector<ProviderInstance>> List() override {
    return std::vector<ProviderInstance>();
  }
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override {
    {
      absl::MutexLock lock(&mu_);
      thread_ = std::this_thread::get_id();
      ++calls_;
    }
    if (!called_.HasBeenNotified()) called_.Notify();
    if (hang_) release_.WaitForNotification();
    return answer_;
  }
  // Blocks until ListInstanceTypes was first called.
  void AwaitCalled() { called_.WaitForNotification(); }
  void Release() {
    if (!release_.HasBeenNotified()) release_.Notify();
  }
  std::thread::id thread() {
    absl::MutexLock lock(&mu_);
    return thread_;
  }
  int calls() {
    absl::MutexLock lock(&mu_);
    return calls_;
  }

 private:
  const std::string name_;
  const absl::StatusOr<std::vector<InstanceTypeInfo>> answer_;
  const bool hang_;
  absl::Notification called_;
  absl::Notification release_;
  absl::Mutex mu_;
  std::thread::id thread_ ABSL_GUARDED_BY(mu_);
  int calls_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace navarch::testing

#endif  // NAVARCH_CONTROLPLANE_TESTING_SCRIPTED_PROVIDER_H_
