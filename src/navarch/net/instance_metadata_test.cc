// Where the metadata services are, as the clouds' SDKs read it. The
// requests themselves are tested against the clouds' fakes
// (agent/node_identity_test.cc, provider/aws/aws_credentials_test.cc,
// provider/gcp/gcp_auth_test.cc).
#include "navarch/net/instance_metadata.h"

#include <map>
#include <string>

#include "gtest/gtest.h"

namespace navarch {
namespace {

GetEnv Env(std::map<std::string, std::string> vars) {
  return [vars](const std::string& k) -> std::optional<std::string> {
    auto it = vars.find(k);
    if (it == vars.end()) return std::nullopt;
    return it->second;
  };
}

TEST(InstanceMetadataTest, Ec2EndpointFromConfigElseEnvironmentElseLinkLocal) {
  EXPECT_EQ(Ec2MetadataEndpoint(Env({})), "http://169.254.169.254");
  EXPECT_EQ(
      Ec2MetadataEndpoint(Env({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", ""}})),
      "http://169.254.169.254");
  const GetEnv env =
      Env({{"AWS_EC2_METADATA_SERVICE_ENDPOINT", "http://127.0.0.1:8080//"}});
  EXPECT_EQ(Ec2MetadataEndpoint(env), "http://127.0.0.1:8080");
  EXPECT_EQ(Ec2MetadataEndpoint(env, "http://127.0.0.1:9/"),
            "http://127.0.0.1:9");
}

TEST(InstanceMetadataTest, Ec2DisabledOnlyByTrue) {
  EXPECT_FALSE(Ec2MetadataDisabled(Env({})));
  EXPECT_TRUE(
      Ec2MetadataDisabled(Env({{"AWS_EC2_METADATA_DISABLED", "True"}})));
  EXPECT_FALSE(Ec2MetadataDisabled(Env({{"AWS_EC2_METADATA_DISABLED", "1"}})));
}

TEST(InstanceMetadataTest, GceHostAndRequest) {
  EXPECT_EQ(GceMetadataHost(Env({})), "metadata.google.internal");
  EXPECT_EQ(GceMetadataHost(Env({{"GCE_METADATA_HOST", "127.0.0.1:81"}})),
            "127.0.0.1:81");
  HttpRequest r = GceMetadataRequest("127.0.0.1:81", "instance/name");
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.url, "http://127.0.0.1:81/computeMetadata/v1/instance/name");
  EXPECT_EQ(r.headers.at("Metadata-Flavor"), "Google");
}

}  // namespace
}  // namespace navarch
