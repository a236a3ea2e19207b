// Lambda Cloud (API v1): instances bought with a bearer API key.
//
//   GET  /instance-types              types, prices, regions with capacity
//   POST /instance-operations/launch  one instance, tagged with our labels
//   POST /instance-operations/terminate
//   GET  /instances, /instances/{id}
//
// Lambda has no idempotency key. Provision therefore first lists the
// instances and adopts one that already carries the request's token tag
// (navarch-token), so a retried or crashed call never buys a second machine;
// a launch is never retried inside one call (a 5xx or a timeout may hide a
// launch that happened: the next call finds it by its tag). Before a launch
// it reads regions_with_capacity_available, so that the launch quota (one
// per 12 s) is not spent probing; a client-side limiter keeps launches at
// least `launch_interval` apart.
#ifndef NAVARCH_PROVIDER_LAMBDA_LAMBDA_PROVIDER_H_
#define NAVARCH_PROVIDER_LAMBDA_LAMBDA_PROVIDER_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/config/config.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/provider.h"

namespace navarch {

struct LambdaProviderOptions {
  std::string name = "lambda";
  // The API's base URL including /api/v1.
  std::string endpoint = "https://cloud.lambda.ai/api/v1";
  std::string api_key;  // Required; never logged.
  // The one SSH key every instance gets (Lambda takes exactly one). Empty:
  // the request's, which must then name exactly one.
  std::string ssh_key_name;
  // The documented launch rate is one per 12 s (five a minute).
  absl::Duration launch_interval = absl::Seconds(12);
  // Transport: provider name, sleep, seed, retries, ca_file. `provider` is
  // set from `name`; `clock` from the constructor's.
  CloudHttpOptions http;
};

class LambdaProvider final : public Provider {
 public:
  LambdaProvider(Clock& clock, LambdaProviderOptions options);

  const std::string& name() const override { return options_.name; }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override;
  absl::Status Terminate(const std::string& instance_id) override;
  absl::StatusOr<std::vector<ProviderInstance>> List() override;
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override;

 private:
  struct Answer;  // A parsed {"data": ...}.
  // One API call: the JSON `data` of a 2xx answer, else a CloudError
  // classified from Lambda's error code (region: for messages).
  absl::StatusOr<Answer> Call(CloudHttp& http, absl::string_view operation,
                              absl::string_view method, absl::string_view path,
                              const std::string* body,
                              absl::string_view region = "");
  absl::Status ErrorOf(absl::string_view operation, const HttpResponse& r,
                       absl::string_view region);
  // The instance carrying `token`'s tag, if one is alive.
  absl::StatusOr<std::optional<ProviderInstance>> FindByToken(
      const std::string& token);
  // The region to launch `type` in: `wanted` when it has capacity, else
  // RESOURCE_EXHAUSTED without a launch.
  absl::StatusOr<std::string> PickRegion(const std::string& type,
                                         const std::string& wanted);
  absl::StatusOr<std::string> Launch(const ProvisionRequest& request,
                                     const std::string& region,
                                     const std::string& ssh_key)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(launch_mu_);
  void WaitForLaunchSlot() ABSL_EXCLUSIVE_LOCKS_REQUIRED(launch_mu_);

  Clock& clock_;
  LambdaProviderOptions options_;
  CloudHttp http_;
  // Launches are never retried within a call (no idempotency key).
  CloudHttp launch_http_;
  // Serialises provisions: the token check and the launch are one step, so
  // two calls with one token never both launch.
  absl::Mutex launch_mu_;
  std::optional<absl::Duration> last_launch_ ABSL_GUARDED_BY(launch_mu_);
};

// The options a `type: lambda` provider entry describes; the API key read
// from api_key_file or the api_key_env variable. `env` looks a variable up
// (tests); null: getenv.
absl::StatusOr<LambdaProviderOptions> LambdaOptionsFromConfig(
    const ProviderConfig& config,
    const std::function<std::optional<std::string>(const std::string&)>& env =
        nullptr);

// Lambda's instance status as ours; "preempted" and "terminated" are gone.
ProviderInstanceState LambdaInstanceState(absl::string_view status);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_LAMBDA_LAMBDA_PROVIDER_H_
