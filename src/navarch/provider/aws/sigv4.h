// AWS Signature Version 4 (the signing process of docs.aws.amazon.com/IAM/
// latest/UserGuide/create-signed-request.html), with OpenSSL's SHA-256 and
// HMAC. Checked against AWS's published test-suite vectors and botocore.
#ifndef NAVARCH_PROVIDER_AWS_SIGV4_H_
#define NAVARCH_PROVIDER_AWS_SIGV4_H_

#include <map>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "navarch/net/digest.h"
#include "navarch/net/http_client.h"

namespace navarch {

struct AwsCredentials {
  std::string access_key_id;
  std::string secret_access_key;
  std::string session_token;  // Empty for long-term keys.
  // When temporary credentials stop working; InfiniteFuture for keys.
  absl::Time expiration = absl::InfiniteFuture();
};

// What is signed. `headers` are signed as given (names any case); they must
// include `host`. `query` is the raw query string (without '?').
struct SigV4Request {
  std::string method;
  std::string path = "/";
  std::string query;
  std::map<std::string, std::string> headers;
  std::string body;
  std::string region;
  std::string service;
};

// The steps of the algorithm, exposed for tests against the vectors.
std::string SigV4CanonicalRequest(const SigV4Request& request);
std::string SigV4StringToSign(const SigV4Request& request,
                              absl::string_view amz_date);
// The value of the Authorization header; `amz_date` is the request's
// X-Amz-Date (yyyymmddThhmmssZ), which must also be among its headers.
std::string SigV4Authorization(const SigV4Request& request,
                               const AwsCredentials& credentials,
                               absl::string_view amz_date);

// "20150830T123600Z".
std::string AmzDate(absl::Time t);

// Signs an HttpRequest in place for `service` in `region` at `now`: sets
// Host, X-Amz-Date, X-Amz-Security-Token (with a session token) and
// Authorization. Signs content-type (request.content_type) when there is a
// body. INVALID_ARGUMENT for an unparsable URL.
absl::Status SignHttpRequest(HttpRequest& request,
                             const AwsCredentials& credentials,
                             absl::string_view region,
                             absl::string_view service, absl::Time now);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_AWS_SIGV4_H_
