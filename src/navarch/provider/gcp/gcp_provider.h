// The Google Compute Engine provider (API v1): instances.insert with a
// requestId derived from the idempotency token, waiting on the zone
// operation (where capacity and quota errors arrive), delete with a wait,
// List through aggregated/instances filtered on our managed label, and
// ListInstanceTypes through aggregated/machineTypes.
#ifndef NAVARCH_PROVIDER_GCP_GCP_PROVIDER_H_
#define NAVARCH_PROVIDER_GCP_GCP_PROVIDER_H_

#include <map>
#include <memory>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/gcp/gcp_auth.h"
#include "navarch/provider/gcp/gcp_wire.h"
#include "navarch/provider/provider.h"

namespace navarch {

inline constexpr char kGcpDefaultEndpoint[] =
    "https://compute.googleapis.com/compute/v1";

struct GcpProviderOptions {
  std::string name = "gcp";
  std::string project;                 // Required.
  std::string zone = "us-central1-a";  // When a request names none.
  std::string endpoint = kGcpDefaultEndpoint;
  // Service-account key (JSON text, already read); nullopt: the metadata
  // server's token.
  std::optional<GcpServiceAccountKey> key;
  std::string metadata_host = "metadata.google.internal";
  GcpInstanceSpec spec;  // image, network, spot, accelerators, ...
  // How long Provision and Terminate wait for their operation.
  absl::Duration operation_timeout = absl::Minutes(10);
  CloudHttpOptions http;  // provider, clock, sleep, observer, seed, ...
};

// Thread-safe.
class GcpProvider final : public Provider {
 public:
  GcpProvider(Clock& clock, GcpProviderOptions options);

  const std::string& name() const override { return options_.name; }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override;
  absl::Status Terminate(const std::string& instance_id) override;
  absl::StatusOr<std::vector<ProviderInstance>> List() override;
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override;

 private:
  std::string ZoneUrl(const std::string& zone) const;
  // One authorized call; non-2xx answers become GcpHttpError (except
  // `allow`, returned as they are).
  absl::StatusOr<HttpResponse> Call(absl::string_view operation,
                                    HttpRequest request,
                                    const std::string& zone, int allow = 0);
  // Waits (operations/{op}/wait in a loop) until DONE; the operation's
  // error classified.
  absl::Status WaitOperation(const nlohmann::json& op, const std::string& zone);
  void NoteToken(CloudHttp& http, const std::string& token);
  // Waits `d` (options_.http.sleep when set: tests).
  void Pause(absl::Duration d);
  absl::StatusOr<ProviderInstance> Get(const std::string& zone,
                                       const std::string& name);
  // The zone of a managed instance, looked up when not remembered.
  absl::StatusOr<std::string> ZoneOf(const std::string& name);
  // Every page of an aggregated list, each scope's `field` array.
  absl::StatusOr<std::vector<nlohmann::json>> Aggregated(
      const std::string& collection, const std::string& field,
      const std::string& filter);

  Clock& clock_;
  const GcpProviderOptions options_;
  CloudHttp http_;
  // Operation waits hold the connection up to two minutes.
  CloudHttp wait_http_;
  GcpTokenSource tokens_;
  absl::Mutex mu_;
  std::map<std::string, std::string> zones_ ABSL_GUARDED_BY(mu_);
  std::string wait_token_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_GCP_GCP_PROVIDER_H_
