// Chooses which provider (and region and zone) a pool provisions from, and
// fails over to the next one when a provider has no capacity. A capacity
// error backs off exponentially (30 s doubling up to 10 min) as far as the
// cloud said it reaches (CloudErrorInfo's scope: a zone, the region, or the
// whole provider; a region when it did not say) while the others are tried;
// with zones, the same region is tried again in its next zone first. A
// success clears the backoff of its region and zone. Upstream
// kept a set of "attempted" providers that was only cleared by a success, so
// one round of failures locked the pool out forever; here nothing is
// remembered except each entry's own backoff deadline.
#ifndef NAVARCH_POOL_SELECTOR_H_
#define NAVARCH_POOL_SELECTOR_H_

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/provider/provider.h"

namespace navarch {

struct SelectorCandidate {
  Provider* provider = nullptr;  // Not owned.
  ProviderType type = ProviderType::kFake;
  int priority = 0;
  int weight = 1;
  std::vector<std::string> regions;  // Empty: the pool's region.
  std::string instance_type;         // Empty: the pool's instance type.
};

struct SelectorOptions {
  SelectionStrategy strategy = SelectionStrategy::kPriority;
  std::string region;              // The pool's.
  std::string instance_type;       // The pool's; may be abstract ("h100-8x").
  std::vector<std::string> zones;  // New instances are spread over these.
  absl::Duration initial_backoff = absl::Seconds(30);
  absl::Duration max_backoff = absl::Minutes(10);
};

// One place to try: a provider in one region with a concrete type.
struct SelectorAttempt {
  Provider* provider = nullptr;
  std::string region;
  std::string instance_type;
};

// An attempt of one Provision call that failed (the call may still have
// succeeded elsewhere: a failover).
struct FailedAttempt {
  std::string provider;
  std::string region;
  std::string zone;  // Empty when the pool has no zones.
  absl::Status error;
};

// Not thread-safe: one pool manager thread uses it.
class ProviderSelector {
 public:
  ProviderSelector(Clock& clock, SelectorOptions options,
                   std::vector<SelectorCandidate> candidates);

  // The attempts in strategy order, leaving out entries in backoff. Advances
  // the round-robin position.
  std::vector<SelectorAttempt> Plan();

  // Tries Plan() in order with `request` (instance_type, region and zone are
  // filled in per attempt; the idempotency token is kept). Returns the first
  // success. Capacity errors back their entry off and the next is tried;
  // invalid requests back off for max_backoff (a config or permission
  // mistake is not retried every tick); transient errors move on without
  // backoff. All failing: RESOURCE_EXHAUSTED when every failure was capacity
  // or every entry is backed off, else the last error; the message names
  // each attempt.
  // Each failed attempt is appended to `failed` when it is not null.
  // `user_data`, when set, makes each attempt's user data from the provider's
  // name and the request as filled in for it; an error ends that attempt as
  // an invalid one.
  using UserDataFn = std::function<absl::StatusOr<std::string>(
      const std::string& provider, const ProvisionRequest& request)>;
  absl::StatusOr<ProviderInstance> Provision(
      ProvisionRequest request, std::vector<FailedAttempt>* failed = nullptr,
      const UserDataFn& user_data = nullptr);

  // Zero when some provider/region (and zone) can be tried now; otherwise
  // how long until the first backoff ends. Makes no provider call, so a pool
  // can skip a tick's provisioning (and its events) while every place is
  // backed off.
  absl::Duration BlockedFor();

  // Backoff left for a provider/region, the provider's own included (zero
  // when none); with `zone`, that zone's too.
  absl::Duration BackoffLeft(const std::string& provider,
                             const std::string& region,
                             const std::string& zone = "");

  // Every backoff in force, for metrics: region "*" is the whole provider,
  // an empty zone the whole region.
  struct BackoffEntry {
    std::string provider;
    std::string region;
    std::string zone;
    absl::Duration left;
  };
  std::vector<BackoffEntry> Backoffs();

 private:
  struct BackoffState {
    int failures = 0;
    absl::Time until = absl::InfinitePast();
  };
  using Key = std::tuple<std::string, std::string, std::string>;
  absl::Duration Left(const Key& key);
  void BackOff(const Key& key, bool to_max);
  // Backs off what `error` (a failed Provision) reaches; whether the same
  // region may be tried again in another zone.
  bool BackOffFor(const SelectorAttempt& a, const std::string& zone,
                  const absl::Status& error);
  // The first zone of the pool from `first` on (round) not backed off for
  // this provider/region; empty when the pool has no zones; nullopt when
  // all are backed off.
  std::optional<std::string> NextZone(const SelectorAttempt& a, size_t first);
  // One provider call, with the attempt's user data.
  absl::StatusOr<ProviderInstance> Attempt(const SelectorAttempt& a,
                                           ProvisionRequest& request,
                                           const UserDataFn& user_data);

  Clock& clock_;
  SelectorOptions options_;
  std::vector<SelectorCandidate> candidates_;
  uint64_t round_robin_ = 0;
  uint64_t zone_counter_ = 0;
  std::map<Key, BackoffState> backoff_;
};

}  // namespace navarch

#endif  // NAVARCH_POOL_SELECTOR_H_
