// The clouds' instance metadata services, through which a VM learns about
// itself: EC2's IMDSv2 (a session token from a PUT, then GETs carrying it)
// and Compute Engine's metadata server (GETs with `Metadata-Flavor: Google`).
// Shared by the providers (EC2 role credentials, GCE service-account tokens)
// and the node agent (its instance id, zone and machine type). Their
// addresses are overridden the way the clouds' SDKs allow
// (AWS_EC2_METADATA_SERVICE_ENDPOINT, GCE_METADATA_HOST), which is how tests
// point them at loopback fakes.
#ifndef NAVARCH_NET_INSTANCE_METADATA_H_
#define NAVARCH_NET_INSTANCE_METADATA_H_

#include <functional>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/net/http_client.h"

namespace navarch {

// Reads an environment variable; nullopt when unset. Injected in tests.
using GetEnv = std::function<std::optional<std::string>(const std::string&)>;
GetEnv ProcessEnv();

inline constexpr char kEc2MetadataEndpoint[] = "http://169.254.169.254";
inline constexpr char kGceMetadataHost[] = "metadata.google.internal";

// `configured`, else AWS_EC2_METADATA_SERVICE_ENDPOINT, else
// http://169.254.169.254; without a trailing slash. Empty values count as
// unset.
std::string Ec2MetadataEndpoint(const GetEnv& env,
                                absl::string_view configured = "");
// AWS_EC2_METADATA_DISABLED is "true" (any case), as in the AWS SDKs.
bool Ec2MetadataDisabled(const GetEnv& env);
// GCE_METADATA_HOST (host[:port]), else metadata.google.internal.
std::string GceMetadataHost(const GetEnv& env);

struct MetadataCallOptions {
  // Each request's whole deadline, and the TCP connect's share of it: off
  // its cloud a link-local address may drop packets rather than refuse.
  absl::Duration timeout = absl::Seconds(2);
  absl::Duration connect_timeout = absl::Seconds(1);
  Clock* clock = nullptr;  // Times the deadlines. Null: real.
};

// One IMDSv2 session. Not thread-safe; cheap to make one per use.
class Ec2MetadataClient {
 public:
  // `endpoint`: http://host[:port], e.g. from Ec2MetadataEndpoint().
  Ec2MetadataClient(std::string endpoint, MetadataCallOptions options);

  // GET {endpoint}/latest/{path} ("meta-data/instance-id"), after a PUT
  // /latest/api/token on first use. A non-200 answer is UNAVAILABLE naming
  // the URL and status ("EC2 instance metadata GET ...: HTTP 404"); a
  // transport failure is HttpDo's (UNAVAILABLE or DEADLINE_EXCEEDED). The
  // token never appears in a message.
  absl::StatusOr<std::string> Get(absl::string_view path);

  const std::string& endpoint() const { return endpoint_; }

 private:
  absl::StatusOr<std::string> Call(const std::string& method,
                                   const std::string& url,
                                   const std::string& header,
                                   const std::string& value) const;

  std::string endpoint_;
  MetadataCallOptions options_;
  std::string token_;
};

// The request for http://{host}/computeMetadata/v1/{path} with the flavor
// header, for callers that send it their own way (GcpTokenSource retries it
// through CloudHttp).
HttpRequest GceMetadataRequest(absl::string_view host, absl::string_view path);

// Sends GceMetadataRequest(host, path). The body of a 200 answer that says
// `Metadata-Flavor: Google` (anything else is not Compute Engine's metadata
// server: UNAVAILABLE); other answers as Ec2MetadataClient::Get.
absl::StatusOr<std::string> GceMetadataGet(absl::string_view host,
                                           absl::string_view path,
                                           const MetadataCallOptions& options);

}  // namespace navarch

#endif  // NAVARCH_NET_INSTANCE_METADATA_H_
