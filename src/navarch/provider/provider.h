// The Provider interface: where a pool's machines come from (a cloud, the
// in-process fake, real agent processes on this machine). A provider never
// includes the fleet core; the pool manager records what it does.
#ifndef NAVARCH_PROVIDER_PROVIDER_H_
#define NAVARCH_PROVIDER_PROVIDER_H_

#include <map>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace navarch {

// Labels (tags on clouds) every instance we create carries, so that List()
// can be reconciled with the store after a restart.
inline constexpr absl::string_view kLabelPool = "pool";
inline constexpr absl::string_view kLabelCluster = "navarch-cluster";
inline constexpr absl::string_view kLabelManaged = "navarch-managed";
// The idempotency token of the provision call that created the instance.
inline constexpr absl::string_view kLabelToken = "navarch-token";

enum class ProviderInstanceState {
  kProvisioning,
  kRunning,
  kTerminating,
  kTerminated
};
absl::string_view ProviderInstanceStateName(ProviderInstanceState state);

struct ProvisionRequest {
  // Same token, same instance: a retried call (after a timeout, or by a new
  // leader) never buys a second machine. Required.
  std::string idempotency_token;
  std::string name;  // Human-readable; may repeat.
  std::string
      instance_type;  // Concrete for this provider (see instance_types.h).
  std::string region;
  std::string zone;
  std::vector<std::string> ssh_keys;
  // Must hold kLabelPool; the pool manager also sets kLabelCluster and
  // kLabelManaged.
  std::map<std::string, std::string> labels;
  std::string user_data;
};

struct ProviderInstance {
  std::string id;  // Also the node id the agent registers with.
  std::string provider;
  std::string region;
  std::string zone;
  std::string instance_type;
  ProviderInstanceState state = ProviderInstanceState::kProvisioning;
  std::string ip_address;
  int gpu_count = 0;
  std::string gpu_type;
  std::map<std::string, std::string> labels;
  absl::Time created_at = absl::InfinitePast();
};

struct InstanceTypeInfo {
  std::string name;
  int gpu_count = 0;
  std::string gpu_type;
  int memory_gb = 0;
  int vcpus = 0;
  double price_per_hour = 0;  // 0: unknown.
  std::vector<std::string> regions;
  bool available = true;
};

// Errors are classified by their absl code so callers know what to do.
//   RESOURCE_EXHAUSTED: no capacity or quota here; try another provider or
//                       region and back this one off.
//   INVALID_ARGUMENT, FAILED_PRECONDITION, PERMISSION_DENIED, UNAUTHENTICATED,
//   NOT_FOUND (unknown type/region): the request cannot succeed here; do not
//                       retry it unchanged.
//   anything else (UNAVAILABLE, DEADLINE_EXCEEDED, INTERNAL, ...): transient;
//                       retry later.
enum class ProviderErrorClass { kNone, kCapacity, kInvalid, kTransient };
ProviderErrorClass ClassifyProviderError(const absl::Status& status);
absl::string_view ProviderErrorClassName(ProviderErrorClass c);

// Implementations are thread-safe. Calls may block (network, process spawn):
// callers run them on their own worker threads, never under a fleet lock.
class Provider {
 public:
  virtual ~Provider() = default;

  // The config name (the key under `providers:`).
  virtual const std::string& name() const = 0;

  // Starts one instance. Returns once the provider accepted it; the instance
  // may still be kProvisioning.
  virtual absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) = 0;

  // Stops an instance. Terminating one already gone is OK; an id this
  // provider never had is NOT_FOUND.
  virtual absl::Status Terminate(const std::string& instance_id) = 0;

  // Every instance not yet terminated.
  virtual absl::StatusOr<std::vector<ProviderInstance>> List() = 0;

  // What can be provisioned; UNIMPLEMENTED where the provider cannot say.
  virtual absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() = 0;
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_PROVIDER_H_
