#include "navarch/provider/gcp/gcp_config.h"

#include <filesystem>
#include <fstream>
#include <map>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/config/config_loader.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

std::function<std::string(const std::string&)> Env(
    std::map<std::string, std::string> env) {
  return [env](const std::string& k) {
    auto it = env.find(k);
    return it == env.end() ? std::string() : it->second;
  };
}

TEST(GcpConfigTest, EveryKeyReadsAndReachesTheOptions) {
  absl::StatusOr<Config> c = LoadConfigString(R"(
providers:
  g:
    type: gcp
    project: p1
    zone: europe-west4-a
    endpoint: http://127.0.0.1:9/compute/v1
    image: projects/p1/global/images/navarch
    network: global/networks/gpu
    subnetwork: regions/europe-west4/subnetworks/gpu
    service_account: vm@p1.iam.gserviceaccount.com
    spot: true
    accelerator_type: nvidia-tesla-t4
    accelerator_count: 4
    boot_disk_gb: 500
)",
                                              "test.yaml");
  ASSERT_TRUE(c.ok()) << c.status();
  absl::StatusOr<GcpProviderOptions> o = GcpOptionsFromConfig(
      c->providers.at("g"), Env({{"GCE_METADATA_HOST", "127.0.0.1:7"}}));
  ASSERT_TRUE(o.ok()) << o.status();
  EXPECT_EQ(o->project, "p1");
  EXPECT_EQ(o->zone, "europe-west4-a");
  EXPECT_EQ(o->endpoint, "http://127.0.0.1:9/compute/v1");
  EXPECT_EQ(o->metadata_host, "127.0.0.1:7");
  EXPECT_FALSE(o->key.has_value());  // no key: the metadata server
  EXPECT_TRUE(o->spec.spot);
  EXPECT_EQ(o->spec.accelerator_count, 4);
  EXPECT_EQ(o->spec.boot_disk_gb, 500);
  EXPECT_EQ(o->spec.subnetwork, "regions/europe-west4/subnetworks/gpu");
}

TEST(GcpConfigTest, GcpKeysOnAnotherTypeAreErrors) {
  absl::StatusOr<Config> c = LoadConfigString(
      "providers:\n  f:\n    type: fake\n    spot: true\n", "test.yaml");
  ASSERT_FALSE(c.ok());
  EXPECT_THAT(std::string(c.status().message()),
              HasSubstr("'spot' does not apply to provider type 'fake'"));
}

TEST(GcpConfigTest, KeyFileFromTheEnvironmentAndBadFilesWithoutSecrets) {
  const std::string path = ::testing::TempDir() + "/gcp-key.json";
  std::ofstream(path)
      << R"({"type":"service_account","client_email":"a@p.iam","private_key":"-----BEGIN PRIVATE KEY-----SECRET","token_uri":"http://127.0.0.1:5/token"})";
  ProviderConfig pc;
  pc.name = "g";
  pc.project = "p";
  absl::StatusOr<GcpProviderOptions> o =
      GcpOptionsFromConfig(pc, Env({{"GOOGLE_APPLICATION_CREDENTIALS", path}}));
  ASSERT_TRUE(o.ok()) << o.status();
  ASSERT_TRUE(o->key.has_value());
  EXPECT_EQ(o->key->token_uri, "http://127.0.0.1:5/token");
  std::ofstream(path, std::ios::trunc) << R"({"private_key":"SECRET"})";
  absl::Status bad =
      GcpOptionsFromConfig(pc, Env({{"GOOGLE_APPLICATION_CREDENTIALS", path}}))
          .status();
  EXPECT_EQ(bad.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(bad.message()), Not(HasSubstr("SECRET")));
  pc.credentials_file = path + ".missing";
  EXPECT_EQ(GcpOptionsFromConfig(pc, Env({})).status().code(),
            absl::StatusCode::kInvalidArgument);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace navarch
