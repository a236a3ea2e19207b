// The AWS EC2 provider: the Query API (2016-11-15) signed with SigV4.
// Provision is RunInstances with ClientToken = the intent's token (a retried
// or repeated call returns the same instance), our labels as instance tags
// (the token too), base64 user data, the zone's subnet, security groups, key
// pair, instance profile and optional Spot; without a zone in the request,
// each zone of subnet_ids in turn until one has capacity. List is
// DescribeInstances filtered on tag:navarch-managed and the live states,
// following NextToken. EC2's error codes map onto provider.h's classes (see
// docs/pools.md): capacity scoped to the zone or (quotas) the region,
// transient, or invalid with EC2's own message.
#ifndef NAVARCH_PROVIDER_AWS_AWS_PROVIDER_H_
#define NAVARCH_PROVIDER_AWS_AWS_PROVIDER_H_

#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/config/config.h"
#include "navarch/provider/aws/aws_credentials.h"
#include "navarch/provider/aws/ec2_xml.h"
#include "navarch/provider/cloud/cloud_http.h"
#include "navarch/provider/provider.h"
#include "navarch/provider/registry.h"

namespace navarch {

struct AwsProviderOptions {
  std::string name = "aws";
  std::string region;  // Required.
  // The Query API's URL. Empty: AWS_ENDPOINT_URL_EC2, else
  // https://ec2.<region>.amazonaws.com.
  std::string endpoint;
  std::string image_id;                           // Required.
  std::map<std::string, std::string> subnet_ids;  // zone → subnet
  std::vector<std::string> security_group_ids;
  std::string key_name;
  std::string instance_profile;  // IamInstanceProfile.Name
  bool spot = false;
  AwsCredentialOptions credentials;  // profile, file, metadata, env
  CloudHttpOptions http;  // .provider is set to `name`; .clock signs too
};

// From a `type: aws` entry of `providers:`.
AwsProviderOptions AwsOptionsFromConfig(const ProviderConfig& config);

// What an EC2 error code means: the class (provider.h) and how far a
// capacity error reaches. Exposed for the error table's test.
std::pair<absl::StatusCode, CloudErrorScope> ClassifyEc2Error(
    absl::string_view code, int http_status, bool* quota);

// The factory of `type: aws` (controlplane/server.cc registers it):
// INVALID_ARGUMENT without a region or image_id, or with an unusable
// endpoint.
absl::StatusOr<std::unique_ptr<Provider>> NewAwsProvider(
    const ProviderConfig& config, const ProviderContext& context);

// Thread-safe.
class AwsProvider : public Provider {
 public:
  explicit AwsProvider(AwsProviderOptions options);

  const std::string& name() const override { return options_.name; }
  absl::StatusOr<ProviderInstance> Provision(
      const ProvisionRequest& request) override;
  absl::Status Terminate(const std::string& instance_id) override;
  absl::StatusOr<std::vector<ProviderInstance>> List() override;
  // The GPU types EC2 offers in this provider's region (DescribeInstanceTypes
  // of the P and G families, keeping those with GPUs), with GPU model and
  // count, vCPUs and memory. EC2 publishes no prices and no capacity there:
  // price 0 (unknown), regions = this provider's region.
  absl::StatusOr<std::vector<InstanceTypeInfo>> ListInstanceTypes() override;

  const std::string& endpoint() const { return endpoint_; }

 private:
  using Params = std::vector<std::pair<std::string, std::string>>;
  // One action; its 2xx body, or the EC2 error as a CloudError for `zone`.
  absl::StatusOr<std::string> Call(const std::string& action,
                                   const Params& params,
                                   const std::string& zone);
  absl::Status Sign(HttpRequest& request);
  absl::Status ErrorOf(const HttpResponse& response, const std::string& zone);
  absl::StatusOr<Params> RunParams(const ProvisionRequest& request,
                                   const std::string& zone,
                                   const std::string& client_token) const;
  // RunInstances in one zone ("" lets EC2 choose).
  absl::StatusOr<ProviderInstance> ProvisionIn(const ProvisionRequest& request,
                                               const std::string& zone,
                                               const std::string& client_token);
  ProviderInstance ToInstance(const Ec2Instance& instance) const;

  AwsProviderOptions options_;
  Clock& clock_;
  std::string endpoint_;
  AwsCredentialChain credentials_;
  CloudHttp http_;
  absl::Mutex mu_;
  std::string last_secret_ ABSL_GUARDED_BY(mu_);  // already redacted
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_AWS_AWS_PROVIDER_H_
