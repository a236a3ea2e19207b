#include "navarch/pool/selector.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/instance_types.h"

namespace navarch {

ProviderSelector::ProviderSelector(Clock& clock, SelectorOptions options,
                                   std::vector<SelectorCandidate> candidates)
    : clock_(clock),
      options_(std::move(options)),
      candidates_(std::move(candidates)) {}

namespace {

std::string TypeFor(const SelectorCandidate& c, const SelectorOptions& o) {
  return ResolveInstanceType(
      c.instance_type.empty() ? o.instance_type : c.instance_type, c.type);
}

// The price of `type` from the provider's list; -1 when unknown.
double PriceOf(const SelectorCandidate& c, const std::string& type) {
  absl::StatusOr<std::vector<InstanceTypeInfo>> types =
      c.provider->ListInstanceTypes();
  if (!types.ok()) return -1;
  for (const InstanceTypeInfo& t : *types) {
    if (t.name == type && t.available && t.price_per_hour > 0) {
      return t.price_per_hour;
    }
  }
  return -1;
}

// Whether the provider says it has `type` available. A provider that cannot
// list types (UNIMPLEMENTED) is assumed to have it; a listing error is not.
bool Available(const SelectorCandidate& c, const std::string& type) {
  absl::StatusOr<std::vector<InstanceTypeInfo>> types =
      c.provider->ListInstanceTypes();
  if (!types.ok()) {
    return types.status().code() == absl::StatusCode::kUnimplemented;
  }
  for (const InstanceTypeInfo& t : *types) {
    if (t.name == type && t.available) return true;
  }
  return false;
}

}  // namespace

std::vector<SelectorAttempt> ProviderSelector::Plan() {
  std::vector<const SelectorCandidate*> order;
  for (const SelectorCandidate& c : candidates_) order.push_back(&c);
  // Stable: ties keep the order of the config file (upstream's sort was not).
  std::stable_sort(order.begin(), order.end(),
                   [](auto* a, auto* b) { return a->priority < b->priority; });
  switch (options_.strategy) {
    case SelectionStrategy::kPriority:
      break;
    case SelectionStrategy::kRoundRobin: {
      // Each provider appears `weight` times in the cycle; the position
      // advances by one per plan, and the rest follow as fallbacks.
      std::vector<const SelectorCandidate*> cycle;
      for (const SelectorCandidate& c : candidates_) {
        for (int i = 0; i < std::max(c.weight, 1); ++i) cycle.push_back(&c);
      }
      if (cycle.empty()) break;
      const size_t start = round_robin_++ % cycle.size();
      order.clear();
      for (size_t i = 0; i < cycle.size(); ++i) {
        const SelectorCandidate* c = cycle[(start + i) % cycle.size()];
        if (std::find(order.begin(), order.end(), c) == order.end()) {
          order.push_back(c);
        }
      }
      break;
    }
    case SelectionStrategy::kAvailability: {
      std::vector<const SelectorCandidate*> available;
      for (auto* c : order) {
        if (Available(*c, TypeFor(*c, options_))) available.push_back(c);
      }
      order = std::move(available);
      break;
    }
    case SelectionStrategy::kCost: {
      std::vector<std::pair<double, const SelectorCandidate*>> priced;
      for (auto* c : order)
        priced.push_back({PriceOf(*c, TypeFor(*c, options_)), c});
      // Known prices ascending, then unknown ones in priority order.
      std::stable_sort(priced.begin(), priced.end(),
                       [](const auto& a, const auto& b) {
                         if ((a.first < 0) != (b.first < 0)) return b.first < 0;
                         return a.first >= 0 && a.first < b.first;
                       });
      order.clear();
      for (const auto& p : priced) order.push_back(p.second);
      break;
    }
  }
  std::vector<SelectorAttempt> plan;
  for (const SelectorCandidate* c : order) {
    std::vector<std::string> regions = c->regions;
    if (regions.empty()) regions.push_back(options_.region);
    for (const std::string& region : regions) {
      if (BackoffLeft(c->provider->name(), region) > absl::ZeroDuration()) {
        continue;
      }
      plan.push_back({c->provider, region, TypeFor(*c, options_)});
    }
  }
  return plan;
}

absl::Duration ProviderSelector::BlockedFor() {
  absl::Duration soonest = absl::InfiniteDuration();
  for (const SelectorCandidate& c : candidates_) {
    const std::string& name = c.provider->name();
    std::vector<std::string> regions = c.regions;
    if (regions.empty()) regions.push_back(options_.region);
    for (const std::string& region : regions) {
      absl::Duration left = BackoffLeft(name, region);
      if (left == absl::ZeroDuration() && !options_.zones.empty()) {
        // The region is open; it is blocked only if each zone is.
        absl::Duration zones_left = absl::InfiniteDuration();
        for (const std::string& zone : options_.zones) {
          zones_left = std::min(zones_left, Left({name, region, zone}));
        }
        left = zones_left;
      }
      if (left == absl::ZeroDuration()) return left;
      soonest = std::min(soonest, left);
    }
  }
  // No candidate at all: Provision says so.
  return soonest == absl::InfiniteDuration() ? absl::ZeroDuration() : soonest;
}

absl::StatusOr<ProviderInstance> ProviderSelector::Provision(
    ProvisionRequest request, std::vector<FailedAttempt>* failed,
    const UserDataFn& user_data) {
  std::vector<SelectorAttempt> plan = Plan();
  if (plan.empty()) {
    absl::Duration soonest = absl::InfiniteDuration();
    for (const auto& [key, b] : backoff_) {
      const absl::Duration left = b.until - clock_.Now();
      if (left > absl::ZeroDuration()) soonest = std::min(soonest, left);
    }
    return absl::ResourceExhaustedError(absl::StrCat(
        "every provider is backed off or unavailable",
        soonest == absl::InfiniteDuration()
            ? std::string()
            : absl::StrCat("; next retry in ", absl::FormatDuration(soonest))));
  }
  // Requests are spread over the zones: each starts one zone further.
  const size_t first_zone = zone_counter_++;
  std::vector<std::string> errors;
  absl::Status last;
  bool all_capacity = true;
  for (const SelectorAttempt& a : plan) {
    const std::string& name = a.provider->name();
    // An earlier attempt of this call may have backed it off (a quota for
    // the whole provider).
    if (BackoffLeft(name, a.region) > absl::ZeroDuration()) continue;
    if (a.instance_type.empty()) {
      last = absl::InvalidArgumentError(
          absl::StrCat("no ", options_.instance_type, " machines"));
      errors.push_back(absl::StrCat(name, "/", a.region, ": ", last.message()));
      if (failed != nullptr) failed->push_back({name, a.region, "", last});
      all_capacity = false;
      BackOff({name, a.region, ""}, /*to_max=*/true);
      continue;
    }
    request.instance_type = a.instance_type;
    request.region = a.region;
    // A zone that is full moves the request to the region's next zone.
    for (size_t tries = 0; tries <= options_.zones.size(); ++tries) {
      std::optional<std::string> zone = NextZone(a, first_zone);
      if (!zone) break;  // every zone of this region is backed off
      request.zone = *zone;
      absl::StatusOr<ProviderInstance> instance =
          Attempt(a, request, user_data);
      if (instance.ok()) {
        backoff_.erase({name, "*", ""});  // its quota has room again
        backoff_.erase({name, a.region, ""});
        backoff_.erase({name, a.region, *zone});
        return instance;
      }
      last = instance.status();
      if (failed != nullptr) failed->push_back({name, a.region, *zone, last});
      errors.push_back(absl::StrCat(name, "/", a.region,
                                    zone->empty() ? "" : "/", *zone, ": ",
                                    last.message()));
      if (ClassifyProviderError(last) != ProviderErrorClass::kCapacity) {
        all_capacity = false;
      }
      if (!BackOffFor(a, *zone, last)) break;
    }
  }
  const std::string message =
      absl::StrCat("all providers failed: ", absl::StrJoin(errors, "; "));
  if (all_capacity) return absl::ResourceExhaustedError(message);
  return absl::Status(last.code(), message);
}

absl::StatusOr<ProviderInstance> ProviderSelector::Attempt(
    const SelectorAttempt& a, ProvisionRequest& request,
    const UserDataFn& user_data) {
  if (user_data) {
    absl::StatusOr<std::string> rendered =
        user_data(a.provider->name(), request);
    if (!rendered.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("user data: ", rendered.status().message()));
    }
    request.user_data = *std::move(rendered);
  }
  return a.provider->Provision(request);
}

std::optional<std::string> ProviderSelector::NextZone(const SelectorAttempt& a,
                                                      size_t first) {
  if (options_.zones.empty()) return std::string();
  for (size_t i = 0; i < options_.zones.size(); ++i) {
    const std::string& zone =
        options_.zones[(first + i) % options_.zones.size()];
    if (Left({a.provider->name(), a.region, zone}) == absl::ZeroDuration()) {
      return zone;
    }
  }
  return std::nullopt;
}

bool ProviderSelector::BackOffFor(const SelectorAttempt& a,
                                  const std::string& zone,
                                  const absl::Status& error) {
  const std::string& name = a.provider->name();
  switch (ClassifyProviderError(error)) {
    case ProviderErrorClass::kCapacity:
      break;
    case ProviderErrorClass::kInvalid:
      BackOff({name, a.region, ""}, /*to_max=*/true);
      return false;
    default:
      return false;  // transient: the next tick retries
  }
  const std::optional<CloudErrorInfo> info = CloudErrorInfoOf(error);
  const CloudErrorScope scope = info ? info->scope : CloudErrorScope::kRegion;
  if (scope == CloudErrorScope::kProvider) {
    BackOff({name, "*", ""}, false);
    return false;
  }
  if (scope == CloudErrorScope::kZone && !zone.empty()) {
    BackOff({name, a.region, zone}, false);
    return true;
  }
  BackOff({name, a.region, ""}, false);
  return false;
}

absl::Duration ProviderSelector::Left(const Key& key) {
  auto it = backoff_.find(key);
  if (it == backoff_.end()) return absl::ZeroDuration();
  const absl::Duration left = it->second.until - clock_.Now();
  return left > absl::ZeroDuration() ? left : absl::ZeroDuration();
}

absl::Duration ProviderSelector::BackoffLeft(const std::string& provider,
                                             const std::string& region,
                                             const std::string& zone) {
  absl::Duration left =
      std::max(Left({provider, "*", ""}), Left({provider, region, ""}));
  if (!zone.empty()) left = std::max(left, Left({provider, region, zone}));
  return left;
}

std::vector<ProviderSelector::BackoffEntry> ProviderSelector::Backoffs() {
  std::vector<BackoffEntry> out;
  for (const auto& [key, b] : backoff_) {
    const absl::Duration left = Left(key);
    if (left > absl::ZeroDuration()) {
      out.push_back(
          {std::get<0>(key), std::get<1>(key), std::get<2>(key), left});
    }
  }
  return out;
}

void ProviderSelector::BackOff(const Key& key, bool to_max) {
  BackoffState& b = backoff_[key];
  ++b.failures;
  absl::Duration delay = options_.max_backoff;
  if (!to_max) {
    delay = options_.initial_backoff;
    for (int i = 1; i < b.failures && delay < options_.max_backoff; ++i) {
      delay *= 2;
    }
    delay = std::min(delay, options_.max_backoff);
  }
  b.until = clock_.Now() + delay;
}

}  // namespace navarch
