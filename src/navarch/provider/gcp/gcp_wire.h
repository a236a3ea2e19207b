// Compute Engine v1's wire format as the provider needs it: instance names
// and label values within GCE's rules, a requestId (a UUID) derived from the
// idempotency token, the instances.insert body, an Instance read back, and
// GCE's errors (HTTP and operation) classified for the pool manager.
#ifndef NAVARCH_PROVIDER_GCP_GCP_WIRE_H_
#define NAVARCH_PROVIDER_GCP_GCP_WIRE_H_

#include <map>
#include <nlohmann/json.hpp>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "navarch/provider/provider.h"

namespace navarch {

// Metadata key holding the labels exactly as given (GCE label values are
// lower-case and at most 63 characters, so tokens may not survive as
// labels).
inline constexpr char kGcpLabelsMetadataKey[] = "navarch-labels";

// A UUID (version 5 layout, SHA-1) that is the same for the same token:
// GCE's requestId must be a UUID.
std::string GcpRequestId(absl::string_view token);

// A label key or value within GCE's rules: lower case, [a-z0-9_-], at most
// 63 characters; keys start with a letter.
std::string GcpLabelKey(absl::string_view key);
std::string GcpLabelValue(absl::string_view value);

// The instance name for a request: its name made valid, and a hash of the
// token, so that a retried insert names the same instance.
std::string GcpInstanceName(absl::string_view name, absl::string_view token);

// What goes into an insert besides the request.
struct GcpInstanceSpec {
  std::string project;
  std::string zone;
  std::string base_url;  // The endpoint, ".../compute/v1".
  std::string image;     // A full URL or "projects/P/global/images/I".
  std::string network;
  std::string subnetwork;
  std::string service_account;  // Email; empty: none.
  bool spot = false;
  std::string accelerator_type;  // N1 only; e.g. nvidia-tesla-t4.
  int accelerator_count = 0;
  int boot_disk_gb = 200;
};

nlohmann::json GcpInsertBody(const ProvisionRequest& request,
                             const GcpInstanceSpec& spec,
                             const std::string& name);

// GPUs a machine type carries by itself (A3, A2, G2); {0, ""} for others.
std::pair<int, std::string> GcpBuiltInGpus(absl::string_view machine_type);

// An Instance resource as ours; `provider` is the config name.
ProviderInstance GcpParseInstance(const nlohmann::json& instance,
                                  const std::string& provider);

// The error of a DONE operation (`operation.error`), classified:
// ZONE_RESOURCE_POOL_EXHAUSTED*, UNSUPPORTED_OPERATION -> capacity (zone);
// QUOTA_EXCEEDED -> capacity and quota (region; the provider for
// GPUS_ALL_REGIONS); others by their HTTP status.
absl::Status GcpOperationError(const nlohmann::json& operation,
                               const std::string& provider,
                               const std::string& zone);
// A non-2xx answer {"error":{"code","message","errors":[{reason}]}}.
absl::Status GcpHttpError(int status, const std::string& body,
                          const std::string& provider, const std::string& zone);

// "us-central1" of "us-central1-a".
std::string GcpRegionOf(absl::string_view zone);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_GCP_GCP_WIRE_H_
