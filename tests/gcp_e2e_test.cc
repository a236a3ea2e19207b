// A control plane with one pool on the gcp provider, pointed at the fake
// Compute Engine (endpoint and token_uri on 127.0.0.1): the pool fills, a
// capacity error is an event with GCE's code and zone, and no key or token
// appears in the logs, events or /metrics.
#include <httplib.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/base/logging.h"
#include "navarch/config/config_loader.h"
#include "navarch/controlplane/server.h"
#include "navarch/provider/gcp/testing/fake_gce.h"

namespace navarch {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(GcpE2eTest, APoolFillsFromTheFakeAndNoSecretLeaks) {
  testing::FakeGceOptions fo;
  fo.sa_key_pem = testing::GenerateRsaKeyPem();
  testing::FakeGce fake(fo);
  fake.FailNextInsert({0, "", "ZONE_RESOURCE_POOL_EXHAUSTED",
                       "The zone does not have enough resources available."});
  const std::string key_path =
      ::testing::TempDir() + "/gcp-e2e-key-" + std::to_string(::getpid());
  std::ofstream(key_path) << fake.ServiceAccountKeyJson();
  absl::StatusOr<Config> config =
      LoadConfigString(absl::StrCat(R"(server:
  address: "127.0.0.1:0"
  http_address: "127.0.0.1:0"
  autoscale_interval: 1s
storage:
  backend: memory
providers:
  gcp:
    type: gcp
    project: test-project
    zone: us-central1-a
    endpoint: )",
                                    fake.endpoint(), R"(
    credentials_file: )",
                                    key_path, R"(
    image: projects/test-project/global/images/navarch
pools:
  training:
    provider: gcp
    instance_type: a3-highgpu-8g
    min_nodes: 2
    max_nodes: 4
)"),
                       "gcp.yaml");
  ASSERT_TRUE(config.ok()) << config.status();
  ResolveConfig(&*config);
  RealClock clock;
  std::ostringstream log_text;
  Logger log(std::make_shared<LogSink>(&log_text, LogFormat::kJson,
                                       LogLevel::kDebug, &clock));
  ControlPlaneServer server(*config, clock, log);
  ASSERT_TRUE(server.Start().ok());
  for (int i = 0; i < 300 && fake.instances().size() < 2; ++i) {
    absl::SleepFor(absl::Milliseconds(100));
  }
  EXPECT_EQ(fake.instances().size(), 2u);
  httplib::Client client("http://" + server.http_address());
  auto events = client.Get("/api/v1/events");
  auto metrics = client.Get("/metrics");
  auto instances = client.Get("/api/v1/instances");
  server.Shutdown(absl::Seconds(1));
  std::filesystem::remove(key_path);
  ASSERT_TRUE(events && metrics && instances);
  EXPECT_THAT(events->body, HasSubstr("ZONE_RESOURCE_POOL_EXHAUSTED"));
  EXPECT_THAT(events->body, HasSubstr("us-central1-a"));
  std::string everything =
      log_text.str() + events->body + metrics->body + instances->body;
  EXPECT_THAT(everything, Not(HasSubstr("PRIVATE KEY")));
  ASSERT_FALSE(fake.issued_tokens().empty());
  for (const std::string& t : fake.issued_tokens()) {
    EXPECT_THAT(everything, Not(HasSubstr(t)));
  }
}

}  // namespace
}  // namespace navarch
