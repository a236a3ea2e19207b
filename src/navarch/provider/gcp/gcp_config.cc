#include "navarch/provider/gcp/gcp_config.h"

#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"

namespace navarch {

absl::StatusOr<GcpProviderOptions> GcpOptionsFromConfig(
    const ProviderConfig& c,
    const std::function<std::string(const std::string&)>& getenv) {
  GcpProviderOptions o;
  o.name = c.name;
  o.project = c.project;
  if (!c.zone.empty()) o.zone = c.zone;
  if (!c.gcp.endpoint.empty()) o.endpoint = c.gcp.endpoint;
  const std::string metadata = getenv("GCE_METADATA_HOST");
  if (!metadata.empty()) o.metadata_host = metadata;
  std::string file = c.credentials_file;
  if (file.empty()) file = getenv("GOOGLE_APPLICATION_CREDENTIALS");
  if (!file.empty()) {
    std::ifstream in(file);
    std::stringstream text;
    text << in.rdbuf();
    if (!in) {
      return absl::InvalidArgumentError(absl::StrCat(
          "provider ", c.name, ": cannot read credentials file ", file));
    }
    absl::StatusOr<GcpServiceAccountKey> key =
        ParseServiceAccountKey(text.str());
    if (!key.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "provider ", c.name, ": ", file, ": ", key.status().message()));
    }
    o.key = *key;
  }
  o.spec.image = c.gcp.image;
  o.spec.network =
      c.gcp.network.empty() ? "global/networks/default" : c.gcp.network;
  o.spec.subnetwork = c.gcp.subnetwork;
  o.spec.service_account = c.gcp.service_account;
  o.spec.spot = c.gcp.spot;
  o.spec.accelerator_type = c.gcp.accelerator_type;
  o.spec.accelerator_count = c.gcp.accelerator_count;
  if (c.gcp.boot_disk_gb > 0) o.spec.boot_disk_gb = c.gcp.boot_disk_gb;
  o.http.ca_file = c.gcp.ca_file;
  return o;
}

}  // namespace navarch
