// Where the AWS provider's credentials come from, in the SDKs' order:
//   1. the environment: AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
//      AWS_SESSION_TOKEN;
//   2. the shared credentials file (`credentials_file`, else
//      AWS_SHARED_CREDENTIALS_FILE, else ~/.aws/credentials), section
//      `profile` (else AWS_PROFILE, else "default");
//   3. IMDSv2 on EC2: PUT /latest/api/token, then the instance role's
//      temporary credentials, kept until 5 minutes before their Expiration
//      (AWS_EC2_METADATA_SERVICE_ENDPOINT overrides http://169.254.169.254;
//      AWS_EC2_METADATA_DISABLED=true turns it off).
#ifndef NAVARCH_PROVIDER_AWS_AWS_CREDENTIALS_H_
#define NAVARCH_PROVIDER_AWS_AWS_CREDENTIALS_H_

#include <optional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "navarch/base/clock.h"
#include "navarch/net/instance_metadata.h"
#include "navarch/provider/aws/sigv4.h"

namespace navarch {

struct AwsCredentialOptions {
  std::string profile;            // Empty: AWS_PROFILE, else "default".
  std::string credentials_file;   // Empty: see above.
  std::string metadata_endpoint;  // Empty: see above.
  GetEnv getenv;                  // Null: the process's environment.
  Clock* clock = nullptr;         // Null: real.
  absl::Duration metadata_timeout = absl::Seconds(2);
};

// Thread-safe.
class AwsCredentialChain {
 public:
  explicit AwsCredentialChain(AwsCredentialOptions options);

  // The first source that has credentials. UNAUTHENTICATED when none has,
  // naming what was tried (never a secret).
  absl::StatusOr<AwsCredentials> Get();

 private:
  std::optional<std::string> Env(const std::string& name) const;
  absl::StatusOr<std::optional<AwsCredentials>> FromFile() const;
  absl::StatusOr<AwsCredentials> FromMetadata();

  AwsCredentialOptions options_;
  absl::Mutex mu_;
  std::optional<AwsCredentials> cached_ ABSL_GUARDED_BY(mu_);
};

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_AWS_AWS_CREDENTIALS_H_
