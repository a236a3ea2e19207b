// A `type: gcp` provider entry turned into GcpProviderOptions: the key file
// (credentials_file, else GOOGLE_APPLICATION_CREDENTIALS, else the metadata
// server), GCE_METADATA_HOST, and the instance settings.
#ifndef NAVARCH_PROVIDER_GCP_GCP_CONFIG_H_
#define NAVARCH_PROVIDER_GCP_GCP_CONFIG_H_

#include <functional>
#include <string>

#include "absl/status/statusor.h"
#include "navarch/config/config.h"
#include "navarch/provider/gcp/gcp_provider.h"

namespace navarch {

// `getenv` reads the environment (injected: tests pass a map). Reads the
// key file; its contents never appear in an error.
absl::StatusOr<GcpProviderOptions> GcpOptionsFromConfig(
    const ProviderConfig& config,
    const std::function<std::string(const std::string&)>& getenv);

}  // namespace navarch

#endif  // NAVARCH_PROVIDER_GCP_GCP_CONFIG_H_
