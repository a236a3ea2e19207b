// Google OAuth 2.0 access tokens for the Compute API: a service-account key
// signed into an RS256 JWT and exchanged at the key's token_uri
// (developers.google.com/identity/protocols/oauth2/service-account), or, on
// a GCE VM without a key, the metadata server's token. Tokens are cached and
// fetched again a few minutes before they expire, on the injected Clock.
#ifndef NAVARCH_PROVIDER_GCP_GCP_AUTH_H_
#define NAVARCH_PROVIDER_GCP_GCP_AUTH_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "navarch/base/clock.h"
#include "navarch/net/instance_metadata.h"
#include "navarch/provider/cloud/cloud_http.h"

namespace navarch {

inline constexpr char kGcpComputeScope[] =
    "https://www.googleapis.com/auth/compute";
// The JWT's audience is Google's token endpoint even where token_uri is
// overridden (as google-auth does).
inline constexpr char kGoogleTokenAudience[] =
    "https://oauth2.googleapis.com/token";

// The fields of a service-account key file (JSON) that the flow needs.
struct GcpServiceAccountKey {
  std::string client_email;
  std::string private_key;  // PEM
  std::string private_key_id;
  std::string token_uri;
  std::string project_id;
};

// INVALID_ARGUMENT (never quoting the key) when it is not a service-account
// key with the fields above.
absl::StatusOr<GcpServiceAccountKey> ParseServiceAccountKey(
    absl::string_view json);

// The signed assertion "header.claims.signature" (base64url, RS256), valid
// for an hour from `now`.
absl::StatusOr<std::string> SignGcpJwt(const GcpServiceAccountKey& key,
                                       absl::Time now, absl::string_view scope);

struct GcpTokenSourceOptions {
  // With a key: the JWT flow. Without: the metadata server at
  // `metadata_host` (host[:port]; GCE_METADATA_HOST overrides it upstream of
  // here).
  std::optional<GcpServiceAccountKey> key;
  std::string metadata_host = kGceMetadataHost;
  std::string scope = kGcpComputeScope;
  // A token is fetched again once it has less than this left.
  absl::Duration refresh_margin = absl::Minutes(5);
};

// Thread-safe. Tokens and the private key are added to `http`'s redactor,
// so no message carries them.
class GcpTokenSource {
 public:
  GcpTokenSource(CloudHttp& http, Clock& clock, GcpTokenSourceOptions options);

  // A token valid for at least refresh_margin (fetching one if needed).
  // UNAUTHENTICATED/PERMISSION_DENIED when Google refuses the key;
  // UNAVAILABLE when the endpoint cannot be reached.
  absl::StatusOr<std::string> Token();

 private:
  struct Fetched {
    std::string token;
    absl::Duration lifetime;
  };
  absl::StatusOr<Fetched> FetchWithKey();
  absl::StatusOr<Fetched> FetchFromMetadata();

  CloudHttp& http_;
  Clock& clock_;
  const GcpTokenSourceOptions options_;
  absl::Mutex mu_;
  std::string token_ ABSL_GUARDED_BY(mu_);
  absl::Time expires_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_GCP_GCP_AUTH_H_
